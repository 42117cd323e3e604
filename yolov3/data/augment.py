"""Training augmentations on the original image (``docs/seed.md``, "Augmentations").

Every function takes an ``(H, W, 3)`` uint8 image, ``boxes`` ``(N, K >= 4)`` float with
``(x1, y1, x2, y2)`` in that image's pixels in the first four columns (extra columns, e.g. the
class, ride along untouched), and an explicit ``np.random.Generator``; it returns a new image and
new boxes and never modifies its inputs. The same generator state gives the same result.

The seed's recipe (``seed_augment``): horizontal flip, random crop, random translate, each with
p = 0.5, in that order. Extras, off by default (``DataConfig.hsv`` / ``.mosaic``): HSV jitter and a
4-image mosaic.

Deviations from the seed's code base, each only where it would crash or break its own contract:
an image with no boxes is neither cropped nor translated (the seed takes the min of an empty
array); the crop window's far edge is ``min(w, ...)`` (the code base's ``max(w, ...)`` never crops
the right/bottom side, against its stated intent) and rounds outward, so fractional boxes stay
whole; translated boxes are clipped to the image (the seed's ``+-(margin - 1)`` range can push a box
up to 1 px out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from yolov3.boxes import box_area, box_convert

GREY = 128  # the seed's letterbox fill; mosaic uses it too


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """Python's ``random.uniform`` (the seed's): ``low + (high - low) * U``; tolerates low > high."""
    return low + (high - low) * rng.random()


def _extent(boxes: np.ndarray) -> np.ndarray:
    """The box enclosing every box: ``(x1_min, y1_min, x2_max, y2_max)``."""
    return np.concatenate([boxes[:, 0:2].min(axis=0), boxes[:, 2:4].max(axis=0)])


def random_horizontal_flip(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right with probability ``p``: ``x -> w - x``, swapping x1 and x2."""
    boxes = np.array(boxes, dtype=np.float32, copy=True)
    if rng.random() < p:
        w = image.shape[1]
        image = cv2.flip(np.ascontiguousarray(image), 1)
        boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    return image, boxes


def random_crop(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """With probability ``p``, crop a window that still contains every box whole; shift the boxes.

    Each side of the window lies uniformly between the image border and the boxes' extent.
    """
    boxes = np.array(boxes, dtype=np.float32, copy=True)
    if rng.random() < p and len(boxes):
        h, w = image.shape[:2]
        x1, y1, x2, y2 = _extent(boxes).tolist()
        left = max(0, math.floor(x1 - _uniform(rng, 0, x1)))
        top = max(0, math.floor(y1 - _uniform(rng, 0, y1)))
        right = min(w, math.ceil(x2 + _uniform(rng, 0, w - x2)))
        bottom = min(h, math.ceil(y2 + _uniform(rng, 0, h - y2)))
        image = image[top:bottom, left:right]
        boxes[:, [0, 2]] -= left
        boxes[:, [1, 3]] -= top
    return image, boxes


def random_translate(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """With probability ``p``, shift by ``(tx, ty)`` with an affine warp, keeping every box inside.

    As the seed: ``tx ~ U(-(left margin - 1), right margin - 1)`` (same for y), ``cv2.warpAffine``
    (bilinear, black border), boxes shifted by the same amount (then clipped to the image).
    """
    boxes = np.array(boxes, dtype=np.float32, copy=True)
    if rng.random() < p and len(boxes):
        h, w = image.shape[:2]
        x1, y1, x2, y2 = _extent(boxes).tolist()
        tx = _uniform(rng, -(x1 - 1), w - x2 - 1)
        ty = _uniform(rng, -(y1 - 1), h - y2 - 1)
        matrix = np.array([[1, 0, tx], [0, 1, ty]], dtype=np.float64)
        image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h))
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] + np.float32(tx), 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] + np.float32(ty), 0, h)
    return image, boxes


def seed_augment(
    image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """The seed's recipe: flip, crop, translate, each with probability ``p``, in that order."""
    image, boxes = random_horizontal_flip(image, boxes, rng, p)
    image, boxes = random_crop(image, boxes, rng, p)
    return random_translate(image, boxes, rng, p)


def hsv_jitter(
    image: np.ndarray, rng: np.random.Generator, hgain: float = 0.015, sgain: float = 0.7, vgain: float = 0.4
) -> np.ndarray:
    """Random hue / saturation / value gains on an RGB uint8 image (YOLOv5's recipe; not in the seed).

    Gains ``1 + U(-g, g)`` per channel, applied through lookup tables in OpenCV's HSV (H in 0..179).
    """
    gains = 1 + rng.uniform(-1, 1, 3) * np.array([hgain, sgain, vgain])
    hue, sat, val = cv2.split(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge([cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def mosaic(
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    rng: np.random.Generator,
    size: int,
    min_visible: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Four images on a ``(2 size, 2 size)`` grey canvas around a random centre (YOLOv4/v5 mosaic).

    Each image is scaled so its long side is ``size``, then placed top-left, top-right, bottom-left,
    bottom-right of the centre ``(xc, yc) ~ U(size / 2, 3 size / 2)``, cut at the canvas border.
    Boxes are shifted, clipped to the visible part, and dropped when under 2 px wide/high or when
    less than ``min_visible`` of their area remains. ``boxes``: four ``(N_i, K)`` arrays, same K.
    Returns the canvas and ``(M, K)`` boxes.
    """
    if len(images) != 4 or len(boxes) != 4:
        raise ValueError(f"mosaic needs 4 images and 4 box arrays, got {len(images)} and {len(boxes)}")
    s = int(size)
    canvas = np.full((2 * s, 2 * s, 3), GREY, dtype=np.uint8)
    xc, yc = (int(rng.uniform(s / 2, 3 * s / 2)) for _ in range(2))
    out = []
    for k, (image, b) in enumerate(zip(images, boxes)):
        h0, w0 = image.shape[:2]
        r = s / max(h0, w0)
        if r != 1:
            image = cv2.resize(
                image, (max(1, round(w0 * r)), max(1, round(h0 * r))), interpolation=cv2.INTER_LINEAR
            )
        h, w = image.shape[:2]
        # canvas window (x1, y1, x2, y2) for this quadrant; the image is anchored at the centre
        x1 = xc - w if k in (0, 2) else xc
        y1 = yc - h if k in (0, 1) else yc
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x1 + w, 2 * s), min(y1 + h, 2 * s)
        canvas[cy1:cy2, cx1:cx2] = image[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
        b = np.array(b, dtype=np.float32, copy=True)
        area = box_area(b) * r * r
        b[:, [0, 2]] = np.clip(b[:, [0, 2]] * r + x1, cx1, cx2)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]] * r + y1, cy1, cy2)
        bw, bh = box_convert(b, "xyxy", "xywh")[:, 2:].T
        keep = (bw >= 2) & (bh >= 2) & (bw * bh >= min_visible * area)
        out.append(b[keep])
    return canvas, np.concatenate(out)


__all__ = [
    "GREY", "hsv_jitter", "mosaic", "random_crop", "random_horizontal_flip", "random_translate",
    "seed_augment",
]  # fmt: skip
