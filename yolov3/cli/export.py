"""``yolov3 export``: write a model as ONNX, TorchScript or Darknet files, checked against PyTorch."""

from __future__ import annotations

import argparse

from yolov3.cli.common import add_infer_options, infer_settings
from yolov3.config import InferConfig
from yolov3.export.exporter import FORMATS, export_weights
from yolov3.export.onnx import MIN_OPSET

INFER_OPTIONS = ("img_size", "conf_threshold", "iou_threshold", "max_det")  # what an export holds


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export to ONNX / TorchScript / Darknet (checked by running the file)",
        description="Write the model in another format, then run the written file (ONNX Runtime, "
        "torch.jit.load, OpenCV's Darknet reader) and compare it with PyTorch before reporting success.",
    )
    p.add_argument("--weights", required=True, help="checkpoint (.safetensors / .pt) or Darknet .weights")
    p.add_argument("--cfg", help="Darknet .cfg (with .weights), or a shipped name such as yolov3-tiny")
    p.add_argument("--names", help="class names file, one per line")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--batch", type=int, default=1, help="batch size of the traced example (1)")
    p.add_argument("--dynamic", action="store_true", help="batch and image size free (ONNX, TorchScript)")
    p.add_argument("--half", action="store_true", help="float16 weights and input (ONNX, TorchScript)")
    p.add_argument("--outputs", choices=["raw", "decoded"], help="raw maps (default) or decoded (B, N, 5+C)")
    p.add_argument("--nms", action="store_true", help="ONNX only: NonMaxSuppression in the graph")
    p.add_argument("--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (>= {MIN_OPSET})")
    add_infer_options(
        p, InferConfig(), INFER_OPTIONS, "inference settings (thresholds and max_det: with --nms)"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N: where to trace and check")
    p.add_argument("--out", help="output file (a folder for darknet); default: next to --weights")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = infer_settings(args, InferConfig(), INFER_OPTIONS)
    report = export_weights(
        args.weights, args.format, args.out, args.cfg, args.names, args.device, settings, batch=args.batch,
        dynamic=args.dynamic, half=args.half, outputs=args.outputs, nms=args.nms, opset=args.opset,
    )  # fmt: skip
    for line in report.checks:
        print(f"checked {line}")
    files = ", ".join(str(f) for f in report.files)
    kind = "" if args.format == "darknet" else f" ({'nms' if args.nms else args.outputs or 'raw'} outputs)"
    print(f"exported {args.format}{kind} in {report.seconds:.1f} s: {files}")
    return 0
