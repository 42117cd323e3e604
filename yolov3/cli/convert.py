"""``yolov3 convert SRC OUT``: Darknet cfg + weights (+ names) <-> a native checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from yolov3.cli import VERBS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help=VERBS["convert"],
        description="SRC a Darknet .weights (with --cfg, optional --names): OUT is a native checkpoint "
        "(.safetensors or .pt) holding the weights, class names and the cfg. SRC a native checkpoint "
        "(.safetensors or .pt, training checkpoints too): OUT is a folder that gets <name>.cfg, "
        "<name>.weights and <name>.names for Darknet or OpenCV.",
    )
    p.add_argument("src", metavar="SRC", help="a .weights file or a native checkpoint")
    p.add_argument("out", metavar="OUT", help="a .safetensors / .pt path, or a folder for Darknet files")
    p.add_argument(
        "--cfg", help="the Darknet cfg of a .weights SRC: a path or yolov3, yolov3-tiny, yolov3-spp"
    )
    p.add_argument("--names", help="class names file (one per line); default class0, class1, ...")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.export.darknet import export_darknet
    from yolov3.modelfile import load_model, save_model

    model, meta = load_model(args.src, cfg=args.cfg, names=args.names)
    if Path(args.src).suffix == ".weights":
        path = save_model(args.out, model, meta)
        print(f"wrote {path} ({meta.num_classes} classes, strides {list(meta.strides)})")
    else:
        paths = export_darknet(model, meta, args.out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
