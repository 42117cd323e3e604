"""``yolov3 <verb>``: thin argument parsing that calls the package API.

Each verb lives in its own module here with ``register(subparsers)``, which adds its parser and
sets ``func`` (called with the parsed namespace, returning an exit code). Errors that speak to the
user (``UserError`` and its kin) are printed without a traceback.

Start-up is kept short: ``yolov3 --help`` imports no verb module (the one-line helps are in
``VERBS``), ``yolov3 VERB`` imports only that verb's module, and a verb module imports the package
API (torch, the runtimes) inside its ``run``, so ``yolov3 VERB --help`` and a misspelt option answer
without loading torch. ``benchmarks/bench_cli_startup.py`` measures it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import yolov3
from yolov3 import __version__
from yolov3.console import quiet_libraries, set_quiet
from yolov3.errors import UserError

# verb -> one-line help, in the order `yolov3 --help` lists them; each is a module yolov3.cli.<verb>.
VERBS = {
    "info": "versions, runtimes and extras installed; or what a model file holds",
    "data": "data-set tools: convert, check, synth",
    "convert": "Darknet cfg + .weights <-> native checkpoint (.safetensors / .pt)",
    "detect": "detect objects in images, folders, globs, videos, URLs or a webcam",
    "track": "track objects in videos, image sequences, streams or a webcam",
    "serve": "serve detection over HTTP (JSON API, browser page, metrics)",
    "val": "mAP (VOC and COCO), curves and confusion matrix on a labelled split",
    "analyze": "TIDE error analysis on a labelled split: what each kind of error costs in mAP",
    "benchmark": "latency, throughput and mAP of a model on every installed runtime",
    "anchors": "fit anchors to a data set's boxes (k-means, 1 - IoU)",
    "export": "export to ONNX / TorchScript / Darknet / OpenVINO, or INT8 (checked by running the file)",
    "train": "train on a data set (resumable; torchrun for many GPUs)",
    "demo": "train and evaluate on a built-in synthetic data set (what `make demo` runs)",
}


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` on a verb's parser: no progress bars, per-image lines or notes."""
    p.add_argument("-q", "--quiet", action="store_true", help="print only results, warnings and errors")


def _chosen_verb(argv: list[str]) -> str | None:
    """The verb on the command line (the first word that is not an option), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in VERBS else None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the verb named in ``argv`` (all of them when ``argv`` is None) gets its full
    options, the others a stub that lists them in ``--help``."""
    parser = argparse.ArgumentParser(prog="yolov3", description=yolov3.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"yolov3 {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    chosen = _chosen_verb(argv) if argv is not None else None
    for name, text in VERBS.items():
        if argv is None or name == chosen:
            importlib.import_module(f"yolov3.cli.{name}").register(sub)
        else:
            sub.add_parser(name, help=text, add_help=False)
    for p in _leaf_parsers(sub):
        add_quiet(p)
    return parser


def _leaf_parsers(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """The parsers that run something (``yolov3 data check``, not ``yolov3 data``)."""
    out = []
    for p in sub.choices.values():
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            out += _leaf_parsers(nested[0])
        elif p.get_default("func") is not None:
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    set_quiet(args.quiet)  # per command: an earlier main(["...", "-q"]) in this process does not carry over
    quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"yolov3 {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"yolov3 {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `yolov3 ... | head`: the reader left; nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (so the interpreter's final flush stays quiet)
        return 141
