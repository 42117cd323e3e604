"""Drawing detections on an image: boxes, class names and scores, one stable colour per class.

Pure functions on ``(H, W, 3)`` uint8 arrays (OpenCV drawing). Colours are given in the image's own
channel order: ``class_colour`` returns RGB, ``draw_detections(..., bgr=True)`` swaps them for
OpenCV-ordered images.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence

import cv2
import numpy as np

_GOLDEN = 0.618033988749895


def class_colour(class_id: int) -> tuple[int, int, int]:
    """RGB colour of a class: hues spaced by the golden ratio, so neighbours differ and the colour of
    a class never depends on which other classes are in the picture."""
    hue = (int(class_id) * _GOLDEN + 0.1) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    names: Sequence[str],
    bgr: bool = False,
    line_width: int | None = None,
) -> np.ndarray:
    """A copy of ``image`` with each ``(x1, y1, x2, y2)`` pixel box outlined and labelled ``name 0.87``.

    ``boxes`` ``(N, 4)`` in the image's pixels; ``class_ids`` index ``names`` (an id beyond it is
    drawn as its number). Line width and font scale follow the image size unless ``line_width``.
    """
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    h, w = out.shape[:2]
    lw = line_width or max(1, round((h + w) / 2 * 0.003))
    font_scale = max(0.35, lw / 3)
    thickness = max(1, lw - 1)
    for box, score, cls in zip(np.asarray(boxes), np.asarray(scores), np.asarray(class_ids)):
        colour = class_colour(int(cls))
        colour = colour[::-1] if bgr else colour
        x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, lw, cv2.LINE_AA)
        name = names[int(cls)] if 0 <= int(cls) < len(names) else str(int(cls))
        label = f"{name} {float(score):.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        above = y1 - th - base - 2 >= 0
        ty1 = y1 - th - base - 2 if above else y1
        cv2.rectangle(out, (x1, ty1), (x1 + tw + 2, ty1 + th + base + 2), colour, -1)
        text = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
        cv2.putText(
            out,
            label,
            (x1 + 1, ty1 + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            text,
            thickness,
            cv2.LINE_AA,
        )
    return out


def tile_grid(tiles: Sequence[np.ndarray], rows: int = 2, background: int = 255) -> np.ndarray:
    """Pictures side by side in ``rows`` rows (each resized to the first one's size), on ``background``."""
    cols = max(1, math.ceil(len(tiles) / rows))
    h, w = tiles[0].shape[:2]
    grid = np.full((h * math.ceil(len(tiles) / cols), w * cols, 3), background, np.uint8)
    for k, tile in enumerate(tiles):
        y, x = divmod(k, cols)
        grid[y * h : (y + 1) * h, x * w : (x + 1) * w] = cv2.resize(tile, (w, h))
    return grid
