"""Backend latency and throughput at 416: ONNX Runtime (fp32) and the PyTorch backend (bf16 where the
CPU has it) against OpenCV DNN reading the same Darknet cfg + weights, for YOLOv3 and YOLOv3-tiny.

The parent writes, in a temporary folder, each network with random weights of sane activations (no
downloads) as a checkpoint, Darknet files and ONNX (batch 1 fixed; batch dynamic for the batch-8 rows).
Each runtime is timed in its own process through the project's backends (``yolov3.export.backends``,
the callables ``detect`` / ``val`` use), so a thread pool that spins after a call cannot slow the next
runtime: warm-up, then the median of ``--runs`` calls (batch 1) or of 2 calls (batch 8).

Rows: batch-1 latency ratio to OpenCV (targets: ONNX Runtime <= 0.5, PyTorch bf16 <= 0.25) and batch-8
throughput (images/s; ratio to OpenCV, no target).

    .venv/bin/python benchmarks/bench_backends.py [--runs 5] [--models yolov3,yolov3-tiny] [--threads N]

On a machine other jobs share, fork-join thread pools stall on every layer whenever one of their threads
is descheduled: use ``--threads 1`` there for meaningful ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from yolov3.builder import build_model
from yolov3.config import ModelConfig
from yolov3.darknet.synthetic import randomize, sparsify_head
from yolov3.device import autocast_dtype
from yolov3.export.darknet import export_darknet
from yolov3.export.onnx import export_onnx
from yolov3.infer.backends import cpu_cores
from yolov3.infer.backends.opencv import OpenCVBackend
from yolov3.infer.backends.ort import OnnxRuntimeBackend
from yolov3.infer.backends.pytorch import TorchBackend
from yolov3.modelfile import ExportInfo, ModelMeta, load_model, save_model

SIZE = 416
TARGETS = {"onnxruntime": "<= 0.5", "torch": "<= 0.25"}


def prepare(model_name: str, out: Path, images: torch.Tensor | None = None) -> None:
    """Checkpoint, Darknet files and two ONNX files of ``model_name`` in ``out``. With ``images``
    (network inputs), the output layers are set to find about 15 boxes an image on them
    (``yolov3.darknet.synthetic.sparsify_head``), for benchmarks that time the work after the model."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=model_name))
    randomize(model, torch.rand(2, 3, 64, 64))  # BN statistics from small images: cheap, sane
    if images is not None:
        sparsify_head(model, images, per_image=15)
    meta = ModelMeta.of_model(model, None, SIZE, model_name)
    save_model(out / "model.safetensors", model, meta)
    paths = export_darknet(model, meta, out)
    (out / "darknet.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    export_onnx(model, meta.replace(export=ExportInfo()), out / "b1.onnx")
    export_onnx(model, meta.replace(export=ExportInfo(dynamic=True)), out / "dyn.onnx")


def _backend(runtime: str, folder: Path, batch: int, threads: int):  # noqa: ANN202
    darknet = json.loads((folder / "darknet.json").read_text())
    if runtime == "opencv":
        return OpenCVBackend(darknet["weights"], cfg=darknet["cfg"], threads=threads), "fp32"
    if runtime == "onnxruntime":
        return OnnxRuntimeBackend(folder / ("b1.onnx" if batch == 1 else "dyn.onnx"), threads=threads), "fp32"
    torch.set_num_threads(threads)
    model, meta = load_model(folder / "model.safetensors")
    bf16 = autocast_dtype(torch.device("cpu"), "auto") == torch.bfloat16
    return TorchBackend(model, meta, "cpu", amp="bf16" if bf16 else "off"), "bf16" if bf16 else "fp32"


def median_call_ms(backend, batch: int, runs: int) -> float:  # noqa: ANN001
    """Median milliseconds of ``backend`` on a random ``(batch, 3, SIZE, SIZE)`` input, after warm-up
    (``runs`` calls at batch 1, 2 at larger batches)."""
    x = torch.rand(batch, 3, SIZE, SIZE)
    for _ in range(2 if batch == 1 else 1):
        backend(x)
    times = []
    for _ in range(runs if batch == 1 else 2):
        t0 = time.perf_counter()
        backend(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def worker(runtime: str, folder: Path, runs: int, threads: int) -> None:
    """Time one runtime at batch 1 then 8; print ``{batch: {"ms": median per call, "dtype": ...}}``."""
    result = {}
    for batch in (1, 8):
        backend, dtype = _backend(runtime, folder, batch, threads)
        result[batch] = {"ms": median_call_ms(backend, batch, runs), "dtype": dtype}
    print(json.dumps(result))


def _child(args: list[str], timeout: float = 300, script: str = __file__) -> dict:
    """Run ``script`` (this file, or another benchmark sharing its structure) with ``args`` in its own
    process; its last stdout line, parsed as JSON."""
    # PyTorch's OpenMP threads spin-wait between layers by default; when another process holds a core
    # they burn their slice waiting for each other (3-5x slower here). Passive waiting costs ~nothing
    # on an idle machine. (OpenCV and ONNX Runtime have their own pools; ORT's spinning is off.)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, script, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode:
        raise RuntimeError(f"{args}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(name: str, runtime: str, batch: int, ms: float, anchor: float, dtype: str, threads: int) -> dict:
    if batch == 1:
        what = f"{name} {SIZE} batch-1 latency, {runtime} {dtype} vs OpenCV DNN (Darknet reader)"
        row = {"what": what, "ours": round(ms, 1), "anchor": round(anchor, 1), "unit": "ms",
               "ratio": round(ms / anchor, 3), "target": TARGETS[runtime]}  # fmt: skip
    else:
        ours, base = 1e3 * batch / ms, 1e3 * batch / anchor
        what = f"{name} {SIZE} batch-{batch} throughput, {runtime} {dtype} vs OpenCV DNN (Darknet reader)"
        row = {"what": what, "ours": round(ours, 2), "anchor": round(base, 2), "unit": "images/s",
               "ratio": round(ours / base, 3), "target": ""}  # fmt: skip
    row["note"] = f"each runtime in its own process, {threads} threads"
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--models", default="yolov3,yolov3-tiny")
    p.add_argument(
        "--threads",
        type=int,
        default=cpu_cores(),
        help="per runtime (default: all cores; 1 on a busy machine)",
    )
    p.add_argument("--worker", nargs=3, metavar=("RUNTIME", "FOLDER", "RUNS"))
    p.add_argument("--prepare", nargs=2, metavar=("MODEL", "FOLDER"))
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), int(args.worker[2]), args.threads)
        return
    if args.prepare:
        prepare(args.prepare[0], Path(args.prepare[1]))
        print("{}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            folder = Path(tmp) / name
            folder.mkdir()
            _child(["--prepare", name, str(folder)])
            work = ["--threads", str(args.threads), "--worker"]
            res = {
                r: _child([*work, r, str(folder), str(args.runs)]) for r in ("opencv", "onnxruntime", "torch")
            }
            for batch in ("1", "8"):
                anchor = res["opencv"][batch]["ms"]
                for runtime in ("onnxruntime", "torch"):
                    r = res[runtime][batch]
                    row = _row(name, runtime, int(batch), r["ms"], anchor, r["dtype"], args.threads)
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
