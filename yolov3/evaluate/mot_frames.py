"""One MOTChallenge sequence made ready to score (``yolov3.evaluate.mot``'s first step): per frame, the
expected ground-truth ids, the result ids that count and their IoU, with the ignored ground truth and
the result boxes lying on it taken out (``prepare``; the rule is in ``mot``'s docstring). Boxes are
``(x, y, w, h)``: top-left corner and size in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from yolov3.boxes import box_convert
from yolov3.errors import UserError

MIN_VISIBILITY = 0.3  # ground truth less visible than this is ignored (``mot``'s docstring)
MATCH_IOU = 0.5  # CLEAR's and identity's match threshold, and that of the ignored-row pre-match
EPS = np.finfo(float).eps  # TrackEval's tolerance at thresholds


def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)`` given as ``(x, y, w, h)``
    (top-left corner and size, pixels); 0 where a union is empty."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    a_xyxy, b_xyxy = box_convert(a, "xywh", "xyxy"), box_convert(b, "xywh", "xyxy")
    lt = np.maximum(a_xyxy[:, None, :2], b_xyxy[None, :, :2])
    rb = np.minimum(a_xyxy[:, None, 2:], b_xyxy[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = np.prod(a[:, 2:], axis=1)[:, None] + np.prod(b[:, 2:], axis=1)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass
class Frames:
    """One sequence ready to score: for each frame (in order), the expected ground-truth ids
    ``gt_ids[t]`` ``(G_t,)`` and the scored result ids ``hyp_ids[t]`` ``(H_t,)``, both renumbered
    0.. over the sequence, and their IoU ``iou[t]`` ``(G_t, H_t)``. ``ignored``: result boxes left out
    for lying on ignored ground truth."""

    gt_ids: list[np.ndarray]
    hyp_ids: list[np.ndarray]
    iou: list[np.ndarray]
    num_gt_ids: int
    num_hyp_ids: int
    ignored: int = 0


def _table(rows: np.ndarray) -> np.ndarray:
    """MOTChallenge rows as ``(N, C)`` float64; no rows -> ``(0, 9)``."""
    rows = np.asarray(rows, np.float64)
    return rows.reshape(len(rows), -1) if rows.size else np.zeros((0, 9))


def _rows_by_frame(frame_col: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(frame_col, kind="stable")
    keys, starts = np.unique(frame_col[order].astype(np.int64), return_index=True)
    return dict(zip(keys.tolist(), np.split(order, starts[1:])))


def _check_unique(ids: np.ndarray, frame: int, what: str) -> None:
    if len(np.unique(ids)) != len(ids):
        repeated = sorted({int(i) for i in ids if (ids == i).sum() > 1})
        raise UserError(f"{what}: frame {frame} gives id {repeated[0]} twice; expected unique ids per frame")


def prepare(
    gt: np.ndarray, hyp: np.ndarray, min_visibility: float = MIN_VISIBILITY, where: str = "results"
) -> Frames:
    """Ground truth ``(N, >=6)`` and results ``(M, >=6)`` MOTChallenge rows -> ``Frames``, with the
    ignored rows and the result boxes on them taken out (module docstring). ``where`` names the data
    in errors (a frame giving one id twice)."""
    gt, hyp = _table(gt), _table(hyp)
    ones = np.ones(len(gt))
    flag = gt[:, 6] if gt.shape[1] > 6 else ones
    vis = gt[:, 8] if gt.shape[1] > 8 else ones
    expected = (flag != 0) & (vis >= min_visibility)
    gt_rows, hyp_rows = _rows_by_frame(gt[:, 0]), _rows_by_frame(hyp[:, 0])
    none = np.zeros(0, np.int64)
    out_g, out_h, out_iou, ignored = [], [], [], 0
    for f in sorted(set(gt_rows) | set(hyp_rows)):
        g, h = gt_rows.get(f, none), hyp_rows.get(f, none)
        _check_unique(gt[g, 1], f, f"{where} (ground truth)")
        _check_unique(hyp[h, 1], f, where)
        iou = box_iou_xywh(gt[g, 2:6], hyp[h, 2:6])
        keep = np.ones(len(h), bool)
        if len(g) and len(h) and not expected[g].all():
            pre = np.where(iou >= MATCH_IOU - EPS, iou, 0.0)
            r, c = linear_sum_assignment(-pre)
            on_ignored = (pre[r, c] > EPS) & ~expected[g][r]
            keep[c[on_ignored]] = False
            ignored += int(on_ignored.sum())
        out_g.append(gt[g[expected[g]], 1])
        out_h.append(hyp[h[keep], 1])
        out_iou.append(iou[np.ix_(expected[g], keep)])
    gt_ids, hyp_ids = _renumber(out_g), _renumber(out_h)
    return Frames(gt_ids[0], hyp_ids[0], out_iou, gt_ids[1], hyp_ids[1], ignored)


def _renumber(ids: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Ids per frame -> the same ids as 0..K-1 (in increasing order of the original), and K."""
    unique = np.unique(np.concatenate(ids)) if ids else np.zeros(0)
    return [np.searchsorted(unique, x).astype(np.int64) for x in ids], len(unique)
