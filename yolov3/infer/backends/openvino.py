"""OpenVINO backend: an OpenVINO IR (``.xml`` + ``.bin``) with raw-map outputs, on the CPU.

The IR is this exporter's (``yolov3 export --format openvino [--int8]``: the ``ModelMeta`` JSON in the
model's ``rt_info`` under ``yolov3``) or another tool's that fits the raw-map contract (three outputs:
YOLOv3, two: YOLOv3-tiny, as for foreign ONNX files).

Performance settings (``backend_options``):

- ``threads``: inference threads, default the cores this process may use (``cpu_cores``).
- ``hint``: auto | latency | throughput. ``latency`` runs a whole batch as one request on a model
  compiled with OpenVINO's LATENCY hint (one stream, every thread on it). ``throughput`` splits a
  batch into one request per image, run in parallel on a model compiled with the THROUGHPUT hint
  (OpenVINO picks the number of streams and requests). ``auto``: latency for a batch of one,
  throughput for larger batches (``yolov3 val``, ``Detector`` batches of a folder).
- ``amp`` (the ``InferConfig`` field): auto | bf16 | fp16 | off -> OpenVINO's inference precision
  hint. auto is bf16 where the CPU runs it natively (``yolov3.device.cpu_supports_bf16``), else f32;
  off is f32 throughout. An INT8 IR runs its quantized convolutions in INT8 whatever the hint.

OpenVINO is an optional dependency (the ``openvino`` extra): without it this module still imports,
and ``load`` raises a ``UserError`` saying how to install it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from yolov3.config import OPENVINO_HINTS
from yolov3.device import cpu_supports_bf16
from yolov3.errors import UserError
from yolov3.infer.backends import Backend, cpu_cores, foreign_meta
from yolov3.infer.backends.onnxfile import check_raw_outputs
from yolov3.modelfile import META_KEY, ModelMeta

try:
    import openvino as ov
except ImportError:  # the optional extra is not installed: load() says how to get it
    ov = None

INSTALL_HINT = "pip install 'yolov3[openvino]' (or: pip install openvino nncf)"
_PRECISION = {"bf16": "bf16", "fp16": "f16", "off": "f32"}


def require_openvino() -> Any:
    """The ``openvino`` module, or a ``UserError`` saying how to install it."""
    if ov is None:
        raise UserError(f"OpenVINO is not installed: {INSTALL_HINT}")
    return ov


def precision_hint(amp: str) -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` for an ``InferConfig.amp`` value (module docstring)."""
    if amp == "auto":
        return "bf16" if cpu_supports_bf16() else "f32"
    if amp not in _PRECISION:
        raise UserError(f"amp={amp!r}: expected auto, bf16, fp16 or off")
    return _PRECISION[amp]


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return next((ln for ln in lines if not ln.startswith(("Exception from", "Check "))), lines[0] if lines
                else type(exc).__name__)  # fmt: skip


def read_ir(path: str | os.PathLike) -> tuple[Any, ModelMeta | None]:
    """``(ov.Model, ModelMeta or None)`` from an IR ``.xml`` and the ``.bin`` beside it; a missing,
    corrupt or truncated pair is a ``UserError`` naming the file."""
    core = require_openvino().Core()
    path = Path(path)
    weights = path.with_suffix(".bin")
    if path.suffix.lower() != ".xml":
        raise UserError(f"{path}: an OpenVINO IR is an .xml file (with its .bin beside it)")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if not weights.is_file():
        raise UserError(f"{path}: its weights file {weights} is missing")
    try:
        model = core.read_model(str(path), str(weights))
    except Exception as exc:  # OpenVINO raises RuntimeError (and others) for a broken pair
        raise UserError(f"{path} / {weights.name}: not a readable OpenVINO IR ({_first_line(exc)})") from exc
    meta = None
    if model.has_rt_info(META_KEY):
        meta = ModelMeta.from_json(str(model.get_rt_info(META_KEY).astype(str)), str(path))
    return model, meta


def _dims(shape: Any) -> list[Any]:
    return [d.get_length() if d.is_static else "?" for d in shape]


def ir_meta(model: Any, meta: ModelMeta | None, names: Any, source: str) -> ModelMeta:
    """Check the IR takes one image ``(B, 3, H, W)`` and gives raw maps (``check_raw_outputs``);
    return its meta (a foreign IR's from its outputs, its static input size and ``names``). OpenVINO
    reshapes an IR to any input size, so a static shape is its default size, not a limit."""
    if len(model.inputs) != 1:
        raise UserError(f"{source}: {len(model.inputs)} inputs; expected one image input (B, 3, H, W)")
    in_shape = _dims(model.inputs[0].get_partial_shape())
    if len(in_shape) != 4 or in_shape[1] not in (3, "?"):
        raise UserError(f"{source}: input has shape {in_shape}; expected (B, 3, H, W), RGB")
    out_names = [o.get_any_name() if o.get_names() else f"output{i}" for i, o in enumerate(model.outputs)]
    shapes = [_dims(o.get_partial_shape()) for o in model.outputs]
    check_raw_outputs(Path(source), out_names, shapes, meta)
    channels = shapes[0][1] if isinstance(shapes[0][1], int) else None
    size = in_shape[2] if isinstance(in_shape[2], int) else None
    return meta or foreign_meta(len(out_names), channels, names, source, size)


class OpenVINOBackend(Backend):
    """An IR with raw-map outputs run by OpenVINO on the CPU (module docstring for the options).
    A model is compiled on first use for each input shape and mode, then reused."""

    kind = "openvino"

    def __init__(self, path: str | os.PathLike, names: Any = None, threads: int | None = None,
                 hint: str = "auto", amp: str = "auto") -> None:  # fmt: skip
        if hint not in OPENVINO_HINTS:
            raise UserError(f"hint={hint!r}: expected one of {', '.join(OPENVINO_HINTS)}")
        model, meta = read_ir(path)
        super().__init__(ir_meta(model, meta, names, str(path)), torch.device("cpu"), str(path))
        self.model, self.hint = model, hint
        self.threads = int(threads or cpu_cores())
        self.precision = precision_hint(amp)
        self.core = ov.Core()
        self._compiled: dict[tuple, Any] = {}
        self._requests: dict[Any, list] = {}  # per throughput-compiled model

    def compiled(self, shape: tuple[int, ...], mode: str) -> Any:
        """The model compiled for input ``shape`` with the ``mode`` (latency | throughput) hint."""
        key = (tuple(shape), mode)
        if key not in self._compiled:
            model = self.model
            if list(model.inputs[0].get_partial_shape()) != list(ov.PartialShape(list(shape))):
                model = model.clone()
                model.reshape({model.inputs[0]: ov.PartialShape(list(shape))})
            config = {"PERFORMANCE_HINT": mode.upper(), "INFERENCE_NUM_THREADS": self.threads,
                      "INFERENCE_PRECISION_HINT": self.precision}  # fmt: skip
            try:
                self._compiled[key] = self.core.compile_model(model, "CPU", config)
            except Exception as exc:
                raise UserError(f"{self.source}: OpenVINO cannot compile it for input {tuple(shape)} "
                                f"({_first_line(exc)})") from exc  # fmt: skip
        return self._compiled[key]

    def __call__(self, images: Tensor) -> list[Tensor]:
        x = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        mode = self.hint if self.hint != "auto" else ("latency" if len(x) == 1 else "throughput")
        if mode == "throughput":
            return self._sorted(self._parallel(x))
        net = self.compiled(x.shape, mode)
        out = net({0: x})
        return self._sorted([out[o] for o in net.outputs])

    def _parallel(self, x: np.ndarray) -> list[np.ndarray]:
        """One request per image on the THROUGHPUT-compiled model, as many at once as OpenVINO finds
        best; maps stacked back in batch order. (Plain requests waited on here: no Python callback
        runs on OpenVINO's threads.)"""
        net = self.compiled((1, *x.shape[1:]), "throughput")
        if net not in self._requests:
            jobs = max(1, int(net.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            self._requests[net] = [net.create_infer_request() for _ in range(jobs)]
        requests, outs = self._requests[net], []
        for start in range(0, len(x), len(requests)):
            chunk = x[start : start + len(requests)]
            for request, image in zip(requests, chunk):
                request.start_async({0: image[None]})
            for request in requests[: len(chunk)]:
                request.wait()
                outs.append([request.get_output_tensor(k).data.copy() for k in range(len(net.outputs))])
        return [np.concatenate([o[k] for o in outs]) for k in range(len(net.outputs))]


def load(path: Path, device: torch.device, names: Any = None, amp: str = "auto", threads: int | None = None,
         hint: str = "auto", **_: Any) -> Backend:  # fmt: skip
    require_openvino()
    if device.type != "cpu":
        raise UserError(f"--backend openvino runs on the CPU here, got --device {device}")
    if path.suffix.lower() != ".xml":
        raise UserError(f"--backend openvino runs OpenVINO IR .xml files, got {path} "
                        "(yolov3 export --format openvino writes one)")  # fmt: skip
    return OpenVINOBackend(path, names, threads, hint, amp)


__all__ = ["INSTALL_HINT", "OpenVINOBackend", "ir_meta", "load", "precision_hint", "read_ir",
           "require_openvino"]  # fmt: skip
