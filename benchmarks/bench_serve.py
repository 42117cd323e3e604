"""``yolov3 serve`` under load, on loopback only: throughput at concurrency 16 against the in-process
batched ``Detector``, and the latency the server adds at concurrency 1 (issue 14's targets).

The parent writes eight synthetic 640x480 JPEGs and YOLOv3-tiny with calibrated random weights
(``yolov3.darknet.synthetic``; nothing is downloaded) whose output layers are set to find about 15
boxes an image, as a trained model does (left random, it answers 300 boxes of noise per image, and the
benchmark would time NMS and JSON of those) to a temporary folder, then:

1. ``yolov3 serve`` in a subprocess on 127.0.0.1 (a free port) with those weights and settings, and
   the same ``Detector`` in this process (same runtime, settings, thread count, decoding from JPEG);
2. throughput: ``--requests`` POSTs from ``--concurrency`` client threads, each with its own keep-alive
   connection (errors, images/s), against ``Detector.predict`` over the JPEG files in batches of
   ``--max-batch``, measured just before and just after the load test (the mean);
3. latency: ``--latency-runs`` single images, in-process and through the server alternately (medians).

Rows (JSON lines for ``benchmarks/run_all.py``): throughput ratio server / in-process (target >= 0.9),
added median latency in ms (target <= 15), errors (target == 0). The client threads share the machine
with the server, as a real client on the same host would. ``--smoke`` runs a small size in seconds.

    .venv/bin/python benchmarks/bench_serve.py [--smoke] [--requests 1000] [--concurrency 16] [--threads N]

On a machine other jobs share, use ``--threads 1`` (as ``benchmarks/bench_backends.py`` explains).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from yolov3.builder import build_model
from yolov3.config import InferConfig, ModelConfig
from yolov3.darknet.synthetic import randomize, sparsify_head
from yolov3.data.types import Sample
from yolov3.export.quantize import calibration_batches
from yolov3.infer.detector import Detector
from yolov3.modelfile import ModelMeta, save_model


def prepare(folder: Path, model_name: str, img_size: int, count: int = 8, names: list[str] | None = None
            ) -> tuple[Path, list[Path]]:  # fmt: skip
    """Eight synthetic JPEGs and a random model that finds about 15 boxes in each, as a trained one
    would (``yolov3.darknet.synthetic.sparsify_head``; left random it returns 300 boxes of noise).
    ``names``: its classes (default COCO's 80 counted, ``class0``...), e.g. a data set's to calibrate on."""
    rng, images = np.random.default_rng(0), []
    for k in range(count):
        im = cv2.GaussianBlur((rng.random((480, 640, 3)) * 255).astype(np.uint8), (0, 0), 3)
        for _ in range(5):
            x, y = int(rng.integers(0, 560)), int(rng.integers(0, 400))
            cv2.rectangle(im, (x, y), (x + int(rng.integers(30, 200)), y + int(rng.integers(30, 200))),
                          tuple(int(c) for c in rng.integers(0, 255, 3)), -1)  # fmt: skip
        cv2.imwrite(str(folder / f"{k}.jpg"), im)
        images.append(folder / f"{k}.jpg")
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=model_name), len(names) if names else 80)
    randomize(model, torch.rand(2, 3, 128, 128))
    inputs = calibration_batches([Sample(str(p)) for p in images], img_size, count)  # as the Detector does
    sparsify_head(model, torch.from_numpy(np.concatenate(inputs)))
    weights = save_model(folder / "model.pt", model, ModelMeta.of_model(model, names, img_size, model_name))
    return weights, images


def batched_rate(det: Detector, images: list[Path], count: int) -> float:
    """Images/s of ``Detector.predict`` over ``count`` JPEG files (read, batched by ``det.batch_size``)."""
    paths = [images[k % len(images)] for k in range(count)]
    t0 = time.perf_counter()
    det.predict(paths)
    return count / (time.perf_counter() - t0)


def interleaved_latency(det: Detector, client: Client, images: list[Path], bodies: list[bytes], runs: int
                        ) -> tuple[float, float]:  # fmt: skip
    """Median ms of one JPEG through ``det.predict`` and through the server, calls alternating so
    that a change in the machine's load touches both sides alike."""
    local, served = [], []
    for k in range(runs):
        t0 = time.perf_counter()
        det.predict(images[k % len(images)])
        local.append((time.perf_counter() - t0) * 1e3)
        status, seconds = client.post(bodies[k % len(bodies)])
        if status != 200:
            raise RuntimeError(f"request failed with status {status}")
        served.append(seconds * 1e3)
    return statistics.median(local), statistics.median(served)


def server_env(threads: int | None) -> dict[str, str]:
    return {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}  # torch's thread count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(weights: Path, settings: InferConfig, port: int, max_batch: int, max_wait_ms: float,
                 threads: int | None, log: Path):  # noqa: ANN201  # fmt: skip
    cmd = [sys.executable, "-m", "yolov3", "serve", "--weights", str(weights), "--device", "cpu",
           "--port", str(port), "--img-size", str(settings.img_size), "--amp", settings.amp,
           "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms)]  # fmt: skip
    # Its log (a line per request) goes to a file: a pipe nobody reads would fill and stall the server.
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"), env=server_env(threads))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited {server.returncode}: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                server.port = port
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.kill()
    raise TimeoutError("server not ready within 120 s")


class Client:
    """One keep-alive connection; ``post`` returns the status and seconds taken."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, body: bytes) -> tuple[int, float]:
        t0 = time.perf_counter()
        try:
            self.conn.request("POST", "/v1/detect", body, {"Content-Type": "image/jpeg"})
            r = self.conn.getresponse()
            json.loads(r.read())
            status = r.status
        except (OSError, http.client.HTTPException, ValueError):
            self.conn.close()
            status = -1
        return status, time.perf_counter() - t0


def load_test(port: int, bodies: list[bytes], requests: int, concurrency: int, warm: bool = True
              ) -> tuple[float, int]:  # fmt: skip
    """``(images/s, errors)`` for ``requests`` POSTs from ``concurrency`` threads, each on its own
    keep-alive connection; ``warm``: first one untimed request per thread (its errors counted)."""
    local, errors, lock = threading.local(), [0], threading.Lock()

    def one(k: int) -> None:
        if not hasattr(local, "client"):
            local.client = Client(port)
        status, _ = local.client.post(bodies[k % len(bodies)])
        if status != 200:
            with lock:
                errors[0] += 1

    with ThreadPoolExecutor(concurrency) as pool:
        if warm:
            list(pool.map(one, range(concurrency)))  # connections opened, server warm
        t0 = time.perf_counter()
        list(pool.map(one, range(requests)))
        seconds = time.perf_counter() - t0
    return requests / seconds, errors[0]


def emit(what: str, ours: float, anchor: float | None, unit: str, ratio: float | None, target: str,
         note: str) -> None:  # fmt: skip
    row = {
        "what": what,
        "ours": round(ours, 3),
        "anchor": None if anchor is None else round(anchor, 3),
        "unit": unit,
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "note": note,
    }
    print(json.dumps(row), flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="a small size that runs in seconds")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency-runs", type=int, default=30)
    p.add_argument("--img-size", type=int, default=416)
    p.add_argument("--model", default="yolov3-tiny")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--amp", default="auto")
    p.add_argument("--threads", type=int, help="PyTorch threads, in process and in the server (default: all)")
    p.add_argument(
        "--anchor-only", type=Path, help=argparse.SUPPRESS
    )  # the in-process side, in its own process
    a = p.parse_args(argv)
    if a.smoke:
        a.requests, a.concurrency, a.latency_runs, a.img_size, a.max_batch = 24, 4, 5, 128, 4
    if a.threads:
        torch.set_num_threads(a.threads)  # the server gets the same count through OMP_NUM_THREADS
    settings = InferConfig(img_size=a.img_size, amp=a.amp)
    with tempfile.TemporaryDirectory() as tmp:
        weights, images = prepare(Path(tmp), a.model, a.img_size)
        bodies = [path.read_bytes() for path in images]
        server = start_server(weights, settings, free_port(), a.max_batch, a.max_wait_ms, a.threads,
                              Path(tmp) / "server.log")  # fmt: skip
        try:
            det = Detector.load(weights, device="cpu", batch_size=a.max_batch, settings=settings)
            det.warmup()
            det.predict(images[: a.max_batch])
            count = min(a.requests, 256)
            before = batched_rate(det, images, count)
            rate, errors = load_test(server.port, bodies, a.requests, a.concurrency)
            anchor_rate = (before + batched_rate(det, images, count)) / 2  # around the load test
            client = Client(server.port)
            client.post(bodies[0])
            anchor_ms, served_ms = interleaved_latency(det, client, images, bodies, a.latency_runs)
        finally:
            server.terminate()
            server.wait(60)
    threads = f"{a.threads} threads" if a.threads else f"{os.cpu_count()} cores"
    where = f"{a.model} {a.img_size}, amp {a.amp}, CPU ({threads}), loopback"
    emit(f"serve throughput, {a.requests} requests at concurrency {a.concurrency}", rate, anchor_rate,
         "images/s", rate / anchor_rate, ">= 0.9",
         f"{where}; anchor: in-process Detector.predict on the JPEGs, batch {a.max_batch}")  # fmt: skip
    added = served_ms - anchor_ms
    emit(
        "serve added median latency at concurrency 1",
        added,
        anchor_ms,
        "ms",
        None,
        "<= 15",
        f"{where}; anchor: in-process Detector.predict of one JPEG (ms); ours: server median minus it",
    )
    emit(f"serve errors, {a.requests} requests at concurrency {a.concurrency}", errors, None, "count", None,
         "== 0", where)  # fmt: skip


if __name__ == "__main__":
    main()
