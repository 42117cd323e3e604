"""Large synthetic pictures with small objects, for sliced inference (issue 25): the demo data set's
objects (``yolov3.data.synth``: the same five kinds, colours, shading, clutter and noise) scattered over
a picture 1,920-4,000 px wide, each of radius 7-22 px (side 14-44 px, log-uniform, aspect up to 1.5).

The demo model (YOLOv3-tiny at 192 px) saw objects of side 8-92 px in training, most of them 12-48
(its val split's geometric-mean sides), so 14-44 px objects are ones it knows at native resolution;
letterboxed whole to 192 px a 4,000 px picture shrinks them to 1-2 px.

Objects sit one per cell of a jittered grid (cells of ``CELL`` px, about half of them filled), so they
never overlap and every box is the tight box of a wholly visible silhouette. ``draw_large`` is a pure
function of its arguments. ``write_set`` writes a YOLO data set (``images/val``, ``labels/val``,
``data.yaml``) that ``yolov3 val`` reads.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import yaml

from yolov3.data.synth import CLASS_NAMES, _background, _rand_colour, _shape_mask

R_MIN, R_MAX = 7, 22  # object radius in pixels (issue 25's 7-22 px)
CELL = 96  # grid cell: two of the largest objects side by side, so neighbours never touch
FILL = 0.5  # share of the cells holding an object
SIZES = [(1920, 1080), (2560, 1440), (3200, 1800), (4000, 3000)]  # (width, height)


def draw_large(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(H, W, 3)`` uint8 RGB, boxes ``(N, 4)`` float32 xyxy picture pixels, classes ``(N,)`` int64."""
    rng = np.random.default_rng([seed, width, height])
    side = max(width, height)
    img = _background(rng, side)[:height, :width]
    boxes, classes = [], []
    for cy in range(0, height - CELL + 1, CELL):
        for cx in range(0, width - CELL + 1, CELL):
            if rng.random() >= FILL:
                continue
            s = 2 * R_MIN * (R_MAX / R_MIN) ** rng.uniform()  # log-uniform diameter, 14-44 px
            aspect = math.exp(rng.uniform(-math.log(1.5), math.log(1.5)))
            w = int(round(min(max(s * math.sqrt(aspect), 2 * R_MIN), 2 * R_MAX)))
            h = int(round(min(max(s / math.sqrt(aspect), 2 * R_MIN), 2 * R_MAX)))
            x1, y1 = cx + int(rng.integers(0, CELL - w + 1)), cy + int(rng.integers(0, CELL - h + 1))
            cls = int(rng.integers(len(CLASS_NAMES)))
            _paint(img, rng, cls, x1, y1, w, h)
            boxes.append([x1, y1, x1 + w, y1 + h])
            classes.append(cls)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    img = img + rng.normal(0, rng.uniform(2, 12), img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).round().astype(np.uint8)
    return out, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)


def _paint(img: np.ndarray, rng: np.random.Generator, cls: int, x1: int, y1: int, w: int, h: int) -> None:
    """One object drawn as ``yolov3.data.synth.draw_image`` draws it (silhouette, colour, shading)."""
    alpha = _shape_mask(CLASS_NAMES[cls], w, h, rng)[..., None]
    region = img[y1 : y1 + h, x1 : x1 + w]
    colour = _rand_colour(rng)
    if abs(colour.mean() - region.mean()) < 40:
        colour = np.clip(255 - colour, 0, 255)
    ramp = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.2), w, dtype=np.float32)
    img[y1 : y1 + h, x1 : x1 + w] = region * (1 - alpha) + colour * ramp[None, :, None] * alpha


def write_set(out: Path, sizes: list[tuple[int, int]] = SIZES, per_size: int = 2, seed: int = 0) -> Path:
    """``per_size`` pictures of each ``(width, height)`` as a YOLO data set in ``out`` (PNG, so the
    pictures are exactly what was drawn); its ``data.yaml``. Reused when already written."""
    yaml_path = out / "data.yaml"
    if yaml_path.exists():
        return yaml_path
    (out / "images/val").mkdir(parents=True, exist_ok=True)
    (out / "labels/val").mkdir(parents=True, exist_ok=True)
    for w, h in sizes:
        for k in range(per_size):
            img, boxes, classes = draw_large(w, h, seed + k)
            stem = f"large_{w}x{h}_{k}"
            cv2.imwrite(str(out / f"images/val/{stem}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            lines = [f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} "
                     f"{(b[3] - b[1]) / h:.6f}" for b, c in zip(boxes, classes)]  # fmt: skip
            (out / f"labels/val/{stem}.txt").write_text("\n".join(lines) + "\n")
    data = {"train": "images/val", "val": "images/val", "nc": len(CLASS_NAMES),
            "names": list(CLASS_NAMES)}  # fmt: skip
    yaml_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return yaml_path
