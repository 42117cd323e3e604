"""Batch-1 CPU latency at 416 of the native YOLOv3 against OpenCV DNN on the same cfg and weights.

The parent writes a Darknet cfg + .weights (random weights with sane activations, no downloads) and
times each runtime in its own subprocess (thread pools that spin after a call would slow the next
runtime in the same process): a few warm-up runs, then the median of 10. Rows (one JSON per line):
eager fp32; fused BN + channels_last + inference_mode fp32 (target <= 0.6x OpenCV); the fused model
under bf16 autocast where the CPU has AMX / AVX512-BF16 (target <= 0.25x), whose decoded outputs must
stay within 1e-2 relative of fp32.

    .venv/bin/python benchmarks/bench_model_latency.py [--size 416] [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

WARMUP = 3


def _image(size: int, seed: int = 0) -> torch.Tensor:
    """A smooth synthetic photo-like input in [0, 1], (1, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, size // 16, size // 16, generator=g)
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)


def _time(fn, runs: int) -> list[float]:
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def worker(kind: str, folder: Path, size: int, runs: int, threads: int) -> dict:
    x = torch.load(folder / "input.pt")
    if threads:
        torch.set_num_threads(threads)
    if kind == "opencv":
        import cv2

        if threads:
            cv2.setNumThreads(threads)
        net = cv2.dnn.readNetFromDarknet(str(folder / "model.cfg"), str(folder / "model.weights"))
        names = net.getUnconnectedOutLayersNames()
        blob = x.numpy()

        def run():
            net.setInput(blob)
            return net.forward(names)

        return {"ms": _time(run, runs)}

    from yolov3 import YOLOv3, decode_all
    from yolov3.darknet.weights import load_darknet_weights
    from yolov3.device import autocast, cpu_supports_bf16
    from yolov3.model.fuse import prepare_for_inference

    model = YOLOv3(80)
    load_darknet_weights(model, folder / "model.weights")
    model.eval()
    dtype = None
    if kind == "eager":
        net, inp = model, x
    else:
        net, inp = prepare_for_inference(model, "cpu"), x.contiguous(memory_format=torch.channels_last)
        if kind == "bf16":
            dtype = torch.bfloat16 if cpu_supports_bf16() else None
    device = torch.device("cpu")

    def run():
        with torch.inference_mode(), autocast(device, dtype):
            return net(inp)

    result = {"ms": _time(run, runs), "dtype": str(dtype) if dtype else "float32"}
    decoded = decode_all([r.float() for r in run()], model.anchors, model.strides)[0].numpy()
    np.save(folder / f"decoded_{kind}.npy", decoded)
    return result


def _spawn(kind: str, folder: Path, size: int, runs: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--dir", str(folder), "--size", str(size),
           "--runs", str(runs), "--threads", str(threads)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _errors(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Decoded ``a`` against reference ``b`` (N, 5 + C): boxes as ||a - b|| / ||b|| over all boxes
    (and the largest element-wise relative error, for information); scores (in [0, 1]) as the max
    absolute error, i.e. relative to their range."""
    box = np.abs(a[:, :4] - b[:, :4]) / np.maximum(np.abs(b[:, :4]), 1e-6)
    return {"box": float(np.linalg.norm(a[:, :4] - b[:, :4]) / np.linalg.norm(b[:, :4])),
            "box_max": float(box.max()), "box_p99": float(np.quantile(box, 0.99)),
            "score": float(np.abs(a[:, 4:] - b[:, 4:]).max())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="threads per runtime (0: each one's default)")
    parser.add_argument("--worker", choices=["opencv", "eager", "fused", "bf16"])
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.dir, args.size, args.runs, args.threads)))
        return

    from yolov3 import YOLOv3
    from yolov3.darknet import native_to_cfg, write_cfg
    from yolov3.darknet.synthetic import randomize
    from yolov3.darknet.weights import save_darknet_weights
    from yolov3.device import cpu_supports_bf16

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        x = _image(args.size)
        model = randomize(YOLOv3(80), torch.cat([x, _image(args.size, 1)]))
        (folder / "model.cfg").write_text(write_cfg(native_to_cfg(model, args.size, args.size)))
        save_darknet_weights(model, folder / "model.weights")
        torch.save(x, folder / "input.pt")
        del model
        res = {
            kind: _spawn(kind, folder, args.size, args.runs, args.threads)
            for kind in ("opencv", "eager", "fused", "bf16")
        }
        fp32 = np.load(folder / "decoded_fused.npy")
        errors = {k: _errors(np.load(folder / f"decoded_{k}.npy"), fp32) for k in ("eager", "bf16")}

    anchor = statistics.median(res["opencv"]["ms"])
    what = f"yolov3 {args.size} batch-1 CPU latency ({args.threads or 'default'} threads)"
    rows = [
        ("eager", f"{what}, eager fp32 vs OpenCV DNN", "report", "plain model.eval()"),
        ("fused", f"{what}, fused BN + channels_last + inference_mode fp32 vs OpenCV DNN", "<= 0.6", ""),
    ]
    bf16 = cpu_supports_bf16()
    rows.append(("bf16", f"{what}, bf16 autocast (fused, channels_last) vs OpenCV DNN", "<= 0.25",
                 "" if bf16 else "CPU lacks AMX/AVX512-BF16: fell back to fp32"))  # fmt: skip
    for kind, label, target, note in rows:
        ours = statistics.median(res[kind]["ms"])
        print(json.dumps({"what": label, "ours": round(ours, 1), "anchor": round(anchor, 1), "unit": "ms",
                          "ratio": round(ours / anchor, 3), "target": target, "note": note}))  # fmt: skip
    err = errors["bf16"]
    note = (f"boxes {err['box']:.1e} (element-wise max {err['box_max']:.1e}, p99 {err['box_p99']:.1e}), "
            f"scores {err['score']:.1e}; synthetic weights (yolov3.darknet.synthetic); eager vs fused fp32 "
            f"boxes {errors['eager']['box']:.1e}")  # fmt: skip
    if not bf16:
        note += "; no bf16 on this CPU: fp32 compared with itself"
    print(json.dumps({"what": "bf16 autocast decoded outputs vs fp32: boxes ||d||/||ref||, scores max abs",
                      "ours": round(max(err["box"], err["score"]), 5), "anchor": None, "unit": "relative",
                      "ratio": None, "target": "<= 0.01", "note": note}))  # fmt: skip


if __name__ == "__main__":
    main()
