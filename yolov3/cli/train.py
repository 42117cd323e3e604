"""``yolov3 train``: parse options into ModelConfig / DataConfig / TrainConfig and call the trainer.

Also the entry point of each process under ``torchrun --nproc_per_node N -m yolov3 train ...``.
With ``--resume runs/NAME`` the run's saved config is the base and only options given on this
command line change it (``--epochs 30`` to train longer; another ``--model`` or data set with other
classes is refused, naming what differs).
"""

from __future__ import annotations

import argparse
from typing import Any

from yolov3.config import DataConfig, ModelConfig, TrainConfig, load_yaml
from yolov3.engine import options
from yolov3.engine.checkpoint import load_checkpoint
from yolov3.engine.distributed import env_dist_info
from yolov3.engine.trainer import resolve_resume, train


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train on a data set (resumable; torchrun for many GPUs)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    g = p.add_argument_group("what to train")
    g.add_argument("--data", help="data.yaml or Darknet .data")
    g.add_argument(
        "--model", help="yolov3 | yolov3-tiny | yolov3-spp | path to a Darknet .cfg (default yolov3)"
    )
    g.add_argument("--width", type=float, help="channel multiplier of the native yolov3 (default 1.0)")
    g.add_argument(
        "--weights", help="initial weights: Darknet .weights (or a backbone like darknet53.conv.74) or .pt"
    )
    g.add_argument(
        "--transfer", action="store_true", default=None, help="skip tensors that do not fit (output convs)"
    )
    g.add_argument("--freeze", action="store_true", default=None, help="freeze the backbone")
    g.add_argument("--config", help="YAML with model: / data: / train: sections (options override it)")
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch", type=int, help="global batch size (split over torchrun processes)")
    g.add_argument("--img", type=int, help="train input size, a multiple of 32 (default 416)")
    g.add_argument("--lr-init", type=float)
    g.add_argument("--lr-end", type=float)
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument("--optimizer", choices=["adam", "sgd"])
    g.add_argument("--accumulate", type=int, help="batches per optimiser step")
    g.add_argument("--clip-grad", type=float, help="max gradient norm (0: off)")
    g.add_argument("--seed", type=int)
    g = p.add_argument_group("hardware")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--workers", type=int, help="loader worker processes")
    g.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"])
    g.add_argument("--channels-last", action="store_true", default=None)
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--sync-bn", action="store_true", default=None, help="SyncBatchNorm under torchrun")
    g.add_argument("--freeze-bn", action="store_true", default=None, help="BN layers use running statistics")
    g.add_argument("--deterministic", action="store_true", default=None, help="deterministic algorithms")
    g = p.add_argument_group("data pipeline")
    g.add_argument("--multi-scale", action="store_true", default=None, help="a new size 320..608 per batch")
    g.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    g.add_argument("--cache", action="store_true", default=None, help="keep decoded images in memory")
    g.add_argument("--hsv", action="store_true", default=None, help="HSV jitter (with augmentation)")
    g.add_argument("--mosaic", action="store_true", default=None, help="4-image mosaic (with augmentation)")
    g = p.add_argument_group("run folder")
    g.add_argument("--project", help="parent folder of runs (default runs)")
    g.add_argument("--name", help="run name (default exp; exp2, exp3... if it exists)")
    g.add_argument("--exist-ok", action="store_true", default=None, help="reuse runs/NAME as it is")
    g.add_argument("--resume", metavar="RUN", help="continue runs/NAME (or a last.pt) where it stopped")
    g.add_argument("--ema", action="store_true", default=None, help="keep an EMA of the weights")
    g.add_argument("--val-interval", type=int, help="validate every N epochs")
    g.add_argument("--save-period", type=int, help="also save last.pt every N steps")
    g.add_argument("--max-bad-steps", type=int, help="stop after N non-finite steps in a row")
    p.set_defaults(func=run)


def build_configs(args: argparse.Namespace) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    """The three sections: the resumed run's saved config, then ``--config``, then every option given
    on the command line."""
    base: dict[str, dict[str, Any]] = {}
    if args.resume:
        base.update(load_checkpoint(resolve_resume(args.resume)).get("config", {}))
    if args.config:
        for section, values in load_yaml(args.config).items():
            base.setdefault(section, {}).update(values or {})
    return options.build_configs({k: getattr(args, k, None) for k in options.OPTIONS}, base)


def run(args: argparse.Namespace) -> int:
    model_cfg, data_cfg, train_cfg = build_configs(args)
    metrics = train(model_cfg, data_cfg, train_cfg, resume=args.resume)
    if env_dist_info().is_main:
        print(f"done: {metrics['run_dir']}  best fitness {metrics['best_fitness']:.4g}")
    return 0
