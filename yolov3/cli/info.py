"""``yolov3 info``: versions and what this machine can do (bf16 autocast, CUDA)."""

from __future__ import annotations

import argparse
import platform

import yolov3
from yolov3.cli import VERBS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help=VERBS["info"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from yolov3.device import cpu_supports_bf16

    print(f"yolov3 {yolov3.__version__}, torch {torch.__version__}, python {platform.python_version()}")
    print(f"cuda: {torch.cuda.is_available()}  cpu bf16 autocast: {cpu_supports_bf16()}")
    return 0
