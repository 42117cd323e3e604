"""Options several verbs share: the model to load and the inference settings (``InferConfig``).

Each inference option is named after its ``InferConfig`` field (``--conf-threshold`` is
``conf_threshold``); the short forms ``--img``, ``--conf`` and ``--iou`` are accepted too. An option not
given keeps the verb's default settings, so the defaults live in ``yolov3.config`` only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from yolov3.config import AMP_MODES, NMS_METHODS, OPENVINO_HINTS, TILE_MERGES, InferConfig
from yolov3.errors import UserError

# field -> (extra option strings, argparse keywords, help)
_INFER_OPTIONS = {
    "img_size": (["--img"], {"type": int}, "input size, a multiple of 32"),
    "conf_threshold": (["--conf"], {"type": float}, "score threshold (conf * class probability)"),
    "iou_threshold": (["--iou"], {"type": float}, "NMS IoU threshold"),
    "max_det": ([], {"type": int}, "at most this many boxes per image"),
    "nms": ([], {"choices": NMS_METHODS}, "greedy (the seed's) | soft (Gaussian) | diou"),
    "multi_label": ([], {"action": "store_true", "default": None}, "one score per class above the threshold"),
    "classes": ([], {"nargs": "+"}, "keep only these classes: indices or names ('0,2', '0 2', 'dog cat')"),
    "amp": ([], {"choices": AMP_MODES}, "mixed precision (auto: bf16 where the hardware runs it natively)"),
    "tile": ([], {"type": int}, "sliced inference for large pictures: tile side in pixels, a multiple of 32 "
             "(the input size is natural); each picture by overlapping tiles, boxes merged"),
    "tile_overlap": ([], {"type": float}, "with --tile: fraction of a tile shared with its neighbour"),
    "tile_full": ([], {"action": "store_true", "default": None},
                  "with --tile: also detect on the whole picture, for objects larger than a tile"),
    "tile_merge": ([], {"choices": TILE_MERGES}, "with --tile: nms (keep the best box, a whole one over a "
                   "cut one) | nmm (merge matched boxes into their union)"),
}


def add_model_options(p: argparse.ArgumentParser, backend: bool = True, required: bool = True) -> None:
    """The options naming a model: ``--weights`` (``required`` unless a verb can take it from elsewhere),
    ``--cfg``, ``--names``, ``--device`` (and ``--backend``, ``--threads``, ``--hint``:
    ``backend_options`` reads the last two)."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--weights",
        required=required,
        help="checkpoint (.pt / .safetensors), Darknet .weights, .onnx, TorchScript, OpenVINO .xml",
    )
    g.add_argument("--cfg", help="Darknet .cfg (with .weights), or a shipped name such as yolov3-tiny")
    g.add_argument("--names", help="class names file, one per line (Darknet weights carry none)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    if backend:
        g.add_argument("--backend", default="auto", help="auto | torch | onnxruntime | opencv | openvino")
        g.add_argument("--threads", type=int, help="CPU threads of the runtime (default: all cores)")
        g.add_argument("--hint", choices=OPENVINO_HINTS, default="auto",
                       help="OpenVINO's performance hint: latency (one request at a time) or throughput "
                       "(parallel requests); auto: latency at batch 1, throughput above")  # fmt: skip


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Detector.load``'s ``backend_options`` from ``--threads`` and ``--hint``; ``--threads`` also sets
    PyTorch's thread count (the PyTorch runtime, and decoding and NMS for every runtime)."""
    options: dict[str, Any] = {}
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads {args.threads}: must be >= 1")
        import torch  # the verbs that take --threads load a model anyway

        torch.set_num_threads(args.threads)
        options["threads"] = args.threads
    if args.hint != "auto":
        from yolov3.infer.backends import auto_kind  # the verbs that take --hint load a model anyway

        if (auto_kind(Path(args.weights)) if args.backend == "auto" else args.backend) != "openvino":
            raise UserError(f"--hint {args.hint}: an OpenVINO setting, for an .xml model on OpenVINO")
        options["hint"] = args.hint
    return options


def add_infer_options(p: argparse.ArgumentParser, defaults: InferConfig, only: tuple[str, ...] | None = None,
                      title: str = "inference settings") -> None:  # fmt: skip
    """``--img-size``, ``--conf-threshold``... for the ``InferConfig`` fields in ``only`` (default all),
    with ``defaults`` shown in the help."""
    g = p.add_argument_group(title)
    for name, (aliases, kwargs, text) in _INFER_OPTIONS.items():
        if only is not None and name not in only:
            continue
        flag = "--" + name.replace("_", "-")
        shown = getattr(defaults, name)
        g.add_argument(flag, *aliases, dest=name, help=f"{text} (default {shown})", **kwargs)


def infer_settings(args: argparse.Namespace, defaults: InferConfig, only: tuple[str, ...] | None = None
                   ) -> InferConfig:  # fmt: skip
    """``defaults`` with the inference options (those in ``only``, default all) given on the command line."""
    names = [n for n in _INFER_OPTIONS if only is None or n in only]
    return defaults.replace(**{name: getattr(args, name, None) for name in names})


__all__ = ["add_infer_options", "add_model_options", "backend_options", "infer_settings"]
