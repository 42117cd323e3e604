"""Whole input pipeline: JPEG decode + the seed's augmentations + letterbox + targets, at 416.

~640x480 JPEGs (smooth colour fields, shapes and noise, quality 90) are generated into a temp dir
with 5-20 boxes each, 80 classes. Measured: images/s through ``build_loader`` with 1 worker and with
2 workers (batch 16, persistent workers, after a warm-up epoch), and the 2 / 1 ratio in the same run.
Prints one JSON line per measurement.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from yolov3.data.dataset import DetectionDataset
from yolov3.data.loader import build_loader
from yolov3.data.types import Sample

NUM_IMAGES = 320
BATCH = 16


def make_jpegs(folder: Path, n: int, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        h, w = int(rng.integers(440, 521)), int(rng.integers(600, 681))
        field = cv2.resize(
            rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC
        )
        k = int(rng.integers(5, 21))
        x1, y1 = rng.uniform(0, w - 40, k), rng.uniform(0, h - 40, k)
        x2, y2 = x1 + rng.uniform(8, np.minimum(w - x1, 300)), y1 + rng.uniform(8, np.minimum(h - y1, 300))
        boxes = np.stack([x1, y1, x2, y2], 1).astype(np.float32)
        for b in boxes.astype(int):
            cv2.rectangle(field, (b[0], b[1]), (b[2], b[3]), rng.integers(0, 256, 3).tolist(), -1)
        field = cv2.add(field, rng.integers(0, 24, field.shape, dtype=np.uint8))
        path = folder / f"{i:04d}.jpg"
        cv2.imwrite(str(path), field, [cv2.IMWRITE_JPEG_QUALITY, 90])
        samples.append(Sample(str(path), boxes, rng.integers(0, 80, k), width=w, height=h))
    return samples


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rate(samples: list[Sample], workers: int, epochs: int = 2) -> tuple[float, float | None]:
    """(images/s wall clock, worker CPU ms per image) over ``epochs`` after a warm-up epoch."""
    ds = DetectionDataset(samples, 80, img_size=416, augment=True, seed=0)
    loader = build_loader(ds, BATCH, shuffle=True, workers=workers, seed=0, drop_last=True)
    for _ in loader:  # warm-up: worker start, first decodes
        pass
    pids = [w.pid for w in loader._iterator._workers]
    cpu0 = [_cpu_seconds(p) for p in pids]
    start, done = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            done += len(batch["paths"])
    elapsed = time.perf_counter() - start
    cpu1 = [_cpu_seconds(p) for p in pids]
    del loader
    if None in cpu0 or None in cpu1:
        return done / elapsed, None
    return done / elapsed, 1e3 * sum(b - a for a, b in zip(cpu0, cpu1)) / done


def main() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        samples = make_jpegs(Path(tmp), NUM_IMAGES)
        (one, cpu_one), (two, _) = rate(samples, 1), rate(samples, 2)
    note = f"{NUM_IMAGES} JPEGs ~640x480, 5-20 boxes, C=80, batch {BATCH}, seed augmentations"
    note += f"; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
    rows = [
        ("pipeline images/s, 1 worker (wall clock)", one, None, ">= 150"),
        ("pipeline images/s, 2 workers vs 1 (wall clock)", two, one, ">= 1.7"),
    ]
    if cpu_one:  # the load-independent figure: what one worker does with a core of its own
        rows.append(("pipeline images/s, 1 worker, from its CPU time (1000 / worker CPU ms per image)",
                     1e3 / cpu_one, None, ">= 150"))  # fmt: skip
    for what, ours, anchor, target in rows:
        ratio = None if anchor is None else round(ours / anchor, 2)
        anchor = None if anchor is None else round(anchor, 1)
        print(json.dumps({"what": what, "ours": round(ours, 1), "anchor": anchor, "unit": "images/s",
                          "ratio": ratio, "target": target, "note": note}))  # fmt: skip


if __name__ == "__main__":
    main()
