"""The TIDE analysis of an evaluation as one JSON-ready dict: error counts and the mAP each kind costs
(``yolov3.evaluate.errors``), the counts split by object size, by class and by crowdedness, and each
class's precision, recall and F1 at its F1-maximising score threshold.

``analyze_errors(detections, ground_truth, names)`` returns an ``ErrorAnalysis``; its ``summary``::

    map            TIDE's mAP at pos_threshold (COCO 101-point AP x 100, classes with a box or a detection)
    map50_95       with ``iou_range``: the same averaged over IoU 0.50, 0.55, ..., 0.95
    counts         {tp, cls, loc, both, dupe, bkg, miss}
    dap            {cls, loc, both, dupe, bkg, miss, false_pos, false_neg}: mAP points each fix gains
    by_size        {small, medium, large: counts}  COCO sizes by area (<= 32², <= 96², above), TIDE's
                   rule: a box's own area for tp / cls / loc / miss, the detection's for the rest
    by_crowd       {"0", "1", "2-5", "6-10", "11+": counts}  by ground-truth boxes in the image
    per_class      {name: counts + precision, recall, f1, conf}  (false positives under the detection's
                   class, misses under the box's)

``format_error_report(summary)`` is the short table ``yolov3 analyze`` prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yolov3.evaluate.errors import KINDS, MISS, TP, ErrorTable, classify, delta_ap, fixed_map, map_range
from yolov3.infer.results import Detections

SIZES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, np.inf)}  # (lo, hi]
CROWD = {"0": (0, 0), "1": (1, 1), "2-5": (2, 5), "6-10": (6, 10), "11+": (11, 1 << 62)}  # [lo, hi]
COUNT_KINDS = {"tp": TP, **KINDS}


@dataclass
class ErrorAnalysis:
    """``summary`` (module docstring) and the ``table`` it was counted from (for drawing, HTML)."""

    summary: dict[str, Any]
    table: ErrorTable
    names: list[str]
    images: list[str] = field(default_factory=list)  # the file of each image analysed (for the HTML)


def _counts(kind: np.ndarray, gt_kind: np.ndarray, det_sel: np.ndarray, gt_sel: np.ndarray) -> dict[str, int]:
    """``{tp, cls, ..., miss}`` over the selected detections (tp, false positives) and boxes (miss)."""
    out = {name: int(np.sum(det_sel & (kind == k))) for name, k in COUNT_KINDS.items() if k != MISS}
    out["miss"] = int(np.sum(gt_sel & (gt_kind == MISS)))
    return out


def _error_areas(t: ErrorTable) -> np.ndarray:
    """``(M,)`` the area each detection is sized by: its box's for tp / cls / loc, its own otherwise."""
    has_box = t.det_target >= 0
    area = t.det_area.copy()
    area[has_box] = t.gt_area[t.det_target[has_box]]
    return area


def _by_size(t: ErrorTable) -> dict[str, dict[str, int]]:
    area, gt_area = _error_areas(t), t.gt_area
    return {name: _counts(t.det_kind, t.gt_kind, (lo < area) & (area <= hi), (lo < gt_area) & (gt_area <= hi))
            for name, (lo, hi) in SIZES.items()}  # fmt: skip


def _by_crowd(t: ErrorTable, images: int) -> dict[str, dict[str, int]]:
    per_image = np.bincount(t.gt_image.astype(np.int64), minlength=images)
    det_n, gt_n = per_image[t.det_image.astype(np.int64)], per_image[t.gt_image.astype(np.int64)]
    return {name: _counts(t.det_kind, t.gt_kind, (lo <= det_n) & (det_n <= hi), (lo <= gt_n) & (gt_n <= hi))
            for name, (lo, hi) in CROWD.items()}  # fmt: skip


def best_f1(scores: np.ndarray, tp: np.ndarray, npos: int) -> dict[str, float]:
    """Precision, recall and F1 of one class at the score threshold maximising F1 (keeping every
    detection scoring >= ``conf``); zeros when it has no detection or no box."""
    if not len(scores) or npos <= 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "conf": 0.0}
    order = np.argsort(-scores, kind="stable")
    s, ctp = scores[order], np.cumsum(tp[order])
    last = np.r_[s[1:] != s[:-1], True]  # a threshold keeps every tie: read the curve at a tie's end
    precision, recall = ctp / np.arange(1, len(s) + 1), ctp / npos
    f1 = np.where(last, 2 * precision * recall / np.maximum(precision + recall, 1e-12), -1.0)
    i = int(f1.argmax())
    return {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "conf": float(s[i])}  # fmt: skip


def _per_class(t: ErrorTable, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for c, name in enumerate(names):
        det_sel, gt_sel = t.det_class == c, t.gt_class == c
        row: dict[str, Any] = {"instances": int(gt_sel.sum())}
        row.update(_counts(t.det_kind, t.gt_kind, det_sel, gt_sel))
        keep = det_sel & (t.det_kind >= 0)
        row.update({k: round(v, 6) for k, v in best_f1(t.det_score[keep], t.det_kind[keep] == TP,
                                                       int(gt_sel.sum())).items()})  # fmt: skip
        out[name] = row
    return out


def analyze_errors(
    detections: Sequence[Detections],
    ground_truth: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    names: Sequence[str],
    pos_threshold: float = 0.5,
    bg_threshold: float = 0.1,
    max_dets: int = 100,
    iou_range: bool = False,
) -> ErrorAnalysis:
    """TIDE analysis of ``detections[i]`` (original-image pixels, xyxy) against ``ground_truth[i]`` =
    ``(boxes (G, 4) xyxy, classes (G,), ignore (G,))`` (``evaluator.ground_truth_of``). ``iou_range``:
    also ``map50_95``, TIDE's mAP averaged over IoU 0.50 .. 0.95 (ten matchings: ten times the time)."""
    t = classify(detections, ground_truth, len(names), pos_threshold, bg_threshold, max_dets)
    every_det, every_gt = np.ones(len(t.det_kind), bool), np.ones(len(t.gt_kind), bool)
    summary: dict[str, Any] = {
        "pos_threshold": pos_threshold,
        "bg_threshold": bg_threshold,
        "max_dets": max_dets,
        "images": len(detections),
        "instances": int(len(t.gt_kind)),
        "detections": int(np.sum(t.det_kind >= 0)),
        "map": round(fixed_map(t), 6),
        "counts": _counts(t.det_kind, t.gt_kind, every_det, every_gt),
        "dap": {k: round(v, 6) for k, v in delta_ap(t).items()},
        "by_size": _by_size(t),
        "by_crowd": _by_crowd(t, len(detections)),
        "per_class": _per_class(t, names),
    }
    if iou_range:
        summary["map50_95"] = round(map_range(detections, ground_truth, len(names), max_dets=max_dets), 6)
    return ErrorAnalysis(summary, t, list(names))


def format_error_report(summary: dict[str, Any]) -> str:
    """Counts and dAP of each kind, then the counts by size and by crowdedness, one row each."""
    kinds = list(KINDS)
    span = f"  mAP@.5:.95 {summary['map50_95']:.2f}" if "map50_95" in summary else ""
    lines = [f"TIDE mAP@{summary['pos_threshold']:g} {summary['map']:.2f}{span}  "
             f"({summary['images']} images, {summary['instances']} boxes, "
             f"{summary['detections']} detections, {summary['counts']['tp']} true positives)",
             ""]  # fmt: skip
    head = f"{'':<10}" + "".join(f"{k:>8}" for k in kinds)
    lines += [head, "-" * len(head)]
    lines.append(f"{'count':<10}" + "".join(f"{summary['counts'][k]:>8}" for k in kinds))
    lines.append(f"{'dAP':<10}" + "".join(f"{summary['dap'][k]:>8.2f}" for k in kinds))
    for group in ("by_size", "by_crowd"):
        for name, counts in summary[group].items():
            label = name if group == "by_size" else f"{name} obj"
            lines.append(f"{label:<10}" + "".join(f"{counts[k]:>8}" for k in kinds))
    dap = summary["dap"]
    lines.append(f"\nfalse positives cost {dap['false_pos']:.2f} mAP, false negatives {dap['false_neg']:.2f}")
    return "\n".join(lines)
