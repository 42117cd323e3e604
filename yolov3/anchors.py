"""Anchors fitted to a data set: k-means on box sizes with the distance ``1 - IoU`` (YOLOv2 paper,
Darknet's ``calc_anchors``).

Boxes are the training boxes scaled as the letterbox scales them to the network input (``scale =
min(img / w, img / h)``), so anchors are in input pixels at ``img``, the unit of
``ModelConfig.anchors``. IoU of two sizes is taken with the boxes sharing a corner:
``min(w1, w2) * min(h1, h2) / (w1 h1 + w2 h2 - that)``. Initial centres by k-means++ (on 1 - IoU,
seeded), then Lloyd iterations: assign each box to the centre of highest IoU, move each centre to
the mean size of its boxes (as Darknet), until no assignment changes. The anchors are sorted by area
and split evenly over the scales, smallest to the stride-8 output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from yolov3.boxes import box_convert
from yolov3.data.index import box_tables
from yolov3.data.types import Sample
from yolov3.errors import UserError

MAX_BOXES = 1_000_000  # k-means on a uniform sample above this (the mean barely moves; time does)


def box_sizes(samples: Sequence[Sample], img_size: int) -> np.ndarray:
    """``(N, 2)`` float64 widths and heights of every non-crowd box, in input pixels after the
    letterbox to ``img_size`` (each image's own scale). Samples need ``width`` / ``height``. A split
    read through its index is taken from its arrays, without a ``Sample`` per image."""
    sizes = []
    for part in box_tables(samples):
        if isinstance(part, tuple):  # boxes, classes, image sizes of an index part
            boxes, _, wh = part
            scale = np.minimum(img_size / wh[:, 0].astype(np.float64), img_size / wh[:, 1].astype(np.float64))
            sizes.append(box_convert(boxes.astype(np.float64), "xyxy", "xywh")[:, 2:] * scale[:, None])
            continue
        for s in part:
            if not len(s.boxes):
                continue
            if s.width <= 0 or s.height <= 0:
                raise UserError(f"{s.image}: image size unknown, cannot scale its boxes to the input")
            scale = min(img_size / s.width, img_size / s.height)
            keep = ~np.asarray(s.iscrowd, bool) if len(s.iscrowd) == len(s.boxes) else slice(None)
            b = np.asarray(s.boxes, np.float64)[keep]
            sizes.append(box_convert(b, "xyxy", "xywh")[:, 2:] * scale)  # (n, 2) w, h at the input size
    out = np.concatenate(sizes) if sizes else np.zeros((0, 2))
    return out[(out[:, 0] > 0) & (out[:, 1] > 0)]


def size_iou(sizes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``(N, 2) x (K, 2) -> (N, K)`` IoU of boxes that share a corner (only sizes matter)."""
    inter = np.minimum(sizes[:, None, 0], anchors[None, :, 0]) * np.minimum(
        sizes[:, None, 1], anchors[None, :, 1]
    )
    union = (sizes[:, 0] * sizes[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
    return inter / union


def mean_best_iou(sizes: np.ndarray, anchors: np.ndarray) -> float:
    """Darknet's "avg IoU": the mean over boxes of the IoU with their best anchor."""
    return float(size_iou(sizes, np.asarray(anchors, np.float64).reshape(-1, 2)).max(1).mean())


def _kmeans_pp(sizes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [sizes[rng.integers(len(sizes))]]
    for _ in range(1, k):
        d = 1.0 - size_iou(sizes, np.array(centres)).max(1)
        total = d.sum()
        pick = rng.choice(len(sizes), p=d / total) if total > 0 else rng.integers(len(sizes))
        centres.append(sizes[pick])
    return np.array(centres, np.float64)


def kmeans_anchors(sizes: np.ndarray, n: int = 9, seed: int = 0, max_iter: int = 300) -> np.ndarray:
    """``(n, 2)`` anchors (w, h) sorted by area: k-means with distance 1 - IoU (module docstring)."""
    sizes = np.asarray(sizes, np.float64).reshape(-1, 2)
    if len(sizes) < n:
        raise UserError(f"{len(sizes)} training boxes: at least {n} are needed to fit {n} anchors")
    rng = np.random.default_rng(seed)
    if len(sizes) > MAX_BOXES:
        sizes = sizes[rng.choice(len(sizes), MAX_BOXES, replace=False)]
    centres = _kmeans_pp(sizes, n, rng)
    assign = None
    for _ in range(max_iter):
        iou = size_iou(sizes, centres)
        new = iou.argmax(1)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        for j in range(n):
            members = sizes[assign == j]
            # an empty cluster restarts at the box worst served by the others
            centres[j] = members.mean(0) if len(members) else sizes[iou.max(1).argmin()]
    return centres[np.argsort(centres[:, 0] * centres[:, 1], kind="stable")]


def split_scales(anchors: np.ndarray, num_scales: int = 3) -> list[list[list[float]]]:
    """Sorted anchors -> one row per output scale (smallest first), as ``ModelConfig.anchors``."""
    if len(anchors) % num_scales:
        raise UserError(f"{len(anchors)} anchors cannot be split evenly over {num_scales} scales")
    per = len(anchors) // num_scales
    return [[[round(float(w), 2), round(float(h), 2)] for w, h in anchors[i * per : (i + 1) * per]]
            for i in range(num_scales)]  # fmt: skip


@dataclass
class AnchorFit:
    """The fitted anchors (per scale, input px at ``img_size``) and how well each set covers the boxes."""

    anchors: list[list[list[float]]]
    img_size: int
    boxes: int
    mean_iou: float  # of the new anchors
    mean_iou_current: float  # of the anchors they replace
    recall: float  # share of boxes whose best new anchor has IoU > 0.3 (the seed's positive test)
    recall_current: float

    def darknet_line(self) -> str:
        """``anchors = 10,13, 16,30, ...`` for a Darknet cfg (rounded to whole pixels)."""
        flat = [f"{round(w)},{round(h)}" for scale in self.anchors for w, h in scale]
        return "anchors = " + ", ".join(flat)


def fit_anchors(
    samples: Sequence[Sample],
    img_size: int = 416,
    n: int = 9,
    num_scales: int = 3,
    current: Sequence[Sequence[Sequence[float]]] | None = None,
    seed: int = 0,
) -> AnchorFit:
    """Fit ``n`` anchors to the boxes of ``samples`` and compare them with ``current`` anchors."""
    if n % num_scales:
        raise UserError(f"--n {n}: must be a multiple of the {num_scales} output scales")
    sizes = box_sizes(samples, img_size)
    if not len(sizes):
        raise UserError("the training split has no boxes: anchors are fitted to labelled boxes")
    per_scale = split_scales(kmeans_anchors(sizes, n, seed), num_scales)
    anchors = np.asarray(per_scale, np.float64).reshape(-1, 2)  # as written (rounded)
    cur = np.asarray(current, np.float64).reshape(-1, 2) if current is not None else anchors
    best_new, best_cur = size_iou(sizes, anchors).max(1), size_iou(sizes, cur).max(1)
    return AnchorFit(
        anchors=per_scale, img_size=img_size, boxes=len(sizes),
        mean_iou=float(best_new.mean()), mean_iou_current=float(best_cur.mean()),
        recall=float((best_new > 0.3).mean()), recall_current=float((best_cur > 0.3).mean()),
    )  # fmt: skip
