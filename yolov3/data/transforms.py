"""Image-side letterbox (SEED_NOTES "Image preprocessing"); the geometry lives in ``yolov3.boxes``."""

from __future__ import annotations

import cv2
import numpy as np

from yolov3.boxes import Letterbox


def letterbox_image(image: np.ndarray, in_w: int, in_h: int | None = None) -> tuple[np.ndarray, Letterbox]:
    """Fit ``(H, W, 3)`` uint8 ``image`` into ``(in_h, in_w, 3)`` float32 in [0, 1].

    Resized (bilinear, keeping the aspect ratio) and pasted centred on grey 128, then divided by 255,
    exactly as the seed's ``image_preporcess``. Colour order is whatever the input's (the seed: RGB).
    """
    h, w = image.shape[:2]
    lb = Letterbox.fit(w, h, in_w, in_h)
    canvas = np.full((lb.in_h, lb.in_w, 3), 128, dtype=np.uint8)
    resized = cv2.resize(image, (lb.new_w, lb.new_h))
    canvas[lb.pad_y : lb.pad_y + lb.new_h, lb.pad_x : lb.pad_x + lb.new_w] = resized
    return canvas.astype(np.float32) / np.float32(255.0), lb
