"""Image files: size from the header alone, a safe reader, and listing a folder of images.

Orientation: a JPEG's EXIF orientation tag (5-8 means the camera was turned) is honoured by both
``image_size`` and ``read_image``, so the size a label format is normalised against is the size of
the array the loader decodes (OpenCV's decoder rotates by the tag; so do most labelling tools).

Truncated JPEGs are refused, never filled in: libjpeg decodes a JPEG cut short with its missing rows
grey (and writes "Premature end of JPEG file" to the terminal). A JPEG whose last bytes hold its
end-of-image marker (``FF D9``, which cannot occur inside the compressed data) is whole; one without
is an ``ImageError`` before the decoder sees it.

One pixel limit (``check_pixels``) for every image and frame decoded: files and fetched bytes here,
uploads to the server (``yolov3.apps.serve.uploads``), video and stream frames
(``yolov3.infer.sources``, ``yolov3.infer.stream``). Its size is ``MAX_PIXELS`` unless
``$YOLOV3_MAX_PIXELS`` (or the caller, e.g. ``yolov3 serve --max-pixels``) says otherwise. Headers are
read by PIL with PIL's own decompression-bomb guard left as PIL sets it: nothing here changes
``PIL.Image.MAX_IMAGE_PIXELS`` for the process.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from yolov3.errors import UserError

# Suffixes (lower case) treated as images when a folder is listed.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_JPEG_TAIL = 64  # bytes at the end searched for the end-of-image marker (some writers pad after it)
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # orientations that swap width and height

# The most pixels (width x height) an image or video frame may have: 2 x PIL's default
# MAX_IMAGE_PIXELS (89,478,485), the size at which PIL itself refuses to open an image, so PIL's guard
# and this one agree. About 13,400 x 13,400: above any camera's photos (a 100 MP medium-format frame
# is 11,648 x 8,736 = 102 M; a 50 MP one 8,688 x 5,792 = 50.3 M, just over the 50 M that serve used to
# take), yet an RGB copy of it (537 MB) still fits in memory. A server facing untrusted clients, or a
# data set of huge aerial / medical images, sets its own: above 178,956,970 PIL's guard must also be
# raised by the program (``PIL.Image.MAX_IMAGE_PIXELS``), which yolov3 never does for it.
MAX_PIXELS = 178_956_970
MAX_PIXELS_ENV = "YOLOV3_MAX_PIXELS"


class ImageError(UserError):
    """An image that is missing, unreadable or not an image. ``path`` names it; ``label``: what kind of
    refusal it is, for listings of skipped images (``yolov3 detect``'s)."""

    label = "unreadable"

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class PixelLimitError(ImageError):
    """An image or frame over the pixel limit (``check_pixels``); ``path`` names its source."""

    label = "over the pixel limit"


def pixel_limit() -> int:
    """The pixel limit in force: ``$YOLOV3_MAX_PIXELS`` when set (read at each call), else ``MAX_PIXELS``."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return MAX_PIXELS
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"{MAX_PIXELS_ENV} = {text!r}: expected a number of pixels >= 1")
    return value


def check_pixels(width: int, height: int, source: str | os.PathLike, limit: int | None = None,
                 setting: str = f"${MAX_PIXELS_ENV}") -> None:  # fmt: skip
    """The one pixel check: ``PixelLimitError`` naming ``source``, its size and the limit when
    ``width * height`` is over ``limit`` (default ``pixel_limit()``); ``setting`` names what changes
    the limit in the message."""
    limit = pixel_limit() if limit is None else limit
    if width * height > limit:
        raise PixelLimitError(source, f"{width}x{height} = {width * height:,} pixels: over the limit of "
                                      f"{limit:,} ({setting})")  # fmt: skip


def open_header(fp: str | os.PathLike | io.BytesIO, source: str | os.PathLike,
                limit: int | None = None, setting: str = f"${MAX_PIXELS_ENV}") -> Image.Image:  # fmt: skip
    """PIL's lazy image (the header read, no pixels) after ``check_pixels``; ``PixelLimitError`` also
    when PIL's own decompression-bomb guard refuses it. Other PIL errors pass through."""
    try:
        im = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise PixelLimitError(source, f"over PIL's pixel limit ({exc})") from exc
    try:
        check_pixels(*im.size, source, limit, setting)
    except PixelLimitError:
        im.close()
        raise
    return im


def _missing_reason(path: Path) -> str:
    if not path.exists():
        return "image file not found"
    if path.is_dir():
        return "is a directory, not an image"
    return "not a readable image"


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` in pixels of the image as decoded (EXIF orientation applied).

    Reads only the file header (PIL), not the pixels. Raises ``ImageError`` naming the path when the
    file is missing or is not an image, ``PixelLimitError`` when it is over the pixel limit.
    """
    path = Path(path)
    try:
        with open_header(path, path) as im:
            w, h = im.size
            if im.format in ("JPEG", "MPO", "TIFF", "WEBP", "PNG"):
                try:
                    if im.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED:
                        w, h = h, w
                except Exception:  # a broken EXIF block: the pixels are still there, unrotated
                    pass
    except FileNotFoundError as exc:
        raise ImageError(path, "image file not found") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageError(path, f"{_missing_reason(path)} ({exc.__class__.__name__})") from exc
    if w <= 0 or h <= 0:
        raise ImageError(path, f"image header gives size {w}x{h}")
    return int(w), int(h)


def is_truncated_jpeg(data: bytes) -> bool:
    """True for JPEG bytes without their end-of-image marker (the module docstring)."""
    return data[:2] == _JPEG_START and _JPEG_END not in data[-_JPEG_TAIL:]


def decode_image(data: bytes, source: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Encoded image bytes -> ``(H, W, 3)`` uint8 **RGB**, EXIF orientation applied; ``ImageError``
    naming ``source`` for bytes that are not a whole image, ``PixelLimitError`` (from the header, before
    decoding) over ``max_pixels`` (default ``pixel_limit()``)."""
    if is_truncated_jpeg(data):
        raise ImageError(source, "not a readable image (truncated JPEG: no end-of-image marker)")
    try:
        open_header(io.BytesIO(data), source, max_pixels).close()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass  # not PIL's to judge: OpenCV decides below, and the decoded size is checked then
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise ImageError(source, "not a readable image" + (" (empty file)" if not data else ""))
    check_pixels(image.shape[1], image.shape[0], source, max_pixels)  # a format PIL cannot read
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 **RGB** (grey and alpha images become 3-channel
    RGB; ``decode_image``). Raises ``ImageError`` naming the path when the file is missing, empty,
    truncated or cannot be decoded, ``PixelLimitError`` when it is over ``max_pixels`` (default
    ``pixel_limit()``); never returns None.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(path, _missing_reason(path)) from exc
    return decode_image(data, path, max_pixels)


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the name ends with one of ``IMAGE_SUFFIXES`` (any case)."""
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def list_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by suffix), sorted by path; hidden files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(folder, "image folder not found")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found += [Path(root) / f for f in files if not f.startswith(".") and is_image_file(f)]
    return sorted(found)
