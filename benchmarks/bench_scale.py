"""Detection at scale on this machine: ``yolov3 detect`` over a folder as 1 process x 2 threads against
``torchrun`` 2 processes x 1 thread, and the cost of rank 0's merge at 100,000 result rows.

Throughput: ``NUM_IMAGES`` ~640x480 JPEGs, a YOLOv3 of width ``WIDTH`` (random weights, 80 classes),
input ``IMG``, float32, no annotated images written; images/s = images / wall time of the whole
command (start-up and model load included, as a user sees it), best of ``REPEATS``.
Merge: two ranks' part files with 100,000 rows in all (3 detections each), merged by
``yolov3.apps.detect.shard.merge_parts``; the anchor writes the same rows straight to ``results.jsonl`` and
``coco_results.json`` (what a one-process writer without part files would do). ``--smoke``: tiny
sizes, a check that the script runs (seconds). Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from yolov3.apps.detect.shard import merge_parts
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, default_names, save_model

FULL = {"images": 48, "img": 320, "width": 0.5, "rows": 100_000, "repeats": 2}
SMOKE = {"images": 4, "img": 64, "width": 0.125, "rows": 2_000, "repeats": 1}


def make_images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        field = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (640, 480))
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), cv2.add(field, rng.integers(0, 24, field.shape, np.uint8)))


def detect_rate(folder: Path, weights: Path, out: Path, img: int, n: int, procs: int, repeats: int) -> float:
    """Images/s of the whole ``detect`` command with ``procs`` processes of ``2 // procs`` threads."""
    threads = str(max(1, 2 // procs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    launch = [sys.executable] if procs == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                  "--standalone", "--nproc_per_node", str(procs)]  # fmt: skip
    args = ["-m", "yolov3", "detect", str(folder), "--weights", str(weights), "--img", str(img),
            "--amp", "off", "--device", "cpu", "--no-save", "--conf", "0.3"]  # fmt: skip
    best = float("inf")
    for k in range(repeats):
        t = time.perf_counter()
        run = subprocess.run([*launch, *args, "--out", str(out / f"p{procs}_{k}")], env=env,
                             capture_output=True, text=True)  # fmt: skip
        if run.returncode:
            raise SystemExit(f"detect with {procs} process(es) failed: {run.stderr[-1000:]}")
        best = min(best, time.perf_counter() - t)
    return n / best


def fake_parts(parts: Path, rows: int) -> None:
    """Two ranks' part files (every other key), 3 detections per row."""
    parts.mkdir()
    det = {"box": [10.5, 20.25, 110.0, 220.75], "score": 0.87654, "class_id": 3, "name": "car"}
    coco = {"category_id": 4, "bbox": [10.5, 20.25, 99.5, 200.5], "score": 0.8765432}
    for rank in (0, 1):
        with (parts / f"r{rank}-a0.jsonl").open("w") as f:
            for i in range(rank, rows, 2):
                speed = {"preprocess": 1.0, "inference": 9.0}
                record = {"image": f"/data/img/{i:07d}.jpg", "width": 640, "height": 480,
                          "detections": [det] * 3, "speed_ms": speed}  # fmt: skip
                row = {"key": [i, 0], "id": None, "record": record, "coco": [coco] * 3}
                f.write(json.dumps(row) + "\n")


def direct_write(parts: Path, out: Path) -> None:
    """The anchor: the same rows written straight (no part files, no merge)."""
    rows = [json.loads(line) for p in sorted(parts.glob("r*.jsonl")) for line in p.open()]
    rows.sort(key=lambda r: r["key"])
    coco = []
    with (out / "direct.jsonl").open("w") as f:
        for n, row in enumerate(rows, 1):
            f.write(json.dumps({"image_id": n, **row["record"]}) + "\n")
            coco += [{"image_id": n, **c} for c in row["coco"]]
    (out / "direct_coco.json").write_text(json.dumps(coco))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: a check that the script runs")
    s = SMOKE if p.parse_args(argv).smoke else FULL
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_images(root / "imgs", s["images"])
        torch.manual_seed(0)
        m = YOLOv3(80, width=s["width"])
        weights = save_model(root / "m.safetensors", m, ModelMeta.of_model(m, default_names(80), s["img"]))
        one, two = (
            detect_rate(root / "imgs", weights, root, s["img"], s["images"], n, s["repeats"]) for n in (1, 2)
        )
        note = f"{s['images']} images 640x480, input {s['img']}, width {s['width']}, CPU fp32, whole command"
        what = "detect: 2 processes x 1 thread vs 1 process x 2 threads"
        print(json.dumps({"what": what, "ours": round(two, 2), "anchor": round(one, 2), "unit": "images/s",
                          "ratio": round(two / one, 3), "note": note}))  # fmt: skip
        fake_parts(root / "parts", s["rows"])
        t = time.perf_counter()
        merge_parts(sorted((root / "parts").glob("r*.jsonl")), root)
        merge = time.perf_counter() - t
        t = time.perf_counter()
        direct_write(root / "parts", root)
        direct = time.perf_counter() - t
        print(json.dumps({"what": f"merge of {s['rows']:,} result rows (2 ranks) vs writing them directly",
                          "ours": round(merge, 3), "anchor": round(direct, 3), "unit": "s",
                          "ratio": round(merge / direct, 3), "note": "3 detections per row"}))  # fmt: skip


if __name__ == "__main__":
    main()
