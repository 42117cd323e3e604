"""TorchScript export: ``torch.jit.trace`` of the network (raw maps or decoded boxes).

The file runs with ``torch.jit.load`` alone (C++ LibTorch included), no ``yolov3`` package needed. Its
interface is ``yolov3.export.heads``': input ``images (B, 3, H, W)``, output a tuple of raw maps or
one ``(B, N, 5 + C)`` tensor. The meta (names, anchors, strides, ...) is stored as the extra file
``yolov3.json`` (``torch.jit.load(path, _extra_files={"yolov3.json": ""})``). Sizes are traced
symbolically, so other batch sizes and image sizes (multiples of 32) run too; ``--dynamic`` records
that the file was checked at a second size. NMS inside the file is not offered (ONNX only).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolov3.errors import UserError
from yolov3.export.heads import ExportHead
from yolov3.export.meta import TORCHSCRIPT_META, dumps_meta, loads_meta


def export_torchscript(
    model: nn.Module,
    meta: dict[str, Any],
    path: str | Path,
    img_size: int = 416,
    batch: int = 1,
    dynamic: bool = False,
    half: bool = False,
    outputs: str = "raw",
) -> Path:
    """Trace ``model`` (eval mode; float16 when ``half``) and save it at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    dtype = torch.float16 if half else torch.float32
    head = ExportHead(model, meta, outputs).eval()
    example = torch.rand(batch, 3, img_size, img_size, device=device, dtype=dtype)
    with warnings.catch_warnings(), torch.no_grad():
        # TracerWarning on the model's Python-level shape checks; "torch.jit is deprecated" (still the
        # format LibTorch C++ loads).
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(head, (example,), check_trace=False)
        traced = torch.jit.freeze(traced.eval())
        stored = dict(meta, outputs=outputs, dynamic=dynamic, half=half)
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_META: dumps_meta(stored)})
    return path


def load_torchscript(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[torch.jit.ScriptModule, dict]:
    """``(module, meta)`` of a file written by ``export_torchscript``."""
    extra = {TORCHSCRIPT_META: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit is deprecated": still the C++ path
        try:
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{path}: not a readable TorchScript file ({exc})") from exc
    if not extra[TORCHSCRIPT_META]:
        raise UserError(f"{path}: a TorchScript file without yolov3 metadata ({TORCHSCRIPT_META})")
    return module.eval(), loads_meta(extra[TORCHSCRIPT_META], str(path))
