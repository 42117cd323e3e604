"""``Frame``: one picture a source yields (``yolov3.infer.sources`` for files, URLs and, through
``yolov3.infer.stream``, webcams and streams), decoded or carrying why it could not be; what the image
loop (``yolov3.infer.loop``) takes besides paths and arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """One picture to detect on. ``image``: ``(H, W, 3)`` uint8 RGB, or None with ``error`` set.
    ``path``: the file (or ``webcam:N``); ``index``: the frame number in a video / stream, else 0;
    ``fps``: the frame rate of its video (30 when the container does not say), None for images."""

    path: str
    image: np.ndarray | None = None
    index: int = 0
    error: str | None = None
    fps: float | None = None


__all__ = ["Frame"]
