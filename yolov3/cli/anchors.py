"""``yolov3 anchors --data DATA [--model yolov3-tiny] --img-size 416``: k-means (1 - IoU) anchors for a
data set, laid out as the model takes them.

The model (``--model``, else ``model.name`` of ``--config``, else yolov3) decides the number of output
scales and of anchors per scale (yolov3: 3 x 3, yolov3-tiny: 2 x 3); ``--n`` defaults to their product.
Prints the anchors (per scale, input pixels at ``--img-size``), their mean best IoU with the training
boxes against the current anchors' (the model's, or ``model.anchors`` of ``--config``), and writes a
config the trainer reads: ``--config`` with ``model.anchors`` replaced, or a new one holding
``model.name`` and ``model.anchors`` (``yolov3 train --config anchors.yaml ...``). The Darknet cfg line
is printed too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from yolov3.cli import VERBS
from yolov3.config import DataConfig, ModelConfig, check_sections, from_dict, load_yaml
from yolov3.errors import UserError
from yolov3.files import atomic_writer, next_run_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("anchors", help=VERBS["anchors"],
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", required=True, help="data.yaml or Darknet .data")
    p.add_argument("--model", help="the model the anchors are for: yolov3 | yolov3-tiny | yolov3-spp | "
                   "yolov3-voc | a Darknet .cfg (default: --config's model.name, else yolov3)")  # fmt: skip
    p.add_argument("--n", type=int, help="number of anchors: the model's (9 for yolov3, 6 for tiny), checked")
    p.add_argument(
        "--img-size",
        "--img",
        dest="img_size",
        type=int,
        default=DataConfig.img_size,
        help=f"train input size the boxes are letterboxed to (default {DataConfig.img_size})",
    )
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", help="a config YAML to copy with model.anchors replaced")
    p.add_argument("--out", help="config file to write (default runs/anchors/exp/anchors.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.anchors import fit_anchors
    from yolov3.builder import anchor_layout, model_anchors
    from yolov3.data.dataset_config import load_dataset

    base = load_yaml(args.config) if args.config else {}
    check_sections(base, str(args.config))
    model = (
        from_dict(ModelConfig, base.get("model"), f"{args.config}: model") if args.config else ModelConfig()
    )
    name = args.model or model.name
    scales, per_scale = anchor_layout(name)
    n = args.n if args.n is not None else scales * per_scale
    if n != scales * per_scale:
        other = " (--model names the model, e.g. --model yolov3-tiny)" if not args.model else ""
        raise UserError(f"--n {n}: {name} takes {scales * per_scale} anchors, {per_scale} on each of its "
                        f"{scales} output scales{other}")  # fmt: skip
    current = model.anchors if args.config and model.anchors and name == model.name else model_anchors(name)
    spec = load_dataset(args.data)
    samples = getattr(spec, args.split)
    if not samples:
        raise UserError(f"{args.data}: split '{args.split}' has no images")
    fit = fit_anchors(samples, args.img_size, n, scales, current, args.seed)
    print(f"{fit.boxes} boxes of '{args.split}' letterboxed to {args.img_size}: anchors (w, h) per scale")
    for stride_row in fit.anchors:
        print("  " + "  ".join(f"({w:.1f}, {h:.1f})" for w, h in stride_row))
    print(f"mean best IoU {fit.mean_iou:.4f} (current {fit.mean_iou_current:.4f}); "
          f"boxes with an anchor of IoU > 0.3: {fit.recall:.1%} (was {fit.recall_current:.1%})")  # fmt: skip
    print(f"Darknet cfg: {fit.darknet_line()}")
    out = Path(args.out) if args.out else next_run_dir("runs/anchors") / "anchors.yaml"
    doc = dict(base)
    doc["model"] = {**(base.get("model") or {}), "name": name, "anchors": fit.anchors}
    header = (
        f"# anchors: k-means (1 - IoU) on {fit.boxes} boxes of {args.data} [{args.split}] at "
        f"{args.img_size} px; mean best IoU {fit.mean_iou:.4f} (was {fit.mean_iou_current:.4f})\n"
    )
    with atomic_writer(out) as f:
        f.write((header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)).encode())
    print(f"written {out} (use: yolov3 train --config {out} ...)")
    return 0
