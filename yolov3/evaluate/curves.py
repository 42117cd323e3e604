"""Precision / recall / F1 against the confidence threshold, and the confusion matrix.

Curves: for a threshold ``x`` on a grid over [0, 1], a class's precision and recall are those of its
detections scoring >= ``x`` (read off its VOC precision-recall curve, IoU 0.5). The "best" threshold
maximises the F1 averaged over classes that have ground truth.

Confusion matrix ``(C + 1, C + 1)``, rows = predicted class, columns = true class, the last row /
column = background: detections scoring >= ``conf_threshold`` are matched to ground-truth boxes of
**any** class one-to-one, greedily by decreasing IoU > ``iou_threshold``. A matched pair counts at
(predicted, true); an unmatched detection at (predicted, background); a missed box at (background,
true). Difficult boxes, and detections whose best match is one, are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from yolov3.evaluate.voc import ClassCurve, box_iou_np
from yolov3.infer.results import Detections


@dataclass
class ConfidenceCurves:
    """``(C, K)`` precision, recall and F1 at each threshold of ``conf`` (``(K,)``); rows of classes
    without ground truth are NaN."""

    conf: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray

    def best(self) -> tuple[float, float, float, float]:
        """``(conf, precision, recall, f1)`` where the class-mean F1 peaks (NaN when no class counts)."""
        if np.all(np.isnan(self.f1)):
            return (float("nan"),) * 4
        mean = lambda a: np.nanmean(a, axis=0)  # noqa: E731
        i = int(np.argmax(mean(self.f1)))
        return float(self.conf[i]), float(mean(self.precision)[i]), float(mean(self.recall)[i]), float(
            mean(self.f1)[i])  # fmt: skip


def confidence_curves(curves: Sequence[ClassCurve], points: int = 1001) -> ConfidenceCurves:
    """Precision / recall / F1 of every class on ``points`` thresholds from 0 to 1."""
    conf = np.linspace(0.0, 1.0, points)
    shape = (len(curves), points)
    p, r = np.full(shape, np.nan), np.full(shape, np.nan)
    for c, cv in enumerate(curves):
        if not cv.npos:
            continue
        if not len(cv.scores):
            p[c], r[c] = 0.0, 0.0
            continue
        # points are in decreasing score order: the last point with score >= x holds the counts at x
        n = np.searchsorted(-cv.scores, -conf, side="right")  # detections scoring >= x
        r[c] = np.where(n > 0, cv.recall[np.maximum(n - 1, 0)], 0.0)
        p[c] = np.where(n > 0, cv.precision[np.maximum(n - 1, 0)], 1.0)
    f1 = 2 * p * r / np.maximum(p + r, 1e-16)
    return ConfidenceCurves(conf, p, r, f1)


def confusion_matrix(
    detections: Sequence[Detections],
    ground_truth: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """``(C + 1, C + 1)`` int64 counts (see the module docstring); inputs as ``voc.match_all``."""
    bg = num_classes
    m = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for d, (gb, gc, gd) in zip(detections, ground_truth):
        db, ds, dc = d.boxes, d.scores, d.class_ids
        keep = np.asarray(ds) >= conf_threshold
        db, dc = np.asarray(db)[keep], np.asarray(dc, np.int64)[keep]
        gc, gd = np.asarray(gc, np.int64), np.asarray(gd, bool)
        iou = box_iou_np(db, gb)
        if len(db) and len(gb):
            near_difficult = (iou.max(1) > iou_threshold) & gd[iou.argmax(1)]
            db, dc, iou = db[~near_difficult], dc[~near_difficult], iou[~near_difficult]
        iou, gc = iou[:, ~gd], gc[~gd]
        det_used, gt_used = np.zeros(len(dc), bool), np.zeros(len(gc), bool)
        pairs = np.argwhere(iou > iou_threshold)
        for i, j in pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")]:
            if not det_used[i] and not gt_used[j]:
                det_used[i] = gt_used[j] = True
                m[dc[i], gc[j]] += 1
        np.add.at(m, (dc[~det_used], bg), 1)
        np.add.at(m, (bg, gc[~gt_used]), 1)
    return m
