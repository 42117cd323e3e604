"""``yolov3 serve`` under a long load: does the server's memory stay flat? Its resident set (``VmRSS``
of the server process) after ``--requests`` requests against after the first ``--first``, for a
PyTorch checkpoint and for an OpenVINO INT8 IR of the same model (target: within 5 %).

The model and the eight 640x480 JPEGs are ``benchmarks/bench_serve.py``'s (YOLOv3-tiny with random
weights made to find about 15 boxes an image, nothing downloaded), with the class names of a small
synthetic data set (``yolov3.data.synth``) that the INT8 IR is calibrated on:
``yolov3 export --weights model.pt --format openvino --int8 --data data.yaml`` (its mAP check is
waved through with ``--int8-max-drop 100``: the weights are random, the data only sets activation
ranges). Each file is served by ``yolov3 serve`` in a subprocess on 127.0.0.1 (``bench_serve``'s
``start_server``) and loaded by ``--concurrency`` client threads in rounds of ``--every`` requests
(each round on fresh keep-alive connections, as clients come and go); the server's RSS is read after
every round (the curve goes to stderr).

Rows (JSON lines for ``benchmarks/run_all.py``), per file: RSS after all requests (ours) against RSS
after the first ``--first`` (anchor), ratio ``<= 1.05``; and the errors over every soak (``== 0``).
``--smoke`` runs a small size in seconds.

    .venv/bin/python benchmarks/bench_serve_soak.py [--smoke] [--requests 20000] [--formats pt int8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import emit, free_port, load_test, prepare, start_server  # noqa: E402

from yolov3.config import InferConfig  # noqa: E402
from yolov3.data.dataset_config import load_dataset  # noqa: E402
from yolov3.data.synth import SynthConfig, generate  # noqa: E402

FORMATS = {"pt": "PyTorch .pt", "int8": "OpenVINO INT8 IR"}


def rss_mb(pid: int) -> float:
    """The process's resident set, MB (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def export_int8(weights: Path, data: Path, img_size: int, calib_images: int, log: Path) -> Path:
    """The OpenVINO INT8 IR of ``weights``, by ``yolov3 export`` calibrated on ``data``'s train split."""
    out = weights.with_name("model_int8.xml")
    cmd = [sys.executable, "-m", "yolov3", "export", "--weights", str(weights), "--format", "openvino",
           "--int8", "--data", str(data), "--calib-images", str(calib_images), "--int8-max-drop", "100",
           "--img-size", str(img_size), "--out", str(out)]  # fmt: skip
    with log.open("w") as err:
        done = subprocess.run(cmd, stdout=err, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"yolov3 export exited {done.returncode}: {log.read_text()[-2000:]}")
    return out


def soak(weights: Path, bodies: list[bytes], settings: InferConfig, a: argparse.Namespace, log: Path
         ) -> tuple[list[tuple[int, float, float]], int]:  # fmt: skip
    """``([(requests so far, RSS MB, images/s of the round)], errors)`` of one server over the soak."""
    server = start_server(weights, settings, free_port(), a.max_batch, a.max_wait_ms, a.threads, log)
    curve, errors, done = [], 0, 0
    try:
        print(f"{weights.name}: ready, RSS {rss_mb(server.pid):.0f} MB", file=sys.stderr, flush=True)
        while done < a.requests:
            n = min(a.every, a.requests - done, a.first - done if done < a.first else a.requests)
            rate, failed = load_test(server.port, bodies, n, a.concurrency, warm=False)
            done, errors = done + n, errors + failed
            curve.append((done, rss_mb(server.pid), rate))
            print(f"{weights.name}: {done} requests, RSS {curve[-1][1]:.1f} MB, {rate:.1f} images/s, "
                  f"{errors} errors", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait(60)
    return curve, errors


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="a small size that runs in seconds")
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--first", type=int, default=1_000, help="the reference point: RSS after this many")
    p.add_argument("--every", type=int, default=1_000, help="requests between two readings of the RSS")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--img-size", type=int, default=320)
    p.add_argument("--model", default="yolov3-tiny")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--amp", default="auto")
    p.add_argument("--calib-images", type=int, default=32, help="INT8 calibration images")
    p.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS))
    p.add_argument("--threads", type=int, help="the server's PyTorch threads (default: all)")
    a = p.parse_args(argv)
    if a.smoke:
        a.requests, a.first, a.every, a.concurrency, a.img_size, a.max_batch = 120, 40, 40, 4, 128, 4
        a.calib_images = 8
    if a.first > a.requests:
        p.error(f"--first {a.first} is more than --requests {a.requests}")
    settings = InferConfig(img_size=a.img_size, amp=a.amp)
    rows, errors = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, _ = generate(folder / "data", SynthConfig(n=a.calib_images + 8, size=a.img_size,
                                                        val_fraction=0.2), progress=False)  # fmt: skip
        weights, images = prepare(folder, a.model, a.img_size, names=load_dataset(data).names)
        bodies = [path.read_bytes() for path in images]
        files = {"pt": weights}
        if "int8" in a.formats:
            t0 = time.perf_counter()
            files["int8"] = export_int8(weights, data, a.img_size, a.calib_images, folder / "export.log")
            print(f"INT8 IR exported in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        for fmt in a.formats:
            curve, failed = soak(files[fmt], bodies, settings, a, folder / f"server_{fmt}.log")
            errors += failed
            first = next(rss for n, rss, _ in curve if n >= a.first)
            rows.append((fmt, curve[-1][1], first, max(rss for _, rss, _ in curve)))
    threads = f"{a.threads} threads" if a.threads else f"{os.cpu_count()} cores"
    where = (f"{a.model} {a.img_size}, amp {a.amp}, max batch {a.max_batch}, concurrency {a.concurrency}, "
             f"CPU ({threads}), loopback")  # fmt: skip
    for fmt, last, first, peak in rows:
        what = f"serve RSS after {a.requests:,} requests / after {a.first:,}, {FORMATS[fmt]}"
        emit(what, last, first, "MB", last / first, "<= 1.05", f"{where}; highest reading {peak:.0f} MB")
    emit(f"serve errors over the soak ({len(rows)} x {a.requests:,} requests)", errors, None, "count", None,
         "== 0", where)  # fmt: skip


if __name__ == "__main__":
    main()
