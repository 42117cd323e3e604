"""A data set of large pictures cut into tiles for training (``yolov3 data tile``; issue 25).

* **Grid** (``grid_origins``): the rule sliced inference uses (``yolov3.infer.slicing.tile_grid``
  calls it): tiles of ``size`` x ``size`` picture pixels, ``round(size * (1 - overlap))`` apart, the
  last row and column moved back to end exactly at the picture's edge. A side shorter than the tile
  gets one tile that spans it; a picture shorter than the tile on both sides is copied whole.
* **Boxes** (``cut_boxes``): a box (xyxy, picture pixels) that overlaps a tile is clipped to it; the
  clipped box is kept, in the tile's pixels, when its area is at least ``min_visible`` of the whole
  box's area, else dropped. A box that no tile keeps (one larger than a tile) is counted as lost.
* **Empty tiles** (tiles that keep no box) are written with probability ``empty_rate``, drawn from one
  generator seeded with ``seed`` in the order pictures are read: the same input gives the same tiles.

The output is a YOLO data set (``images/<split>/``, ``labels/<split>/``, ``data.yaml`` with the same
class names), written by ``yolov3.data.formats.write``. Tiles keep their picture's file type (JPEG at
quality 95). VOC ``difficult`` / COCO ``iscrowd`` flags travel with the boxes but YOLO files cannot hold
them (the summary says how many were written as ordinary boxes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from yolov3.boxes import box_area, box_convert
from yolov3.data.formats import DatasetSpec, write
from yolov3.data.formats.common import place_image
from yolov3.data.images import ImageError, image_size, read_image
from yolov3.data.types import Sample
from yolov3.errors import UserError

TILE_MULTIPLE = 32  # the network's stride: a tile side the input size can equal
JPEG_QUALITY = 95
_VISIBLE_EPS = 1e-6  # a box exactly min_visible inside is kept despite float rounding


def tile_step(size: int, overlap: float) -> int:
    """Pixels between neighbouring tile origins: ``round(size * (1 - overlap))``, at least 1."""
    return max(1, round(size * (1.0 - overlap)))


def tile_starts(length: int, size: int, step: int) -> list[int]:
    """Tile origins along one side of ``length`` pixels: every ``step``, the last ending at the edge;
    ``[0]`` when the side is no longer than the tile."""
    last = max(0, length - size)
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def grid_origins(width: int, height: int, size: int, overlap: float) -> list[tuple[int, int]]:
    """``(x, y)`` origins of the tiles covering a ``width`` x ``height`` picture, row by row; each tile
    is ``min(size, width)`` x ``min(size, height)`` pixels."""
    step = tile_step(size, overlap)
    return [(x, y) for y in tile_starts(height, size, step) for x in tile_starts(width, size, step)]


@dataclass(frozen=True)
class TileSettings:
    """``yolov3 data tile``'s options; ``check`` names the bad one."""

    size: int
    overlap: float = 0.2
    min_visible: float = 0.5
    empty_rate: float = 0.1
    seed: int = 0

    def check(self) -> None:
        if self.size < TILE_MULTIPLE or self.size % TILE_MULTIPLE:
            raise UserError(f"--size {self.size}: expected a multiple of {TILE_MULTIPLE}, >= 32 (pixels)")
        if not 0.0 <= self.overlap < 0.9:
            raise UserError(f"--overlap {self.overlap}: expected a fraction in [0, 0.9)")
        if not 0.0 < self.min_visible <= 1.0:
            raise UserError(f"--min-visible {self.min_visible}: expected a fraction in (0, 1]")
        if not 0.0 <= self.empty_rate <= 1.0:
            raise UserError(f"--empty-rate {self.empty_rate}: expected a fraction in [0, 1]")


@dataclass
class TileCut:
    """One tile's boxes: ``boxes (K, 4)`` xyxy in the tile's pixels, ``index (K,)`` into the picture's
    boxes, ``clipped (K,)`` which were cut by an edge, ``dropped``: boxes it touched but did not keep."""

    boxes: np.ndarray
    index: np.ndarray
    clipped: np.ndarray
    dropped: int


def cut_boxes(boxes: np.ndarray, window: tuple[int, int, int, int], min_visible: float) -> TileCut:
    """The module docstring's box rule for the tile ``window = (x, y, w, h)`` (picture pixels)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    corners = box_convert(np.array(window, np.float64), "xywh", "xyxy")
    lo, hi = np.tile(corners[:2], 2), np.tile(corners[2:], 2)  # each box coordinate's bounds
    inside = np.clip(boxes, lo, hi)  # a box outside the tile collapses onto its edge: area 0
    area, seen = box_area(boxes), np.maximum(box_area(inside), 0.0)
    touched = seen > 0
    visible = np.divide(seen, area, out=np.zeros_like(seen), where=area > 0)
    keep = touched & (visible >= min_visible - _VISIBLE_EPS)
    index = np.flatnonzero(keep)
    clipped = np.any(inside[index] != boxes[index], axis=1)
    return TileCut((inside[index] - lo).astype(np.float32), index, clipped, int((touched & ~keep).sum()))


@dataclass
class TileSummary:
    """What ``tile_dataset`` did; ``format`` is the command's report."""

    pictures: int = 0
    whole: int = 0  # pictures no larger than a tile, copied as they are
    tiles: int = 0  # tiles written (empty ones included)
    boxes: int = 0  # boxes in the pictures read
    kept: int = 0  # boxes written into tiles (a box in two overlapping tiles counts twice)
    clipped: int = 0  # of those, cut by a tile edge
    dropped: int = 0  # (box, tile) pairs where less than min_visible of the box lay inside
    lost: int = 0  # boxes kept by no tile
    empty_seen: int = 0
    empty_kept: int = 0
    flagged: int = 0  # difficult / iscrowd boxes written as ordinary boxes
    skipped: list[str] = field(default_factory=list)  # pictures that could not be read

    def format(self) -> str:
        lines = [
            f"pictures: {self.pictures} read, {self.whole} no larger than a tile copied whole",
            f"tiles written: {self.tiles} ({self.empty_kept} of {self.empty_seen} empty tiles kept)",
            f"boxes: {self.boxes} in the pictures; {self.kept} written into tiles ({self.clipped} clipped "
            f"by a tile edge), {self.dropped} dropped from a tile, {self.lost} in no tile",
        ]
        if self.flagged:
            lines.append(f"note: {self.flagged} difficult / iscrowd boxes written as ordinary boxes")
        lines += [f"skipped: {why}" for why in self.skipped]
        return "\n".join(lines)


def tile_dataset(
    spec: DatasetSpec, out: str | os.PathLike, settings: TileSettings
) -> tuple[Path, TileSummary]:
    """Cut every picture of every split of ``spec`` into tiles written under ``out`` (an empty or new
    folder); returns the written ``data.yaml`` and the summary."""
    settings.check()
    out = Path(out)
    if any((out / sub).exists() and any((out / sub).iterdir()) for sub in ("images", "labels")):
        raise UserError(f"--out {out}: already holds images/ or labels/; tile into an empty folder")
    rng = np.random.default_rng(settings.seed)
    summary = TileSummary()
    splits = {}
    for split, samples in spec.splits.items():
        folder, used = out / "images" / split, set()
        splits[split] = [t for s in samples for t in _tile_picture(s, folder, used, settings, rng, summary)]
    return write("yolo", splits, spec.names, out), summary


def _free_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_1``, ``stem_2`` ... when a picture of the split already took it."""
    name, n = stem, 0
    while name in used:
        n += 1
        name = f"{stem}_{n}"
    used.add(name)
    return name


def _flags(values: np.ndarray, n: int) -> np.ndarray:
    """A picture's ``(n,)`` difficult / iscrowd flags (all False when the reader left them empty)."""
    return values if len(values) == n else np.zeros(n, bool)


def _tile_picture(sample: Sample, folder: Path, used: set[str], settings: TileSettings,
                  rng: np.random.Generator, summary: TileSummary) -> list[Sample]:  # fmt: skip
    """The tiles of one picture written under ``folder``, as samples (an unreadable picture: none)."""
    src, n = Path(sample.image), len(sample.boxes)
    stem = _free_stem(src.stem, used)
    difficult, iscrowd = _flags(sample.difficult, n), _flags(sample.iscrowd, n)
    try:
        width, height = (sample.width, sample.height) if sample.width and sample.height else image_size(src)
        if width > settings.size or height > settings.size:
            pixels = cv2.cvtColor(read_image(src), cv2.COLOR_RGB2BGR)
    except ImageError as exc:
        summary.skipped.append(str(exc))
        return []
    summary.pictures, summary.boxes = summary.pictures + 1, summary.boxes + n
    summary.flagged += int(difficult.sum() + iscrowd.sum())
    if width <= settings.size and height <= settings.size:
        summary.whole, summary.kept = summary.whole + 1, summary.kept + n
        path = folder / f"{stem}{src.suffix.lower()}"
        place_image(src, path, "copy")
        return [Sample(str(path), sample.boxes, sample.classes, difficult, iscrowd, width, height)]
    height, width = pixels.shape[:2]
    tw, th = min(settings.size, width), min(settings.size, height)
    tiles, kept = [], np.zeros(n, bool)
    for x, y in grid_origins(width, height, settings.size, settings.overlap):
        cut = cut_boxes(sample.boxes, (x, y, tw, th), settings.min_visible)
        kept[cut.index] = True
        summary.dropped += cut.dropped
        if not len(cut.index):
            summary.empty_seen += 1
            if not rng.random() < settings.empty_rate:
                continue
            summary.empty_kept += 1
        path = folder / f"{stem}_x{x}_y{y}{src.suffix.lower()}"
        _write_pixels(path, pixels[y : y + th, x : x + tw])
        summary.tiles += 1
        i = cut.index
        summary.kept, summary.clipped = summary.kept + len(i), summary.clipped + int(cut.clipped.sum())
        tiles.append(Sample(str(path), cut.boxes, sample.classes[i], difficult[i], iscrowd[i], tw, th))
    summary.lost += int((~kept).sum())
    return tiles


def _write_pixels(path: Path, bgr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if path.suffix in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), bgr, params):
        raise ImageError(path, "could not be written (is the folder writable, the disk full?)")
