"""``yolov3 data convert --from X --to Y SRC OUT``: annotations from any format to any other."""

from __future__ import annotations

import argparse
from pathlib import Path

from yolov3.data.convert import convert_dataset
from yolov3.data.formats import FORMATS
from yolov3.data.formats.common import read_names_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert annotations between formats (seed, yolo, coco, voc)",
        description="Convert a data set's annotations. SRC is a data.yaml / Darknet .data, or a format's "
        "own layout (seed: lines file or folder with train/val.txt; yolo: folder with images/ and "
        "labels/; coco: instances json or folder with annotations/; voc: VOC root). OUT gets the "
        "target layout and an OUT/data.yaml for training.",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--from", dest="fmt", choices=FORMATS, help="format of SRC (not needed for a config)")
    p.add_argument("--to", required=True, choices=FORMATS, help="format to write")
    p.add_argument("--names", help="class names: a file with one name a line, or a comma-separated list")
    p.add_argument(
        "--link",
        default="hard",
        choices=["hard", "copy", "symlink"],
        help="how images are placed where the target format needs them (default: hard link)",
    )
    p.add_argument("--strict", action="store_true", help="a missing or unreadable image is an error")
    p.set_defaults(func=run)


def parse_names_arg(value: str | None) -> list[str] | None:
    """``--names``: a names file when such a file exists, else a comma-separated list."""
    if value is None:
        return None
    if Path(value).is_file():
        return read_names_file(value)
    return [n.strip() for n in value.split(",") if n.strip()]


def run(args: argparse.Namespace) -> int:
    result = convert_dataset(
        args.src,
        args.to,
        args.out,
        fmt=args.fmt,
        names=parse_names_arg(args.names),
        link=args.link,
        strict=args.strict,
    )
    spec = result.spec
    for problem in spec.report.problems[:20]:
        print(problem)
    if len(spec.report.problems) > 20:
        print(f"... and {len(spec.report.problems) - 20} more problems (run `yolov3 data check`)")
    counts = ", ".join(f"{k} {len(v)} images" for k, v in spec.splits.items())
    print(f"read {spec.format} {spec.source}: {len(spec.names)} classes; {counts}; {spec.report.summary()}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {args.to} to {args.out}; config: {result.data_yaml}")
    return 0
