"""Sliced inference (SAHI, Akyon et al. 2022): a large picture with small objects cut into overlapping
tiles, each detected at the model's input size, the tiles' boxes mapped back and merged.

``InferConfig.tile`` turns it on (``Detector.predict_arrays`` then runs ``predict_sliced`` per picture,
so ``detect``, ``val``, ``track``, ``serve`` and the API all slice); ``tile_overlap``, ``tile_full`` and
``tile_merge`` shape it.

* **Grid** (``tile_grid``, the rule of ``yolov3.data.tiling.grid_origins``, which ``yolov3 data tile``
  cuts training pictures by): tiles of ``tile`` x ``tile`` picture pixels, ``round(tile * (1 - overlap))``
  apart; the last row and column are moved back so they end exactly at the picture's edge (no tile
  runs past it, no padding). A picture narrower or lower than a tile is an error naming it: run it
  without ``--tile``, or with a smaller one. Tiles are views of the picture, never copies; they go
  through the detector ``batch_size`` at a time, each letterboxed to the input size (a tile equal to
  the input size is resized by nothing). ``tile_full`` adds the whole picture as one more input, for
  objects larger than a tile.
* **Cut boxes**: a box within ``CUT_MARGIN`` pixels of a tile edge that lies inside the picture (an
  inner edge) is marked cut: the object may go on in the next tile.
* **Merge** (``merge_tiles``), per class, greedy in decreasing score: the best box left takes every
  box that matches it (IoU > ``iou_threshold``, or IoS, the intersection over the smaller box's
  area, > ``TILE_IOS_THRESHOLD`` when either is cut, since a cut piece lies inside the whole box and
  their IoU is small). ``nms`` keeps one box: the leader's if it is whole, else the best whole box it
  took, else its own; ``nmm`` (SAHI's greedy non-maximum merging) keeps the union of all it took. The
  score is the leader's (the best). Then at most ``max_det`` boxes, best first.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from yolov3.boxes import box_area
from yolov3.config import InferConfig
from yolov3.data.images import ImageError, check_pixels
from yolov3.data.tiling import grid_origins
from yolov3.infer.results import Detections

CUT_MARGIN = 2.0  # pixels: a box this close to an inner tile edge is taken as cut by it
TILE_IOS_THRESHOLD = 0.5  # a cut box matches a box covering more than this share of the smaller one


class Tiler(Protocol):
    """What sliced inference needs of a detector: whole-picture batches, and its batch size."""

    batch_size: int

    def predict_arrays(self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None,
                       settings: InferConfig | None = None) -> list[Detections]: ...  # fmt: skip


class TileSizeError(ImageError):
    """A picture read well but narrower or lower than the tile: it cannot be cut into tiles."""

    label = "smaller than the tile"


def check_sliceable(width: int, height: int, tile: int, source: str = "picture", limit: int | None = None
                    ) -> None:  # fmt: skip
    """``ImageError`` naming ``source``, its size and the tile when a ``width`` x ``height`` picture
    cannot be cut into ``tile`` x ``tile`` tiles: a side shorter than the tile, or over the pixel
    ``limit`` (``check_pixels``; default ``pixel_limit()``). ``detect_batches`` and the server check
    each picture so, and report a refused one as its own error."""
    check_pixels(width, height, source, limit)
    _check_size(width, height, tile, source)


def _check_size(width: int, height: int, tile: int, source: str) -> None:
    if width < tile or height < tile:
        why = f"{width}x{height} is smaller than the tile ({tile}x{tile}); detect it without --tile, or "
        raise TileSizeError(source, why + "with a tile no larger than its shorter side")


def tile_grid(width: int, height: int, tile: int, overlap: float, source: str = "picture"
              ) -> list[tuple[int, int]]:  # fmt: skip
    """``(x, y)`` origins of the ``tile`` x ``tile`` tiles covering a ``width`` x ``height`` picture,
    row by row; neighbours share ``tile - round(tile * (1 - overlap))`` pixels (more in the last row
    and column, which end at the picture's edge). A side shorter than ``tile``: ``ImageError``
    (``check_sliceable``)."""
    _check_size(width, height, tile, source)
    return grid_origins(width, height, tile, overlap)


def cut_flags(boxes: np.ndarray, origin: tuple[int, int], tile: int, size: tuple[int, int]) -> np.ndarray:
    """``(N,)`` bool: which of a tile's ``boxes`` (picture pixels, xyxy) lie within ``CUT_MARGIN`` of
    one of its inner edges (an edge inside the picture of ``size`` ``(w, h)``)."""
    x, y = origin
    w, h = size
    cut = np.zeros(len(boxes), bool)
    if x > 0:
        cut |= boxes[:, 0] <= x + CUT_MARGIN
    if y > 0:
        cut |= boxes[:, 1] <= y + CUT_MARGIN
    if x + tile < w:
        cut |= boxes[:, 2] >= x + tile - CUT_MARGIN
    if y + tile < h:
        cut |= boxes[:, 3] >= y + tile - CUT_MARGIN
    return cut


def _overlaps(box: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and IoS (intersection over the smaller area) of one xyxy ``box`` with ``(N, 4)`` ``others``."""
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=1)
    a, b = box_area(box), box_area(others)
    return inter / np.maximum(a + b - inter, 1e-9), inter / np.maximum(np.minimum(a, b), 1e-9)


def merge_tiles(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, cut: np.ndarray,
                settings: InferConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The module docstring's merge: ``(boxes, scores, class_ids)``, best first, at most ``max_det``."""
    order = np.lexsort((-scores.astype(np.float64), class_ids))  # by class, then best first
    out_boxes, out_scores, out_ids = [], [], []
    for c in np.unique(class_ids):
        idx = order[class_ids[order] == c]
        b, s, k = boxes[idx].astype(np.float64), scores[idx], cut[idx]
        alive = np.ones(len(idx), bool)
        for i in range(len(idx)):
            if not alive[i]:
                continue
            rest = np.flatnonzero(alive)
            iou, ios = _overlaps(b[i], b[rest])
            took = rest[(iou > settings.iou_threshold) | ((k[i] | k[rest]) & (ios > TILE_IOS_THRESHOLD))]
            took = np.union1d(took, [i])
            alive[took] = False
            out_boxes.append(_merged(b[took], k[took], settings.tile_merge, took == i))
            out_scores.append(s[i])
            out_ids.append(c)
    if not out_boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    best = np.argsort(-np.asarray(out_scores, np.float64), kind="stable")[: settings.max_det]
    return (np.asarray(out_boxes, np.float32)[best], np.asarray(out_scores, np.float32)[best],
            np.asarray(out_ids, np.int64)[best])  # fmt: skip


def _merged(boxes: np.ndarray, cut: np.ndarray, merge: str, leader: np.ndarray) -> np.ndarray:
    """The box a group of matched boxes (best first) leaves: their union (``nmm``), else the leader's
    if it is whole, else the first whole one, else the leader's."""
    if merge == "nmm":
        return np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])
    first = np.flatnonzero(leader)[0]
    whole = np.flatnonzero(~cut)
    return boxes[first if not cut[first] or not len(whole) else whole[0]]


def _inputs(image: np.ndarray, settings: InferConfig, source: str
            ) -> tuple[list[np.ndarray], list[tuple[int, int]], list[int | None]]:  # fmt: skip
    """The views to detect on, their origins and tile sides (None: the whole picture, never cut)."""
    h, w = image.shape[:2]
    t = settings.tile
    origins = tile_grid(w, h, t, settings.tile_overlap, source)
    views = [image[y : y + t, x : x + t] for x, y in origins]
    sides: list[int | None] = [t] * len(views)
    if settings.tile_full:
        views, origins, sides = views + [image], origins + [(0, 0)], sides + [None]
    return views, origins, sides


def predict_sliced(detector: Tiler, image: np.ndarray, path: str | None, settings: InferConfig) -> Detections:
    """One picture (RGB uint8 ``(H, W, 3)``) by tiles (module docstring) -> its ``Detections``, boxes in
    its pixels; ``settings``: resolved, with ``tile`` set. ``speed``: the tiles' stages summed, and
    ``merge``. The pixel limit is its reader's (``detect_batches``, the server: ``check_sliceable``):
    the tiles are views, so slicing adds no copy of the picture."""
    h, w = image.shape[:2]
    views, origins, sides = _inputs(image, settings, path or "picture")
    whole = dataclasses.replace(settings, tile=None)  # each tile as one picture (replace() keeps None out)
    found: list[Detections] = []
    for i in range(0, len(views), detector.batch_size):
        found += detector.predict_arrays(views[i : i + detector.batch_size], None, whole)
    t0 = time.perf_counter()
    parts = [(d.boxes + np.asarray([x, y, x, y], np.float32), d) for d, (x, y) in zip(found, origins)]
    cut = [cut_flags(b, o, s, (w, h)) if s else np.zeros(len(b), bool)
           for (b, _), o, s in zip(parts, origins, sides)]  # fmt: skip
    boxes, scores, class_ids = merge_tiles(
        np.concatenate([b for b, _ in parts]).reshape(-1, 4), np.concatenate([d.scores for _, d in parts]),
        np.concatenate([d.class_ids for _, d in parts]), np.concatenate(cut), settings)  # fmt: skip
    speed = {k: sum(d.speed.get(k, 0.0) for d in found) for k in found[0].speed}
    speed["merge"] = (time.perf_counter() - t0) * 1e3
    return Detections(boxes, scores, class_ids, found[0].names, path, w, h, image, speed)


__all__ = [
    "CUT_MARGIN",
    "TILE_IOS_THRESHOLD",
    "TileSizeError",
    "check_sliceable",
    "cut_flags",
    "merge_tiles",
    "predict_sliced",
    "tile_grid",
]
