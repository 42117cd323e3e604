"""``yolov3 info``: versions and what this machine can do (bf16 autocast, CUDA)."""

from __future__ import annotations

import argparse
import platform

import torch

import yolov3
from yolov3.device import cpu_supports_bf16


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="versions and hardware support")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(f"yolov3 {yolov3.__version__}, torch {torch.__version__}, python {platform.python_version()}")
    print(f"cuda: {torch.cuda.is_available()}  cpu bf16 autocast: {cpu_supports_bf16()}")
    return 0
