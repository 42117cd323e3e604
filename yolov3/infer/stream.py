"""Live sources: RTSP / HTTP(S) stream URLs and webcams, read in a background thread.

A model slower than its camera must not fall behind it: by default the reader keeps only the newest
frame, so each result is at most about one model period plus one frame interval old, however long
the run (``keep_all`` keeps every frame instead, in a bounded queue that holds the reader back when
full). A stream that cannot be opened within ``open_timeout`` seconds is a ``UserError`` naming it;
a stream that drops is reopened after ``backoff`` seconds, doubling up to ``max_backoff``, at most
``retries`` times in a row, and then ends with a last ``StreamFrame`` whose ``error`` says so. A
stream over the pixel limit (``yolov3.data.images.check_pixels``) is a ``UserError`` when its stated
frame size is, else ends at the first frame that is, with the same last ``StreamFrame``. A URL whose
capture states a frame count (a video file served over HTTP) ends after that many frames and is not
reopened then (reopening would replay it from the start); one that fails sooner has dropped.
``label`` is the path its frames carry (default ``webcam:N``, or ``stream-<host_path>`` for a URL).

This is the one module that reads webcams and streams: ``yolov3.infer.sources`` (``detect``) hands
them here too, keeping every frame.
Credentials in a URL (``user:password@``) never appear in names or messages.

``capture`` (a callable ``spec -> object with read() / isOpened() / release() / get()``, default
OpenCV's ``VideoCapture``) lets tests and benchmarks feed a simulated camera.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import cv2

from yolov3.data.images import PixelLimitError, check_pixels
from yolov3.errors import UserError
from yolov3.infer.frame import Frame

KEEP_ALL_LIMIT = 256  # frames queued with keep_all before the reader waits for the consumer
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


def is_stream(spec: Any) -> bool:
    """True for a webcam index (``0``, ``"1"``) or a URL with a stream scheme (``rtsp://...``)."""
    text = str(spec)
    return text.isdigit() or urlsplit(text).scheme.lower() in STREAM_SCHEMES


def redact(url: str) -> str:
    """``url`` without a password: ``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x``."""
    return re.sub(r"(//[^/:@]*):[^/@]*@", r"\1:***@", url)


def opencv_capture(spec: str | int, timeout_ms: int) -> cv2.VideoCapture:
    """OpenCV's capture of a webcam index or a URL (FFmpeg, with open and read timeouts)."""
    if isinstance(spec, int):
        return cv2.VideoCapture(spec)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    return cv2.VideoCapture(spec, cv2.CAP_FFMPEG, params)


@dataclass
class StreamFrame(Frame):
    """A ``Frame`` from a live source: ``stamp`` = ``time.monotonic()`` when it was read, ``dropped``
    = frames read and replaced by newer ones before it (0 with ``keep_all``)."""

    stamp: float = 0.0
    dropped: int = 0


def _safe(url: Any) -> str:
    """``host_path`` of a split URL with anything but letters, digits, ``.`` and ``-`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", f"{url.hostname or ''}{url.path}").strip("_") or "stream"


class LiveSource:
    """Frames of a stream URL or webcam index, newest first (see the module docstring); iterate once,
    ``close()`` (or leaving the iteration) stops the reader."""

    def __init__(
        self,
        spec: str | int,
        keep_all: bool = False,
        open_timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        capture: Callable[[str | int], Any] | None = None,
        label: str | None = None,
    ) -> None:
        text = str(spec)
        self.spec: str | int = int(text) if text.isdigit() else text
        self.kind = "webcam" if isinstance(self.spec, int) else "stream"
        self.name = f"webcam:{self.spec}" if self.kind == "webcam" else redact(text)
        # what frames carry as their path; by default usable in file names (track's writers)
        self.label = label or (self.name if self.kind == "webcam" else "stream-" + _safe(urlsplit(text)))
        self.keep_all, self.open_timeout, self.retries = keep_all, open_timeout, retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self._capture = capture or (lambda s: opencv_capture(s, int(open_timeout * 1000)))
        self._buffer: deque[StreamFrame] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._done = False
        self._thread: threading.Thread | None = None
        self.error: str | None = None  # why the stream ended early, if it did
        self.fps = 30.0
        self.length: int | None = None  # frames a finite video behind a URL states it has

    def __len__(self) -> int:
        return 0  # unknown: a live source has no end

    def open(self) -> Any:
        """A capture that is open, else ``UserError`` naming the source; never waits much longer than
        ``open_timeout`` (a capture stuck opening is left to its daemon thread)."""
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["cap"] = self._capture(self.spec)
            except Exception as exc:  # noqa: BLE001 - reported to the caller below
                box["error"] = exc

        t = threading.Thread(target=target, daemon=True, name=f"open {self.name}")
        t.start()
        t.join(self.open_timeout)
        if t.is_alive():
            raise UserError(f"{self.name}: the stream did not open within {self.open_timeout:g} s")
        cap = box.get("cap")
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            why = f" ({box['error']})" if "error" in box else ""
            raise UserError(f"{self.name}: cannot open this {self.kind}{why}")
        return cap

    def start(self) -> None:
        """Open the source (errors as ``open``) and start the reader thread."""
        cap = self.open()
        try:  # 0 x 0 when the source does not say: then each frame is checked as it arrives (_read)
            check_pixels(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         self.name)  # fmt: skip
        except PixelLimitError:
            cap.release()
            raise
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = count if count > 0 else None
        self._thread = threading.Thread(target=self._read, args=(cap,), daemon=True, name=f"read {self.name}")
        self._thread.start()

    def __iter__(self) -> Iterator[StreamFrame]:
        if self._thread is None:
            self.start()
        try:
            while True:
                with self._cond:
                    while not self._buffer and not self._done:
                        self._cond.wait(0.1)
                    if not self._buffer:
                        break
                    frame = self._buffer.popleft()
                    self._cond.notify_all()
                frame.image = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
                yield frame
            if self.error:
                yield StreamFrame(self.label, None, -1, self.error, self.fps, time.monotonic())
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _put(self, frame: StreamFrame) -> None:
        with self._cond:
            if self.keep_all:
                while len(self._buffer) >= KEEP_ALL_LIMIT and not self._stop.is_set():
                    self._cond.wait(0.05)
            elif self._buffer:
                frame.dropped = self._buffer[-1].dropped + 1
                self._buffer.clear()
            self._buffer.append(frame)
            self._cond.notify_all()

    def _read(self, cap: Any) -> None:
        """The reader thread: frames into the buffer; reconnect with backoff when reading fails."""
        index, failures = 0, 0
        try:
            while not self._stop.is_set() and (self.length is None or index < self.length):
                ok, image = cap.read() if cap is not None else (False, None)
                if ok and image is not None:
                    try:
                        check_pixels(image.shape[1], image.shape[0], self.name)
                    except PixelLimitError as exc:
                        self.error = str(exc)
                        return
                    failures = 0
                    # kept BGR here: only the frames handed out are converted (in __iter__)
                    self._put(StreamFrame(self.label, image, index, None, self.fps, time.monotonic()))
                    index += 1
                    continue
                if cap is not None:
                    cap.release()
                    cap = None
                if failures >= self.retries:
                    self.error = f"{self.name}: dropped; gave up after {failures} failed reconnects"
                    return
                failures += 1
                if self._stop.wait(min(self.max_backoff, self.backoff * 2 ** (failures - 1))):
                    return
                try:
                    cap = self.open()
                except UserError:
                    cap = None
        finally:
            if cap is not None:
                cap.release()
            with self._cond:
                self._done = True
                self._cond.notify_all()


__all__ = ["KEEP_ALL_LIMIT", "LiveSource", "StreamFrame", "is_stream", "redact"]
