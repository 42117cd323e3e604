"""Backends: what turns a batch of letterboxed images into the model's raw maps, whatever runs it.

Every backend is a callable ``(images (B, 3, H, W) float32 in [0, 1], RGB) -> outputs`` that carries
the ``ModelMeta`` of what it runs (names, anchors, strides, the input size it was trained at) and
what its file fixes: ``outputs`` (``raw``: the model's forward contract, ``(B, A * (5 + C), H / s,
W / s)`` per output, smallest stride first; ``decoded``: one ``(B, N, 5 + C)``; ``nms``: one
``(K, 7)``, as ``yolov3.export.heads`` describes them), ``input_size`` (the ``(H, W)`` a fixed-size
file takes, else None) and ``fixed_batch`` (a file's fixed batch size, else None; a backend with one
runs any batch in chunks of it). The ``Detector`` owns everything around it: letterbox, batching,
``postprocess`` and timing.

=============  =========================================  =======================================
``kind``       runs                                       module
=============  =========================================  =======================================
torch          checkpoints, Darknet cfg + weights,        ``yolov3.infer.backends.pytorch``
               TorchScript exports
onnxruntime    ``.onnx`` (this exporter's or another      ``yolov3.infer.backends.ort``
               tool's that fits the raw-map contract)
opencv         ``.onnx``, Darknet cfg + weights           ``yolov3.infer.backends.opencv``
openvino       OpenVINO IR ``.xml`` + ``.bin`` (fp32,      ``yolov3.infer.backends.openvino``
               fp16 weights or INT8), CPU only
=============  =========================================  =======================================

A backend's module is imported only when that backend is asked for, so training, the loss and the
data pipeline never load ONNX Runtime or OpenCV's DNN module. A new runtime is a module with a
``load(path, device, cfg, names, amp, **options)`` function, an entry in ``MODULES`` and, when it has
its own file type, a line in ``auto_kind``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from yolov3.builder import cfg_path
from yolov3.config import COCO_ANCHORS, STRIDES
from yolov3.darknet.cfg import parse_cfg
from yolov3.darknet.edit import yolo_outputs
from yolov3.device import select_device
from yolov3.errors import UserError
from yolov3.modelfile import ModelMeta, read_names

MODULES = {
    "torch": "yolov3.infer.backends.pytorch",
    "onnxruntime": "yolov3.infer.backends.ort",
    "opencv": "yolov3.infer.backends.opencv",
    "openvino": "yolov3.infer.backends.openvino",
}
BACKENDS = tuple(MODULES)


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Backend:
    """Base: the model description every backend carries. Subclasses implement ``__call__`` and set
    ``input_size`` / ``fixed_batch`` when their file fixes them (module docstring)."""

    kind = "?"
    input_size: tuple[int, int] | None = None
    fixed_batch: int | None = None

    def __init__(self, meta: ModelMeta, device: torch.device, source: str) -> None:
        self.meta = meta
        self.device = device
        self.source = source

    @property
    def outputs(self) -> str:
        """raw | decoded | nms: what the file's outputs are (``ExportInfo.outputs``; raw for a model)."""
        return self.meta.export.outputs if self.meta.export is not None else "raw"

    @property
    def names(self) -> list[str]:
        return list(self.meta.names)

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    @property
    def anchors(self) -> list[list[tuple[float, float]]]:
        return [list(scale) for scale in self.meta.anchors]

    @property
    def strides(self) -> list[int]:
        return list(self.meta.strides)

    def __call__(self, images: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source}, classes={self.num_classes}, device={self.device})"

    def _sorted(self, maps: Sequence[np.ndarray | Tensor]) -> list[Tensor]:
        """Outputs as float32 tensors on ``self.device``; raw maps largest grid (smallest stride) first."""
        if self.outputs == "raw":
            maps = sorted(maps, key=lambda m: -m.shape[-2] * m.shape[-1])
        return [torch.as_tensor(np.asarray(m) if not isinstance(m, Tensor) else m).float().to(self.device)
                for m in maps]  # fmt: skip

    def _in_fixed_batches(self, images: Tensor, run: Callable[[Tensor], list[Tensor]]) -> list[Tensor]:
        """``run`` over ``images`` in chunks of ``fixed_batch`` (the last padded with blank images, whose
        outputs are dropped), outputs put back together as for one batch: raw and decoded outputs
        concatenated, NMS rows with their batch index (column 0) offset by the chunk's start."""
        size, n = self.fixed_batch, len(images)
        if size is None or n == size:
            return run(images)
        parts: list[list[Tensor]] = []
        for start in range(0, n, size):
            chunk = images[start : start + size]
            real = len(chunk)
            if real < size:
                chunk = torch.cat([chunk, chunk.new_zeros((size - real, *chunk.shape[1:]))])
            out = run(chunk)
            if self.outputs == "nms":
                rows = out[0][out[0][:, 0] < real]
                out = [torch.cat([rows[:, :1] + start, rows[:, 1:]], dim=1)]
            else:
                out = [o[:real] for o in out]
            parts.append(out)
        return [torch.cat([p[k] for p in parts]) for k in range(len(parts[0]))]


def foreign_meta(num_outputs: int, channels: int | None, names: Any, source: str, img_size: int | None = None
                 ) -> ModelMeta:  # fmt: skip
    """Meta for a file from another tool (no yolov3 metadata): three outputs are YOLOv3 with Darknet's
    COCO anchors, two are YOLOv3-tiny with the anchors of its shipped cfg. ``img_size``: the file's
    fixed input size, if any (else Darknet's 416)."""
    if channels is None:
        raise UserError(f"{source}: output channel count is not fixed in the file and there is no yolov3 "
                        "metadata: cannot tell the number of classes")  # fmt: skip
    if num_outputs == 3:
        anchors, strides = COCO_ANCHORS, STRIDES
    else:
        heads = yolo_outputs(parse_cfg(cfg_path("yolov3-tiny")))
        anchors, strides = [h.anchors for h in heads], [h.stride for h in heads]
    num_classes = channels // len(anchors[0]) - 5
    return ModelMeta.create(names=read_names(names, num_classes, source), anchors=anchors,
                            strides=strides, img_size=img_size or 416, arch="foreign")  # fmt: skip


def auto_kind(path: Path) -> str:
    """The backend a file runs on by default: ``.onnx`` on ONNX Runtime, an OpenVINO IR ``.xml`` on
    OpenVINO, anything else on PyTorch."""
    return {".onnx": "onnxruntime", ".xml": "openvino"}.get(path.suffix.lower(), "torch")


def load_backend(path: str | os.PathLike, kind: str = "auto", device: str | torch.device = "auto",
                 cfg: str | os.PathLike | None = None, names: Any = None, amp: str = "auto",
                 **options: Any) -> Backend:  # fmt: skip
    """A backend for ``path`` (the table in the module docstring); ``kind`` auto picks by file type.
    ``names``: a ``.names`` file or a list (Darknet weights and foreign ONNX files carry none).
    ``options`` go to the backend (``threads``, ``spin``, ``cuda_graph``; OpenVINO: ``threads``, ``hint``)."""
    path = Path(path)
    if kind != "auto" and kind not in MODULES:
        raise UserError(f"--backend {kind!r}: expected one of auto, {', '.join(BACKENDS)}")
    if not path.exists():
        raise UserError(f"{path}: no such file")
    kind = auto_kind(path) if kind == "auto" else kind
    module = importlib.import_module(MODULES[kind])
    dev = device if isinstance(device, torch.device) else select_device(str(device))
    return module.load(path, dev, cfg=cfg, names=names, amp=amp, **options)


__all__ = ["BACKENDS", "MODULES", "Backend", "auto_kind", "cpu_cores", "foreign_meta", "load_backend"]
