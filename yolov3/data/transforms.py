"""Image-side letterbox (``docs/seed.md``, "Letterbox"); the geometry lives in ``yolov3.boxes``."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from yolov3.boxes import Letterbox

GREY = 128  # the seed's canvas fill


def letterbox_uint8(image: np.ndarray, in_w: int, in_h: int | None = None) -> tuple[np.ndarray, Letterbox]:
    """Fit ``(H, W, 3)`` uint8 ``image`` into an ``(in_h, in_w, 3)`` uint8 canvas of grey 128.

    Resized (``cv2.resize``, bilinear, keeping the aspect ratio) and pasted centred, as the seed's
    ``image_preporcess`` before its division by 255. Colour order is the input's.
    """
    h, w = image.shape[:2]
    lb = Letterbox.fit(w, h, in_w, in_h)
    canvas = np.full((lb.in_h, lb.in_w, 3), GREY, dtype=np.uint8)
    if (lb.new_w, lb.new_h) == (w, h):
        resized = image
    else:
        resized = cv2.resize(np.ascontiguousarray(image), (lb.new_w, lb.new_h))
    canvas[lb.pad_y : lb.pad_y + lb.new_h, lb.pad_x : lb.pad_x + lb.new_w] = resized
    return canvas, lb


def letterbox_image(image: np.ndarray, in_w: int, in_h: int | None = None) -> tuple[np.ndarray, Letterbox]:
    """Fit ``(H, W, 3)`` uint8 ``image`` into ``(in_h, in_w, 3)`` float32 in [0, 1].

    Resized (bilinear, keeping the aspect ratio) and pasted centred on grey 128, then divided by 255,
    exactly as the seed's ``image_preporcess``. Colour order is whatever the input's (the seed: RGB).
    """
    canvas, lb = letterbox_uint8(image, in_w, in_h)
    return canvas.astype(np.float32) / np.float32(255.0), lb


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in [0, 1], contiguous (one conversion, no float64)."""
    chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()  # uint8 copy
    return chw.to(torch.float32).div_(255.0)
