"""The one image loop: ``detect_batches(detector, items, batch_size)`` reads pictures, runs them through
the detector in batches and yields, per item and in order, an ``Outcome``: its ``Detections``, or the
error that made it unreadable (the item is reported, never a crash). ``Detector.predict``, ``detect``,
``val``, tracking and Ray Data all iterate it; the server's batcher, which gathers decoded requests
itself, calls the per-batch step it calls (``Detector.predict_arrays``).

A picture is a path (read with ``yolov3.data.images.read_image``), a NumPy array (RGB unless ``bgr``),
a PIL image, or a ``yolov3.infer.frame.Frame`` (decoded RGB already, or carrying why it is not).
Reading ahead on ``workers`` threads (``val``) is for files only: a live source must be read no
faster than it is detected on.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from yolov3.config import InferConfig
from yolov3.data.images import ImageError, read_image
from yolov3.errors import UserError
from yolov3.infer.frame import Frame
from yolov3.infer.results import Detections
from yolov3.infer.slicing import check_sliceable

ImageLike = str | os.PathLike | np.ndarray | Frame | Any  # Any: a PIL image
T = TypeVar("T")
READ_AHEAD = 2  # batches read ahead of the one being detected on, with workers: memory stays bounded


def to_rgb(image: ImageLike, bgr: bool = False) -> tuple[np.ndarray, str | None]:
    """``(RGB uint8 (H, W, 3), path or None)`` from a path, an array (RGB, or BGR with ``bgr``), a PIL
    image or a ``Frame``. Grey arrays become 3-channel; a 4-channel array loses its alpha. Raises
    ``ImageError`` for a file or frame that cannot be read, ``UserError`` for anything else unusable."""
    if isinstance(image, Frame):
        if image.image is None:
            raise ImageError(image.path, image.error or "no picture")
        return image.image, image.path
    if isinstance(image, (str, os.PathLike)):
        return read_image(image), str(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image.Image
        return np.asarray(image.convert("RGB")), getattr(image, "filename", None) or None
    if not isinstance(image, np.ndarray):
        kind = type(image).__name__
        raise UserError(f"cannot detect on a {kind}: expected a path, NumPy array or PIL image")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise UserError(f"image array of shape {image.shape}: expected (H, W, 3)")
    image = image[..., :3]
    if image.dtype != np.uint8:
        raise UserError(f"image array of dtype {image.dtype}: expected uint8 (0..255)")
    return np.ascontiguousarray(image[..., ::-1] if bgr else image), None


class Predictor(Protocol):
    """What the loop needs of a detector: one batch of RGB arrays -> one ``Detections`` each."""

    def predict_arrays(self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None,
                       settings: InferConfig | None = None) -> list[Detections]: ...  # fmt: skip


@dataclass
class Outcome(Generic[T]):
    """One item's result: ``detections``, or ``error`` (an ``ImageError`` for a file or frame that
    could not be read, a ``UserError`` for an unusable array) and no detections. ``read_ms``: the time
    spent reading and decoding it."""

    item: T
    detections: Detections | None = None
    error: UserError | None = None
    read_ms: float = 0.0

    @property
    def reason(self) -> str:
        """Why there are no detections, without the path (``ImageError.reason``); "" when there are."""
        if self.error is None:
            return ""
        return getattr(self.error, "reason", str(self.error))


@dataclass
class _Read:
    image: np.ndarray | None
    path: str | None
    error: UserError | None
    ms: float


def _read(picture: ImageLike, bgr: bool) -> _Read:
    t = time.perf_counter()
    try:
        image, path = to_rgb(picture, bgr)
    except UserError as exc:  # ImageError included: reported with the item, the loop goes on
        return _Read(None, None, exc, 0.0)
    return _Read(image, path, None, (time.perf_counter() - t) * 1e3)


def _reads(batches: Iterator[list[T]], picture: Callable[[T], ImageLike], bgr: bool, workers: int
           ) -> Iterator[tuple[list[T], list[_Read]]]:  # fmt: skip
    """Each batch with its pictures read: in this thread (``workers`` 0), or on ``workers`` threads
    ``READ_AHEAD`` batches ahead."""
    if workers <= 0:
        for batch in batches:
            yield batch, [_read(picture(item), bgr) for item in batch]
        return
    with ThreadPoolExecutor(workers) as pool:
        ahead: list[tuple[list[T], list[Future]]] = []

        def submit() -> None:
            for batch in itertools.islice(batches, READ_AHEAD - len(ahead)):
                ahead.append((batch, [pool.submit(_read, picture(item), bgr) for item in batch]))

        submit()
        while ahead:
            batch, futures = ahead.pop(0)
            submit()
            yield batch, [f.result() for f in futures]


def _sliceable(r: _Read, tile: int) -> _Read:
    """``r``, or its picture's error when it cannot be cut into tiles (``check_sliceable``)."""
    if r.image is None:
        return r
    try:
        check_sliceable(r.image.shape[1], r.image.shape[0], tile, r.path or "picture")
    except UserError as exc:
        return _Read(None, None, exc, r.ms)
    return r


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def detect_batches(
    detector: Predictor,
    items: Iterable[T],
    batch_size: int = 1,
    settings: InferConfig | None = None,
    picture: Callable[[T], ImageLike] | None = None,
    bgr: bool = False,
    workers: int = 0,
) -> Iterator[Outcome[T]]:
    """One ``Outcome`` per item of ``items``, in order (module docstring). ``batch_size`` pictures go
    through ``detector.predict_arrays`` at a time (the unreadable ones left out of the batch); no item
    is taken from ``items`` before the batch before it has been yielded, unless ``workers`` > 0 (then
    files are read on that many threads, ``READ_AHEAD`` batches ahead). ``settings``: this call's
    ``InferConfig`` (``Detector.resolve``), default the detector's own. ``picture``: how to get the
    picture from an item (default: the item is the picture); ``bgr``: arrays are BGR. With a ``tile``
    (sliced inference), a picture too small for it or over the pixel limit is its item's error.
    """
    if batch_size < 1:
        raise UserError(f"batch size {batch_size}: must be at least 1")
    picture = picture or (lambda item: item)
    tile = (settings or getattr(detector, "settings", None) or InferConfig()).tile
    for batch, reads in _reads(_batched(items, batch_size), picture, bgr, workers):
        if tile is not None:
            reads = [_sliceable(r, tile) for r in reads]
        good = [r for r in reads if r.image is not None]
        found = iter(detector.predict_arrays([r.image for r in good], [r.path for r in good], settings)
                     if good else [])  # fmt: skip
        for item, r in zip(batch, reads):
            yield Outcome(item, next(found) if r.error is None else None, r.error, r.ms)


__all__ = ["ImageLike", "Outcome", "Predictor", "detect_batches", "to_rgb"]
