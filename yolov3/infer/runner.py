"""Detection over a source with files written: ``yolov3.detect(source, weights, out)`` (what ``yolov3
detect`` runs): a ``Detector`` over ``yolov3.infer.sources``, every result to the writers below.

Writes into ``out``: annotated images (same names) and videos (``<stem>.mp4``, the source's frame
rate), ``results.jsonl`` (one JSON object per image or frame: boxes ``[x1, y1, x2, y2]`` in original
pixels, score, class; ``frame`` for video frames), ``coco_results.json`` (COCO results format:
official category ids for Darknet's 80 COCO names, else 1..C; image id = the numeric file stem, else
the running number) and, with ``save_txt``, ``labels/<stem>.txt`` in YOLO format (``class cx cy w h``
normalised, ``+ score`` with ``save_conf``). Unreadable images / frames are reported and skipped.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from yolov3.config import InferConfig
from yolov3.data.dataset_config import load_dataset
from yolov3.errors import UserError
from yolov3.evaluate.coco import coco_results, default_category_ids
from yolov3.files import make_dir
from yolov3.infer.detector import Detector
from yolov3.infer.results import Detections
from yolov3.infer.sources import Frame, is_video_file, open_source


@dataclass
class SaveOptions:
    media: bool = True  # annotated images / videos
    txt: bool = False  # YOLO labels
    conf: bool = False  # the score as a 6th column of the YOLO labels
    view: bool = False  # show each result in a window (a GUI build of OpenCV)
    line_width: int | None = None


@dataclass
class DetectReport:
    """What a run did: images / frames processed and skipped, mean ms per stage, the output folder."""

    out: Path
    processed: int = 0
    skipped: int = 0
    speed_ms: dict[str, float] = field(default_factory=dict)


def yolo_lines(r: Detections, with_conf: bool) -> list[str]:
    """YOLO label lines ``class cx cy w h [score]`` normalised to the image size."""
    out = []
    for (x1, y1, x2, y2), s, c in zip(r.boxes.tolist(), r.scores.tolist(), r.class_ids.tolist()):
        vals = [(x1 + x2) / 2 / r.width, (y1 + y2) / 2 / r.height, (x2 - x1) / r.width, (y2 - y1) / r.height]
        line = f"{c} " + " ".join(f"{v:.6f}" for v in vals)
        out.append(line + (f" {s:.5f}" if with_conf else ""))
    return out


def format_speed(speed: dict[str, float]) -> str:
    return ", ".join(f"{k} {speed[k]:.1f} ms" for k in ("preprocess", "inference", "nms"))


def summary_line(r: Detections) -> str:
    """``2 person, 1 dog; preprocess 3.1 ms, inference 40.2 ms, nms 0.6 ms``."""
    found = ", ".join(f"{n} {name}" for name, n in Counter(r.labels).items()) or "no detections"
    return f"{found}; " + format_speed(r.speed)


def show(image_bgr: np.ndarray) -> None:
    try:
        cv2.imshow("yolov3 detect", image_bgr)
        cv2.waitKey(1)
    except cv2.error as exc:
        raise UserError(
            "viewing results needs an OpenCV build with GUI support (this one is headless)"
        ) from exc


class Writers:
    """Every output file of a run (annotated media, JSON lines, COCO results, YOLO labels)."""

    def __init__(self, out: Path, save: SaveOptions, names: list[str]) -> None:
        self.out, self.save = out, save
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

    def add(self, r: Detections, source_frame: Frame) -> None:
        frame = source_frame.index if source_frame.fps is not None else None  # a video / stream frame
        self.count += 1
        stem = Path(r.path).stem if not r.path.startswith("webcam:") else r.path.replace(":", "")
        image_id = int(stem) if stem.isdigit() and frame is None else self.count
        record = {"image_id": image_id, **r.to_json(), **({"frame": frame} if frame is not None else {})}
        self.jsonl.write(json.dumps(record) + "\n")
        self.coco += coco_results([r], [image_id], self.category_ids)
        if self.save.txt:
            label = self.out / "labels" / (f"{stem}_{frame}.txt" if frame is not None else f"{stem}.txt")
            make_dir(label.parent, "labels folder")
            label.write_text("".join(line + "\n" for line in yolo_lines(r, self.save.conf)))
        if not (self.save.media or self.save.view):
            return
        drawn = r.plot(bgr=True, line_width=self.save.line_width)
        r.image = None  # the frame is no longer needed: keep memory flat on long videos
        if self.save.media:
            if frame is None:
                cv2.imwrite(str(self.out / self._unique(Path(r.path).name)), drawn)
            else:
                self._video_frame(r.path, drawn, source_frame.fps or 30.0)
        if self.save.view:
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


def run_source(
    detector: Detector,
    source: str | os.PathLike | int,
    out: str | os.PathLike,
    save: SaveOptions | None = None,
    log: Callable[[str], None] | None = tqdm.write,
    progress: bool = True,
) -> DetectReport:
    """Detect on every image / frame of ``source`` (``yolov3.infer.sources.open_source``), one at a time
    (the seed's per-image timing), writing the files of the module docstring into ``out``."""
    src = open_source(source)
    out = make_dir(out, "output folder (--out)")
    writers = Writers(out, save or SaveOptions(), detector.names)
    report, times = DetectReport(out), Counter()
    total = len(src) or None
    bar = tqdm(src, total=total, unit="img" if src.kind == "images" else "frame", desc="detect",
               disable=not progress)  # fmt: skip
    try:
        for k, frame in enumerate(bar, 1):
            where = frame.path + (f" frame {frame.index}" if frame.fps is not None else "")
            if frame.image is None:
                report.skipped += 1
                if log:
                    log(f"skipped {where}: {frame.error}")
                continue
            r = detector.predict_arrays([frame.image], [frame.path])[0]
            writers.add(r, frame)
            report.processed += 1
            times.update(r.speed)
            if log:
                log(f"{k}/{total or '?'} {where}: {summary_line(r)}")
    finally:
        bar.close()
        writers.close()
    report.speed_ms = {k: v / max(1, report.processed) for k, v in times.items()}
    return report


def detect(
    source: str | os.PathLike | int,
    weights: str | os.PathLike,
    out: str | os.PathLike,
    cfg: str | os.PathLike | None = None,
    names: str | os.PathLike | list[str] | None = None,
    data: str | os.PathLike | None = None,
    device: str = "auto",
    backend: str = "auto",
    save: SaveOptions | None = None,
    progress: bool = True,
    settings: InferConfig | None = None,
    **overrides: Any,
) -> DetectReport:
    """Load ``weights`` (``Detector.load``) and run it over ``source`` into ``out``. ``settings`` /
    ``overrides``: the ``InferConfig`` (input size, thresholds, NMS, amp...). ``data``: a data set
    config whose class names the weights must match (Darknet weights take them as their names)."""
    settings = (settings or InferConfig()).replace(**overrides)
    open_source(source)  # an empty folder or a glob matching nothing fails before the model loads
    data_names = load_dataset(data, check_files=False).names if data else None
    if names is None and data_names and Path(weights).suffix == ".weights":
        names = data_names
    det = Detector.load(weights, cfg=cfg, names=names, device=device, backend=backend, batch_size=1,
                        settings=settings)  # fmt: skip
    if data_names is not None and len(data_names) != len(det.names):
        raise UserError(f"{weights} predicts {len(det.names)} classes but {data} has {len(data_names)} names")
    det.warmup()
    return run_source(det, source, out, save, progress=progress)
