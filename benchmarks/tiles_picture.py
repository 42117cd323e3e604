"""The README's before/after picture for sliced inference: one synthetic large picture
(``large_pictures.draw_large``, 1920 x 1080, objects of radius 7-22 px) detected by the demo model
whole (letterboxed to its 192 px) and with ``--tile 192``, the same corner of both shown side by side
at full resolution, with each run's count over the whole picture.

Usage: ``python benchmarks/tiles_picture.py [--weights W] [--out docs/images/tiles_before_after.jpg]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from large_pictures import draw_large  # noqa: E402

from yolov3.config import InferConfig  # noqa: E402
from yolov3.infer.detector import Detector  # noqa: E402

ROOT = HERE.parent
CROP = (0, 0, 800, 520)  # x, y, w, h of the corner shown
MAX_BYTES = 250_000


def panel(detector: Detector, image: np.ndarray, settings: InferConfig, title: str, truth: int) -> np.ndarray:
    """The shown corner of ``image`` with ``detector``'s boxes under ``settings`` and a caption (BGR)."""
    d = detector.predict(image, settings=settings)[0]
    x, y, w, h = CROP
    drawn = d.plot(bgr=True, line_width=1)[y : y + h, x : x + w].copy()
    bar = np.full((34, w, 3), 255, np.uint8)
    text = f"{title}: {len(d)} box{'es' if len(d) != 1 else ''} for the picture's {truth} objects"
    cv2.putText(bar, text, (8, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, drawn])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=str(ROOT / "runs/demo/train/weights/best.pt"))
    p.add_argument("--out", type=Path, default=ROOT / "docs/images/tiles_before_after.jpg")
    a = p.parse_args(argv)
    image, boxes, _ = draw_large(1920, 1080, 3)
    det = Detector.load(a.weights, device="cpu", settings=InferConfig(max_det=1000))
    size = det.img_size
    before = panel(det, image, det.settings, f"whole picture at {size}", len(boxes))
    after = panel(det, image, det.settings.replace(tile=size), f"--tile {size}", len(boxes))
    both = np.hstack([before, np.full((before.shape[0], 6, 3), 255, np.uint8), after])
    for quality in (85, 75, 65, 55):
        ok, jpeg = cv2.imencode(".jpg", both, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(jpeg) <= MAX_BYTES:
            break
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_bytes(jpeg.tobytes())
    print(f"{a.out}: {both.shape[1]}x{both.shape[0]}, {len(jpeg):,} bytes (JPEG quality {quality})")


if __name__ == "__main__":
    main()
