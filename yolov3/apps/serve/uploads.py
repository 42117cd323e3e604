"""An upload's bytes -> an RGB uint8 array, decoded as ``yolov3 detect`` reads a file.

Checks, in order: the body is not empty, the header names an image format (PIL), the header's
``width * height`` is within ``max_pixels`` (``yolov3.data.images.check_pixels``, the one pixel check,
and PIL's own guard; before any pixel is decoded: a 30,000 x 30,000 PNG of a few kilobytes is refused
here), the file is whole, then the pixels are decoded by OpenCV exactly as
``yolov3.data.images.read_image`` decodes a file (``IMREAD_COLOR``: EXIF orientation applied), so the
server and ``yolov3 detect`` see the same array.

Whole: OpenCV fills the missing rows of a truncated JPEG with grey instead of failing. A JPEG whose
last bytes hold its end-of-image marker (``FF D9``, which cannot occur inside the compressed data) is
whole; any other JPEG, and any format but PNG (whose truncation OpenCV does refuse), is decoded once
by PIL first, which refuses truncated files — a second decode only for the uncommon cases.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from yolov3.data.images import PixelLimitError, open_header
from yolov3.errors import UserError

_JPEG_END = b"\xff\xd9"
_TAIL = 64  # bytes at the end searched for it (some writers pad after the marker)


class UploadError(UserError):
    """A request body that is not an acceptable image; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def decode_image(data: bytes, max_pixels: int | None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from an encoded image; ``UploadError`` 400 (not an image, truncated,
    corrupt) or 413 (more than ``max_pixels`` pixels; None: ``yolov3.data.images.pixel_limit()``)."""
    if not data:
        raise UploadError(400, "empty body: send the image file as the body or as a multipart field")
    try:
        im = open_header(io.BytesIO(data), "upload", max_pixels, "--max-pixels")
    except PixelLimitError as exc:
        raise UploadError(413, str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UploadError(400, f"not an image PIL or OpenCV can read ({_starts(data)})") from exc
    w, h = im.size
    if not (im.format == "PNG" or (im.format == "JPEG" and _JPEG_END in data[-_TAIL:])):
        try:
            im.load()  # every pixel: a truncated or corrupt file fails here
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise UploadError(400, f"{im.format} image of {w}x{h} does not decode: {exc}") from exc
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UploadError(400, f"{im.format} image of {w}x{h} does not decode (truncated or corrupt)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _starts(data: bytes) -> str:
    head = data[:16]
    return f"{len(data)} bytes starting {head!r}"


__all__ = ["UploadError", "decode_image"]
