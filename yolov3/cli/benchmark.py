"""``yolov3 benchmark --weights W [--data D]``: latency, throughput and mAP of one model on every
runtime and precision installed here: PyTorch fp32 / bf16, ONNX Runtime fp32 / INT8, OpenVINO fp32 /
bf16 / INT8.

Each format is exported into the run folder by the project's exporter (which runs the file back against
PyTorch), then timed through the Detector: batch-1 latency (median ms, an image in, boxes out) and
throughput at --batch (images/s); with --data, mAP@0.5 and mAP@.5:.95 on its val split (as ``yolov3
val``) and INT8 calibrated on its train split. A runtime that is not installed, a precision this
hardware does not run natively, or a row that fails is listed with its reason.

Writes ``benchmark.json`` into --out (default ``runs/benchmark/exp``, numbered when it exists).
"""

from __future__ import annotations

import argparse

from yolov3.cli import VERBS

GROUPS = ("torch", "onnx", "openvino")  # also in yolov3.benchmark_plan, which imports torch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark", help=VERBS["benchmark"],
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--weights", required=True, help="checkpoint (.pt / .safetensors)")
    p.add_argument("--data", help="data.yaml: mAP on its val split, INT8 calibration on its train split")
    p.add_argument("--img-size", "--img", dest="img_size", type=int,
                   help="input size, a multiple of 32 (default: the model's own)")  # fmt: skip
    p.add_argument("--batch", type=int, default=8, help="batch of the throughput figure and of val (8)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--runs", type=int, default=20,
                   help="timed batch-1 passes (20); the batch: a quarter as many, at least 3")  # fmt: skip
    p.add_argument("--formats", nargs="+", metavar="ROW",
                   help=f"only these rows (torch-fp32 ...) or groups: {' | '.join(GROUPS)}")  # fmt: skip
    p.add_argument("--calib-images", type=int, default=300, help="INT8 calibration images (300)")
    p.add_argument("--threads", type=int, help="CPU threads of every runtime (default: all cores)")
    p.add_argument("--out", help="output folder (default runs/benchmark/exp, numbered)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.benchmark import benchmark, format_table
    from yolov3.files import next_run_dir

    out = args.out or next_run_dir("runs/benchmark", create=False)  # made once the settings are checked
    report = benchmark(args.weights, out, data=args.data, img_size=args.img_size, batch=args.batch,
                       device=args.device, runs=args.runs, formats=args.formats,
                       calib_images=args.calib_images, threads=args.threads)  # fmt: skip
    print(format_table(report))
    print(f"Results saved to {out}")
    return 0
