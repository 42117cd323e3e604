"""``yolov3 detect SOURCE --weights W``: detect on an image, folder, glob, video file or webcam index.

Writes into ``--out`` (default ``runs/detect/exp``, numbered when it exists): annotated images (same
names) and videos (``<stem>.mp4``), ``results.jsonl`` (one JSON object per image or frame: boxes
``[x1, y1, x2, y2]`` in original pixels, score, class), ``coco_results.json`` (COCO results format;
official category ids for the 80 COCO names, else 1..C; image id = the numeric file stem, else the
running number) and, with ``--save-txt``, ``labels/<stem>.txt`` in YOLO format (``class cx cy w h``
normalised, ``+ score`` with ``--save-conf``). Unreadable images / frames are reported and skipped.
Defaults are the seed's test settings: input 544, score 0.3, NMS IoU 0.45.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from yolov3.data.dataset_config import load_dataset
from yolov3.errors import UserError
from yolov3.evaluate.coco import coco_results, default_category_ids
from yolov3.predict import Detector, Result
from yolov3.sources import Frame, is_video_file, open_source


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


def next_run_dir(out: str | None, project: str, name: str = "exp") -> Path:
    """``out`` as given, else ``project/exp``, ``project/exp2``, ... (the first that does not exist)."""
    if out:
        path = Path(out)
    else:
        path, n = Path(project) / name, 2
        while path.exists():
            path, n = Path(project) / f"{name}{n}", n + 1
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


def yolo_lines(r: Result, with_conf: bool) -> list[str]:
    """YOLO label lines ``class cx cy w h [score]`` normalised to the image size."""
    out = []
    for (x1, y1, x2, y2), s, c in zip(r.boxes.tolist(), r.scores.tolist(), r.class_ids.tolist()):
        vals = [(x1 + x2) / 2 / r.width, (y1 + y2) / 2 / r.height, (x2 - x1) / r.width, (y2 - y1) / r.height]
        line = f"{c} " + " ".join(f"{v:.6f}" for v in vals)
        out.append(line + (f" {s:.5f}" if with_conf else ""))
    return out


def summary_line(r: Result) -> str:
    counts = Counter(r.labels)
    found = ", ".join(f"{n} {name}" for name, n in counts.items()) or "no detections"
    return f"{found}; " + format_speed(r.speed)


def format_speed(speed: dict[str, float]) -> str:
    return ", ".join(f"{k} {speed[k]:.1f} ms" for k in ("preprocess", "inference", "nms"))


class Writers:
    """Every output file of a run (annotated media, JSON lines, COCO results, YOLO labels)."""

    def __init__(self, out: Path, args: argparse.Namespace, names: list[str]) -> None:
        self.out, self.args = out, args
        self.jsonl = (out / "results.jsonl").open("w")
        self.coco: list[dict[str, Any]] = []
        self.category_ids = default_category_ids(names)
        self.video: cv2.VideoWriter | None = None
        self.video_src: str | None = None
        self.used: set[str] = set()
        self.count = 0

    def _unique(self, name: str) -> str:
        stem, suffix, n = Path(name).stem, Path(name).suffix, 2
        while name in self.used:
            name, n = f"{stem}_{n}{suffix}", n + 1
        self.used.add(name)
        return name

    def add(self, r: Result, source_frame: Frame, is_video: bool) -> None:
        frame = source_frame.index if is_video else None
        self.count += 1
        stem = (
            Path(r.path).stem if r.path and not r.path.startswith("webcam:") else str(r.path).replace(":", "")
        )
        image_id = int(stem) if stem.isdigit() and frame is None else self.count
        record = {"image_id": image_id, **r.to_json(), **({"frame": frame} if frame is not None else {})}
        self.jsonl.write(json.dumps(record) + "\n")
        self.coco += coco_results([(r.boxes, r.scores, r.class_ids)], [image_id], self.category_ids)
        if self.args.save_txt:
            label = self.out / "labels" / (f"{stem}_{frame}.txt" if frame is not None else f"{stem}.txt")
            label.parent.mkdir(exist_ok=True)
            label.write_text("".join(line + "\n" for line in yolo_lines(r, self.args.save_conf)))
        if self.args.no_save and not self.args.view_img:
            return
        drawn = r.plot(bgr=True, line_width=self.args.line_width)
        r.image = None  # the frame is no longer needed: keep memory flat on long videos
        if not self.args.no_save:
            if frame is None:
                cv2.imwrite(str(self.out / self._unique(Path(r.path).name)), drawn)
            else:
                self._video_frame(r.path, drawn, source_frame.fps or 30.0)
        if self.args.view_img:
            show(drawn)

    def _video_frame(self, src: str, frame_bgr: np.ndarray, fps: float) -> None:
        if src != self.video_src:
            self.close_video()
            name = self._unique(f"{Path(src).stem if is_video_file(src) else src.replace(':', '')}.mp4")
            h, w = frame_bgr.shape[:2]
            self.video = cv2.VideoWriter(str(self.out / name), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            self.video_src = src
        self.video.write(frame_bgr)

    def close_video(self) -> None:
        if self.video is not None:
            self.video.release()
            self.video, self.video_src = None, None

    def close(self) -> None:
        self.close_video()
        self.jsonl.close()
        (self.out / "coco_results.json").write_text(json.dumps(self.coco))


def show(image_bgr: np.ndarray) -> None:
    try:
        cv2.imshow("yolov3 detect", image_bgr)
        cv2.waitKey(1)
    except cv2.error as exc:
        raise UserError("--view-img needs an OpenCV build with GUI support (this one is headless)") from exc


def load_detector(args: argparse.Namespace) -> Detector:
    names: Any = args.names
    data_names = load_dataset(args.data, check_files=False).names if args.data else None
    if names is None and data_names and Path(args.weights).suffix == ".weights":
        names = data_names
    det = Detector.load(args.weights, cfg=args.cfg, names=names, device=args.device, img_size=args.img,
                        backend=args.backend, amp=args.amp, conf_threshold=args.conf, iou_threshold=args.iou,
                        classes=args.classes, max_det=args.max_det, nms=args.nms,
                        multi_label=args.multi_label, batch_size=1)  # fmt: skip
    if data_names is not None and len(data_names) != len(det.names):
        raise UserError(f"{args.weights} predicts {len(det.names)} classes but {args.data} has "
                        f"{len(data_names)} class names")  # fmt: skip
    return det


def run(args: argparse.Namespace) -> int:
    source = open_source(args.source)  # empty folder / glob: a UserError before the model loads
    det = load_detector(args)
    det.warmup()
    out = next_run_dir(args.out, "runs/detect")
    writers = Writers(out, args, det.names)
    total = len(source) or None
    done = skipped = 0
    times = Counter()
    bar = tqdm(source, total=total, unit="frame" if source.kind != "images" else "img", desc="detect")
    try:
        for k, frame in enumerate(bar, 1):
            where = frame.path + (f" frame {frame.index}" if frame.fps is not None else "")
            if frame.image is None:
                skipped += 1
                tqdm.write(f"skipped {where}: {frame.error}")
                continue
            r = det.predict_arrays([frame.image], [frame.path])[0]
            writers.add(r, frame, frame.fps is not None)
            done += 1
            times.update(r.speed)
            tqdm.write(f"{k}/{total or '?'} {where}: {summary_line(r)}")
    finally:
        bar.close()
        writers.close()
    if done:
        mean = {k: v / done for k, v in times.items()}
        print(f"Speed per image: {format_speed(mean)} at {det.img_size}x{det.img_size}")
    print(f"{done} processed, {skipped} skipped. Results saved to {out}")
    if not done:
        print("yolov3 detect: error: nothing could be read from the source", flush=True)
        return 1
    return 0
