"""The export formats, one table: format name -> how its file is written and how it is run back.

``EXPORTERS`` is to export what ``yolov3.infer.backends.MODULES`` is to inference: the one place a
format is named. ``export_model`` looks the format up here, ``FORMATS`` (``yolov3 export --format``)
is its keys, and a test holds ``yolov3.config.EXPORT_FORMATS`` (which the settings check against,
below this layer) equal to them. A new format is a writer, a runner and one entry.

A writer takes the model (eval mode, float32), the ``ModelMeta`` the file will carry (its input size
and ``export`` info already set), the output path, the settings and the model's device, and returns
the files written and a ``run(x) -> outputs`` that loads them with the runtime that will use them (ONNX
Runtime, ``torch.jit.load``, OpenVINO, OpenCV's Darknet reader), for ``export_model``'s check.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
import torch
from torch import nn

from yolov3.export.check import ExportCheckError
from yolov3.export.darknet import export_darknet
from yolov3.export.onnx import decoded_tensor_name, export_onnx
from yolov3.export.openvino import export_openvino
from yolov3.export.torchscript import export_torchscript
from yolov3.infer.backends.opencv import OpenCVBackend
from yolov3.infer.backends.openvino import OpenVINOBackend
from yolov3.infer.backends.ort import ort_session
from yolov3.infer.backends.pytorch import load_torchscript
from yolov3.modelfile import ModelMeta

if TYPE_CHECKING:
    from yolov3.export.exporter import ExportSettings

Runner = Callable[[torch.Tensor], Any]
Written = tuple[list[Path], Runner]


@dataclass(frozen=True)
class Exporter:
    """One format: ``write(model, meta, out, settings, device) -> (files, run)``; ``suffix``: the
    default file's (empty: a folder)."""

    write: Callable[[nn.Module, ModelMeta, Path, ExportSettings, torch.device], Written]
    suffix: str


def _half(model: nn.Module, s: ExportSettings) -> nn.Module:
    """A float16 copy with ``--half`` (the graph itself runs in float16), else the model."""
    return copy.deepcopy(model).half() if s.half else model


def write_onnx(model: nn.Module, meta: ModelMeta, out: Path, s: ExportSettings, device: torch.device
               ) -> Written:  # fmt: skip
    path = export_onnx(_half(model, s), meta, out, s.batch, s.opset)
    return [path], _onnx_runner(path, device, s.output_kind == "nms")


def write_torchscript(model: nn.Module, meta: ModelMeta, out: Path, s: ExportSettings, device: torch.device
                      ) -> Written:  # fmt: skip
    path = export_torchscript(_half(model, s), meta, out, s.batch)
    return [path], _torchscript_runner(path, device)


def write_openvino(model: nn.Module, meta: ModelMeta, out: Path, s: ExportSettings, device: torch.device
                   ) -> Written:  # fmt: skip
    """Float32 in; ``--half`` compresses the IR's weights (``meta.export.half``), not the graph."""
    files = export_openvino(model, meta, out, s.batch)
    backend = OpenVINOBackend(files[0], amp="off", hint="latency")
    return files, lambda x: backend(x.float().cpu())


def write_darknet(model: nn.Module, meta: ModelMeta, out: Path, s: ExportSettings, device: torch.device
                  ) -> Written:  # fmt: skip
    """A folder with the cfg, the weights and the names, read back by OpenCV's Darknet importer (an
    independent reader)."""
    files = [Path(p) for p in export_darknet(model, meta, out).values()]
    cfg = next((f for f in files if f.suffix == ".cfg"), None)
    weights = next((f for f in files if f.suffix == ".weights"), None)
    if cfg is None or weights is None:
        raise ExportCheckError(f"the Darknet export wrote {files}: expected a .cfg and a .weights")
    backend = OpenCVBackend(weights, cfg, names=list(meta.names))
    return files, lambda x: backend(x.float().cpu())


def _onnx_runner(path: Path, device: torch.device, nms: bool) -> Runner:
    """Run the file with ONNX Runtime; for an NMS export also return the decoded tensor inside it."""
    model: str | bytes = str(path)
    if nms:
        proto = onnx.load(str(path))
        proto.graph.output.append(
            onnx.helper.make_tensor_value_info(decoded_tensor_name(proto), onnx.TensorProto.FLOAT, None)
        )
        model = proto.SerializeToString()
    session = ort_session(model, device if device.type == "cuda" else torch.device("cpu"))
    input_name = session.get_inputs()[0].name
    return lambda x: session.run(None, {input_name: x.cpu().numpy()})


def _torchscript_runner(path: Path, device: torch.device) -> Runner:
    module, _ = load_torchscript(path, device)

    def run(x: torch.Tensor) -> list[torch.Tensor]:
        # One call per checked shape: skip the JIT's profiling and fusion passes (seconds, for nothing).
        with torch.no_grad(), torch.jit.optimized_execution(False):
            out = module(x)
        return [o.float() for o in out] if isinstance(out, (tuple, list)) else [out.float()]

    return run


EXPORTERS: dict[str, Exporter] = {
    "onnx": Exporter(write_onnx, ".onnx"),
    "torchscript": Exporter(write_torchscript, ".torchscript"),
    "darknet": Exporter(write_darknet, ""),
    "openvino": Exporter(write_openvino, ".xml"),
}
FORMATS = tuple(EXPORTERS)
