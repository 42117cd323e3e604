"""The index builder's quick read of one YOLO image and its labels, for the common case only.

``quick_row(image)`` gives what ``yolov3.data.formats.yolo.read_yolo_images`` would give for an image
whose reading has nothing to report: a baseline or progressive JPEG without an EXIF block (whose
orientation could turn it), inside the pixel limit, whose label file is missing or empty or every
line of it a valid 5-field box inside the image. For anything else it returns None and the builder
asks the reader itself. The JPEG's size is read from its start-of-frame marker (what PIL reports as
its size), the labels by the reader's own parser and box conversion, so the boxes are the reader's
to the bit; ``tests/test_index.py`` compares the two on every image of its data sets.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from yolov3.boxes import box_convert
from yolov3.data.formats.common import CLIP_TOLERANCE_PX
from yolov3.data.formats.yolo import _parse_all, label_path_for
from yolov3.data.images import pixel_limit

HEAD_BYTES = 1 << 16  # a JPEG's markers before its frame header fit in this unless it holds big blocks
# Start-of-frame markers (baseline, progressive, lossless, arithmetic), not DHT (C4), JPG (C8), DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])


def jpeg_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the frame header of a JPEG's first bytes ``head``; None when it is not
    a JPEG, holds an EXIF block (APP1 ``Exif``) or the header is not within ``head``."""
    if head[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(head)
    while i + 4 <= n:
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = struct.unpack_from(">H", head, i + 2)[0]
        if marker == 0xE1 and head[i + 4 : i + 8] == b"Exif":
            return None
        if marker in _SOF:
            if i + 9 > n:
                return None
            h, w = struct.unpack_from(">HH", head, i + 5)
            return (w, h) if w > 0 and h > 0 else None
        if marker == 0xDA or length < 2:  # scan data before any frame header: not for us
            return None
        i += 2 + length
    return None


def quick_row(image: str, label_dirs: dict[str, str]) -> tuple[int, int, np.ndarray, np.ndarray, bool] | None:
    """``(width, height, boxes (N, 4) float32 x1 y1 x2 y2 px, classes (N,) int32, has label file)`` as
    the reader gives them, or None when the reader must look (see the module docstring).
    ``label_dirs``: image folder -> label folder, filled as folders are met."""
    try:
        with open(image, "rb") as f:
            size = jpeg_size(f.read(HEAD_BYTES))
    except OSError:
        return None
    if size is None or size[0] * size[1] > pixel_limit():
        return None
    w, h = size
    folder, name = os.path.split(image)
    if folder not in label_dirs:
        label_dirs[folder] = str(label_path_for(os.path.join(folder, "x.jpg")).parent)
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    try:
        with open(os.path.join(label_dirs[folder], stem + ".txt")) as f:
            text = f.read()
    except FileNotFoundError:
        return w, h, np.zeros((0, 4), np.float32), np.zeros(0, np.int32), False
    except (OSError, UnicodeDecodeError):
        return None
    parsed = _parse_all(text, None)
    if parsed is None:
        return None
    norm, classes, _ = parsed
    if len(norm) and np.abs(norm).max() > 1.5:
        return None  # the reader warns: pixel coordinates written by mistake?
    boxes = np.asarray(box_convert(norm, "cxcywhn", "xyxy", size=(w, h)), np.float32).reshape(-1, 4)
    limit = np.array([w, h, w, h], np.float32)
    if ((boxes < -CLIP_TOLERANCE_PX) | (boxes > limit + CLIP_TOLERANCE_PX)).any():
        return None  # clipped: the reader warns
    boxes = np.clip(boxes, 0, limit)
    if ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
        return None  # an empty box: the reader drops it, with a warning
    return w, h, np.ascontiguousarray(boxes, np.float32), classes.astype(np.int32), True
