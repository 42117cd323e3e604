"""Tracking over a source: ``yolov3.track(source, weights)`` yields one ``TrackedDetections`` per frame
(what ``yolov3 track`` runs), optionally writing files.

    import yolov3
    for r in yolov3.track("video.mp4", "best.pt"):           # or a Detector, a stream URL, a webcam
        print(r.frame, r.track_ids, r.boxes, r.labels)       # boxes (x1, y1, x2, y2) original pixels

Sources: everything ``yolov3.infer.sources.open_source`` reads (a video, or a folder / glob of images
taken as one sequence in name order), plus stream URLs and webcams (``yolov3.infer.stream``: newest
frame only unless ``stream_buffer``; reconnects; an unopenable stream is a ``UserError`` naming it).
A new video starts a new tracker, so ids start from 1 per video.

Settings: ``InferConfig`` for the detector and ``TrackConfig`` for the tracker, given as objects or
as keywords by field name (``conf_threshold=0.2, track_buffer=60``). Unless set, the detector's
``conf_threshold`` is the tracker's ``low_threshold``: ByteTrack's second stage needs the low-score boxes.

With ``out``, writes there what ``yolov3.infer.runner.Writers`` writes (annotated media, now with
track ids and trails, ``results.jsonl`` with ``track_id`` and ``frame`` per record,
``coco_results.json``) and ``mot/<sequence>.txt``: MOTChallenge results ``frame, id, x, y, w, h,
score, -1, -1, -1`` (1-based frames). Files are finalised when the iteration ends, is broken off or
interrupted (Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from yolov3.config import InferConfig, TrackConfig
from yolov3.console import Progress
from yolov3.files import make_dir
from yolov3.infer.detector import Detector
from yolov3.infer.runner import SaveOptions, Writers
from yolov3.infer.shard import StreamJob
from yolov3.infer.sources import Frame, open_source
from yolov3.infer.stream import LiveSource, is_stream
from yolov3.infer.track.bytetrack import ByteTracker
from yolov3.infer.track.results import TrackedDetections

_TRACK_FIELDS = {f.name for f in dataclasses.fields(TrackConfig)}
TRACKER_CLASSES = {"bytetrack": ByteTracker}  # TrackConfig.tracker -> the class that tracks


@dataclass
class TrackReport:
    """What a run did: frames tracked and skipped, distinct track ids, live frames dropped for newer
    ones, whether it was interrupted, why a live source ended early, mean ms per stage."""

    out: Path | None = None
    frames: int = 0
    skipped: int = 0
    tracks: int = 0
    dropped: int = 0
    interrupted: bool = False
    error: str | None = None
    speed_ms: dict[str, float] = field(default_factory=dict)


class TrackWriters(Writers):
    """``Writers`` plus one MOTChallenge results file per sequence under ``out/mot``."""

    def __init__(self, out: Path, save: SaveOptions, names: list[str]) -> None:
        self.stream = StreamJob(out)
        super().__init__(out, save, names, self.stream)
        self.mot: dict[str, TextIO] = {}

    def add_track(self, r: TrackedDetections, frame: Frame, sequence: str) -> None:
        if sequence not in self.mot:
            make_dir(self.out / "mot", "MOT results folder")
            self.mot[sequence] = (self.out / "mot" / f"{sequence}.txt").open("w")
        self.mot[sequence].writelines(line + "\n" for line in r.mot_lines())
        key = (0, self.stream.count)  # frames in arrival order
        self.add(dataclasses.replace(r), frame, key)  # a copy: ``add`` drops the image, the caller keeps it

    def close(self) -> None:
        for f in self.mot.values():
            f.close()
        self.close_video()
        self.stream.close()


def open_track_source(
    spec: str | os.PathLike | int,
    stream_buffer: bool = False,
    open_timeout: float = 10.0,
    retries: int = 5,
    capture: Callable | None = None,
) -> Iterable[Frame]:
    """A live source (opened now: ``UserError`` if it cannot be) or ``open_source(spec)``."""
    if is_stream(spec):
        src = LiveSource(
            spec, keep_all=stream_buffer, open_timeout=open_timeout, retries=retries, capture=capture
        )
        src.start()
        return src
    return open_source(spec)


def sequence_name(frame: Frame, spec: str) -> str:
    """The sequence a frame belongs to: its video / stream, or for images the whole source."""
    if frame.fps is None:
        name = Path(str(spec).rstrip("/")).name
        return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") or "images"  # a glob's name too
    return Path(frame.path).stem.replace(":", "")  # webcam:0 -> webcam0, as its annotated video


def split_settings(
    settings: InferConfig | None, track_settings: TrackConfig | None, overrides: dict[str, Any]
) -> tuple[InferConfig, TrackConfig]:
    """``(InferConfig, TrackConfig)`` with ``overrides`` applied by field name (module docstring)."""
    tcfg = (track_settings or TrackConfig()).replace(
        **{k: v for k, v in overrides.items() if k in _TRACK_FIELDS}
    )
    base = settings or InferConfig(conf_threshold=tcfg.low_threshold)
    return base.replace(**{k: v for k, v in overrides.items() if k not in _TRACK_FIELDS}), tcfg


def track_frames(
    detector: Detector,
    frames: Iterable[Frame],
    settings: TrackConfig,
    spec: str = "",
    report: TrackReport | None = None,
    writers: TrackWriters | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[TrackedDetections]:
    """Detect and track frame by frame; a new sequence (``sequence_name``) starts a new tracker.
    Unreadable frames are counted in ``report`` and logged; a live source's last error is kept there."""
    report = report if report is not None else TrackReport()
    tracker, current, count, ids = None, None, 0, set()
    for frame in frames:
        if frame.image is None:
            report.skipped += frame.index >= 0
            report.error = frame.error if frame.index < 0 else report.error  # a live source gave up
            if log:
                where = f"{frame.path} frame {frame.index}" if frame.index >= 0 else frame.path
                log(f"{'skipped' if frame.index >= 0 else 'stopped'} {where}: {frame.error}")
            continue
        seq = sequence_name(frame, spec)
        if seq != current:
            tracker, current, count = TRACKER_CLASSES[settings.tracker](settings, frame.fps or 30.0), seq, 0
        det = detector.predict_arrays([frame.image], [frame.path])[0]
        t0 = time.perf_counter()
        out = tracker.update(det.boxes, det.scores, det.class_ids)
        det.speed["track"] = (time.perf_counter() - t0) * 1e3
        r = TrackedDetections(
            out.boxes,
            out.scores,
            out.class_ids,
            det.names,
            det.path,
            det.width,
            det.height,
            det.image,
            det.speed,
            track_ids=out.track_ids,
            trails=out.trails,
            frame=frame.index if frame.fps is not None else count,
        )
        count += 1
        report.frames += 1
        report.dropped += getattr(frame, "dropped", 0)
        ids.update((seq, int(t)) for t in out.track_ids)
        report.tracks = len(ids)
        for k, v in r.speed.items():
            report.speed_ms[k] = (
                report.speed_ms.get(k, 0.0) + (v - report.speed_ms.get(k, 0.0)) / report.frames
            )
        if writers is not None:
            writers.add_track(r, frame, seq)
        yield r


def track(
    source: str | os.PathLike | int,
    weights: str | os.PathLike | Detector,
    out: str | os.PathLike | None = None,
    cfg: str | os.PathLike | None = None,
    names: str | os.PathLike | list[str] | None = None,
    device: str = "auto",
    backend: str = "auto",
    settings: InferConfig | None = None,
    track_settings: TrackConfig | None = None,
    stream_buffer: bool = False,
    save: SaveOptions | None = None,
    open_timeout: float = 10.0,
    retries: int = 5,
    report: TrackReport | None = None,
    log: Callable[[str], None] | None = None,
    capture: Callable | None = None,
    backend_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> Iterator[TrackedDetections]:
    """One ``TrackedDetections`` per frame of ``source`` (module docstring). ``weights``: a model file
    (``Detector.load`` with ``cfg``, ``names``, ``device``, ``backend``) or a ``Detector``, used as is.
    ``stream_buffer``: keep every frame of a live source; ``open_timeout`` / ``retries``: its opening
    and reconnection (``yolov3.infer.stream.LiveSource``); ``capture``: a capture factory for it.
    ``report`` (filled as frames go), ``log``: per-frame messages; ``backend_options``: as
    ``Detector.load`` takes them (``threads``, ``hint``...)."""
    infer, tcfg = split_settings(settings, track_settings, overrides)
    src = open_track_source(source, stream_buffer, open_timeout, retries, capture)
    try:
        if isinstance(weights, Detector):
            detector = weights
        else:
            detector = Detector.load(weights, cfg=cfg, names=names, device=device, backend=backend,
                                     batch_size=1, settings=infer,
                                     backend_options=backend_options)  # fmt: skip
            detector.warmup()
        writers = None
        if out is not None:
            report = report if report is not None else TrackReport()
            report.out = make_dir(out, "output folder (--out)")
            writers = TrackWriters(report.out, save or SaveOptions(), detector.names)
        try:
            yield from track_frames(detector, src, tcfg, str(source), report, writers, log)
        finally:
            if writers is not None:
                writers.close()
    finally:
        if isinstance(src, LiveSource):
            src.close()


def run_track(
    source: str | os.PathLike | int,
    weights: str | os.PathLike | Detector,
    out: str | os.PathLike,
    progress: bool = True,
    **kwargs: Any,
) -> TrackReport:
    """``track`` to the end of ``source`` with files written into ``out`` (what ``yolov3 track`` runs);
    Ctrl-C stops it cleanly, with the files finalised and ``report.interrupted`` set."""
    report = TrackReport()
    bar = Progress(None, "track", "frame", progress)
    frames = track(source, weights, out, report=report, log=bar.write if progress else None, **kwargs)
    try:
        for _ in frames:
            bar.update(1)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        frames.close()  # finalises the files when the loop was left early
        bar.close()
    return report


__all__ = ["TrackReport", "TrackWriters", "open_track_source", "run_track", "track", "track_frames"]
