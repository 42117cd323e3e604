"""``yolov3 demo``: synthetic data, training, evaluation and pictures on this machine in minutes."""

from __future__ import annotations

import argparse
import time

from yolov3.cli import VERBS
from yolov3.demo_data import DEFAULT_CACHE, DEFAULT_OUT
from yolov3.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help=VERBS["demo"],
        description="Draw a synthetic data set (cached), train the model that suits this machine within "
        "the time budget, evaluate it on held-out images and write pictures, curves, metrics and the "
        "checkpoint to --out. Run it again after an interruption to resume.",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--cache", default=DEFAULT_CACHE, help=f"data set cache folder (default {DEFAULT_CACHE})")
    p.add_argument(
        "--time-budget", type=float, default=540.0, help="seconds for the whole demo (default 540)"
    )
    p.add_argument(
        "--deadline",
        type=float,
        help="end by this Unix time instead (make demo: 10 minutes from its start, the install included)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run of every step (tests)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.demo import run_demo

    if args.time_budget <= 0:
        raise UserError(f"--time-budget {args.time_budget}: expected a positive number of seconds")
    if args.deadline is not None and args.deadline <= time.time():
        raise UserError(f"--deadline {args.deadline:.0f}: already passed")
    run_demo(args.out, args.cache, args.time_budget, args.device, args.quick, deadline=args.deadline)
    return 0
