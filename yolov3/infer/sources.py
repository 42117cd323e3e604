"""What ``yolov3 detect SOURCE`` reads: an image, a folder, a glob, a video file, an image URL, a stream
URL or a webcam index.

``open_source(spec)`` decides the kind and yields ``Frame`` objects in order. Images are decoded to
RGB uint8 (``yolov3.data.images.read_image``); a file that cannot be decoded, or a video frame that
cannot be read, comes back as a ``Frame`` with ``error`` set and no image, so the caller reports it
and goes on; so does an image or video over the pixel limit (``yolov3.data.images.check_pixels``: a
video's stated frame size before its first frame is decoded, then each frame's). A folder without
images, a glob that matches nothing or a path that does not exist is a ``UserError`` raised at once.

URLs: an ``http(s)://`` URL whose path ends in an image suffix is fetched once (at most
``URL_MAX_BYTES``, ``URL_TIMEOUT`` seconds) and decoded like a file; any other URL with a stream scheme
(``rtsp://``, ``http(s)://`` MJPEG / HLS, ...) and a webcam index are live sources, read by the one
module that reads them, ``yolov3.infer.stream.LiveSource`` (a background reader, reconnects, its
pixel-limit and open-timeout rules), here keeping every frame (tracking keeps the newest by default)
and allowed ``URL_TIMEOUT`` seconds to open.
Credentials in a URL (``user:password@``) never appear in names or messages (``redact``).
"""

from __future__ import annotations

import glob
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2

from yolov3.data.images import (
    ImageError,
    PixelLimitError,
    check_pixels,
    decode_image,
    is_image_file,
    list_images,
    read_image,
)
from yolov3.errors import UserError
from yolov3.infer.frame import Frame
from yolov3.infer.stream import LiveSource, is_stream, redact

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
URL_TIMEOUT = 30.0  # seconds to open a stream or fetch an image URL
URL_MAX_BYTES = 100 * 2**20  # largest image fetched from a URL
_MAX_BAD_FRAMES = 10  # consecutive unreadable frames before a video is given up


def is_image_url(spec: Any) -> bool:
    """An ``http(s)://`` URL whose path names an image file (``.../photo.jpg``)."""
    url = urlsplit(str(spec))
    return url.scheme.lower() in ("http", "https") and is_image_file(url.path)


def is_video_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(VIDEO_SUFFIXES)


class Source:
    """An ordered collection of images and videos (``kind`` = images | video), a webcam or a stream URL
    (``kind`` webcam | stream: ``live`` is the index or URL; neither split over processes nor resumed),
    or one image fetched from a URL (``kind`` images, ``url`` set)."""

    def __init__(self, spec: str, files: list[Path] | None = None, webcam: int | None = None,
                 stream: str | None = None, url: str | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.files = files or []
        self.webcam, self.stream, self.url = webcam, stream, url
        if webcam is not None:
            self.kind = "webcam"
        elif stream is not None:
            self.kind = "stream"
        elif any(is_video_file(f) for f in self.files):
            self.kind = "video"
        else:
            self.kind = "images"

    @property
    def live(self) -> int | str | None:
        """The webcam index or stream URL this source reads, else None."""
        return self.webcam if self.webcam is not None else self.stream

    @property
    def whole(self) -> bool:
        """Read in one go by one process (a webcam, a stream, an image URL): no file list to share out
        over processes or to resume."""
        return self.live is not None or self.url is not None

    def __len__(self) -> int:
        """Frames to expect (video frame counts as their headers state; 0 for a webcam or stream)."""
        if self.live is not None:
            return 0
        if self.url is not None:
            return 1
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
        if self.live is not None:  # every frame: a detect run writes a result for each
            label = redact(self.stream) if self.stream is not None else None  # None: webcam:N
            yield from LiveSource(self.live, keep_all=True, open_timeout=URL_TIMEOUT, label=label)
            return
        if self.url is not None:
            try:
                yield Frame(redact(self.url), decode_image(fetch_url(self.url), redact(self.url)))
            except ImageError as exc:
                yield Frame(redact(self.url), error=exc.reason)
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
    """Frames as RGB; an unreadable frame inside the stated length is reported and skipped; a frame
    over the pixel limit (the stated size checked before the first read) is reported and ends it."""
    limit = count if count and count > 0 else None  # None: a container without a count
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if 0 < fps < 1000 else 30.0
    index, bad = 0, 0
    try:
        # 0 x 0 when the container does not say: then each frame is checked as it arrives
        check_pixels(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), name)
        while limit is None or index < limit:
            ok, frame = cap.read()
            if ok and frame is not None:
                bad = 0
                check_pixels(frame.shape[1], frame.shape[0], name)
                yield Frame(name, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), index, fps=fps)
            elif limit is None or bad >= _MAX_BAD_FRAMES:
                return
            else:
                bad += 1
                yield Frame(name, None, index, "unreadable video frame", fps)
            index += 1
    except PixelLimitError as exc:
        yield Frame(name, None, index, exc.reason, fps)
    finally:
        cap.release()


def fetch_url(url: str) -> bytes:
    """The body at ``url`` (at most ``URL_MAX_BYTES``); a ``UserError`` naming the URL when it cannot be
    fetched or is larger."""
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as response:
            data = response.read(URL_MAX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UserError(f"{redact(url)}: cannot fetch ({getattr(exc, 'reason', exc)})") from exc
    if len(data) > URL_MAX_BYTES:
        raise UserError(f"{redact(url)}: larger than {URL_MAX_BYTES // 2**20} MiB, not fetched")
    return data


def open_source(spec: str | os.PathLike | int) -> Source:
    """The ``Source`` that ``spec`` names: a webcam index (``0``), an image or video file, a folder
    (its images and videos, recursively, sorted), a glob (``data/*.jpg``, ``**`` allowed), an image URL
    or a stream URL (module docstring)."""
    text = str(spec)
    if isinstance(spec, int) or text.isdigit():
        return Source(text, webcam=int(text))
    if is_image_url(text):
        return Source(redact(text), url=text)
    if is_stream(text):
        return Source(redact(text), stream=text)
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
