"""``yolov3 <verb>``: thin argument parsing that calls the package API.

Each verb lives in its own module here with ``register(subparsers)``, which adds its parser and
sets ``func`` (called with the parsed namespace, returning an exit code). Errors that speak to the
user (``UserError`` and its kin) are printed without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from yolov3.errors import UserError

# Modules under yolov3.cli, one per verb (or verb group), in the order `yolov3 --help` lists them.
VERBS = ["info", "data", "convert", "detect", "track", "serve", "val", "anchors", "export", "train", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yolov3", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in VERBS:
        importlib.import_module(f"yolov3.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"yolov3 {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"yolov3 {args.verb}: interrupted", file=sys.stderr)
        return 130
