"""CPU runtimes at 416 against OpenCV DNN on the Darknet files: PyTorch fp32 / bf16, ONNX Runtime fp32 /
INT8 (QDQ), OpenVINO fp32 / bf16 / INT8 (NNCF), for YOLOv3 and YOLOv3-tiny; and ``detect`` end to end.

Structure shared with ``bench_backends.py`` (its ``prepare`` writes the checkpoint, Darknet files and
ONNX; its ``_child`` runs each runtime in its own process, passive OpenMP waiting): this script adds
the OpenVINO IR, the INT8 files (calibrated on ``--calib-images`` synthetic 416 px images from
``yolov3.data.synth``: the weights are random, so the data only sets activation ranges; the output
layers are set to find about 15 boxes an image, as a trained model does, so that ``detect`` end to end
does not time NMS and drawing of 300 boxes of noise per image), and times
each runtime through the project's backends: warm-up, then the median of ``--runs`` calls at batch 1
(latency) and of 2 calls at batch 8 (throughput; OpenVINO runs one request per image then).

Rows: batch-1 latency ratio to OpenCV DNN (targets from issue 13: OpenVINO INT8 <= 0.18 for YOLOv3,
<= 0.3 for tiny; OpenVINO fp32 <= 0.55, bf16 <= 0.28; ONNX Runtime INT8 <= 0.5); batch-8 throughput
ratio (OpenVINO INT8 >= 5); ``yolov3 detect`` on a folder of JPEGs (decode, letterbox, model, NMS,
writing) in images/s, OpenVINO INT8 against the PyTorch fp32 runtime (>= 4). bf16 rows only where
the CPU has native bf16 (``yolov3.device.cpu_supports_bf16``). Accuracy is not measured here: the
weights are random (``bench_int8_accuracy.py`` measures it on trained models).

    .venv/bin/python benchmarks/bench_cpu_runtimes.py [--runs 5] [--models yolov3,yolov3-tiny]
        [--threads N] [--calib-images 300] [--detect-images 32] [--smoke]

``--smoke``: YOLOv3-tiny only, 1 run, 2 calibration images, 4 detect images (checks the script, not
the speed). On a machine other jobs share, use ``--threads 1`` for meaningful ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backends import SIZE, _child, median_call_ms, prepare  # noqa: E402

from yolov3.apps.detect.runner import SaveOptions, run_source  # noqa: E402
from yolov3.config import InferConfig  # noqa: E402
from yolov3.data.synth import SynthConfig, generate  # noqa: E402
from yolov3.data.types import Sample  # noqa: E402
from yolov3.device import autocast_dtype, cpu_supports_bf16  # noqa: E402
from yolov3.export.openvino import export_openvino  # noqa: E402
from yolov3.export.quantize import calibration_batches, quantize_onnx, quantize_openvino  # noqa: E402
from yolov3.infer.backends import cpu_cores  # noqa: E402
from yolov3.infer.backends.opencv import OpenCVBackend  # noqa: E402
from yolov3.infer.backends.openvino import OpenVINOBackend  # noqa: E402
from yolov3.infer.backends.ort import OnnxRuntimeBackend  # noqa: E402
from yolov3.infer.backends.pytorch import TorchBackend  # noqa: E402
from yolov3.infer.detector import Detector  # noqa: E402
from yolov3.modelfile import ExportInfo, load_model  # noqa: E402

TARGETS = {
    ("yolov3", "openvino int8", 1): "<= 0.18",
    ("yolov3-tiny", "openvino int8", 1): "<= 0.3",
    ("yolov3", "openvino fp32", 1): "<= 0.55",
    ("yolov3", "openvino bf16", 1): "<= 0.28",
    ("yolov3", "onnxruntime int8", 1): "<= 0.5",
    ("yolov3", "openvino int8", 8): ">= 5",
}
RUNTIMES = ["opencv fp32", "torch fp32", "torch bf16", "onnxruntime fp32", "onnxruntime int8",
            "openvino fp32", "openvino bf16", "openvino int8"]  # fmt: skip


def prepare_cpu(model_name: str, out: Path, calib_images: int, detect_images: int) -> None:
    """``bench_backends.prepare``'s files, plus the OpenVINO IR, both INT8 files and a JPEG folder."""
    n = max(calib_images, detect_images) + 1
    data, _ = generate(out / "data", SynthConfig(n=n, size=SIZE, val_fraction=0.0), progress=False)
    samples = sorted((out / "data" / "images" / "train").glob("*.jpg"))
    batches = calibration_batches([Sample(str(p)) for p in samples], SIZE, calib_images)
    prepare(model_name, out, torch.from_numpy(np.concatenate(batches[:8])))  # ~15 boxes an image
    model, meta = load_model(out / "model.safetensors")
    meta = meta.replace(img_size=SIZE, export=ExportInfo(format="openvino"))
    export_openvino(model.eval(), meta, out / "fp32.xml")
    t0 = time.perf_counter()
    quantize_openvino(out / "fp32.xml", out / "int8.xml", batches, meta, {})
    seconds = time.perf_counter() - t0
    onnx_meta = meta.replace(export=ExportInfo(dynamic=True))
    quantize_onnx(out / "dyn.onnx", out / "int8.onnx", batches, onnx_meta, {})
    (out / "detect").mkdir()
    for p in samples[:detect_images]:
        (out / "detect" / p.name).write_bytes(p.read_bytes())
    (out / "calib.json").write_text(json.dumps({"seconds": seconds, "images": len(batches)}))


def _backend(runtime: str, folder: Path, batch: int, threads: int):  # noqa: ANN202
    kind, dtype = runtime.split()
    if kind == "opencv":
        darknet = json.loads((folder / "darknet.json").read_text())
        return OpenCVBackend(darknet["weights"], cfg=darknet["cfg"], threads=threads)
    if kind == "onnxruntime":
        name = "int8.onnx" if dtype == "int8" else ("b1.onnx" if batch == 1 else "dyn.onnx")
        return OnnxRuntimeBackend(folder / name, threads=threads)
    if kind == "openvino":
        # INT8: the backend's default (amp auto): ops left in float run in bf16 where the CPU has it
        # (measured 4x faster than f32 on an AVX512-BF16 CPU for YOLOv3-tiny's unquantized convolutions).
        amp = {"bf16": "bf16", "fp32": "off"}.get(dtype, "auto")
        return OpenVINOBackend(
            folder / ("int8.xml" if dtype == "int8" else "fp32.xml"), threads=threads, amp=amp
        )
    torch.set_num_threads(threads)
    model, meta = load_model(folder / "model.safetensors")
    return TorchBackend(model, meta, "cpu", amp="bf16" if dtype == "bf16" else "off")


def worker(runtime: str, folder: Path, runs: int, threads: int) -> None:
    """Time one runtime at batch 1 then 8; print ``{batch: ms per call}``."""
    result = {b: median_call_ms(_backend(runtime, folder, b, threads), b, runs) for b in (1, 8)}
    print(json.dumps(result))


def detect_worker(runtime: str, folder: Path, threads: int) -> None:
    """What ``yolov3 detect`` does over the JPEG folder (read, letterbox, model, NMS, annotated images
    and result files written), timed after the model is loaded and warmed up as ``detect`` does;
    print ``{"images_s": ...}``."""
    torch.set_num_threads(threads)
    weights = folder / ("int8.xml" if runtime == "openvino int8" else "model.safetensors")
    amp = "auto" if runtime == "openvino int8" else "off"  # each at its deployment default
    det = Detector.load(weights, device="cpu", batch_size=1, settings=InferConfig(img_size=SIZE, amp=amp),
                        backend_options={"threads": threads})  # fmt: skip
    det.warmup()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        report = run_source(det, folder / "detect", out, SaveOptions(), log=None, progress=False)
        seconds = time.perf_counter() - t0
    print(json.dumps({"images_s": report.processed / seconds}))


def _rows(name: str, res: dict, threads: int) -> list[dict]:
    note = f"each runtime in its own process, {threads} threads, random weights"
    rows = []
    for batch in ("1", "8"):
        anchor = res["opencv fp32"][batch]
        for runtime, r in res.items():
            if runtime == "opencv fp32":
                continue
            target = TARGETS.get((name, runtime, int(batch)), "")
            if batch == "1":
                what = f"{name} {SIZE} batch-1 latency, {runtime} vs OpenCV DNN (Darknet reader)"
                row = {"what": what, "ours": round(r[batch], 1), "anchor": round(anchor, 1), "unit": "ms",
                       "ratio": round(r[batch] / anchor, 3), "target": target}  # fmt: skip
            else:
                ours, base = 8e3 / r[batch], 8e3 / anchor
                what = f"{name} {SIZE} batch-8 throughput, {runtime} vs OpenCV DNN (Darknet reader)"
                row = {"what": what, "ours": round(ours, 2), "anchor": round(base, 2), "unit": "images/s",
                       "ratio": round(ours / base, 3), "target": target}  # fmt: skip
            rows.append({**row, "note": note})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--models", default="yolov3,yolov3-tiny")
    p.add_argument("--threads", type=int, default=cpu_cores(), help="per runtime (default: all cores)")
    p.add_argument("--calib-images", type=int, default=300, help="the export default (issue 13: <= 5 min)")
    p.add_argument("--detect-images", type=int, default=32)
    p.add_argument("--smoke", action="store_true", help="tiny only, few runs: checks the script")
    p.add_argument("--worker", nargs=3, metavar=("RUNTIME", "FOLDER", "RUNS"))
    p.add_argument("--detect-worker", nargs=2, metavar=("RUNTIME", "FOLDER"))
    p.add_argument("--prepare", nargs=2, metavar=("MODEL", "FOLDER"))
    args = p.parse_args()
    if args.smoke:
        args.models, args.runs, args.calib_images, args.detect_images = "yolov3-tiny", 1, 2, 4
    if args.worker:
        return worker(args.worker[0], Path(args.worker[1]), int(args.worker[2]), args.threads)
    if args.detect_worker:
        return detect_worker(args.detect_worker[0], Path(args.detect_worker[1]), args.threads)
    if args.prepare:
        prepare_cpu(args.prepare[0], Path(args.prepare[1]), args.calib_images, args.detect_images)
        return print("{}")
    bf16 = cpu_supports_bf16() and autocast_dtype(torch.device("cpu"), "auto") == torch.bfloat16
    runtimes = [r for r in RUNTIMES if bf16 or not r.endswith("bf16")]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            folder = Path(tmp) / name
            folder.mkdir()
            sizes = ["--calib-images", str(args.calib_images), "--detect-images", str(args.detect_images)]
            _child([*sizes, "--prepare", name, str(folder)], 900, __file__)
            calib = json.loads((folder / "calib.json").read_text())
            work = ["--threads", str(args.threads), "--worker"]
            res = {r: _child([*work, r, str(folder), str(args.runs)], 600, __file__) for r in runtimes}
            for row in _rows(name, res, args.threads):
                print(json.dumps(row), flush=True)
            e2e = {r: _child([*work[:2], "--detect-worker", r, str(folder)], 600, __file__) for r in E2E}
            print(json.dumps(_e2e_row(name, e2e, args)), flush=True)
            print(json.dumps(_calib_row(name, calib)), flush=True)


E2E = ("torch fp32", "openvino int8")


def _e2e_row(name: str, e2e: dict, args: argparse.Namespace) -> dict:
    ours, base = e2e["openvino int8"]["images_s"], e2e["torch fp32"]["images_s"]
    what = (
        f"{name} {SIZE} yolov3 detect end to end ({args.detect_images} JPEGs), OpenVINO INT8 vs PyTorch fp32"
    )
    return {"what": what, "ours": round(ours, 2), "anchor": round(base, 2), "unit": "images/s",
            "ratio": round(ours / base, 3), "target": ">= 4" if name == "yolov3" else "",
            "note": f"{args.threads} threads"}  # fmt: skip


def _calib_row(name: str, calib: dict) -> dict:
    return {"what": f"{name} {SIZE} NNCF INT8 calibration, {calib['images']} images",
            "ours": round(calib["seconds"], 1), "anchor": None, "unit": "s", "ratio": None,
            "target": "<= 300" if name == "yolov3" and calib["images"] >= 300 else "",
            "note": "issue 13: <= 300 s for YOLOv3 on 300 images"}  # fmt: skip


if __name__ == "__main__":
    main()
