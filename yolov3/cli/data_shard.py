"""``yolov3 data shard CONFIG --out DIR``: a data set as tar shards (WebDataset) and a shards.yaml."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shard",
        help="write a data set as tar shards (WebDataset) for streaming from disk or HTTP",
        description="Write each split of CONFIG as tar shards (image bytes unchanged, labels as .json, in "
        "the split's order) and DIR/shards.yaml, which train, val and data check take in place of a "
        "data.yaml. Serve DIR over HTTP and pass --base-url to list the shards by URL.",
    )
    p.add_argument("config", metavar="CONFIG", help="data.yaml or Darknet .data")
    p.add_argument("--out", required=True, help="folder for the shards and shards.yaml")
    p.add_argument("--shard-size", default="1GB", help="bytes per shard (default 1GB; e.g. 500MB)")
    p.add_argument("--splits", default="train,val,test", help="splits to write (default train,val,test)")
    p.add_argument("--base-url", help="list the shards as BASE_URL/NAME (e.g. http://host:8000/shards)")
    p.add_argument("--strict", action="store_true", help="a missing or unreadable image is an error")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.data.dataset_config import load_dataset
    from yolov3.data.shards import parse_size, read_shards_config, write_shards

    size = parse_size(args.shard_size)
    spec = load_dataset(args.config, strict=args.strict)
    for problem in spec.report.problems[:20]:
        print(problem)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    path = write_shards(spec, args.out, size, splits, args.base_url)
    written = read_shards_config(path)
    for split, refs in written.splits.items():
        print(f"{split}: {written.samples(split)} samples in {len(refs)} shard(s)")
    print(f"wrote shards to {args.out}; config: {path}")
    return 0
