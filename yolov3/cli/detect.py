"""``yolov3 detect SOURCE --weights W``: detect on an image, folder, glob, video file or webcam index.

Writes into ``--out`` (default ``runs/detect/exp``, numbered when it exists) what
``yolov3.apps.detect.runner`` describes: annotated images and videos, ``results.jsonl``,
``coco_results.json`` and, with ``--save-txt``, YOLO labels. Unreadable images / frames are reported
and skipped. Defaults are the seed's test settings (``InferConfig``: score 0.3, NMS IoU 0.45) at the
input size the model file records (the size it was trained at).

Under ``torchrun --nproc_per_node N -m yolov3 detect ...`` the files are shared out over the processes
and rank 0 merges the results (``yolov3.apps.detect.shard``); ``--resume OUT`` alone continues a killed run,
with the source, weights, settings and outputs its ``OUT/run.json`` records (any given again must be
the same).
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
    p.add_argument("source", nargs="?", help="image, folder, glob ('imgs/*.jpg'), video file, image or "
                   "stream URL (http(s)://, rtsp://) or webcam index (0); none with --resume")  # fmt: skip
    add_model_options(p, required=False)
    p.add_argument("--data", help="data.yaml / .data whose class names the weights must match")
    add_infer_options(p, InferConfig())
    g = p.add_argument_group("output")
    g.add_argument("--out", help="output folder (default runs/detect/exp, numbered)")
    g.add_argument("--resume", metavar="OUT", help="continue the run written into OUT with what it was "
                   "started with (OUT/run.json): images already done are skipped; other weights, "
                   "settings or source are refused")  # fmt: skip
    flag = {"action": "store_true", "default": None}  # None: not given (a resumed run keeps its own)
    g.add_argument("--save-txt", **flag, help="also write YOLO-format labels/<stem>.txt")
    g.add_argument("--save-conf", **flag, help="with --save-txt: append the score")
    g.add_argument("--no-save", **flag, help="do not write annotated images / videos")
    g.add_argument("--view-img", action="store_true", help="show results in a window (needs a GUI OpenCV)")
    g.add_argument("--line-width", type=int, help="box line width in pixels (default: from image size)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.apps.detect.runner import SaveOptions, detect, format_speed, resumed_run
    from yolov3.distributed import cleanup, env_dist_info

    if args.resume and args.out and Path(args.out) != Path(args.resume):
        raise UserError(f"--resume {args.resume} and --out {args.out}: give one (--resume is the --out)")
    if args.resume:  # what the run was started with, changed only by what is given again
        started = resumed_run(args.resume)
        base, outputs = started["settings"], started["save"]
    elif args.source is None or args.weights is None:
        raise UserError("give the SOURCE to detect on and --weights (or --resume OUT to continue a run)")
    else:
        base, outputs = InferConfig(), SaveOptions()
    settings = infer_settings(args, base)
    save = SaveOptions(media=outputs.media if args.no_save is None else not args.no_save,
                       txt=outputs.txt if args.save_txt is None else True,
                       conf=outputs.conf if args.save_conf is None else True,
                       view=args.view_img, line_width=args.line_width)  # fmt: skip
    info = env_dist_info()
    report = detect(args.source, args.weights, args.resume or args.out, cfg=args.cfg, names=args.names,
                    data=args.data, device=args.device, backend=args.backend, save=save, settings=settings,
                    resume=bool(args.resume), info=info, backend_options=backend_options(args))  # fmt: skip
    if not info.is_main:  # rank 0 reports for the whole torchrun job
        cleanup(info)
        return 0
    if report.processed:
        print(f"Speed per image: {format_speed(report.speed_ms)} at {report.img_size}x{report.img_size}")
    for where, reason, label in report.errors:
        print(f"{label}: {where}: {reason}")
    ranks = f" by {info.world_size} processes" if info.enabled else ""
    done = f"{report.processed} processed, {report.skipped} skipped{ranks}"
    if args.resume and not report.processed + report.skipped:
        done = (f"nothing left to do: the run was complete ({report.total} processed, "
                f"{report.total_skipped} skipped)")
    elif args.resume:
        done += f" now; {report.total} processed, {report.total_skipped} skipped in all"
    print(f"{done}. Results saved to {report.out}")
    cleanup(info)
    if not report.total:
        why = "every input was skipped (listed above)" if report.total_skipped else "the source held nothing"
        print(f"yolov3 detect: error: nothing detected: {why}", file=sys.stderr)
        return 1
    return 0
