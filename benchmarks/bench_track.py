"""Tracking: the tracker's cost per frame at 50 boxes on one core (target <= 2 ms); the tracker alone
on noisy ground truth of the synthetic sequences (10 % of boxes dropped, corners moved by up to 5 %
of the box; MOTA / IDF1 by ``motmetrics``, target >= 0.85); the lag of a live source read with the
newest-frame policy by a model slower than the camera (a simulated 30 fps camera, a 10 fps model,
60 s: lag under two model periods and not growing); and, when the demo's model is there
(``runs/demo/train/weights/best.pt``, from ``make demo``; or ``--weights``), the whole pipeline on
synthetic video: ``yolov3 track ROOT --eval`` (each sequence on its own, HOTA / MOTA / IDF1 by
``yolov3.evaluate.mot`` against its ground truth).

Usage: ``python benchmarks/bench_track.py [--smoke] [--weights W]``; ``--smoke`` shrinks every size
to check the script in seconds. Prints JSON lines (``benchmarks/run_all.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_bytetrack import score  # noqa: E402  (the tracker-alone scoring of the tests)
from test_stream import SimCamera  # noqa: E402

from yolov3.apps.detect.runner import SaveOptions  # noqa: E402
from yolov3.apps.track.bytetrack import ByteTracker  # noqa: E402
from yolov3.apps.track.runner import run_track  # noqa: E402
from yolov3.data.synth_video import VideoSynthConfig, generate_video, read_mot  # noqa: E402
from yolov3.evaluate.mot import MOTScores  # noqa: E402
from yolov3.infer.stream import LiveSource  # noqa: E402

DEMO_WEIGHTS = ROOT / "runs" / "demo" / "train" / "weights" / "best.pt"


def emit(what: str, ours: float | None, unit: str, target: str, note: str = "") -> None:
    ours = None if ours is None else round(float(ours), 4)
    print(
        json.dumps(
            {
                "what": what,
                "ours": ours,
                "anchor": None,
                "unit": unit,
                "ratio": None,
                "target": target,
                "note": note,
            }
        ),
        flush=True,
    )


def tracker_cost(frames: int, n: int = 50) -> float:
    """Median ms per ``update`` with ``n`` objects moving at constant velocity, detections jittered."""
    rng = np.random.default_rng(0)
    pos, vel = rng.uniform(0, 1800, (n, 2)), rng.uniform(-4, 4, (n, 2))
    size = rng.uniform(20, 120, (n, 2))
    tracker, times = ByteTracker(), []
    for _ in range(frames):
        pos = pos + vel
        boxes = np.c_[pos, pos + size] + rng.normal(0, 1.5, (n, 4))
        scores = rng.uniform(0.05, 1.0, n)
        t0 = time.perf_counter()
        tracker.update(boxes, scores, np.zeros(n, np.int64))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[10:]) * 1e3


def stream_lag(seconds: float, model_period: float = 0.1) -> tuple[float, float, int]:
    """(max lag s, growth s = median of the last third - median of the first third, frames) with a model
    of ``model_period`` s reading a 30 fps camera, newest frame only."""
    src = LiveSource("rtsp://camera/live", capture=lambda spec: SimCamera(30))
    lags, end = [], time.monotonic() + seconds
    for frame in src:
        time.sleep(model_period)
        lags.append(time.monotonic() - frame.stamp)
        if time.monotonic() > end:
            break
    src.close()
    steady, third = lags[3:], max(1, len(lags[3:]) // 3)
    return max(steady), float(np.median(steady[-third:]) - np.median(steady[:third])), len(lags)


def end_to_end(weights: Path, root: Path) -> MOTScores:
    """``yolov3 track ROOT --eval`` with ``weights``: every sequence of the synthetic ``root`` tracked on
    its own and scored against its gt by ``yolov3.evaluate.mot`` (rows under visibility 0.3 ignored);
    the scores of all sequences combined."""
    with tempfile.TemporaryDirectory() as out:
        report = run_track(
            root, weights, out, progress=False, evaluate=True, device="cpu", save=SaveOptions(False)
        )
    return report.evaluation.combined


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script")
    p.add_argument("--weights", type=Path, default=DEMO_WEIGHTS, help="model for the end-to-end rows")
    args = p.parse_args()
    torch.set_num_threads(1)
    small = args.smoke
    ms = tracker_cost(60 if small else 600)
    emit(
        "ByteTrack update per frame, 50 boxes, 1 core", ms, "ms", "<= 2", "median; Kalman + 2-stage matching"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = VideoSynthConfig(sequences=2 if small else 4, frames=40 if small else 150, size=416, seed=7)
        seqs = generate_video(tmp, cfg)
        res = score([read_mot(s / "gt" / "gt.txt") for s in seqs], drop=0.10, jitter=0.05)
        note = f"{cfg.sequences} synthetic sequences x {cfg.frames} frames, 10 % dropped, +-5 % jitter"
        emit("tracker alone on noisy ground truth: MOTA", res["mota"], "", ">= 0.85", note)
        emit("tracker alone on noisy ground truth: IDF1", res["idf1"], "", ">= 0.85", note)
        if args.weights.exists():
            res = end_to_end(args.weights, Path(tmp))
            note = f"{args.weights.name} on {cfg.sequences} synthetic sequences; {res.idsw} id switches"
            emit("end to end (demo model + ByteTrack): HOTA", res.hota, "", "", note)
            emit("end to end (demo model + ByteTrack): MOTA", res.mota, "", "", note)
            emit("end to end (demo model + ByteTrack): IDF1", res.idf1, "", "", note)
        else:
            emit(
                "end to end (demo model + ByteTrack)",
                None,
                "",
                "",
                f"no model at {args.weights}: run make demo",
            )
    seconds = 3.0 if small else 60.0
    worst, growth, n = stream_lag(seconds)
    note = f"simulated 30 fps camera, 10 fps model (100 ms), {seconds:g} s, {n} results, newest frame only"
    emit("live stream: worst lag", worst * 1e3, "ms", "< 200", note + "; target: two model periods")
    emit("live stream: lag growth, median of last third - first third", growth * 1e3, "ms", "< 25", note)


if __name__ == "__main__":
    main()
