"""``yolov3 detect SOURCE --weights W``: detect on an image, folder, glob, video file or webcam index.

Writes into ``--out`` (default ``runs/detect/exp``, numbered when it exists) what
``yolov3.infer.runner`` describes: annotated images and videos, ``results.jsonl``,
``coco_results.json`` and, with ``--save-txt``, YOLO labels. Unreadable images / frames are reported
and skipped. Defaults are the seed's test settings (``InferConfig``): input 544, score 0.3, NMS IoU 0.45.

Under ``torchrun --nproc_per_node N -m yolov3 detect ...`` the files are shared out over the processes
and rank 0 merges the results (``yolov3.infer.shard``); ``--resume OUT`` continues a killed run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolov3.cli import VERBS
from yolov3.cli.common import add_infer_options, add_model_options, backend_options, infer_settings
from yolov3.config import InferConfig
from yolov3.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help=VERBS["detect"],
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("source", help="image, folder, glob ('imgs/*.jpg'), video file or webcam index (0)")
    add_model_options(p)
    p.add_argument("--data", help="data.yaml / .data whose class names the weights must match")
    add_infer_options(p, InferConfig())
    g = p.add_argument_group("output")
    g.add_argument("--out", help="output folder (default runs/detect/exp, numbered)")
    g.add_argument("--resume", metavar="OUT", help="continue the run written into OUT: images already in "
                   "it are skipped; refused when its weights, settings or source differ")  # fmt: skip
    g.add_argument("--save-txt", action="store_true", help="also write YOLO-format labels/<stem>.txt")
    g.add_argument("--save-conf", action="store_true", help="with --save-txt: append the score")
    g.add_argument("--no-save", action="store_true", help="do not write annotated images / videos")
    g.add_argument("--view-img", action="store_true", help="show results in a window (needs a GUI OpenCV)")
    g.add_argument("--line-width", type=int, help="box line width in pixels (default: from image size)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.engine.distributed import cleanup, env_dist_info
    from yolov3.infer.runner import SaveOptions, detect, format_speed

    settings = infer_settings(args, InferConfig())
    save = SaveOptions(media=not args.no_save, txt=args.save_txt, conf=args.save_conf, view=args.view_img,
                       line_width=args.line_width)  # fmt: skip
    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise UserError(f"--resume {args.resume} and --out {args.out}: give one (--resume is the --out)")
    info = env_dist_info()
    report = detect(args.source, args.weights, args.resume or args.out, cfg=args.cfg, names=args.names,
                    data=args.data, device=args.device, backend=args.backend, save=save, settings=settings,
                    resume=bool(args.resume), info=info, backend_options=backend_options(args))  # fmt: skip
    if not info.is_main:  # rank 0 reports for the whole torchrun job
        cleanup(info)
        return 0
    if report.processed:
        print(f"Speed per image: {format_speed(report.speed_ms)} at {settings.img_size}x{settings.img_size}")
    for where, reason in report.errors:
        print(f"unreadable: {where}: {reason}")
    ranks = f" by {info.world_size} processes" if info.enabled else ""
    print(f"{report.processed} processed, {report.skipped} skipped{ranks}. Results saved to {report.out}")
    cleanup(info)
    if not report.processed:
        print("yolov3 detect: error: nothing could be read from the source", file=sys.stderr)
        return 1
    return 0
