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
  took that is no smaller (a smaller one inside a cut piece is not the rest of its object: taking it
  cost 0.01 mAP@0.5 in ``benchmarks/bench_tiles.py``), else its own; ``nmm`` (SAHI's greedy
  non-maximum merging) keeps the union of all it took. The score is the leader's (the best). Then at
  most ``max_det`` boxes, best first.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from yolov3.boxes import box_area, box_convert
from yolov3.config import InferConfig
from yolov3.console import Progress
from yolov3.data.images import ImageError, check_pixels
from yolov3.data.tiling import grid_origins
from yolov3.infer.results import Detections

CUT_MARGIN = 2.0  # pixels: a box this close to an inner tile edge is taken as cut by it
TILE_IOS_THRESHOLD = 0.5  # a cut box matches a box covering more than this share of the smaller one
# Tiles per backend call where the caller detects its pictures one at a time (detect, track): a batch
# the 144 tiles of 192 px of a 2560 x 1440 picture took 0.39 s at 8 a call, 0.89 s one at a time, 0.45 s
# at 16 (demo YOLOv3-tiny, 2-core Xeon)
TILE_BATCH = 8
PROGRESS_TILES = 1024  # a picture of this many tiles or more shows its own progress (10,000 px at tile 416)


class Tiler(Protocol):
    """What sliced inference needs of a detector: whole-picture batches, and its batch size."""

    batch_size: int

    def predict_arrays(self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None,
                       settings: InferConfig | None = None) -> list[Detections]: ...  # fmt: skip


class TileSizeError(ImageError):
    """A picture read well but narrower or lower than the tile: it cannot be cut into tiles."""

    label = "smaller than the tile"


def check_sliceable(width: int, height: int, tile: int, source: str = "picture", limit: int | None = None,
                    untiled: str = "without --tile") -> None:  # fmt: skip
    """``ImageError`` naming ``source``, its size and the tile when a ``width`` x ``height`` picture
    cannot be cut into ``tile`` x ``tile`` tiles: a side shorter than the tile, or over the pixel
    ``limit`` (``check_pixels``; default ``pixel_limit()``). ``detect_batches`` and the server check
    each picture so, and report a refused one as its own error. ``untiled``: how the caller turns
    tiling off, for the message (the server: a query field)."""
    check_pixels(width, height, source, limit)
    _check_size(width, height, tile, source, untiled)


def _check_size(width: int, height: int, tile: int, source: str, untiled: str = "without --tile") -> None:
    if width < tile or height < tile:
        why = f"{width}x{height} is smaller than the tile ({tile}x{tile}); detect it {untiled}, or "
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


PAIR_BLOCK = 4096  # boxes whose candidate pairs are made at once (bounds the merge's memory)


def _pair_overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and IoS (intersection over the smaller area) of xyxy boxes ``a[k]`` and ``b[k]``, ``(N,)`` each."""
    lt = np.maximum(a[:, :2], b[:, :2])
    rb = np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=1)
    area_a, area_b = box_area(a), box_area(b)
    union, smaller = area_a + area_b - inter, np.minimum(area_a, area_b)
    return inter / np.maximum(union, 1e-9), inter / np.maximum(smaller, 1e-9)


def _spans(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(p, q)`` with ``q`` in ``[lo[p], hi[p])``, for ``p`` in ``range(len(lo))``."""
    count = np.maximum(hi - lo, 0)
    first = np.repeat(np.arange(len(lo)), count)
    return first, np.repeat(lo, count) + np.arange(len(first)) - np.repeat(np.cumsum(count) - count, count)


def _candidates(b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes sorted by (class, band, x1), bands of rows as high as the highest box, so that two boxes
    of a class that meet lie in one band or two neighbouring ones: ``(order, pairs per box)`` where
    each box ``order[p]`` is to be checked against ``order[q]`` for ``q`` in its two ranges."""
    x0, y0 = b[:, 0].min(initial=0.0), b[:, 1].min(initial=0.0)
    wmax, hmax = (float(v) for v in box_convert(b, "xyxy", "xywh")[:, 2:].max(axis=0, initial=0.0))
    band = np.floor((b[:, 1] - y0) / max(hmax, 1.0))
    span_b = float(b[:, 2].max(initial=0.0) - x0) + 2 * wmax + 4  # one band's key range
    span_c = (band.max(initial=0.0) + 3) * span_b  # one class's
    base = c * span_c + band * span_b + wmax + 2 - x0  # key of x in this box's class and band
    order = np.lexsort((b[:, 0], band, c))
    key = (base + b[:, 0])[order]
    x1, x2, base = b[order, 0], b[order, 2], base[order]
    same_hi = np.searchsorted(key, base + x2, side="left")  # same band: after p, starting left of its end
    next_lo = np.searchsorted(key, base + span_b + x1 - wmax, side="left")  # next band: may reach p
    next_hi = np.searchsorted(key, base + span_b + x2, side="left")
    return order, (np.arange(len(b)) + 1, same_hi, next_lo, next_hi)


def _matches(b: np.ndarray, c: np.ndarray, cut: np.ndarray, iou_threshold: float) -> tuple[list, np.ndarray]:
    """Which boxes match which (the module docstring's rule), for boxes sorted by class then best
    first: CSR ``(starts, later)``, ``later[starts[i]:starts[i + 1]]`` the later boxes ``i`` matches.
    Candidates (``_candidates``) are made ``PAIR_BLOCK`` boxes at a time."""
    n = len(b)
    s, (lo1, hi1, lo2, hi2) = _candidates(b, c)
    lo_all, hi_all = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for p0 in range(0, n, PAIR_BLOCK):
        blk = slice(p0, min(p0 + PAIR_BLOCK, n))
        f1, q1 = _spans(lo1[blk], hi1[blk])
        f2, q2 = _spans(lo2[blk], hi2[blk])
        i, j = s[np.concatenate([f1, f2]) + p0], s[np.concatenate([q1, q2])]
        meet = (b[i, 1] < b[j, 3]) & (b[j, 1] < b[i, 3]) & (b[i, 0] < b[j, 2]) & (b[j, 0] < b[i, 2])
        i, j = i[meet], j[meet]
        iou, ios = _pair_overlaps(b[i], b[j])
        hit = (iou > iou_threshold) | ((cut[i] | cut[j]) & (ios > TILE_IOS_THRESHOLD))
        lo_all.append(np.minimum(i[hit], j[hit]))
        hi_all.append(np.maximum(i[hit], j[hit]))
    lo, later = np.concatenate(lo_all), np.concatenate(hi_all)
    by = np.lexsort((later, lo))
    starts = np.searchsorted(lo[by], np.arange(n + 1)).tolist()
    return starts, later[by]


def _greedy(starts: list, later: np.ndarray) -> np.ndarray:
    """``(N,)`` each box's group leader: the best box left takes every box left that matches it."""
    n = len(starts) - 1
    leader = np.arange(n)
    alive = np.ones(n, bool)
    for i in range(n):
        if starts[i] == starts[i + 1] or not alive[i]:
            continue
        took = later[starts[i] : starts[i + 1]]
        took = took[alive[took]]
        alive[took] = False
        leader[took] = i
    return leader


def merge_tiles(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, cut: np.ndarray,
                settings: InferConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The module docstring's merge: ``(boxes, scores, class_ids)``, best first, at most ``max_det``."""
    order = np.lexsort((-scores.astype(np.float64), class_ids))  # by class, then best first
    b, k, c = boxes[order].astype(np.float64), cut[order].astype(bool), class_ids[order]
    leader = _greedy(*_matches(b, c, k, settings.iou_threshold))
    heads = np.flatnonzero(leader == np.arange(len(b)))  # one per group, in (class, best first) order
    group = np.searchsorted(heads, leader)  # each box's group number
    if settings.tile_merge == "nmm":  # the union of the group
        merged = np.empty((len(heads), 4))
        merged[:, :2], merged[:, 2:] = np.full((len(heads), 2), np.inf), np.full((len(heads), 2), -np.inf)
        np.minimum.at(merged[:, :2], group, b[:, :2])
        np.maximum.at(merged[:, 2:], group, b[:, 2:])
    else:  # the leader if whole, else the group's best whole box at least as large, else the leader
        area = box_area(b)
        whole = ~k & (area >= area[heads][group])  # a smaller box is not the rest of a cut object
        first_whole = np.full(len(heads), len(b))
        np.minimum.at(first_whole, group[whole], np.flatnonzero(whole))
        pick = np.where(k[heads] & (first_whole < len(b)), first_whole, heads)
        merged = b[pick]
    score, ids = scores[order][heads], c[heads]
    best = np.argsort(-score.astype(np.float64), kind="stable")[: settings.max_det]
    return merged.astype(np.float32)[best], score.astype(np.float32)[best], ids.astype(np.int64)[best]


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
    name = f"tiles of {os.path.basename(path) if path else 'picture'}"
    with Progress(len(views), name, "tile", enabled=len(views) >= PROGRESS_TILES) as bar:
        for i in range(0, len(views), detector.batch_size):
            found += detector.predict_arrays(views[i : i + detector.batch_size], None, whole)
            bar.update(len(views[i : i + detector.batch_size]))
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
    "TILE_BATCH",
    "TILE_IOS_THRESHOLD",
    "TileSizeError",
    "check_sliceable",
    "cut_flags",
    "merge_tiles",
    "predict_sliced",
    "tile_grid",
]
