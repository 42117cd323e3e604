"""INT8 post-training quantization of an export, calibrated on the user's data and accuracy-checked.

Two routes, one procedure (``export_int8``):

- ``openvino``: NNCF's ``nncf.quantize`` on the OpenVINO model (its default preset: symmetric INT8
  weights per channel and activations per tensor, fast bias correction).
- ``onnx``: ONNX Runtime's ``quantize_static`` in QDQ format, convolutions only (INT8 weights per
  channel, UINT8 activations, min-max calibration), which ONNX Runtime's CPU provider fuses into
  integer kernels. Quantizing every op it can (LeakyRelu, Add, Concat, Resize too) was slower.

What is quantized: the network's convolutions (NNCF also places quantizers on the inputs of the
residual additions and concatenations it can keep in INT8). The export holds raw maps only, so
decode, sigmoid and NMS are not in it: they run in float32 in ``yolov3.infer.postprocess``. The
three output convolutions (the 1x1 convolutions that write the raw maps: box offsets, objectness and
class logits) are left in float: a fraction of a percent of the compute, and their outputs are the
numbers every box is decoded from.

Calibration: ``calib_images`` images of the data set's train split (spread evenly over it), read as
RGB and letterboxed exactly as the ``Detector`` does (``yolov3.data.transforms.letterbox_image``).

Accuracy: the float32 file and the INT8 file are each loaded by the runtime that will run them (f32
precision, so only the quantization differs) and scored on the val split with
``yolov3.evaluate.evaluator.evaluate`` at ``InferConfig.for_map()``. A mAP@0.5 drop of more than
``int8_max_drop`` points is an error that removes the INT8 file and gives both mAPs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from yolov3.config import InferConfig
from yolov3.console import other_output
from yolov3.data.dataset_config import load_dataset
from yolov3.data.formats.common import DatasetSpec
from yolov3.data.images import ImageError, read_image
from yolov3.data.transforms import letterbox_image
from yolov3.data.types import Sample
from yolov3.errors import UserError
from yolov3.evaluate.evaluator import check_labelled, evaluate
from yolov3.export.openvino import save_ir
from yolov3.infer.backends import load_backend
from yolov3.infer.backends.openvino import INSTALL_HINT, read_ir
from yolov3.modelfile import META_KEY, ModelMeta

INT8_KEY = "yolov3_int8"  # rt_info / metadata_props: how the file was quantized and what it scored


def calibration_data(data: str, meta: ModelMeta, source: str) -> DatasetSpec:
    """The data set ``data``, checked for INT8 export: the model's class count, a labelled train split
    (calibration) and a labelled val split (the accuracy check)."""
    spec = load_dataset(data)
    if len(spec.names) != meta.num_classes:
        raise UserError(f"--data {data}: {len(spec.names)} classes, but {source} has {meta.num_classes}: "
                        "calibrate on the data set the model was trained for")  # fmt: skip
    check_labelled(spec.train, f"--data {data}: the train split (calibration images)")
    check_labelled(spec.val, f"--data {data}: the val split (INT8 accuracy check)")
    return spec


def calibration_batches(samples: Sequence[Sample], img_size: int, count: int) -> list[np.ndarray]:
    """Up to ``count`` images spread evenly over ``samples`` -> ``(1, 3, S, S)`` float32 RGB in [0, 1],
    letterboxed as the ``Detector`` does. Unreadable images are skipped; none readable is an error."""
    picks = np.unique(np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int))
    batches = []
    for i in picks:
        try:
            image = read_image(samples[i].image)
        except ImageError:
            continue
        boxed, _ = letterbox_image(image, img_size)
        batches.append(np.ascontiguousarray(boxed.transpose(2, 0, 1)[None]))
    if not batches:
        raise UserError(
            f"none of the {len(picks)} calibration images could be read (e.g. {samples[0].image})"
        )
    return batches


def _ov_output_convs(model: Any) -> list[str]:
    """Names of the convolutions writing the model's outputs (through a bias Add / Convert)."""
    names = []
    for result in model.get_results():
        node = result.input_value(0).get_node()
        while node.get_type_name() in ("Add", "Convert", "Reshape") and node.get_input_size():
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Convolution":
            names.append(node.get_friendly_name())
    return names


def quantize_openvino(fp32: Path, out: Path, batches: list[np.ndarray], meta: ModelMeta,
                      record: dict[str, Any]) -> list[Path]:  # fmt: skip
    """NNCF post-training quantization of the IR ``fp32``, saved as ``out`` (+ ``.bin``)."""
    with other_output("nncf", "torch.utils.cpp_extension"):
        try:
            import nncf  # the optional extra: imported for this route only
        except ImportError as exc:
            raise UserError(f"--int8 --format openvino needs NNCF: {INSTALL_HINT}") from exc
        nncf.set_log_level(logging.ERROR)  # NNCF sets its own level when imported
        model, _ = read_ir(fp32)
        scope = nncf.IgnoredScope(names=_ov_output_convs(model), validate=False)
        quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches), ignored_scope=scope)
    return save_ir(quantized, meta, out, extra={INT8_KEY: json.dumps(record)})


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over the calibration batches."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self.feeds = iter([{input_name: b} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def quantize_onnx(fp32: Path, out: Path, batches: list[np.ndarray], meta: ModelMeta,
                  record: dict[str, Any]) -> list[Path]:  # fmt: skip
    """ONNX Runtime static QDQ quantization of ``fp32`` (module docstring), saved as ``out``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    proto = onnx.load(str(fp32))
    outputs = {o.name for o in proto.graph.output}
    heads = [n.name for n in proto.graph.node if n.op_type == "Conv" and set(n.output) & outputs]
    out.parent.mkdir(parents=True, exist_ok=True)
    with other_output():  # its advice to pre-process the model first is on the root logger
        quantize_static(str(fp32), str(out), _Reader(proto.graph.input[0].name, batches),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"], nodes_to_exclude=heads,
                        calibrate_method=CalibrationMethod.MinMax)  # fmt: skip
    q = onnx.load(str(out))
    del q.metadata_props[:]
    q.metadata_props.add(key=META_KEY, value=meta.to_json())
    q.metadata_props.add(key=INT8_KEY, value=json.dumps(record))
    onnx.save(q, str(out))
    return [out]


def score(path: Path, spec: DatasetSpec, img_size: int) -> dict[str, float]:
    """mAP@0.5 and mAP@.5:.95 (VOC all-point, in [0, 1]) of an exported file on ``spec.val``."""
    backend = load_backend(path, device="cpu", amp="off")
    settings = InferConfig.for_map(img_size=img_size, amp="off")
    summary = evaluate(backend, spec.val, spec.names, settings, device="cpu", coco=False).summary
    return {"map50": summary["map50"], "map50_95": summary["map50_95"]}


def export_int8(model: nn.Module, meta: ModelMeta, out: str | Path, s: Any,
                export_fp32: Callable) -> Any:  # fmt: skip
    """Write ``model`` as a float32 ``s.format`` file (checked against PyTorch by ``export_fp32``, the
    exporter's ``export_model``), quantize it to ``out``, score both, keep ``out`` only within
    ``s.int8_max_drop``. ``s``: ``ExportSettings``; returns its ``ExportReport`` with ``accuracy``."""
    start = time.perf_counter()
    out = Path(out).with_suffix(".xml" if s.format == "openvino" else ".onnx")
    spec = calibration_data(s.data, meta, "the model")
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / f"fp32{out.suffix}"
        # ONNX Runtime runs a file at the batch size it was written for: free it, as --dynamic does.
        fp32_settings = dataclasses.replace(s, int8=False, dynamic=s.format == "onnx")
        report = export_fp32(model, meta, fp32_path, fp32_settings)
        t0 = time.perf_counter()
        batches = calibration_batches(spec.train, s.img_size, s.calib_images)
        record = {"calib_images": len(batches), "data": str(s.data)}
        qmeta = meta.replace(img_size=s.img_size, export=fp32_settings.info())
        quantize = quantize_openvino if s.format == "openvino" else quantize_onnx
        files = quantize(fp32_path, out, batches, qmeta, record)
        record["calib_seconds"] = round(time.perf_counter() - t0, 1)
        fp32_score, int8_score = score(fp32_path, spec, s.img_size), score(out, spec, s.img_size)
    drop = 100 * (fp32_score["map50"] - int8_score["map50"])
    accuracy = {**record, "fp32": fp32_score, "int8": int8_score, "map50_drop": round(drop, 3),
                "val_images": len(spec.val)}  # fmt: skip
    if drop > s.int8_max_drop:
        for f in files:
            f.unlink(missing_ok=True)
        raise UserError(
            f"INT8 {out}: mAP@0.5 {100 * int8_score['map50']:.2f} vs float32 {100 * fp32_score['map50']:.2f} "
            f"on the {len(spec.val)} val images of {s.data}: a drop of {drop:.2f} points > --int8-max-drop "
            f"{s.int8_max_drop} (the file was removed; try more --calib-images)"
        )
    report.files, report.accuracy = files, accuracy
    report.seconds = time.perf_counter() - start
    return report


__all__ = ["INT8_KEY", "calibration_batches", "calibration_data", "export_int8",
           "quantize_onnx", "quantize_openvino", "score"]  # fmt: skip
