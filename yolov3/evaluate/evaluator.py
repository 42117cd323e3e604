"""Run a model over labelled samples and score it: VOC mAP, COCO AP (pycocotools), curves, matrix.

``evaluate(model, samples, names, ...)`` is what ``yolov3 val`` and the trainer's validation call;
``evaluate_detections`` scores ``Detections`` already made (benchmarks, tests, exported models). Both
return an ``Evaluation``; its summary (a plain dict, JSON-ready)::

    map50          VOC all-point mAP at IoU 0.5 (difficult boxes ignored) - the seed's metric
    map50_95       the same AP averaged over IoU 0.50, 0.55, ..., 0.95
    precision, recall, f1, best_conf   class means at the confidence that maximises mean F1
    coco           pycocotools' AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl
                   (None with coco=False)
    per_class      {name: {ap50, ap50_95, instances, detections}} (ap NaN -> None without boxes)
    confusion_matrix  (C + 1) x (C + 1) counts at matrix_conf, IoU 0.5 (last = background)
    images, instances, detections, speed_ms {read, preprocess, inference, nms} per image

Note: COCO's AP50 is not ``map50``: COCO interpolates at 101 recall points, lets a detection fall
back to its next-best box, and treats difficult / crowd boxes as regions to ignore.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolov3.config import InferConfig
from yolov3.console import Progress
from yolov3.data.types import Sample
from yolov3.errors import UserError
from yolov3.evaluate.coco import (
    coco_evaluate,
    coco_ground_truth,
    coco_ground_truth_file,
    coco_image_ids,
    coco_results,
)
from yolov3.evaluate.curves import ConfidenceCurves, confidence_curves, confusion_matrix
from yolov3.evaluate.voc import ClassCurve, MatchTable, class_curves, match_all
from yolov3.infer.detector import Detector
from yolov3.infer.loop import detect_batches
from yolov3.infer.results import Detections

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))  # 0.50 .. 0.95


@dataclass
class Evaluation:
    """Everything ``yolov3 val`` reports: the summary dict and what the plots are drawn from."""

    summary: dict[str, Any]
    curves: list[ClassCurve]
    conf_curves: ConfidenceCurves
    matrix: np.ndarray
    names: list[str]
    analysis: Any = None  # the TIDE ErrorAnalysis of the same detections (``val(analyze=True)``)


def ground_truth_of(samples: Sequence[Sample]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(boxes, classes, ignore)`` per sample; crowd boxes are ignored like difficult ones."""
    out = []
    for s in samples:
        n = len(s.classes)
        ignore = np.zeros(n, bool)
        for flags in (s.difficult, s.iscrowd):
            if len(flags) == n:
                ignore |= np.asarray(flags, bool)
        out.append((np.asarray(s.boxes, np.float64).reshape(-1, 4), np.asarray(s.classes, np.int64), ignore))
    return out


def check_labelled(samples: Sequence[Sample], where: str = "the validation set") -> None:
    """``val`` needs labels: an empty set, or one without a single box, is an error saying so."""
    if not samples:
        raise UserError(f"{where} has no images to evaluate on")
    if not any(len(s.classes) for s in samples):
        raise UserError(
            f"{where} has {len(samples)} image(s) but no labels (no boxes at all): mAP needs ground truth. "
            "Check the label paths of the data config (e.g. images/ -> labels/), or use `yolov3 detect`."
        )


def _none_if_nan(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)


def evaluate_detections(
    detections: Sequence[Detections],
    samples: Sequence[Sample],
    names: Sequence[str],
    coco: bool = True,
    coco_gt: str | Path | None = None,
    category_ids: Sequence[int] | None = None,
    matrix_conf: float = 0.3,
    coco_backend: str = "auto",
) -> Evaluation:
    """Score ``detections[i]`` (original-image pixels) against ``samples[i]``; see the module docstring.

    ``coco_gt``: the official COCO annotation file; detections are then keyed by the samples' own
    ``image_id`` and ``category_ids`` (as the COCO reader keeps them) and the numbers are exactly
    pycocotools' on that file. Without it, ground truth is built from the samples. ``coco_backend``:
    auto | faster | pycocotools (``yolov3.evaluate.coco``).
    """
    if len(detections) != len(samples):
        raise ValueError(f"{len(detections)} detection sets for {len(samples)} samples")
    nc = len(names)
    gts = ground_truth_of(samples)
    table = match_all(detections, gts, nc, IOU_THRESHOLDS)
    curves = class_curves(table)
    conf = confidence_curves(curves)
    best_conf, p, r, f1 = conf.best()
    has_gt = [c for c in curves if c.npos]
    summary: dict[str, Any] = {
        "map50": _none_if_nan(np.mean([c.ap[0] for c in has_gt]) if has_gt else float("nan")),
        "map50_95": _none_if_nan(np.mean([np.mean(c.ap) for c in has_gt]) if has_gt else float("nan")),
        "precision": _none_if_nan(p),
        "recall": _none_if_nan(r),
        "f1": _none_if_nan(f1),
        "best_conf": _none_if_nan(best_conf),
        "coco": None,
        "images": len(samples),
        "instances": int(table.npos.sum()),
        "detections": int(len(table.scores)),
    }
    summary["per_class"] = _per_class(names, curves, table)
    if coco:
        summary["coco"] = _coco_stats(detections, samples, names, coco_gt, category_ids, coco_backend)
    matrix = confusion_matrix(detections, gts, nc, matrix_conf, 0.5)
    summary["confusion_matrix"] = matrix.tolist()
    summary["matrix_conf"] = matrix_conf
    return Evaluation(summary, curves, conf, matrix, list(names))


def _per_class(names: Sequence[str], curves: list[ClassCurve], table: MatchTable) -> dict[str, dict]:
    """Each class's AP@0.5, AP@.5:.95 (None without instances), instances and detections."""
    nc = len(names)
    counts = np.bincount(table.classes, minlength=nc)[:nc] if len(table.classes) else np.zeros(nc, int)
    return {
        name: {
            "ap50": _none_if_nan(c.ap[0]),
            "ap50_95": _none_if_nan(np.mean(c.ap)) if c.npos else None,
            "instances": c.npos,
            "detections": int(n),
        }  # fmt: skip
        for name, c, n in zip(names, curves, counts)
    }


def _coco_stats(detections, samples, names, coco_gt, category_ids, backend) -> dict[str, float]:  # noqa: ANN001
    if coco_gt is not None:
        gt = coco_ground_truth_file(coco_gt, backend)
        ids = [s.image_id for s in samples]
        if any(i not in gt.imgs for i in ids):
            bad = [i for i in ids if i not in gt.imgs][:3]
            raise UserError(f"{coco_gt}: image ids {bad} of the data set are not in this annotation file")
        cats = list(category_ids) if category_ids is not None else sorted(gt.getCatIds())
        if len(cats) != len(names):
            raise UserError(f"{coco_gt}: {len(cats)} categories for {len(names)} class names")
    else:
        gt, ids = coco_ground_truth(samples, names, category_ids, backend), coco_image_ids(samples)
        cats = list(category_ids) if category_ids is not None else list(range(1, len(names) + 1))
    stats = coco_evaluate(gt, coco_results(detections, ids, cats), ids)
    return {k: round(v, 6) for k, v in stats.items()}


def _as_detector(
    model: Any, names: Sequence[str], settings: InferConfig, device: Any, batch_size: int
) -> Detector:
    if isinstance(model, Detector):
        return model
    if isinstance(model, nn.Module):
        return Detector.from_model(model, names, settings, device, batch_size)
    if callable(model) and hasattr(model, "anchors"):  # a backend
        dev = torch.device(device) if device is not None else getattr(model, "device", torch.device("cpu"))
        return Detector(model, names, model.anchors, model.strides, settings, dev, batch_size)
    raise TypeError(f"cannot evaluate a {type(model).__name__}: expected a model, backend or Detector")


def run_detector(
    detector: Detector, samples: Sequence[Sample], workers: int = 2, progress: bool = False
) -> tuple[list[Detections], list[int], dict[str, float]]:
    """Detections for every sample: the one image loop (``yolov3.infer.loop.detect_batches``) in the
    detector's batches, images read on ``workers`` threads a bounded number of batches ahead.

    Returns ``(detections, indices of the samples evaluated, mean ms per image by stage)``; images
    that cannot be read are reported on stderr and left out."""
    dets: list[Detections] = []
    kept: list[int] = []
    totals = {"read": 0.0, "preprocess": 0.0, "inference": 0.0, "nms": 0.0}
    bar = Progress(len(samples), "val", "img", progress)
    for o in detect_batches(detector, range(len(samples)), detector.batch_size,
                            picture=lambda i: samples[i].image, workers=max(1, workers)):  # fmt: skip
        if o.error is not None:
            bar.write(f"skipped ({getattr(o.error, 'label', 'unreadable')}): {o.error}")
        else:
            o.detections.image = None  # scoring needs the boxes only: keep memory flat on large sets
            dets.append(o.detections)
            kept.append(o.item)
            totals["read"] += o.read_ms
            for k in ("preprocess", "inference", "nms"):
                totals[k] += o.detections.speed[k]
        bar.update(1)
    bar.close()
    n = max(1, len(kept))
    return dets, kept, {k: round(v / n, 3) for k, v in totals.items()}


def evaluate(
    model: nn.Module | Callable | Detector,
    samples: Sequence[Sample],
    names: Sequence[str],
    settings: InferConfig | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 8,
    coco: bool = True,
    coco_gt: str | Path | None = None,
    category_ids: Sequence[int] | None = None,
    workers: int = 2,
    progress: bool = False,
    coco_backend: str = "auto",
) -> Evaluation:
    """Detect on every sample and score (module docstring). ``model``: a ``nn.Module`` with
    ``.anchors`` / ``.strides`` (left in its train / eval mode afterwards), a backend, or a ``Detector``
    (whose own settings then apply). ``settings``: default ``InferConfig.for_map()`` (the seed's, with
    the low score threshold mAP needs)."""
    check_labelled(samples)
    det = _as_detector(model, names, settings or InferConfig.for_map(), device, batch_size)
    dets, kept, speed = run_detector(det, samples, workers, progress)
    if not kept:
        raise UserError("no image of the validation set could be read")
    kept_samples = [samples[i] for i in kept]
    result = evaluate_detections(
        dets, kept_samples, names, coco, coco_gt, category_ids, coco_backend=coco_backend
    )
    result.summary["speed_ms"] = speed
    result.summary["img_size"] = det.img_size
    return result
