"""``yolov3 data <verb>``: data-set tools. Each sub-verb is a module ``yolov3.cli.data_<name>`` with
``register(subparsers)``, listed in ``DATA_VERBS``."""

from __future__ import annotations

import argparse
import importlib

from yolov3.cli import VERBS

DATA_VERBS: list[str] = ["convert", "check", "synth", "tile", "shard", "audit"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help=VERBS["data"])
    group = p.add_subparsers(dest="data_verb", metavar="DATA_VERB", required=True)
    for name in DATA_VERBS:
        importlib.import_module(f"yolov3.cli.data_{name}").register(group)
