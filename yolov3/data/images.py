"""Image files: size from the header alone, a safe reader, and listing a folder of images.

Orientation: a JPEG's EXIF orientation tag (5-8 means the camera was turned) is honoured by both
``image_size`` and ``read_image``, so the size a label format is normalised against is the size of
the array the loader decodes (OpenCV's decoder rotates by the tag; so do most labelling tools).

Truncated JPEGs are refused, never filled in: libjpeg decodes a JPEG cut short with its missing rows
grey (and writes "Premature end of JPEG file" to the terminal). A JPEG whose last bytes hold its
end-of-image marker (``FF D9``, which cannot occur inside the compressed data) is whole; one without
is an ``ImageError`` before the decoder sees it.
"""

from __future__ import annotations

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

# Decompression-bomb guard off: data sets legitimately hold very large aerial / medical images, and
# only the header is read here.
Image.MAX_IMAGE_PIXELS = None


class ImageError(UserError):
    """An image that is missing, unreadable or not an image. ``path`` names it."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _missing_reason(path: Path) -> str:
    if not path.exists():
        return "image file not found"
    if path.is_dir():
        return "is a directory, not an image"
    return "not a readable image"


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` in pixels of the image as decoded (EXIF orientation applied).

    Reads only the file header (PIL), not the pixels. Raises ``ImageError`` naming the path when the
    file is missing or is not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
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


def decode_image(data: bytes, source: str | os.PathLike) -> np.ndarray:
    """Encoded image bytes -> ``(H, W, 3)`` uint8 **RGB**, EXIF orientation applied; ``ImageError``
    naming ``source`` for bytes that are not a whole image."""
    if is_truncated_jpeg(data):
        raise ImageError(source, "not a readable image (truncated JPEG: no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise ImageError(source, "not a readable image" + (" (empty file)" if not data else ""))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 **RGB** (grey and alpha images become 3-channel
    RGB; ``decode_image``). Raises ``ImageError`` naming the path when the file is missing, empty,
    truncated or cannot be decoded; never returns None.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(path, _missing_reason(path)) from exc
    return decode_image(data, path)


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
