"""``yolov3 data check CONFIG``: every problem with file and line, then a summary of the data set."""

from __future__ import annotations

import argparse

from yolov3.data.check import check_dataset


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="read every label and image header; report problems and a summary",
        description="Check a data set before training (the first thing to run when training gives mAP 0). "
        "Exit code 1 when there are errors.",
    )
    p.add_argument("config", metavar="CONFIG", help="data.yaml or Darknet .data")
    p.add_argument("--strict", action="store_true", help="missing or unreadable images are errors")
    p.add_argument("--img-size", type=int, default=416, help="input size box sizes are also measured at")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = check_dataset(args.config, strict=args.strict, input_size=args.img_size)
    print(report.format())
    return 0 if report.ok else 1
