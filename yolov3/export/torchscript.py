"""TorchScript export: ``torch.jit.trace`` of the network (raw maps or decoded boxes).

The file runs with ``torch.jit.load`` alone (C++ LibTorch included), no ``yolov3`` package needed. Its
interface is ``yolov3.export.heads``': input ``images (B, 3, H, W)``, output a tuple of raw maps or
one ``(B, N, 5 + C)`` tensor. The ``ModelMeta`` (names, anchors, strides, ...) is stored as the extra file
``yolov3.json`` (``torch.jit.load(path, _extra_files={"yolov3.json": ""})``); the TorchScript backend
(``yolov3.infer.backends.pytorch``) reads it back. Sizes are traced
symbolically, so other batch sizes and image sizes (multiples of 32) run too; ``--dynamic`` records
that the file was checked at a second size. NMS inside the file is not offered (ONNX only).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from yolov3.export.heads import ExportHead
from yolov3.infer.backends.pytorch import TORCHSCRIPT_META
from yolov3.modelfile import ModelMeta


def export_torchscript(model: nn.Module, meta: ModelMeta, path: str | Path, batch: int = 1) -> Path:
    """Trace ``model`` (eval mode; float16 when ``meta.export.half``) at ``meta.img_size`` with the
    outputs ``meta.export.outputs`` and save it at ``path`` with ``meta`` as the extra file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    dtype = torch.float16 if meta.export.half else torch.float32
    head = ExportHead(model, meta, meta.export.outputs).eval()
    example = torch.rand(batch, 3, meta.img_size, meta.img_size, device=device, dtype=dtype)
    with warnings.catch_warnings(), torch.no_grad():
        # TracerWarning on the model's Python-level shape checks; "torch.jit is deprecated" (still the
        # format LibTorch C++ loads).
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(head, (example,), check_trace=False)
        traced = torch.jit.freeze(traced.eval())
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_META: meta.to_json()})
    return path
