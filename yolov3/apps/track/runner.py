"""Tracking over a source: ``yolov3.track(source, weights)`` yields one ``TrackedDetections`` per frame
(what ``yolov3 track`` runs), optionally writing files; ``run_track`` runs it to the end and, with
``evaluate=True``, scores it against the ground truth (``evaluate_run``).

    import yolov3
    for r in yolov3.track("video.mp4", "best.pt"):           # or a Detector, a stream URL, a webcam
        print(r.sequence, r.frame, r.track_ids, r.boxes)     # boxes (x1, y1, x2, y2) original pixels

Sources: MOTChallenge sequences (a root of ``<name>/img1/`` folders, one such folder or its
``img1``), everything ``yolov3.infer.sources.open_source`` reads (a video, or a folder / glob of
images taken as one sequence in name order), plus stream URLs and webcams (``yolov3.infer.stream``:
newest frame only unless ``stream_buffer``; reconnects; an unopenable stream is a ``UserError``
naming it). ``yolov3.apps.track.sequences`` says what a sequence is and how it is named; each starts a
new tracker (ids from 1) at its own frame rate (a MOTChallenge sequence's ``seqinfo.ini`` frameRate).

Settings: ``InferConfig`` for the detector and ``TrackConfig`` for the tracker, given as objects or
as keywords by field name (``conf_threshold=0.2, track_buffer=60``). Unless set, the detector's
``conf_threshold`` is the tracker's ``low_threshold``: ByteTrack's second stage needs the low-score boxes.

With ``out``, writes there what ``yolov3.apps.track.writers.TrackWriters`` writes: annotated media
with track ids and trails (a MOTChallenge sequence's frames in ``<sequence>/``), ``results.jsonl``
with ``track_id``, ``sequence`` and ``frame`` per record, ``coco_results.json`` and
``mot/<sequence>.txt``: MOTChallenge results ``frame, id, x, y, w, h, score, -1, -1, -1`` (1-based
frames). Files are finalised when the iteration ends, is broken off or interrupted (Ctrl-C).
``evaluate_run`` then scores ``mot/<sequence>.txt`` against each sequence's ``gt/gt.txt``
(``yolov3.evaluate.mot``: HOTA, MOTA, IDF1...) into ``mot_metrics.json``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolov3.apps.detect.runner import SaveOptions
from yolov3.apps.track.bytetrack import ByteTracker
from yolov3.apps.track.results import TrackedDetections
from yolov3.apps.track.sequences import (
    Sequence,
    SequenceFrame,
    find_sequences,
    plain_frames,
    sequence_frames,
    untracked_media,
)
from yolov3.apps.track.writers import TrackWriters
from yolov3.config import InferConfig, TrackConfig
from yolov3.console import Progress, note
from yolov3.errors import UserError
from yolov3.evaluate.mot import MIN_VISIBILITY, MOTEvaluation, evaluate_files
from yolov3.files import make_dir
from yolov3.infer.detector import Detector
from yolov3.infer.loop import detect_batches
from yolov3.infer.slicing import TILE_BATCH
from yolov3.infer.sources import Frame, open_source
from yolov3.infer.stream import LiveSource, is_stream

_TRACK_FIELDS = {f.name for f in dataclasses.fields(TrackConfig)}
TRACKER_CLASSES = {"bytetrack": ByteTracker}  # TrackConfig.tracker -> the class that tracks
METRICS_FILE = "mot_metrics.json"


@dataclass
class TrackReport:
    """What a run did: frames tracked and skipped, distinct track ids, live frames dropped for newer
    ones, whether it was interrupted, why a live source ended early, mean ms per stage, the
    sequences tracked (names, in order) and, after ``evaluate``, the scores."""

    out: Path | None = None
    frames: int = 0
    skipped: int = 0
    tracks: int = 0
    dropped: int = 0
    interrupted: bool = False
    error: str | None = None
    speed_ms: dict[str, float] = field(default_factory=dict)
    sequences: list[str] = field(default_factory=list)
    evaluation: MOTEvaluation | None = None


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


def open_sequences(
    spec: str | os.PathLike | int, **live: Any
) -> tuple[Iterable[SequenceFrame], Iterable[Frame] | list[Sequence]]:
    """``spec``'s frames, each with its sequence (``yolov3.apps.track.sequences``), and the source
    (to close afterwards) or the MOTChallenge sequences. ``live``: ``open_track_source``'s keywords.
    A MOTChallenge root's other media are not tracked; a note says so."""
    sequences = None if is_stream(spec) else find_sequences(spec)
    if sequences is None:
        src = open_track_source(spec, **live)
        return plain_frames(src, str(spec)), src
    if len(sequences) > 1:
        others = untracked_media(Path(str(spec)), sequences)
        if others:
            note(f"{spec}: tracking its {len(sequences)} MOTChallenge sequences; {len(others)} other "
                          f"image / video files ({others[0]}...) are not tracked")  # fmt: skip
    return sequence_frames(sequences), sequences


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
    frames: Iterable[SequenceFrame],
    settings: TrackConfig,
    report: TrackReport | None = None,
    writers: TrackWriters | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[TrackedDetections]:
    """Detect (the one image loop, ``yolov3.infer.loop.detect_batches``) and track frame by frame; a new
    sequence starts a new tracker at its frame rate.
    Unreadable frames are counted in ``report`` and logged; a live source's last error is kept there."""
    report = report if report is not None else TrackReport()
    tracker, current, ids = None, None, set()
    # one frame at a time, in order: a live source is read no faster than it is detected on
    for o in detect_batches(detector, frames, 1, picture=lambda item: item.frame):
        item, frame, det = o.item, o.item.frame, o.detections
        if o.error is not None:
            report.skipped += frame.index >= 0
            report.error = o.reason if frame.index < 0 else report.error  # a live source gave up
            if log:
                where = f"{frame.path} frame {frame.index}" if frame.index >= 0 else frame.path
                log(f"{'skipped' if frame.index >= 0 else 'stopped'} {where}: {o.reason}")
            continue
        if item.sequence != current:
            tracker, current = TRACKER_CLASSES[settings.tracker](settings, item.frame_rate), item.sequence
            report.sequences.append(current)
        t0 = time.perf_counter()
        out = tracker.update(det.boxes, det.scores, det.class_ids)
        det.speed["track"] = (time.perf_counter() - t0) * 1e3
        r = TrackedDetections(
            out.boxes, out.scores, out.class_ids, det.names, det.path, det.width, det.height, det.image,
            det.speed, track_ids=out.track_ids, trails=out.trails, frame=item.number, sequence=current,
        )  # fmt: skip
        report.frames += 1
        report.dropped += getattr(frame, "dropped", 0)
        ids.update((current, int(t)) for t in out.track_ids)
        report.tracks = len(ids)
        for k, v in r.speed.items():
            report.speed_ms[k] = (
                report.speed_ms.get(k, 0.0) + (v - report.speed_ms.get(k, 0.0)) / report.frames
            )
        if writers is not None:
            writers.add_track(r, frame, current, item.folder)
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
    frames, src = open_sequences(source, stream_buffer=stream_buffer, open_timeout=open_timeout,
                                 retries=retries, capture=capture)  # fmt: skip
    try:
        if isinstance(weights, Detector):
            detector = weights
        else:
            detector = Detector.load(weights, cfg=cfg, names=names, device=device, backend=backend,
                                     batch_size=TILE_BATCH if infer.tile else 1, settings=infer,
                                     backend_options=backend_options)  # fmt: skip
            detector.warmup()
        writers = None
        if out is not None:
            report = report if report is not None else TrackReport()
            report.out = make_dir(out, "output folder (--out)")
            writers = TrackWriters(report.out, save or SaveOptions(), detector.names)
        try:
            yield from track_frames(detector, frames, tcfg, report, writers, log)
        finally:
            if writers is not None:
                writers.close()
    finally:
        if isinstance(src, LiveSource):
            src.close()


def scored_sequences(source: str | os.PathLike) -> list[Sequence]:
    """The MOTChallenge sequences of ``source`` that have ground truth (``gt/gt.txt``); ``UserError``
    when it has none, naming what was expected."""
    sequences = None if is_stream(source) else find_sequences(source)
    if not sequences:
        raise UserError(
            f"{source}: --eval needs MOTChallenge sequences (<name>/img1/ with <name>/gt/gt.txt, as "
            "`yolov3 data synth --video` writes); this source is not in that layout"
        )
    with_gt = [s for s in sequences if s.gt is not None]
    if not with_gt:
        expected = sequences[0].folder / "gt" / "gt.txt"
        raise UserError(f"{source}: no sequence here has ground truth (looked for {expected}...)")
    return with_gt


def evaluate_run(
    source: str | os.PathLike,
    out: str | os.PathLike,
    min_visibility: float = MIN_VISIBILITY,
    log: Callable[[str], None] | None = None,
) -> MOTEvaluation:
    """Score a finished run into ``out`` (its ``mot/<sequence>.txt``) against the ground truth of
    ``source``'s sequences (``yolov3.evaluate.mot``: which rows count, the metrics), and write the
    scores to ``out/mot_metrics.json``. Sequences without ground truth are left out (``log``, default
    ``note``, says which); a sequence with no results file counts as nothing tracked."""
    sequences = scored_sequences(source)
    every = find_sequences(source) or []
    missing = [s.name for s in every if s.gt is None]
    if missing:
        (log or note)(f"not scored, no gt/gt.txt: {', '.join(missing)}")
    out = Path(out)
    evaluation = evaluate_files(
        [(s.name, s.gt, out / "mot" / f"{s.name}.txt") for s in sequences], min_visibility
    )
    evaluation.save(out / METRICS_FILE)
    return evaluation


def run_track(
    source: str | os.PathLike | int,
    weights: str | os.PathLike | Detector,
    out: str | os.PathLike,
    progress: bool = True,
    evaluate: bool = False,
    min_visibility: float = MIN_VISIBILITY,
    **kwargs: Any,
) -> TrackReport:
    """``track`` to the end of ``source`` with files written into ``out`` (what ``yolov3 track`` runs);
    Ctrl-C stops it cleanly, with the files finalised and ``report.interrupted`` set. ``evaluate``:
    then score the run (``evaluate_run`` with ``min_visibility``; ``report.evaluation``); the source
    must be MOTChallenge sequences with ground truth, checked before anything runs. An interrupted
    run is not scored."""
    if not 0 <= min_visibility <= 1:
        raise UserError(f"min_visibility (--eval-min-visibility) = {min_visibility}: expected 0..1")
    sequences = scored_sequences(source) if evaluate else None
    report = TrackReport()
    found = None if is_stream(source) else find_sequences(source)
    total = sum(len(s.images) for s in found) if found else None
    bar = Progress(total, "track", "frame", progress)
    frames = track(source, weights, out, report=report, log=bar.write if progress else None, **kwargs)
    try:
        for _ in frames:
            bar.update(1)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        frames.close()  # finalises the files when the loop was left early
        bar.close()
    if sequences and not report.interrupted:
        report.evaluation = evaluate_run(source, report.out or out, min_visibility)
    return report


__all__ = [
    "METRICS_FILE", "TrackReport", "TrackWriters", "evaluate_run", "open_sequences", "open_track_source",
    "run_track", "scored_sequences", "track", "track_frames",
]  # fmt: skip
