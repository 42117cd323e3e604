"""``yolov3 analyze``'s cost: TIDE error analysis of 5,000 images' results (``analyze_errors``:
classification of every error, the oracle mAP of each kind, the splits by size, crowding and class,
best-F1 thresholds) against ``val``'s own scoring of the same results (``evaluate_detections``: VOC
matching at 10 IoU thresholds, curves, confusion matrix and COCO AP), in the same process, the two
alternated over ``--rounds`` rounds (the best of each side). Target (issue 24): analysis <= 2x val's
scoring. Also reported, no target: ``--iou-range`` (TIDE's mAP@.5:.95, ten matchings).

The data is ``bench_eval.py``'s: 80 classes, 1-13 boxes and 100 detections per image (half near a
box, 80 % of those of its class; half anywhere). Prints JSON lines.

    .venv/bin/python benchmarks/bench_analyze.py [--images 5000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_eval  # noqa: E402

from yolov3.evaluate.error_report import analyze_errors  # noqa: E402
from yolov3.evaluate.evaluator import evaluate_detections, ground_truth_of  # noqa: E402


def best_of(fn, rounds: int, other) -> tuple[float, float]:
    """Best wall time of ``fn`` and of ``other`` over ``rounds`` rounds, alternating them."""
    ours, anchor = [], []
    for _ in range(rounds):
        for side, out in ((other, anchor), (fn, ours)):
            t = time.perf_counter()
            side()
            out.append(time.perf_counter() - t)
    return min(ours), min(anchor)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args(argv)
    bench_eval.N_IMAGES = a.images
    samples, dets = bench_eval.make_data(np.random.default_rng(0))
    names = [f"c{i}" for i in range(bench_eval.C)]
    detections, truth = bench_eval.as_detections(dets, samples, names), ground_truth_of(samples)
    val_scoring = lambda: evaluate_detections(detections, samples, names)  # noqa: E731
    ours, anchor = best_of(lambda: analyze_errors(detections, truth, names), a.rounds, val_scoring)
    where = f"{a.images:,} images, {a.images * bench_eval.DETS:,} detections, {bench_eval.C} classes"
    row = {"what": f"analyze {a.images:,} images' results (TIDE errors, dAPs, splits) vs val's scoring",
           "ours": round(ours, 2), "anchor": round(anchor, 2), "unit": "s", "ratio": round(ours / anchor, 3),
           "target": "<= 2", "note": f"{where}; best of {a.rounds}, alternated; anchor: evaluate_detections "
           "(VOC at 10 IoUs, curves, matrix, COCO AP)"}  # fmt: skip
    print(json.dumps(row), flush=True)
    t = time.perf_counter()
    analyze_errors(detections, truth, names, iou_range=True)
    full = time.perf_counter() - t
    print(json.dumps({"what": "analyze --iou-range (TIDE mAP@.5:.95 too) vs val's scoring",
                      "ours": round(full, 2), "anchor": round(anchor, 2), "unit": "s",
                      "ratio": round(full / anchor, 3), "target": "",
                      "note": f"{where}; one run"}))  # fmt: skip


if __name__ == "__main__":
    main()
