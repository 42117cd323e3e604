"""Issue 26: training starts in seconds on a million images; ``data check`` bounded in time and memory.

Synthetic YOLO data sets of N images (hard links to 64 of the demo's 192 px JPEGs, each with its own
label file of 1-3 boxes, 10,000 a folder; 16 val images), made once under ``--root`` (default
``/tmp/yolov3-index-bench``) and reused. For each N, in its own child process (peak RSS from
``os.wait4``):

- ``train`` to its first step: ``python -m yolov3 train --epochs 1 --time 0.0005`` (the time budget
  stops the run after its first step; its final validation of the 16 val images and checkpoint are
  in every run alike), cold (no index: it is built) and warm (index present);
- ``data check`` with the index present;
- both without the index (``$YOLOV3_INDEX_MIN`` above N: the reader's lists, as before issue 26)
  for sets up to ``--plain-max`` images.

The floor is the same warm ``train`` on 1,000 images, measured in the same run (warm runs and floor
runs alternate, ``--rounds`` times); the data's share of a start is its time minus the floor's: the
best of each side, and each round's floor run subtracted from the run after it (``paired_shares``,
with their median). ``train --data`` reads its data set in a child process while it imports torch
(``yolov3.data.prefetch``), so the share is what that reading adds beyond the imports.
``load_dataset`` alone in a fresh process is timed too: the reading without that overlap. Targets
(issue 26, 2 cores): warm share <= 3 s and cold build <= 120 s at 1 M, ``data check`` <= 180 s, peak
RSS <= 1.5 GB. Prints one JSON object a measurement.

Usage: ``flock /tmp/bench.lock python benchmarks/bench_index.py [--sizes 100000 1000000] [--root DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from yolov3.data.formats.yolo_index import INDEX_MIN_ENV

REPO = Path(__file__).resolve().parent.parent
DEMO_IMAGES = REPO / ".cache/yolov3-demo/synth-192px-7200-seed0/images/train"
DEMO_WEIGHTS = REPO / "runs/demo/train/weights/best.pt"  # trained: its validation is quick
NAMES = ["circle", "square", "triangle", "letter-X", "digit-3"]
PER_FOLDER = 10_000
SOURCES = 64  # JPEGs linked to: ext4 allows 65,000 links to one file
VAL_IMAGES = 16
FLOOR = 1000


def make_set(root: Path, n: int) -> Path:
    """``root/n{n}/data.yaml`` of ``n`` training images (made once: a ``.complete`` marker)."""
    top = root / f"n{n}"
    cfg = top / "data.yaml"
    if (top / ".complete").is_file():
        return cfg
    src = root / f"src{SOURCES}"
    if not src.is_dir():  # copies of a few demo JPEGs on this file system, to hard-link to
        src.mkdir(parents=True)
        for p in sorted(DEMO_IMAGES.iterdir())[:SOURCES]:
            (src / p.name).write_bytes(p.read_bytes())
    sources = sorted(str(p) for p in src.iterdir())
    rng = np.random.default_rng(n)
    for split, count in (("train", n), ("val", VAL_IMAGES)):
        for k in range(0, count, PER_FOLDER):
            sub = f"{split}/d{k // PER_FOLDER:03d}"
            img_dir, lbl_dir = top / "images" / sub, top / "labels" / sub
            img_dir.mkdir(parents=True, exist_ok=True)
            lbl_dir.mkdir(parents=True, exist_ok=True)
            for i in range(k, min(count, k + PER_FOLDER)):
                os.link(sources[i % len(sources)], img_dir / f"{i:07d}.jpg")
                boxes = rng.uniform(0.2, 0.8, (1 + i % 3, 2))
                text = "".join(f"{i % 5} {x:.4f} {y:.4f} 0.1 0.1\n" for x, y in boxes)
                with open(lbl_dir / f"{i:07d}.txt", "w") as f:
                    f.write(text)
    cfg.write_text(f"train: images/train\nval: images/val\nnames: {NAMES}\n")
    (top / ".complete").touch()
    return cfg


def drop_indexes(cfg: Path) -> None:
    for p in (cfg.parent / "images").glob("*.yolov3-index"):
        p.unlink()


def run_child(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """``(seconds, peak RSS in GB, exit status)`` of ``python -m yolov3 ARGS``."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "yolov3", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(err.decode(errors="replace")[-2000:])
    return seconds, usage.ru_maxrss / 1e6, proc.returncode  # ru_maxrss: kB on Linux


def train_args(cfg: Path, runs: Path) -> list[str]:
    return ["train", "--data", str(cfg), "--model", "yolov3-tiny", "--img-size", "192", "--batch", "8",
            "--weights", str(DEMO_WEIGHTS),
            "--epochs", "1", "--time", "0.0005", "--workers", "0", "--project", str(runs), "--name", "bench",
            "--exist-ok", "-q"]  # fmt: skip


LOAD_ONLY = """
import json, resource, sys, time
from yolov3.data.dataset_config import load_dataset
t = time.perf_counter()
spec = load_dataset(sys.argv[1])
seconds = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(json.dumps({"ours": round(seconds, 2), "rss_gb": round(rss, 2), "images": len(spec.train)}))
"""


def emit(**row: object) -> None:
    print(json.dumps(row), flush=True)


def alternate(cfg: Path, floor_cfg: Path, runs: Path, env: dict[str, str], rounds: int) -> dict[str, list]:
    """Warm ``train`` runs on ``cfg`` and on the floor's set, alternated ``rounds`` times (the shared
    machine's load then hits both alike): ``{"ours": [(s, GB)], "floor": [(s, GB)]}``."""
    got: dict[str, list] = {"ours": [], "floor": []}
    for _ in range(rounds):
        for side, c in (("floor", floor_cfg), ("ours", cfg)):
            seconds, rss, rc = run_child(train_args(c, runs), env)
            if rc:
                raise SystemExit(f"train on {c} exited {rc}")
            got[side].append((seconds, rss))
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--rounds", type=int, default=3, help="alternations of warm runs and floor runs")
    ap.add_argument("--root", type=Path, default=Path("/tmp/yolov3-index-bench"))
    ap.add_argument("--plain-max", type=int, default=100_000, help="also time sets up to N without the index")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = args.root / "runs"
    floor_cfg = make_set(args.root, FLOOR)
    run_child(train_args(floor_cfg, runs), env)  # builds the floor's index
    for n in args.sizes:
        t0 = time.perf_counter()
        cfg = make_set(args.root, n)
        emit(what=f"make the {n:,}-image set (or find it)", ours=round(time.perf_counter() - t0, 1), unit="s")
        drop_indexes(cfg)
        floor, _, _ = run_child(train_args(floor_cfg, runs), env)
        cold, cold_rss, rc = run_child(train_args(cfg, runs), env)
        emit(what=f"train to first step, {n:,} images, cold (index built)", ours=round(cold, 2), unit="s",
             anchor=round(floor, 2), data_share=round(cold - floor, 2), rss_gb=round(cold_rss, 2),
             target="data_share <= 120 s at 1 M", status=rc)  # fmt: skip
        warm = alternate(cfg, floor_cfg, runs, env, args.rounds)
        ours, anchor = (min(t for t, _ in warm[k]) for k in ("ours", "floor"))  # the least disturbed
        paired = [o - f for (f, _), (o, _) in zip(warm["floor"], warm["ours"])]  # each round's floor first
        emit(what=f"train to first step, {n:,} images, warm (index present), best of {args.rounds}",
             ours=round(ours, 2), anchor=round(anchor, 2), unit="s", data_share=round(ours - anchor, 2),
             rss_gb=round(max(r for _, r in warm["ours"]), 2),
             floor_rss_gb=round(max(r for _, r in warm["floor"]), 2),
             runs=[round(t, 2) for t, _ in warm["ours"]], floor_runs=[round(t, 2) for t, _ in warm["floor"]],
             paired_shares=[round(x, 2) for x in paired],
             median_paired_share=round(float(np.median(paired)), 2),
             target="data_share <= 3 s at 1 M")  # fmt: skip
        loaded = subprocess.run([sys.executable, "-c", LOAD_ONLY, str(cfg)], env=env, cwd=REPO,
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        emit(what=f"load_dataset alone, {n:,} images, warm (in a fresh process, imports excluded)",
             **json.loads(loaded), unit="s", target="<= 3 s at 1 M")  # fmt: skip
        check, check_rss, rc = run_child(["data", "check", str(cfg)], env)
        emit(what=f"data check, {n:,} images (index present)", ours=round(check, 2), unit="s",
             rss_gb=round(check_rss, 2), target="<= 180 s at 1 M", status=rc)  # fmt: skip
        if n <= args.plain_max:  # the same without the index: the reader's lists, as before issue 26
            plain = {**env, INDEX_MIN_ENV: str(10**12)}
            floor, _, _ = run_child(train_args(floor_cfg, runs), plain)
            start, start_rss, rc = run_child(train_args(cfg, runs), plain)
            emit(what=f"train to first step, {n:,} images, without the index", ours=round(start, 2), unit="s",
                 anchor=round(floor, 2), data_share=round(start - floor, 2), rss_gb=round(start_rss, 2),
                 status=rc)  # fmt: skip
            check, check_rss, rc = run_child(["data", "check", str(cfg)], plain)
            emit(what=f"data check, {n:,} images, without the index", ours=round(check, 2), unit="s",
                 rss_gb=round(check_rss, 2), status=rc)  # fmt: skip


if __name__ == "__main__":
    main()
