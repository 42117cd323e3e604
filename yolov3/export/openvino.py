"""OpenVINO IR export: ``model.xml`` + ``model.bin``, converted from this package's ONNX export.

The network goes through ``yolov3.export.onnx.export_onnx`` (raw maps, BatchNorm folded, opset >= 17)
into a temporary file, then ``openvino.convert_model`` and ``openvino.save_model``. The ``ModelMeta``
JSON is stored inside the IR, in the model's ``rt_info`` under ``yolov3`` (the ONNX export's
``metadata_props`` key), so plain OpenVINO reads it with ``model.get_rt_info("yolov3")``.
``half``: weights stored as float16 (OpenVINO's weight compression; the input, the activations and
the outputs stay float32). The caller (``yolov3.export.exporter``) validates settings and checks the
written IR against PyTorch; this module only writes.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from yolov3.export.onnx import export_onnx
from yolov3.infer.backends.openvino import require_openvino
from yolov3.modelfile import META_KEY, ModelMeta


def ir_files(xml: str | Path) -> list[Path]:
    """``[model.xml, model.bin]`` for an IR path."""
    xml = Path(xml)
    return [xml, xml.with_suffix(".bin")]


def save_ir(model: Any, meta: ModelMeta, path: str | Path, half: bool = False,
            extra: dict[str, str] | None = None) -> list[Path]:  # fmt: skip
    """Store ``meta`` (and ``extra`` string entries) in ``model``'s rt_info and save it as ``path``
    (``.xml``) + ``.bin``; weights float16 with ``half``. Returns the two paths."""
    ov = require_openvino()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.set_rt_info(meta.to_json(), META_KEY)
    for key, value in (extra or {}).items():
        model.set_rt_info(value, key)
    ov.save_model(model, str(path), compress_to_fp16=half)
    return ir_files(path)


def export_openvino(model: nn.Module, meta: ModelMeta, path: str | Path, batch: int = 1) -> list[Path]:
    """Write ``model`` (float32, eval mode) as an OpenVINO IR at ``path`` (``.xml``; ``.bin`` beside
    it): input ``meta.img_size`` (sizes free when ``meta.export.dynamic``), raw-map outputs, float16
    weights when ``meta.export.half``. Returns ``[xml, bin]``."""
    ov = require_openvino()
    path = Path(path)
    if path.suffix.lower() != ".xml":
        path = path.with_suffix(".xml")
    info = meta.export
    onnx_meta = meta.replace(export=dataclasses.replace(info, format="onnx", half=False))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = export_onnx(model, onnx_meta, Path(tmp) / "model.onnx", batch)
        converted = ov.convert_model(str(onnx_file))
    return save_ir(converted, meta, path, half=info.half)


__all__ = ["export_openvino", "ir_files", "save_ir"]
