"""``export_model``: validate the settings, write the file, run it back and compare with PyTorch.

An export reports success only after the file it wrote, loaded by the runtime that will use it (ONNX
Runtime, ``torch.jit.load``, OpenCV's Darknet reader, OpenVINO), reproduced PyTorch's outputs on deterministic
images: raw maps / decoded boxes within a tolerance relative to each output's scale (1e-3 in float32,
0.1 in float16). For in-graph NMS the decoded boxes inside the graph are compared the same way, and
PyTorch's NMS on those very boxes must give the file's detections (at most 1% differ: near ties).
With ``--dynamic`` a second batch size and a non-square image size are checked too.

``int8`` (OpenVINO through NNCF, ONNX through ONNX Runtime's static QDQ quantization) goes on in
``yolov3.export.quantize``: the float32 file is written and checked as above, then quantized on the
data set's train images and kept only if its mAP on the val split stays within ``int8_max_drop``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolov3.config import InferConfig, bad_setting
from yolov3.console import note
from yolov3.device import select_device
from yolov3.errors import UserError
from yolov3.export.check import ExportCheckError, check_inputs, compare_outputs, match_detections
from yolov3.export.formats import EXPORTERS, FORMATS
from yolov3.export.onnx import MIN_OPSET, build_head, output_names
from yolov3.export.quantize import export_int8
from yolov3.modelfile import ExportInfo, ModelMeta, load_model

INT8_FORMATS = ("onnx", "openvino")
FLOAT_TOLERANCE = 1e-3
# float16 through ~75 layers drifts far more on the tests' random small nets than on trained ones.
HALF_TOLERANCE = 0.1


@dataclass
class ExportSettings:
    """What ``yolov3 export`` writes. ``outputs``: raw | decoded (None: raw, or nms with ``nms``).
    ``infer``: the inference settings the file is made for: its input size (None: the model's own)
    and, with ``nms``, the score threshold, NMS IoU and max detections baked into the graph.
    ``int8``: post-training quantization (onnx, openvino) calibrated on ``calib_images`` train images
    of the data set ``data`` and refused when mAP@0.5 on its val split drops more than
    ``int8_max_drop`` points. A value out of range raises ``ConfigError`` naming the setting when the
    object is made; combinations a format cannot hold are refused by ``validate_settings``."""

    format: str = "onnx"
    batch: int = 1
    dynamic: bool = False
    half: bool = False
    outputs: str | None = None
    nms: bool = False
    opset: int = MIN_OPSET
    int8: bool = False
    data: str | None = None
    calib_images: int = 300
    int8_max_drop: float = 1.0
    infer: InferConfig = field(default_factory=InferConfig)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            bad_setting("format", self.format, f"one of {', '.join(FORMATS)}")
        if self.outputs not in (None, "raw", "decoded"):
            bad_setting("outputs", self.outputs, "raw or decoded")
        for name in ("batch", "opset", "calib_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                bad_setting(name, value, "a whole number >= 1")
        if not self.int8_max_drop >= 0:  # also refuses NaN
            bad_setting("int8_max_drop", self.int8_max_drop, "mAP@0.5 points >= 0")

    @property
    def output_kind(self) -> str:
        return "nms" if self.nms else (self.outputs or "raw")

    @property
    def img_size(self) -> int | None:
        return self.infer.img_size

    def info(self) -> ExportInfo:
        """What the written file's metadata says about how it was written."""
        nms = self.output_kind == "nms"
        return ExportInfo(format=self.format, outputs=self.output_kind, dynamic=self.dynamic, half=self.half,
                          conf_threshold=self.infer.conf_threshold if nms else None,
                          iou_threshold=self.infer.iou_threshold if nms else None,
                          max_det=self.infer.max_det if nms else None)  # fmt: skip


@dataclass
class ExportReport:
    format: str
    files: list[Path]
    max_error: float  # largest relative error (or unmatched fraction for NMS) over the checks
    checks: list[str] = field(default_factory=list)  # one line per input shape checked
    seconds: float = 0.0
    accuracy: dict[str, Any] | None = None  # int8: float32 and INT8 mAPs, calibration (quantize.py)


def validate_settings(s: ExportSettings) -> None:
    """Refuse settings the format cannot hold, naming the setting."""
    if s.nms and s.outputs == "raw":
        raise UserError("--nms with --outputs raw: NMS needs decoded boxes (drop --outputs raw)")
    if s.format == "onnx" and s.opset < MIN_OPSET:
        raise UserError(f"--opset {s.opset}: this exporter writes opset {MIN_OPSET} or newer")
    if s.format == "openvino" and (s.nms or s.outputs == "decoded"):
        raise UserError("--nms / --outputs decoded: the OpenVINO export holds raw maps; decode and NMS run "
                        "in yolov3.infer.postprocess (--backend openvino does it)")  # fmt: skip
    _validate_int8(s)
    if s.format == "torchscript" and s.nms:
        raise UserError("--nms: TorchScript export holds no NMS; use --format onnx, or run "
                        "yolov3.infer.postprocess after the TorchScript model")  # fmt: skip
    if s.format == "darknet":
        why = {
            "--half": "Darknet .weights hold float32 only",
            "--dynamic": "a Darknet cfg fixes the input size in [net] (Darknet resizes per run itself)",
            "--nms": "Darknet files hold the network only",
            "--outputs decoded": "Darknet files hold the network only ([yolo] layers decode at run time)",
        }
        given = {
            "--half": s.half,
            "--dynamic": s.dynamic,
            "--nms": s.nms,
            "--outputs decoded": s.outputs == "decoded",
        }
        for flag, bad in given.items():
            if bad:
                raise UserError(f"{flag}: not available with --format darknet: {why[flag]}")


def _validate_int8(s: ExportSettings) -> None:
    if not s.int8:
        return
    if s.format not in INT8_FORMATS:
        raise UserError(f"--int8: available with --format {' or '.join(INT8_FORMATS)}, not {s.format}")
    if not s.data:
        raise UserError("--int8 needs --data DATA.yaml: calibration images come from its train split, the "
                        "accuracy check from its val split")  # fmt: skip
    if s.half or s.nms or s.outputs == "decoded" or s.dynamic:
        raise UserError("--int8: quantizes a float32 raw-map export with a fixed input size; drop --half, "
                        "--nms, --outputs decoded and --dynamic")  # fmt: skip


def with_model_size(s: ExportSettings, meta: ModelMeta) -> ExportSettings:
    """``s`` with the input size ``meta`` records when none is given; a note when the given one differs."""
    if s.img_size is None:
        return replace(s, infer=s.infer.replace(img_size=meta.img_size))
    if s.img_size != meta.img_size:
        what = "quantizing" if s.int8 else "exporting"
        note(f"{what} at input size {s.img_size}; the model was trained at {meta.img_size} (recorded in the "
             "file), which is the default")  # fmt: skip
    return s


def default_path(weights: str | os.PathLike, s: ExportSettings) -> Path:
    """``yolov3.pt -> yolov3.onnx`` / ``yolov3.torchscript`` / ``yolov3.xml`` (+ ``.bin``) /
    ``yolov3_darknet/``; with ``int8``: ``yolov3_int8.onnx`` / ``yolov3_int8.xml``."""
    weights = Path(weights)
    if s.format == "darknet":
        return weights.with_name(weights.stem + "_darknet")
    return weights.with_name(weights.stem + ("_int8" if s.int8 else "") + EXPORTERS[s.format].suffix)


def export_model(
    model: nn.Module, meta: ModelMeta, out: str | os.PathLike, s: ExportSettings
) -> ExportReport:
    """Write ``model`` as ``s.format`` at ``out`` (a file; a folder for darknet), check it, report.
    The input size is ``s.img_size``, by default the one ``meta`` records (the size it was trained at)."""
    start = time.perf_counter()
    model = model.eval()
    device = next(model.parameters()).device
    validate_settings(s)
    s = with_model_size(s, meta)
    if s.int8:
        return export_int8(model, meta, out, s, export_model)
    meta = meta.replace(img_size=s.img_size, export=s.info())
    out = Path(out)
    files, run = EXPORTERS[s.format].write(model, meta, out, s, device)
    try:
        report = _check(files, run, model, meta, s)
    except ExportCheckError as exc:
        for f in files:  # a file that failed its check must not be mistaken for a good export
            f.unlink(missing_ok=True)
        raise ExportCheckError(f"{exc} (the file was removed)") from exc
    report.seconds = time.perf_counter() - start
    return report


def _check(files: list[Path], run, model: nn.Module, meta: ModelMeta, s: ExportSettings) -> ExportReport:  # noqa: ANN001
    """Run the written file on the check inputs and compare with PyTorch (module docstring)."""
    kind = s.output_kind
    reference = build_head(model, meta, kind, s.infer).eval()
    tol = HALF_TOLERANCE if s.half else FLOAT_TOLERANCE
    report = ExportReport(s.format, files, 0.0)
    dtype = torch.float16 if s.half else torch.float32
    device = next(model.parameters()).device
    for x in check_inputs(s.img_size, s.batch, s.dynamic, dtype, device):
        with torch.no_grad():
            if kind == "nms":
                err, what = _check_nms(run(x), reference, x.float(), tol, str(files[0]))
            else:
                want = reference(x.float())
                want = list(want) if isinstance(want, (tuple, list)) else [want]
                err = compare_outputs(run(x), want, output_names(meta, kind), tol, str(files[0]))
                what = f"max relative error {err:.2e}"
        report.max_error = max(report.max_error, err)
        report.checks.append(f"input {tuple(x.shape)}: {what}")
    return report


EXPORT_OPTIONS = tuple(f.name for f in fields(ExportSettings) if f.name not in ("format", "infer"))


def export_weights(
    weights: str | os.PathLike,
    format: str = "onnx",
    out: str | os.PathLike | None = None,
    cfg: str | os.PathLike | None = None,
    names: str | os.PathLike | list[str] | None = None,
    device: str = "cpu",
    settings: InferConfig | None = None,
    **options: Any,
) -> ExportReport:
    """``yolov3 export`` as a function: load ``weights`` (checkpoint, or Darknet ``.weights`` with
    ``cfg``), write ``format`` at ``out`` (default next to the weights), check it, report.
    ``options``: ``ExportSettings`` fields (batch, dynamic, half, outputs, nms, opset; int8, data,
    calib_images, int8_max_drop) and
    ``InferConfig`` fields (img_size, conf_threshold, iou_threshold, max_det) over ``settings``."""
    own = {k: v for k, v in options.items() if k in EXPORT_OPTIONS}
    infer = (settings or InferConfig()).replace(**{k: v for k, v in options.items() if k not in own})
    s = ExportSettings(format=format, infer=infer, **own)
    validate_settings(s)  # before loading the weights: a refused setting fails fast
    model, meta = load_model(weights, cfg=cfg, names=names, device=select_device(device))
    return export_model(model, meta, out or default_path(weights, s), s)


def _check_nms(
    got: list, reference: nn.Module, x: torch.Tensor, tol: float, source: str
) -> tuple[float, str]:
    """The network part (decoded boxes, exposed from inside the graph) within ``tol``; then PyTorch's NMS
    on the file's own decoded boxes must give the file's detections (1% may differ on near ties)."""
    detections, decoded = got
    err = compare_outputs([decoded], [reference.head(x)], ["decoded (inside the NMS graph)"], tol, source)
    want = reference.select(torch.from_numpy(decoded), torch.tensor(x.shape[2:]))
    unmatched = match_detections(detections, want, 1e-4)
    if unmatched > 0.01:
        raise ExportCheckError(f"{source}: {unmatched:.1%} of the in-graph NMS detections differ from "
                               "PyTorch's NMS on the same boxes (allowed 1%)")  # fmt: skip
    return err, f"max relative error {err:.2e}; {len(want)} detections, {unmatched:.2%} unmatched"
