"""``yolov3 data synth --out DIR``: write the built-in synthetic detection data set (YOLO format);
with ``--video``, synthetic video sequences with MOTChallenge ground truth (``yolov3.data.synth_video``)."""

from __future__ import annotations

import argparse
import time

from yolov3.data.synth import CLASS_NAMES, SynthConfig, generate
from yolov3.data.synth_video import VideoSynthConfig, generate_video
from yolov3.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write a synthetic data set (shapes and glyphs on cluttered backgrounds)",
        description=f"Draw a synthetic detection data set with classes {', '.join(CLASS_NAMES)} at "
        "8 px to half the image, on textured, cluttered backgrounds; YOLO format with a data.yaml. "
        "The same --seed gives the same bytes.",
    )
    p.add_argument("--out", required=True, help="output folder (its images/, labels/ are replaced)")
    p.add_argument("--n", type=int, default=1000, help="number of images in all (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, default=416, help="image side in pixels (default 416)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share held out for val (default 0.2)")
    p.add_argument("--coco", action="store_true", help="also write annotations/instances_{train,val}.json")
    v = p.add_argument_group("video (for tracking)")
    v.add_argument(
        "--video",
        action="store_true",
        help="write moving-object sequences (seq-NN/img1, gt/gt.txt, videos/seq-NN.mp4) instead",
    )
    v.add_argument("--sequences", type=int, default=4, help="with --video: sequences (default 4)")
    v.add_argument("--frames", type=int, default=150, help="with --video: frames per sequence (default 150)")
    v.add_argument("--objects", type=int, default=6, help="with --video: objects per sequence (default 6)")
    p.set_defaults(func=run)


def run_video(args: argparse.Namespace) -> int:
    cfg = VideoSynthConfig(
        sequences=args.sequences, frames=args.frames, objects=args.objects, size=args.size, seed=args.seed
    )
    t0 = time.time()
    seqs = generate_video(args.out, cfg)
    print(
        f"wrote {len(seqs)} sequences of {cfg.frames} frames ({cfg.size} px) in {time.time() - t0:.1f} s: "
        f"{args.out} (MOTChallenge gt in seq-NN/gt/gt.txt, videos in videos/)"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.video:
        return run_video(args)
    if args.n < 1 or args.size < 32 or not 0 <= args.val_fraction < 1:
        raise UserError(
            f"--n {args.n} / --size {args.size} / --val-fraction {args.val_fraction}: "
            "expected n >= 1, size >= 32 and 0 <= val-fraction < 1"
        )
    cfg = SynthConfig(n=args.n, seed=args.seed, size=args.size, val_fraction=args.val_fraction)
    t0 = time.time()
    data_yaml, _ = generate(args.out, cfg, coco=args.coco)
    n_train, n_val = cfg.split_sizes()
    took = time.time() - t0
    print(f"wrote {n_train} train + {n_val} val images ({args.size} px) in {took:.1f} s: {data_yaml}")
    print(f"next: yolov3 data check {data_yaml}")
    return 0
