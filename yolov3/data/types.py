"""The one in-memory form every annotation format is read into and written from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    """One image and its boxes.

    ``boxes``: ``(N, 4)`` float32, ``(x1, y1, x2, y2)`` in absolute pixels of the original image.
    ``classes``: ``(N,)`` int64, contiguous indices into the dataset's class names.
    ``difficult``: ``(N,)`` bool (VOC); ``iscrowd``: ``(N,)`` bool (COCO). Both are kept out of
    training targets and honoured in evaluation. ``width`` / ``height`` are 0 when not yet known.
    """

    image: str
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    difficult: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    iscrowd: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    width: int = 0
    height: int = 0
    image_id: int | str | None = None  # the source's own id (COCO image id), kept for round trips
