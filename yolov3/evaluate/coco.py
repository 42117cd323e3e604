"""COCO metrics through pycocotools or faster-coco-eval: AP@[.5:.95], AP50, AP75, APs/m/l, the ARs.

The numbers are the COCO tool's own (``COCOeval``, ``iouType="bbox"``): this module only builds its
inputs. ``backend``: ``faster`` is faster-coco-eval (a C++ re-implementation of ``COCOeval`` giving
pycocotools' numbers, far faster on large sets: ``docs/benchmarks.md``), ``pycocotools`` the reference;
``auto`` takes faster-coco-eval when it is installed. The tests check both against pycocotools.

Ground truth comes either from the official annotation file (``coco_ground_truth_file``:
exact official numbers, with COCO's segment ``area`` deciding small / medium / large) or from
``Sample`` objects (``coco_ground_truth``: ``area`` = box area; ``difficult`` boxes become
``iscrowd`` regions, which COCO ignores). Detections become COCO results entries
``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` (absolute pixels, top-left corner).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

try:
    from faster_coco_eval import COCO as FasterCOCO
    from faster_coco_eval import COCOeval_faster
except ImportError:  # optional: pycocotools gives the same numbers, slower
    FasterCOCO = COCOeval_faster = None

from yolov3.boxes import box_convert
from yolov3.data.types import Sample
from yolov3.errors import UserError
from yolov3.infer.results import Detections

# COCOeval.stats, in order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _quiet():
    """pycocotools prints progress to stdout; keep the caller's output clean."""
    return contextlib.redirect_stdout(io.StringIO())


def coco_image_ids(samples: Sequence[Sample]) -> list[int]:
    """One integer id per sample: its own COCO id when every sample has a unique int one, else 1..N."""
    own = [s.image_id for s in samples]
    ints = all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in own)
    if ints and len(set(own)) == len(own):
        return [int(i) for i in own]
    return list(range(1, len(samples) + 1))


def _coco_class(backend: str) -> type:
    if backend not in ("auto", "faster", "pycocotools"):
        raise UserError(f"COCO backend {backend!r}: expected auto, faster or pycocotools")
    if backend == "faster" and FasterCOCO is None:
        raise UserError("COCO backend 'faster' needs faster-coco-eval (pip install faster-coco-eval)")
    return FasterCOCO if backend != "pycocotools" and FasterCOCO is not None else COCO


def coco_ground_truth(
    samples: Sequence[Sample],
    names: Sequence[str],
    category_ids: Sequence[int] | None = None,
    backend: str = "auto",
) -> COCO:
    """An in-memory pycocotools ``COCO`` holding the samples' boxes (ids from ``coco_image_ids``)."""
    cats = list(category_ids) if category_ids is not None else list(range(1, len(names) + 1))
    images, anns = [], []
    for sample, image_id in zip(samples, coco_image_ids(samples)):
        images.append({"id": image_id, "width": int(sample.width), "height": int(sample.height)})
        n = len(sample.classes)
        crowd = np.zeros(n, bool)
        if len(sample.iscrowd) == n:
            crowd |= np.asarray(sample.iscrowd, bool)
        if len(sample.difficult) == n:
            crowd |= np.asarray(sample.difficult, bool)
        xywh = box_convert(np.asarray(sample.boxes, np.float64).reshape(-1, 4), "xyxy", "xywh").tolist()
        for (x, y, w, h), cls, is_crowd in zip(xywh, sample.classes, crowd):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cats[int(cls)],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": int(is_crowd),
                }
            )
    gt = _coco_class(backend)()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": str(n)} for c, n in zip(cats, names)],
    }
    with _quiet():
        gt.createIndex()
    return gt


def coco_ground_truth_file(path: str | Path, backend: str = "auto") -> COCO:
    """The official annotation file as the COCO tool reads it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: COCO annotation file not found")
    with _quiet():
        return _coco_class(backend)(str(path))


def coco_results(
    detections: Sequence[Detections],
    image_ids: Sequence[int],
    category_ids: Sequence[int],
) -> list[dict]:
    """COCO results entries of ``detections[i]`` (NumPy, original-image pixels) on ``image_ids[i]``."""
    if not len(detections):
        return []
    counts = [len(d) for d in detections]
    boxes = np.concatenate([np.asarray(d.boxes, np.float64).reshape(-1, 4) for d in detections])
    xywh = box_convert(boxes, "xyxy", "xywh").tolist()
    scores = np.concatenate([np.asarray(d.scores, np.float64).reshape(-1) for d in detections]).tolist()
    classes = np.concatenate([np.asarray(d.class_ids, np.int64).reshape(-1) for d in detections])
    cats = np.asarray(category_ids, np.int64)[classes].tolist() if len(classes) else []
    ids = np.repeat(np.asarray(image_ids, np.int64), counts).tolist()
    return [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, c, b, s in zip(ids, cats, xywh, scores)
    ]


def coco_evaluate(gt: COCO, results: list[dict], image_ids: Sequence[int] | None = None) -> dict[str, float]:
    """The COCO tool's twelve bbox statistics by name (``STAT_NAMES``), on ``image_ids`` (default: all).
    The tool adds keys to the ``results`` entries (``area``, ``id``...).

    No detections at all gives 0 for every statistic (-1 where COCO itself reports "no ground truth").
    """
    known = set(gt.getImgIds())
    stray = {r["image_id"] for r in results} - known
    if stray:
        raise UserError(f"detections name image ids absent from the ground truth: {sorted(stray)[:5]}")
    if not results:
        ids = list(image_ids) if image_ids is not None else gt.getImgIds()
        has_gt = bool(gt.getAnnIds(imgIds=ids, iscrowd=False))
        return {k: 0.0 if has_gt else -1.0 for k in STAT_NAMES}
    with _quiet():
        dt = gt.loadRes(results)
        evaluator = COCOeval_faster if FasterCOCO is not None and isinstance(gt, FasterCOCO) else COCOeval
        ev = evaluator(gt, dt, iouType="bbox")
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(STAT_NAMES, ev.stats)}


# Darknet's 80 COCO classes -> the official COCO category ids (1..90, with gaps).
COCO80_TO_91 = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
    33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
    60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)  # fmt: skip
_COCO_NAMES = Path(__file__).resolve().parents[1] / "cfg" / "coco.names"


def default_category_ids(names: Sequence[str]) -> list[int]:
    """COCO ids for results files: the official ids when ``names`` are Darknet's 80 COCO names (so the
    file can be scored against instances_val2017.json), else ``1..C``."""
    try:
        coco = [n.strip() for n in _COCO_NAMES.read_text().splitlines() if n.strip()]
    except OSError:
        coco = []
    if list(names) == coco and len(coco) == len(COCO80_TO_91):
        return list(COCO80_TO_91)
    return list(range(1, len(names) + 1))
