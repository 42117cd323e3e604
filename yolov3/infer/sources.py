"""What ``yolov3 detect SOURCE`` reads: an image, a folder, a glob, a video file or a webcam index.

``open_source(spec)`` decides the kind and yields ``Frame`` objects in order. Images are decoded to
RGB uint8 (``yolov3.data.images.read_image``); a file that cannot be decoded, or a video frame that
cannot be read, comes back as a ``Frame`` with ``error`` set and no image, so the caller reports it
and goes on. A folder without images, a glob that matches nothing or a path that does not exist is
a ``UserError`` raised at once.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from yolov3.data.images import ImageError, is_image_file, list_images, read_image
from yolov3.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
_MAX_BAD_FRAMES = 10  # consecutive unreadable frames before a video is given up


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


def is_video_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(VIDEO_SUFFIXES)


class Source:
    """An ordered collection of images and videos (``kind`` = images | video | webcam)."""

    def __init__(self, spec: str, files: list[Path] | None = None, webcam: int | None = None) -> None:
        self.spec = spec
        self.files = files or []
        self.webcam = webcam
        if webcam is not None:
            self.kind = "webcam"
        elif any(is_video_file(f) for f in self.files):
            self.kind = "video"
        else:
            self.kind = "images"

    def __len__(self) -> int:
        """Frames to expect (video frame counts as their headers state; 0 for a webcam)."""
        if self.webcam is not None:
            return 0
        total = 0
        for f in self.files:
            if is_video_file(f):
                cap = cv2.VideoCapture(str(f))
                total += max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
                cap.release()
            else:
                total += 1
        return total

    def __iter__(self) -> Iterator[Frame]:
        if self.webcam is not None:
            yield from _read_video(cv2.VideoCapture(self.webcam), f"webcam:{self.webcam}", None)
            return
        for f in self.files:
            if is_video_file(f):
                cap = cv2.VideoCapture(str(f))
                if not cap.isOpened():
                    yield Frame(str(f), error="cannot open video")
                    continue
                yield from _read_video(cap, str(f), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
            else:
                try:
                    yield Frame(str(f), read_image(f))
                except ImageError as exc:
                    yield Frame(str(f), error=exc.reason)


def _read_video(cap: cv2.VideoCapture, name: str, count: int | None) -> Iterator[Frame]:
    """Frames as RGB; an unreadable frame inside the stated length is reported and skipped."""
    limit = count if count and count > 0 else None  # None: a stream, or a container without a count
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if 0 < fps < 1000 else 30.0
    index, bad = 0, 0
    try:
        while limit is None or index < limit:
            ok, frame = cap.read()
            if ok and frame is not None:
                bad = 0
                yield Frame(name, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), index, fps=fps)
            elif limit is None or bad >= _MAX_BAD_FRAMES:
                return
            else:
                bad += 1
                yield Frame(name, None, index, "unreadable video frame", fps)
            index += 1
    finally:
        cap.release()


def open_source(spec: str | os.PathLike | int) -> Source:
    """The ``Source`` that ``spec`` names: a webcam index (``0``), an image or video file, a folder
    (its images and videos, recursively, sorted) or a glob (``data/*.jpg``, ``**`` allowed)."""
    text = str(spec)
    if isinstance(spec, int) or text.isdigit():
        return Source(text, webcam=int(text))
    path = Path(text)
    if path.is_dir():
        files = list_images(path) + sorted(p for p in path.rglob("*") if p.is_file() and is_video_file(p))
        if not files:
            raise UserError(
                f"{path}: no images or videos in this folder (looked for image and video suffixes)"
            )
        return Source(text, sorted(files))
    if path.is_file():  # any suffix: the image reader decides (and reports) what it cannot decode
        return Source(text, [path])
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        files = [f for f in files if is_image_file(f) or is_video_file(f)]
        if not files:
            raise UserError(f"{text}: the pattern matches no image or video files")
        return Source(text, files)
    raise UserError(f"{text}: no such file, folder or webcam index")
