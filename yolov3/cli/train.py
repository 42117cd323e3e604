"""``yolov3 train``: parse options into ModelConfig / DataConfig / TrainConfig and call the trainer.

Also the entry point of each process under ``torchrun --nproc_per_node N -m yolov3 train ...``.
Every setting of the three config sections is an option named after its field (``--lr-init`` is
``train.lr_init``; ``--model`` is ``model.name``, ``--data`` is ``data.path``); ``--config`` reads a
YAML file of sections first. With ``--resume runs/NAME`` the run's saved config is the base and only
options given on this command line change it (``--epochs 30`` to train longer; another ``--model``
or data set with other classes is refused, naming what differs).
"""

from __future__ import annotations

import argparse
import os
import typing

from yolov3.cli import VERBS
from yolov3.config import AMP_MODES, SECTIONS
from yolov3.config import TRAIN_OPTIONS as OPTIONS

# Every training option, grouped for --help: name -> help. tests/test_config.py checks that each
# of OPTIONS has its flag here.
GROUPS: dict[str, dict[str, str]] = {
    "what to train": {
        "data": "data.yaml or Darknet .data",
        "model": "yolov3 | yolov3-tiny | yolov3-spp | yolov3-voc | path to a Darknet .cfg (default yolov3)",
        "width": "channel multiplier of the native yolov3 (default 1.0)",
        "anchors": "anchors per scale in input px, as YAML: '[[[10,13],[16,30],[33,23]], ...]' (the model's)",
        "weights": "initial weights: Darknet .weights (or a backbone like darknet53.conv.74) or .pt",
        "transfer": "skip tensors that do not fit (output convs)",
        "freeze": "freeze the backbone",
    },
    "schedule": {
        "epochs": "passes over the training set (20)",
        "time": "minutes of wall clock for the whole run, validation included; the lr schedule anneals by "
        "then (with --epochs: whichever ends first; 0: no limit)",
        "patience": "stop after N validations without a better val mAP@0.5 (0: never)",
        "batch": "global batch size, split over torchrun processes (2)",
        "img_size": "train input size, a multiple of 32 (416)",
        "lr_init": "learning rate after warmup (1e-3)",
        "lr_end": "learning rate at the end of the cosine (1e-4)",
        "warmup_epochs": "linear warmup from 0 (2)",
        "optimizer": "adam (the seed's) | sgd",
        "momentum": "SGD momentum (0.9)",
        "weight_decay": "SGD weight decay, never on BN and biases (5e-4)",
        "accumulate": "batches per optimiser step (1)",
        "clip_grad": "max gradient norm (0: off)",
        "ema": "keep an EMA of the weights (evaluated, saved in best.pt)",
        "ema_decay": "EMA decay (0.9999)",
        "seed": "random seed (0)",
    },
    "targets and loss": {
        "positive_iou": "an anchor is positive when its IoU with a box > this (0.3)",
        "label_smoothing": "class targets one-hot * (1 - d) + d / C (0.01)",
        "max_boxes_per_scale": "rows of each scale's box list for the ignore test (150)",
        "ignore_iou": "the confidence loss ignores predictions overlapping a box by >= this (0.5)",
    },
    "hardware": {
        "device": "auto | cpu | cuda | cuda:N",
        "workers": "loader worker processes (2)",
        "amp": "mixed precision: auto | bf16 | fp16 | off",
        "channels_last": "channels-last memory layout",
        "compile": "torch.compile the model",
        "sync_bn": "SyncBatchNorm under torchrun",
        "freeze_bn": "BN layers use running statistics",
        "deterministic": "deterministic algorithms (bit-exact resume on CPU)",
    },
    "data pipeline": {
        "multi_scale": "a new size 320..608 per batch",
        "augment": "the seed's flip / crop / translate",
        "cache": "keep decoded, resized images in memory",
        "hsv": "HSV jitter (with augmentation)",
        "mosaic": "4-image mosaic (with augmentation)",
        "tile": "train on a random tile of this many pixels of each picture, for large pictures (0: off)",
        "min_visible": "with --tile: keep a box cut by the tile's edge when this share lies inside (0.5)",
    },
    "run folder": {
        "project": "parent folder of runs (default runs)",
        "name": "run name (default exp; exp2, exp3... if it exists)",
        "exist_ok": "reuse runs/NAME as it is",
        "val_interval": "validate every N epochs (1)",
        "save_period": "also save last.pt every N steps (0: at epoch ends)",
        "max_bad_steps": "stop after N non-finite steps in a row (10)",
    },
}
ALIASES = {"img_size": ["--img"]}
CHOICES = {"optimizer": ["adam", "sgd"], "amp": list(AMP_MODES)}


def _add_option(g: argparse._ArgumentGroup, name: str, text: str) -> None:
    section, field = OPTIONS[name]
    hint = typing.get_type_hints(SECTIONS[section])[field]
    flag = "--" + name.replace("_", "-")
    if hint is bool:
        default_on = getattr(SECTIONS[section], field)
        if default_on:  # only a switch to turn it off makes sense
            g.add_argument(
                f"--no-{name.replace('_', '-')}",
                dest=name,
                action="store_false",
                default=None,
                help=f"no {text}",
            )
        else:
            g.add_argument(flag, dest=name, action="store_true", default=None, help=text)
        return
    kind = hint if hint in (int, float) else str
    g.add_argument(flag, *ALIASES.get(name, []), dest=name, type=kind, choices=CHOICES.get(name), help=text)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=VERBS["train"],
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    for title, options in GROUPS.items():
        g = p.add_argument_group(title)
        for name, text in options.items():
            _add_option(g, name, text)
    g = p.add_argument_group("config and resume")
    g.add_argument("--config", help="YAML with model: / data: / train: sections (options override it)")
    g.add_argument("--resume", metavar="RUN", help="continue runs/NAME (or a last.pt) where it stopped")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.data and os.environ.get("RANK", "0") == "0":  # torchrun's other ranks wait for rank 0's read
        from yolov3.data import prefetch

        prefetch.start(args.data)  # the data set is read while torch is imported
    from yolov3.distributed import env_dist_info
    from yolov3.engine.options import build_configs
    from yolov3.engine.trainer import train

    options = {name: getattr(args, name, None) for name in OPTIONS}
    model_cfg, data_cfg, train_cfg = build_configs(options, args.config, args.resume)
    metrics = train(model_cfg, data_cfg, train_cfg, resume=args.resume)
    if env_dist_info().is_main:
        print(f"done: {metrics['run_dir']}  best fitness {metrics['best_fitness']:.4g}")
    return 0
