"""``yolov3 detect SOURCE --weights W``: detect on an image, folder, glob, video file or webcam index.

Writes into ``--out`` (default ``runs/detect/exp``, numbered when it exists) what
``yolov3.inference`` describes: annotated images and videos, ``results.jsonl``,
``coco_results.json`` and, with ``--save-txt``, YOLO labels. Unreadable images / frames are reported
and skipped. Defaults are the seed's test settings: input 544, score 0.3, NMS IoU 0.45.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolov3.errors import UserError
from yolov3.inference import SaveOptions, detect, format_speed


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The options naming a model, shared with ``yolov3 val``."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--weights", required=True, help="checkpoint (.pt / .safetensors), Darknet .weights, .onnx"
    )
    g.add_argument("--cfg", help="Darknet .cfg (with .weights), or a shipped name such as yolov3-tiny")
    g.add_argument("--names", help="class names file, one per line (Darknet weights carry none)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--backend", default="auto", help="auto | torch | onnxruntime | opencv")


def next_run_dir(out: str | None, project: str, name: str = "exp", create: bool = True) -> Path:
    """``out`` as given, else ``project/exp``, ``project/exp2``, ... (the first that does not exist);
    created unless ``create`` is False (the caller makes it once there is something to write)."""
    if out:
        path = Path(out)
    else:
        path, n = Path(project) / name, 2
        while path.exists():
            path, n = Path(project) / f"{name}{n}", n + 1
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create output folder {path}: {exc.strerror or exc}") from exc
    return path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect objects in images, folders, globs, videos or a webcam",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("source", help="image, folder, glob ('imgs/*.jpg'), video file or webcam index (0)")
    add_model_options(p)
    p.add_argument("--data", help="data.yaml / .data whose class names the weights must match")
    p.add_argument("--img", type=int, default=544, help="input size, multiple of 32 (seed: 544)")
    p.add_argument("--conf", type=float, default=0.3, help="score threshold (seed: 0.3)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (seed: 0.45)")
    p.add_argument("--classes", type=int, nargs="+", help="keep only these class indices")
    p.add_argument("--max-det", type=int, default=300, help="at most this many boxes per image")
    p.add_argument("--nms", choices=["greedy", "soft", "diou"], default="greedy")
    p.add_argument("--multi-label", action="store_true", help="one score per class above --conf")
    p.add_argument("--amp", default="auto", help="auto | bf16 | fp16 | off (mixed precision)")
    p.add_argument("--out", help="output folder (default runs/detect/exp, numbered)")
    p.add_argument("--save-txt", action="store_true", help="also write YOLO-format labels/<stem>.txt")
    p.add_argument("--save-conf", action="store_true", help="with --save-txt: append the score")
    p.add_argument("--no-save", action="store_true", help="do not write annotated images / videos")
    p.add_argument("--view-img", action="store_true", help="show results in a window (needs a GUI OpenCV)")
    p.add_argument("--line-width", type=int, help="box line width in pixels (default: from image size)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    save = SaveOptions(media=not args.no_save, txt=args.save_txt, conf=args.save_conf, view=args.view_img,
                       line_width=args.line_width)  # fmt: skip
    out = next_run_dir(args.out, "runs/detect", create=False)  # made by detect once the model loads
    report = detect(args.source, args.weights, out, cfg=args.cfg,
                    names=args.names, data=args.data, device=args.device, img_size=args.img, save=save,
                    conf_threshold=args.conf, iou_threshold=args.iou, classes=args.classes,
                    max_det=args.max_det, nms=args.nms, multi_label=args.multi_label, amp=args.amp,
                    backend=args.backend)  # fmt: skip
    if report.processed:
        print(f"Speed per image: {format_speed(report.speed_ms)} at {args.img}x{args.img}")
    print(f"{report.processed} processed, {report.skipped} skipped. Results saved to {report.out}")
    if not report.processed:
        print("yolov3 detect: error: nothing could be read from the source", file=sys.stderr)
        return 1
    return 0
