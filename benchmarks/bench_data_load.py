"""Loading a data set's annotations: ``load_dataset`` (labels + header-only image sizes) vs decoding
every image to learn its size (what a loader without header reads does), in the same run.

2,000 synthetic 640x480 JPEGs with YOLO labels (10 boxes each) in a temporary folder; one process.
Also times ``check_dataset`` (labels, headers, duplicate search) on the same set. Prints JSON lines.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from yolov3.data.check import check_dataset
from yolov3.data.dataset_config import load_dataset
from yolov3.data.images import list_images

N_IMAGES = 2000


def make_set(root: Path) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for i in range(N_IMAGES):
        image = base.copy()
        image[:8, :8] = i % 251  # distinct bytes, so the duplicate search hashes nothing needlessly
        image[8, :3] = (i // 251, i % 7, 3)
        cv2.imwrite(str(root / "images" / f"{i:05d}.jpg"), image)
        rows = rng.uniform(0.1, 0.4, (10, 4))
        lines = "".join(
            f"{i % 3} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for cx, cy, w, h in rows + [0.3, 0.3, 0, 0]
        )
        (root / "labels" / f"{i:05d}.txt").write_text(lines)
    cfg = root / "data.yaml"
    cfg.write_text(yaml.safe_dump({"train": "images", "names": ["a", "b", "c"]}))
    return cfg


def best_of(fn, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        cfg = make_set(Path(d))
        images = list_images(Path(d) / "images")
        ours = best_of(lambda: load_dataset(cfg))
        anchor = best_of(lambda: [cv2.imread(str(p)).shape for p in images], rounds=1)
        spec = load_dataset(cfg)
        assert len(spec.train) == N_IMAGES and spec.report.errors == []
        us = 1e6 / N_IMAGES
        print(
            json.dumps(
                {
                    "what": "load_dataset per image (YOLO labels + header size), 640x480 JPEG",
                    "ours": round(ours * us, 1),
                    "anchor": round(anchor * us, 1),
                    "unit": "us",
                    "ratio": round(ours / anchor, 3),
                    "target": "<= 0.25",
                    "note": "anchor: cv2.imread of every image (size by full decode)",
                }
            )
        )
        check = best_of(lambda: check_dataset(cfg), rounds=1)
        print(
            json.dumps(
                {
                    "what": "check_dataset per image (labels, headers, duplicates), 640x480 JPEG",
                    "ours": round(check * us, 1),
                    "anchor": round(anchor * us, 1),
                    "unit": "us",
                    "ratio": round(check / anchor, 3),
                    "target": "<= 0.5",
                    "note": "anchor: cv2.imread of every image",
                }
            )
        )


if __name__ == "__main__":
    main()
