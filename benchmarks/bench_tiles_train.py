"""Tiled training on large pictures (issue 25): YOLOv3-tiny trained from scratch on ``yolov3 data tile``
output of large pictures, on the same pictures letterboxed whole, and with ``train --tile`` (random
tiles on the fly), each for the same number of optimiser steps at 192 px; then each scored on held-out
large pictures (mAP@0.5 by ``yolov3 val``, ``--max-det 5000``), sliced (``--tile 192``) and whole.

Data (``large_pictures.draw_large``, radius 7-22 px objects): ``--train`` pictures of 1920 x 1080 for
training (JPEG), four 1,920-4,000 px pictures for scoring (``bench_tiles``'s set). Every run:
``--batch 16 --img 192 --workers 0 --no-augment``, no validation until the end, the same seed;
steps: ``--steps`` rounded to a whole number of epochs for every run (``steps / ceil(images / 16)``).

Usage: ``python benchmarks/bench_tiles_train.py [--steps 600] [--train 30]``. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import cv2
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from large_pictures import draw_large, write_set  # noqa: E402

CACHE = ROOT / ".cache/bench-tiles"
SIZE, BATCH = 192, 16


def train_set(n: int) -> Path:
    """``n`` 1920 x 1080 pictures with YOLO labels as a train split, one more as val; made once."""
    out = CACHE / f"train-{n}"
    if (out / "data.yaml").exists():
        return out / "data.yaml"
    for split in ("images/train", "labels/train", "images/val", "labels/val"):
        (out / split).mkdir(parents=True, exist_ok=True)
    for k in range(n + 1):  # the last one: the val split the trainer checks at its end (not scored here)
        img, boxes, classes = draw_large(1920, 1080, 100 + k)
        split = "train" if k < n else "val"
        cv2.imwrite(
            str(out / f"images/{split}/t{k:03d}.jpg"),
            cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 92],
        )
        lines = [
            f"{c} {(b[0] + b[2]) / 3840:.6f} {(b[1] + b[3]) / 2160:.6f} {(b[2] - b[0]) / 1920:.6f} "
            f"{(b[3] - b[1]) / 1080:.6f}"
            for b, c in zip(boxes, classes)
        ]
        (out / f"labels/{split}/t{k:03d}.txt").write_text("\n".join(lines) + "\n")
    names = yaml.safe_load((write_set(CACHE / "set-1")).read_text())["names"]
    data = {"train": "images/train", "val": "images/val", "nc": len(names), "names": names}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return out / "data.yaml"


def yolov3(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "yolov3", *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def train(name: str, data: Path, images: int, steps: int, extra: list[str]) -> tuple[Path, float]:
    """A from-scratch run of ``steps`` optimiser steps (a whole number of epochs); its last weights and
    wall seconds."""
    per_epoch = math.ceil(images / BATCH)
    assert steps % per_epoch == 0, (steps, per_epoch)
    epochs = steps // per_epoch
    project = CACHE / "runs"
    t0 = time.perf_counter()
    yolov3(
        "train",
        "--data",
        str(data),
        "--model",
        "yolov3-tiny",
        "--img",
        str(SIZE),
        "--batch",
        str(BATCH),
        "--epochs",
        str(epochs),
        "--workers",
        "0",
        "--no-augment",
        "--val-interval",
        str(epochs),
        "--warmup-epochs",
        str(round(epochs * 0.05, 3)),
        "--lr-init",
        "3e-3",
        "--lr-end",
        "3e-5",
        "--project",
        str(project),
        "--name",
        name,
        "--exist-ok",
        *extra,
    )
    return project / name / "weights/last.pt", time.perf_counter() - t0


def score(weights: Path, data: Path, tile: bool, out: Path) -> float:
    """mAP@0.5 of ``weights`` on the large held-out pictures, sliced or whole."""
    yolov3(
        "val",
        "--data",
        str(data),
        "--weights",
        str(weights),
        "--max-det",
        "5000",
        "--out",
        str(out),
        "-q",
        *(["--tile", str(SIZE)] if tile else []),
    )
    return float(json.loads((out / "summary.json").read_text())["map50"])


def count_images(data: Path) -> int:
    return len(list((data.parent / "images/train").glob("*")))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--train", type=int, default=30, help="training pictures (1920 x 1080)")
    a = p.parse_args(argv)
    whole = train_set(a.train)
    tiled = CACHE / f"train-{a.train}-tiles/data.yaml"
    if not tiled.exists():
        yolov3(
            "data",
            "tile",
            str(whole),
            "--size",
            str(SIZE),
            "--overlap",
            "0.2",
            "--out",
            str(tiled.parent),
            "-q",
        )
    held_out = write_set(CACHE / "set-1")
    sizes = [count_images(tiled), a.train]
    unit = math.lcm(*(math.ceil(n / BATCH) for n in sizes))  # steps that are whole epochs for every run
    steps = unit * max(1, round(a.steps / unit))
    runs = {
        "data tile": (tiled, count_images(tiled), ["--cache"]),
        "letterboxed whole": (whole, a.train, ["--cache"]),
        "train --tile": (whole, a.train, ["--tile", str(SIZE)]),
    }
    for name, (data, images, extra) in runs.items():
        weights, wall = train(name.replace(" ", "-").replace("--", ""), data, images, steps, extra)
        maps = {
            tile: score(weights, held_out, tile, CACHE / "val" / f"{name}-{tile}".replace(" ", "-"))
            for tile in (True, False)
        }
        row = {
            "what": f"trained on {name}: held-out large-picture mAP@0.5, sliced (whole)",
            "ours": round(maps[True], 3),
            "anchor": round(maps[False], 3),
            "unit": "mAP",
            "ratio": None,
            "target": "",
            "note": f"{steps} steps of {BATCH} at {SIZE} px from scratch, {images} training "
            f"images, {wall / 60:.1f} min (2 shared cores)",
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
