"""VOC-style average precision: greedy matching per image, all-point interpolated AP per class.

The rules of the VOC devkit's ``VOCevaluation`` / py-faster-rcnn's ``voc_eval`` (the seed's code base
scores with the latter):

* Detections of a class are taken in decreasing score order. Each is compared with **every** ground
  truth box of its class in its image and goes to the one of highest IoU. If that IoU is > the
  threshold (0.5): a ``difficult`` box makes the detection ignored (neither TP nor FP); a box not
  yet taken makes it a TP (and takes the box); a box already taken makes it a FP (no fall-back to
  the next-best box, unlike COCO). Otherwise it is a FP.
* Recall = TP / (non-difficult boxes of the class); AP = area under the precision envelope over all
  recall points (VOC2010+, ``voc_ap``); ``use_07_metric`` gives the 11-point VOC2007 AP.
* mAP = the mean over classes that have at least one non-difficult box (AP of the others is NaN).

Boxes are ``(x1, y1, x2, y2)`` continuous pixels and IoU has no ``+1``: the VOC reader maps VOC's
inclusive 1-based pixel indices to ``x1 = xmin - 1, x2 = xmax``, so this IoU equals the devkit's
``+1`` IoU on the original indices. COCO ``iscrowd`` boxes are treated as ``difficult`` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from yolov3.boxes import box_area
from yolov3.infer.results import Detections


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, 4) x (M, 4) -> (N, M)`` IoU of x1, y1, x2, y2 boxes, float64 (torchvision's ``box_iou``
    formula in NumPy: on the few boxes of one image torch's per-call cost would dominate)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    area_a, area_b = box_area(a), box_area(b)
    wh = np.clip(
        np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None
    )
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from a precision-recall curve (points in decreasing-score order).

    All-point (VOC2010+): ``sum (r_{i+1} - r_i) * max_{r >= r_{i+1}} p(r)`` with the curve closed at
    recall 0 and 1. ``use_07_metric``: the mean of the interpolated precision at recall 0, 0.1, ..., 1.
    """
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    if use_07_metric:
        points = [precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in np.linspace(0, 1, 11)]
        return float(np.mean(points))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope, non-increasing in recall
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass
class MatchTable:
    """Every detection of an evaluation, matched (VOC rules) at each IoU threshold.

    ``scores`` / ``classes`` / ``image``: ``(M,)``; ``tp`` and ``ignored``: ``(M, T)`` bool, one column
    per threshold in ``iou_thresholds``; ``npos``: ``(C,)`` non-difficult ground-truth boxes per class.
    """

    scores: np.ndarray
    classes: np.ndarray
    image: np.ndarray
    tp: np.ndarray
    ignored: np.ndarray
    npos: np.ndarray
    iou_thresholds: np.ndarray


def match_image(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    det_classes: np.ndarray,
    gt_boxes: np.ndarray,
    gt_classes: np.ndarray,
    gt_difficult: np.ndarray,
    iou_thresholds: Sequence[float] = (0.5,),
) -> tuple[np.ndarray, np.ndarray]:
    """One image's ``(tp, ignored)``, ``(D, T)`` bool, by the VOC rules of the module docstring.

    Vectorised: each detection's best same-class box is fixed by IoU alone, so the TP among the
    detections claiming a box is simply the first of them in decreasing-score order.
    """
    d, t = len(det_scores), len(iou_thresholds)
    tp, ignored = np.zeros((d, t), bool), np.zeros((d, t), bool)
    if not d or not len(gt_boxes):
        return tp, ignored
    iou = box_iou_np(det_boxes, gt_boxes)
    iou[det_classes[:, None] != gt_classes[None, :]] = -1.0  # only boxes of the detection's class
    best, ovmax = iou.argmax(1), iou.max(1)
    order = np.argsort(-det_scores, kind="stable")
    for k, thr in enumerate(iou_thresholds):
        hit = ovmax > thr
        hit_difficult = hit & gt_difficult[best]
        ignored[:, k] = hit_difficult
        claim = np.flatnonzero(hit[order] & ~hit_difficult[order])  # positions in score order
        if claim.size:
            _, first = np.unique(best[order[claim]], return_index=True)
            tp[order[claim[first]], k] = True
    return tp, ignored


def match_all(
    detections: Sequence[Detections],
    ground_truth: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
    iou_thresholds: Sequence[float] = (0.5,),
) -> MatchTable:
    """Match every image: ``detections[i]`` (original-image pixels) against ``ground_truth[i]`` =
    ``(boxes (G, 4), classes (G,), difficult (G,))`` of the same image."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} images of detections for {len(ground_truth)} of ground truth")
    thr = np.asarray(iou_thresholds, np.float64)
    parts: list[tuple] = []
    npos = np.zeros(num_classes, np.int64)
    for i, (d, (gb, gc, gd)) in enumerate(zip(detections, ground_truth)):
        db, ds, dc = d.boxes, d.scores, d.class_ids
        gc, gd = np.asarray(gc, np.int64), np.asarray(gd, bool)
        npos += np.bincount(gc[~gd], minlength=num_classes)[:num_classes]
        ds, dc = np.asarray(ds, np.float64), np.asarray(dc, np.int64)
        tp, ign = match_image(np.asarray(db), ds, dc, np.asarray(gb), gc, gd, thr)
        parts.append((ds, dc, np.full(len(ds), i, np.int64), tp, ign))
    if parts:
        cols = [np.concatenate([p[k] for p in parts]) for k in range(5)]
    else:
        cols = [np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)] + [
            np.zeros((0, len(thr)), bool)
        ] * 2
    return MatchTable(*cols, npos=npos, iou_thresholds=thr)


@dataclass
class ClassCurve:
    """One class's precision / recall at each detection, in decreasing-score order, and its APs."""

    scores: np.ndarray  # (K,) the confidence at each point
    precision: np.ndarray  # (K,) at the first IoU threshold
    recall: np.ndarray  # (K,)
    ap: np.ndarray  # (T,) one per IoU threshold; NaN when the class has no non-difficult box
    npos: int


def class_curves(table: MatchTable, use_07_metric: bool = False) -> list[ClassCurve]:
    """Precision-recall curve and AP of every class (VOC all-point AP by default)."""
    curves = []
    order_all = np.argsort(-table.scores, kind="stable")
    for c, npos in enumerate(table.npos):
        rows = order_all[table.classes[order_all] == c]
        aps = np.full(len(table.iou_thresholds), np.nan)
        prec0 = rec0 = scores0 = np.zeros(0)
        for k in range(len(table.iou_thresholds)):
            keep = rows[~table.ignored[rows, k]]
            tp = np.cumsum(table.tp[keep, k])
            fp = np.cumsum(~table.tp[keep, k])
            precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            recall = tp / npos if npos else np.zeros(len(tp))
            if npos:
                aps[k] = voc_ap(recall, precision, use_07_metric)
            if k == 0:
                prec0, rec0, scores0 = precision, recall, table.scores[keep]
        curves.append(ClassCurve(scores0, prec0, rec0, aps, int(npos)))
    return curves


def mean_ap(curves: Sequence[ClassCurve], k: int = 0) -> float:
    """Mean AP over the classes that have ground truth (NaN when none has)."""
    aps = [c.ap[k] for c in curves if c.npos]
    return float(np.mean(aps)) if aps else float("nan")
