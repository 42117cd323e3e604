"""Detection over a source with files written: ``yolov3.detect(source, weights, out)`` (what ``yolov3
detect`` runs): a ``Detector`` over ``yolov3.infer.sources``, every result to the writers below.

Writes into ``out``: annotated images (same names) and videos (``<stem>.mp4``, the source's frame
rate), ``results.jsonl`` (one JSON object per image or frame: boxes ``[x1, y1, x2, y2]`` in original
pixels, score, class; ``frame`` for video frames), ``coco_results.json`` (COCO results format:
official category ids for Darknet's 80 COCO names, else 1..C; image id = the numeric file stem, else
the running number) and, with ``save_txt``, ``labels/<stem>.txt`` in YOLO format (``class cx cy w h``
normalised, ``+ score`` with ``save_conf``). Unreadable images / frames are reported and skipped.
The two results files are merged at the end from per-process part files (``yolov3.apps.detect.shard``), so
one process, ``torchrun`` and a resumed run write the same files.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolov3.apps.detect.shard import (
    MANIFEST,
    Job,
    RankReport,
    file_digest,
    manifest_of,
    media_names,
    read_manifest,
)
from yolov3.config import InferConfig, bad_setting
from yolov3.console import Progress
from yolov3.data.dataset_config import load_dataset
from yolov3.data.formats.yolo import format_label_text
from yolov3.device import select_device
from yolov3.distributed import DistInfo, broadcast_object, env_dist_info, init_distributed
from yolov3.errors import UserError
from yolov3.evaluate.coco import coco_results, default_category_ids
from yolov3.files import make_dir, next_run_dir
from yolov3.infer.detector import Detector
from yolov3.infer.loop import detect_batches
from yolov3.infer.results import Detections
from yolov3.infer.slicing import TILE_BATCH
from yolov3.infer.sources import Frame, open_source
from yolov3.infer.video import VideoWriter


@dataclass
class SaveOptions:
    media: bool = True  # annotated images / videos
    txt: bool = False  # YOLO labels
    conf: bool = False  # the score as a 6th column of the YOLO labels
    view: bool = False  # show each result in a window (a GUI build of OpenCV)
    line_width: int | None = None  # box lines, pixels; None: from the image size

    def __post_init__(self) -> None:
        lw = self.line_width
        if lw is not None and (isinstance(lw, bool) or not isinstance(lw, int) or lw < 1):
            bad_setting("line_width", lw, "a whole number of pixels >= 1")


@dataclass
class DetectReport:
    """What a run did: images / frames processed and skipped by this call, mean ms per stage, the output
    folder, and what the folder now holds in all (``total`` results, ``total_skipped`` unreadable inputs,
    listed in ``errors``: more than this call did when it resumed an earlier run). ``img_size``: the
    input size the detector ran at."""

    out: Path
    processed: int = 0
    skipped: int = 0
    speed_ms: dict[str, float] = field(default_factory=dict)
    # (image or "video frame N", reason, label: "unreadable", "smaller than the tile"... ImageError.label)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    total: int = 0
    total_skipped: int = 0
    img_size: int | None = None


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
    """Every output file of a run: annotated media and YOLO labels directly, the JSON results through
    the job's part file (``yolov3.apps.detect.shard``), from which rank 0 merges ``results.jsonl`` and
    ``coco_results.json``."""

    def __init__(self, out: Path, save: SaveOptions, names: list[str], job: Job) -> None:
        self.out, self.save, self.job = out, save, job
        self.category_ids = default_category_ids(names)
        self.media = media_names(job.src.files) if job.src.files else []
        self.video: VideoWriter | None = None
        self.video_src: str | None = None

    def add(self, r: Detections, source_frame: Frame, key: tuple[int, int], name: str | None = None) -> None:
        """One result's files; ``name``: its annotated file's name (default: from the file list, as
        ``media_names`` makes them unique, else the source's own name)."""
        frame = source_frame.index if source_frame.fps is not None else None  # a video / stream frame
        stem = Path(r.path).stem if not r.path.startswith("webcam:") else r.path.replace(":", "")
        record = {**r.to_json(), **({"frame": frame} if frame is not None else {})}
        entries = coco_results([r], [0], self.category_ids)
        coco = [{k: v for k, v in e.items() if k != "image_id"} for e in entries]
        if self.save.txt:
            label = self.out / "labels" / (f"{stem}_{frame}.txt" if frame is not None else f"{stem}.txt")
            make_dir(label.parent, "labels folder")
            d = r.numpy()
            scores = d.scores if self.save.conf else None
            label.write_text(format_label_text(d.boxes, d.class_ids, d.width, d.height, scores))
        if self.save.media or self.save.view:
            fallback = f"{stem}.mp4" if frame is not None else Path(r.path).name  # no file list: a stream
            name = name or (self.media[key[0]] if self.media else fallback)
            self._draw(r, frame, name, source_frame.fps)
        # last: the part line marks the image done, so a kill before it redoes the image's files too
        own_id = int(stem) if stem.isdigit() and frame is None else None
        self.job.write({"key": list(key), "id": own_id, "record": record, "coco": coco})

    def _draw(self, r: Detections, frame: int | None, name: str, fps: float | None) -> None:
        drawn = r.plot(bgr=True, line_width=self.save.line_width)
        r.image = None  # the frame is no longer needed: keep memory flat on long videos
        if self.save.media:
            if frame is None:
                cv2.imwrite(str(self.out / name), drawn)
            else:
                self._video_frame(r.path, name, drawn, fps or 30.0)
        if self.save.view:
            show(drawn)

    def _video_frame(self, src: str, name: str, frame_bgr: np.ndarray, fps: float) -> None:
        if src != self.video_src:
            self.close_video()
            h, w = frame_bgr.shape[:2]
            self.video = VideoWriter(self.out / name, fps, (w, h))  # H.264 MP4: browsers play it
            self.video_src = src
        self.video.write(frame_bgr)

    def close_video(self) -> None:
        if self.video is not None:
            self.video.close()
            self.video, self.video_src = None, None


def run_source(
    detector: Detector,
    source: str | os.PathLike | int,
    out: str | os.PathLike,
    save: SaveOptions | None = None,
    log: Callable[[str], None] | bool = True,
    progress: bool = True,
    resume: bool = False,
    info: DistInfo | None = None,
    manifest: dict[str, Any] | None = None,
) -> DetectReport:
    """Detect on every image / frame of ``source`` (``yolov3.infer.sources.open_source``), one at a time
    (the seed's per-image timing), writing the files of the module docstring into ``out``.

    ``info``: this process's place in a ``torchrun`` job (default: alone); it takes its shard of the
    files and rank 0 merges (``yolov3.apps.detect.shard``). ``resume``: skip what an earlier run into ``out``
    with the same ``manifest`` wrote (default manifest: the settings, source and outputs; ``detect``
    adds the weights). The returned report covers the whole run on rank 0, this rank's part elsewhere."""
    src, save, info = open_source(source), save or SaveOptions(), info or DistInfo()
    out = make_dir(out, "output folder (--out)")
    outputs = {"txt": save.txt, "conf": save.conf, "media": save.media}
    manifest = manifest or manifest_of(src, detector.settings, outputs, {"names": detector.names})
    job = Job(out, src, info, manifest, resume)
    writers = Writers(out, save, detector.names, job)
    total = job.expected() or None
    bar = Progress(total, "detect", "img" if src.kind == "images" else "frame", progress and info.is_main)
    log = bar.write if log is True else (log or None)
    try:
        mine = detect_frames(detector, bar.iterate(job.frames()), job, writers, log, total)
    finally:
        bar.close()
        writers.close_video()
    merged, attempt = job.finish(mine) or (mine, mine)
    speed = {k: v / max(1, attempt.processed) for k, v in attempt.ms_total.items()}
    return DetectReport(out, attempt.processed, attempt.skipped, speed, merged.errors, merged.processed,
                        merged.skipped, detector.img_size)  # fmt: skip


def detect_frames(detector: Detector, frames: Iterable[tuple[tuple[int, int], Frame]], job: Job,
                  writers: Writers, log: Callable[[str], None] | None, total: int | None
                  ) -> RankReport:  # fmt: skip
    """``(key, frame)`` after ``(key, frame)`` through the one image loop, one at a time (the seed's
    per-image timing): each result to ``writers``, each unreadable one to the job's part file as an
    error; what this process did (counts, errors, summed ms per stage)."""
    mine, times = RankReport(), Counter()
    for k, o in enumerate(detect_batches(detector, frames, 1, picture=lambda kf: kf[1]), 1):
        key, frame = o.item
        where = frame.path + (f" frame {frame.index}" if frame.fps is not None and frame.index >= 0 else "")
        if o.error is not None:  # index -1: why a live source stopped (yolov3.infer.stream)
            mine.skipped += 1
            label = getattr(o.error, "label", "unreadable")
            mine.errors.append((where, o.reason, label))
            job.write({"key": list(key), "path": where, "error": o.reason, "label": label})
            if log:
                log(f"skipped {where} ({label}): {o.reason}")
            continue
        writers.add(o.detections, frame, key)
        mine.processed += 1
        times.update(o.detections.speed)
        if log:
            log(f"{k}/{total or '?'} {where}: {summary_line(o.detections)}")
    mine.ms_total = dict(times)
    return mine


def resumed_run(out: str | os.PathLike) -> dict[str, Any]:
    """What the run in ``out`` was started with (its ``run.json``): ``source``, ``weights``, ``cfg``,
    ``backend``, ``settings`` (``InferConfig``) and ``save`` (``SaveOptions``), so that ``--resume OUT``
    alone continues it."""
    m = read_manifest(out)
    try:
        settings = dict(m["settings"])
        if settings.get("classes") is not None:
            settings["classes"] = tuple(settings["classes"])
        outputs = m["outputs"]
        save = SaveOptions(media=outputs["media"], txt=outputs["txt"], conf=outputs["conf"])
        return {"source": m["source"]["spec"], "weights": m["model"]["weights"]["path"],
                "cfg": m["model"].get("cfg"), "backend": m["model"].get("backend", "auto"),
                "names": m["model"].get("names"), "settings": InferConfig(**settings),
                "save": save}  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"--resume {out}: its {MANIFEST} lacks what a resume needs ({exc!r})") from exc


def resumed_arguments(out: str | os.PathLike | None, source: Any, weights: Any, cfg: Any, backend: str,
                      names: Any, settings: InferConfig | None, save: SaveOptions | None
                      ) -> tuple:  # fmt: skip
    """``detect``'s ``(source, weights, cfg, backend, names, settings, save)`` with those not given (None;
    ``backend`` "auto") taken from the run in ``out`` (``resumed_run``)."""
    if out is None:
        raise UserError("resume=True needs out: the folder of the run to continue")
    run = resumed_run(out)
    return (run["source"] if source is None else source, weights or run["weights"], cfg or run["cfg"],
            run["backend"] if backend == "auto" else backend, names or run["names"],
            settings or run["settings"], save or run["save"])  # fmt: skip


def detect(
    source: str | os.PathLike | int | None,
    weights: str | os.PathLike | None,
    out: str | os.PathLike | None = None,
    cfg: str | os.PathLike | None = None,
    names: str | os.PathLike | list[str] | None = None,
    data: str | os.PathLike | None = None,
    device: str = "auto",
    backend: str = "auto",
    save: SaveOptions | None = None,
    progress: bool = True,
    settings: InferConfig | None = None,
    resume: bool = False,
    info: DistInfo | None = None,
    backend_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> DetectReport:
    """Load ``weights`` (``Detector.load``) and run it over ``source`` into ``out`` (default
    ``runs/detect/exp``, numbered). ``settings`` / ``overrides``: the ``InferConfig`` (input size,
    thresholds, NMS, amp...). ``data``: a data set config whose class names the weights must match
    (Darknet weights take them as their names). ``resume``: continue the run in ``out``
    (``run_source``); the source, weights, cfg, backend, names, settings and outputs not given (None)
    are the run's own (``resumed_run``), and any given must equal them. ``info``: the ``torchrun``
    process layout, default read from the environment (``RANK`` / ``WORLD_SIZE``); each rank then joins
    the process group on its device (gloo on CPU, NCCL on CUDA) and ``out`` must be a folder every rank
    can see. ``backend_options``: as ``Detector.load`` takes them (``threads``, ``hint``...)."""
    if resume:
        source, weights, cfg, backend, names, settings, save = resumed_arguments(
            out, source, weights, cfg, backend, names, settings, save)  # fmt: skip
    if source is None or weights is None:
        raise UserError("detect needs a source and weights (or resume=True with the folder of a run)")
    settings = (settings or InferConfig()).replace(**overrides)
    src = open_source(source)  # an empty folder or a glob matching nothing fails before the model loads
    data_names = load_dataset(data, check_files=False).names if data else None
    if names is None and data_names and Path(weights).suffix == ".weights":
        names = data_names
    info = info or env_dist_info()
    dev = init_distributed(info, select_device(device))
    if out is None:  # numbered by rank 0 alone, so that every rank writes into the same folder
        out = broadcast_object(next_run_dir("runs/detect", create=False) if info.is_main else None, info)
    det = Detector.load(weights, cfg=cfg, names=names, device=str(dev), backend=backend, settings=settings,
                        backend_options=backend_options, batch_size=TILE_BATCH if settings.tile else 1)
    if data_names is not None and len(data_names) != len(det.names):
        raise UserError(f"{weights} predicts {len(det.names)} classes but {data} has {len(data_names)} names")
    det.warmup()
    save = save or SaveOptions()
    manifest = manifest_of(src, det.settings, {"txt": save.txt, "conf": save.conf, "media": save.media},
                           {"weights": file_digest(weights), "cfg": str(cfg) if cfg else None,
                            "backend": backend, "names": det.names})  # fmt: skip
    return run_source(det, source, out, save, progress=progress, resume=resume, info=info, manifest=manifest)
