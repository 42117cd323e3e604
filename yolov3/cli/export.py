"""``yolov3 export``: write a model as ONNX, TorchScript, Darknet or OpenVINO files, checked against
PyTorch; ``--int8`` quantizes an ONNX or OpenVINO export on a data set and checks its mAP."""

from __future__ import annotations

import argparse

from yolov3.cli import VERBS
from yolov3.cli.common import add_infer_options, infer_settings
from yolov3.config import EXPORT_FORMATS as FORMATS
from yolov3.config import ONNX_MIN_OPSET as MIN_OPSET
from yolov3.config import InferConfig

INFER_OPTIONS = ("img_size", "conf_threshold", "iou_threshold", "max_det")  # what an export holds


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help=VERBS["export"],
        description="Write the model in another format, then run the written file (ONNX Runtime, "
        "torch.jit.load, OpenCV's Darknet reader, OpenVINO) and compare it with PyTorch before reporting "
        "success. --int8 then quantizes it on --data's train images and keeps it only if its mAP@0.5 on "
        "the val split is within --int8-max-drop points of the float32 file's.",
    )
    p.add_argument("--weights", required=True, help="checkpoint (.safetensors / .pt) or Darknet .weights")
    p.add_argument("--cfg", help="Darknet .cfg (with .weights), or a shipped name such as yolov3-tiny")
    p.add_argument("--names", help="class names file, one per line")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--batch", type=int, default=1, help="batch size of the traced example (1)")
    p.add_argument("--dynamic", action="store_true", help="batch and image size free (ONNX, TorchScript)")
    p.add_argument("--half", action="store_true", help="float16 weights and input (ONNX, TorchScript); "
                   "OpenVINO: float16 weights, float32 input")  # fmt: skip
    p.add_argument("--outputs", choices=["raw", "decoded"], help="raw maps (default) or decoded (B, N, 5+C)")
    p.add_argument("--nms", action="store_true", help="ONNX only: NonMaxSuppression in the graph")
    p.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    q = p.add_argument_group("INT8 post-training quantization (--format openvino: NNCF; onnx: QDQ)")
    q.add_argument("--int8", action="store_true", help="quantize, calibrated on --data's train split")
    q.add_argument("--data", help="data.yaml: train split for calibration, val split for the mAP check")
    q.add_argument("--calib-images", type=int, default=300, help="calibration images (300)")
    q.add_argument("--int8-max-drop", type=float, default=1.0,
                   help="largest mAP@0.5 drop allowed, in points (1.0); beyond it: no file")  # fmt: skip
    add_infer_options(
        p, InferConfig(), INFER_OPTIONS, "inference settings (thresholds and max_det: with --nms)"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N: where to trace and check")
    p.add_argument("--out", help="output file (a folder for darknet); default: next to --weights")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.export.exporter import export_weights

    settings = infer_settings(args, InferConfig(), INFER_OPTIONS)
    report = export_weights(
        args.weights, args.format, args.out, args.cfg, args.names, args.device, settings, batch=args.batch,
        dynamic=args.dynamic, half=args.half, outputs=args.outputs, nms=args.nms, opset=args.opset,
        int8=args.int8, data=args.data, calib_images=args.calib_images, int8_max_drop=args.int8_max_drop,
    )  # fmt: skip
    for line in report.checks:
        print(f"checked {line}")
    if report.accuracy:
        a = report.accuracy
        print(f"INT8 calibrated on {a['calib_images']} images in {a['calib_seconds']:.0f} s; on "
              f"{a['val_images']} val images: mAP@0.5 float32 {100 * a['fp32']['map50']:.2f}, INT8 "
              f"{100 * a['int8']['map50']:.2f}; mAP@.5:.95 float32 {100 * a['fp32']['map50_95']:.2f}, "
              f"INT8 {100 * a['int8']['map50_95']:.2f}")  # fmt: skip
    files = ", ".join(str(f) for f in report.files)
    kind = "" if args.format == "darknet" else f" ({'nms' if args.nms else args.outputs or 'raw'} outputs)"
    kind += " INT8" if args.int8 else ""
    print(f"exported {args.format}{kind} in {report.seconds:.1f} s: {files}")
    return 0
