"""Scoring 5,000 images' detections (COCO-like: 80 classes, ~7 boxes and 100 detections per image).

``evaluate_detections`` (VOC matching at 10 IoU thresholds, curves, confusion matrix, and COCO AP
through faster-coco-eval) against pycocotools alone (COCOeval evaluate + accumulate + summarize on
the same detections, ground truth handed over as in-memory dicts), in the same run, on 1,000 images
(pycocotools needs minutes for 5,000). Then 5,000 images: ours in full, and the VOC part alone
(``coco=False``). Prints JSON lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import time

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolov3.data.types import Sample
from yolov3.evaluate.evaluator import evaluate_detections
from yolov3.infer.results import Detections

N_IMAGES, C, DETS = 5000, 80, 100
SMALL = 1000  # images for the same-run comparison with pycocotools (slow)


def make_data(rng: np.random.Generator) -> tuple[list[Sample], list[tuple]]:
    samples, dets = [], []
    for i in range(N_IMAGES):
        g = int(rng.integers(1, 14))
        xy = rng.uniform(0, 500, (g, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 140, (g, 2))], 1).astype(np.float32)
        classes = rng.integers(0, C, g)
        samples.append(
            Sample(f"{i}.jpg", boxes, classes, np.zeros(g, bool), np.zeros(g, bool), 640, 640, i + 1)
        )
        src = rng.integers(0, g, DETS // 2)
        near = boxes[src] + rng.normal(0, 6, (len(src), 4))
        nxy = rng.uniform(0, 500, (DETS - len(src), 2))
        noise = np.concatenate([nxy, nxy + rng.uniform(8, 140, (len(nxy), 2))], 1)
        cls = np.concatenate(
            [
                np.where(rng.random(len(src)) < 0.8, classes[src], rng.integers(0, C, len(src))),
                rng.integers(0, C, len(nxy)),
            ]
        )
        dets.append((np.concatenate([near, noise]), rng.random(DETS), cls))
    return samples, dets


def as_detections(dets: list[tuple], samples: list[Sample], names: list[str]) -> list[Detections]:
    """``make_data``'s ``(boxes, scores, classes)`` tuples as the ``Detections`` the evaluator takes."""
    return [
        Detections(b.astype(np.float32), s.astype(np.float32), c.astype(np.int64), names, x.image, x.width,
                   x.height, None, {})  # fmt: skip
        for (b, s, c), x in zip(dets, samples)
    ]


def pycocotools_only(samples: list[Sample], dets: list[tuple]) -> float:
    images = [{"id": s.image_id, "width": s.width, "height": s.height} for s in samples]
    anns = []
    for s in samples:
        for b, c in zip(s.boxes.tolist(), s.classes.tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": s.image_id,
                    "category_id": c + 1,
                    "bbox": [b[0], b[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    results = [
        {
            "image_id": s.image_id,
            "category_id": int(c) + 1,
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "score": float(sc),
        }
        for s, (bx, scs, cs) in zip(samples, dets)
        for b, sc, c in zip(bx.tolist(), scs, cs)
    ]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c + 1} for c in range(C)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - start


def emit(what: str, ours: float, anchor: float, target: str, note: str) -> None:
    print(
        json.dumps(
            {
                "what": what,
                "ours": round(ours, 2),
                "anchor": round(anchor, 2),
                "unit": "s",
                "ratio": round(ours / anchor, 3),
                "target": target,
                "note": note,
            }
        )
    )


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    samples, raw = make_data(np.random.default_rng(0))
    names = [f"c{i}" for i in range(C)]
    dets = as_detections(raw, samples, names)
    small_s, small_d = samples[:SMALL], dets[:SMALL]
    anchor_small = pycocotools_only(small_s, raw[:SMALL])
    ours_small = timed(lambda: evaluate_detections(small_d, small_s, names))
    emit(
        f"evaluate {SMALL:,} images: VOC + curves + matrix + COCO AP (faster-coco-eval)",
        ours_small,
        anchor_small,
        "<= 0.25",
        f"{SMALL * DETS:,} detections, {C} classes; anchor: pycocotools alone",
    )
    voc = timed(lambda: evaluate_detections(dets, samples, names, coco=False))
    full = timed(lambda: evaluate_detections(dets, samples, names))
    extrapolated = anchor_small * N_IMAGES / SMALL
    note = (
        f"{N_IMAGES * DETS:,} detections; anchor: pycocotools alone on {SMALL:,} images"
        f" x {N_IMAGES // SMALL} "
        "(it is linear in images; run in full it takes minutes here)"
    )
    emit(
        f"evaluate {N_IMAGES:,} images: VOC (10 IoU thresholds) + curves + matrix",
        voc,
        extrapolated,
        "seconds, not minutes",
        note,
    )
    emit(
        f"evaluate {N_IMAGES:,} images: all of the above + COCO AP (faster-coco-eval)",
        full,
        extrapolated,
        "seconds, not minutes",
        note,
    )


if __name__ == "__main__":
    main()
