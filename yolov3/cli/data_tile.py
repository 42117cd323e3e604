"""``yolov3 data tile CONFIG --size S --out OUT``: a data set of large pictures cut into tiles."""

from __future__ import annotations

import argparse

from yolov3.data.convert import open_source
from yolov3.data.formats import FORMATS
from yolov3.data.tiling import TileSettings, tile_dataset


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tile",
        help="cut large pictures and their boxes into tiles (a YOLO data set for training)",
        description="Cut every picture of every split into SIZE x SIZE tiles on the grid sliced inference "
        "uses (--tile), clip the boxes to each tile, and write a YOLO data set (OUT/data.yaml, same class "
        "names) that train, val and data check take. A picture no larger than a tile is copied whole.",
    )
    p.add_argument("config", metavar="CONFIG", help="data.yaml / .data (any format), or a format's layout")
    p.add_argument("--from", dest="fmt", choices=FORMATS, help="format of CONFIG when it is not a config")
    p.add_argument("--size", type=int, required=True, help="tile side in pixels, a multiple of 32")
    p.add_argument("--overlap", type=float, default=0.2, help="fraction of a tile shared with its neighbour")
    p.add_argument("--out", required=True, help="folder for the tiled data set (new or empty)")
    p.add_argument(
        "--min-visible",
        type=float,
        default=0.5,
        help="keep a box cut by a tile edge when at least this fraction of its area is inside (default 0.5)",
    )
    p.add_argument(
        "--empty-rate", type=float, default=0.1, help="fraction of tiles without boxes kept (default 0.1)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the empty tiles' draw (default 0)")
    p.add_argument("--strict", action="store_true", help="a missing or unreadable image is an error")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = TileSettings(args.size, args.overlap, args.min_visible, args.empty_rate, args.seed)
    settings.check()  # before reading the data set
    spec = open_source(args.config, args.fmt, strict=args.strict)
    for problem in spec.report.problems[:20]:
        print(problem)
    path, summary = tile_dataset(spec, args.out, settings)
    print(summary.format())
    print(f"wrote yolo tiles to {args.out}; config: {path}")
    return 0
