"""``yolov3 benchmark``: one model on every runtime and precision installed here, side by side.

Rows (``SPECS``, in this order): PyTorch fp32 / bf16, ONNX Runtime fp32 / INT8, OpenVINO fp32 / bf16 /
INT8. Each row's file is the checkpoint itself (PyTorch) or an export written into the run folder by
``yolov3.export.exporter.export_weights``, which runs the file back against PyTorch before it reports
success (ONNX: batch and size free, ``--dynamic``; INT8: calibrated on the data set's train split, kept
whatever its drop, since the row shows the mAP). Then, each on the row's runtime and precision:

- **latency**: batch 1, the median of ``runs`` timed passes after ``WARMUP`` untimed ones, in ms. A pass
  is ``Detector.predict_arrays`` on one image already at the input size: letterbox (a copy and a
  division), the runtime, decode, score threshold and NMS at ``InferConfig``'s defaults -> ``Detections``.
  The median parts (``preprocess``, ``inference``, ``nms``: the Detector's own timings) come with it.
- **throughput**: one pass of ``batch`` images, the median of ``throughput_passes(runs)`` timed passes
  after ``WARMUP`` untimed ones, as images per second.
- **mAP** (with ``data``): mAP@0.5 and mAP@.5:.95 (VOC all-point, in [0, 1]) on the val split through
  ``yolov3.evaluate.api.val`` at ``InferConfig.for_map()``, as ``yolov3 val --amp <precision>`` gives.

The images timed are the data set's first val images (letterboxed to the input size) when given, else
one drawn image of grey noise. Precision: fp32 is ``amp="off"`` (OpenVINO's f32 hint), bf16 is
``amp="bf16"``, INT8 rows run their quantized convolutions in INT8 and the rest in float32.

A row that cannot run here is ``skipped`` with the reason (a runtime not installed, bf16 without native
support, OpenVINO off the CPU, INT8 without ``data``); one that fails (an export refused, a runtime
error) is ``failed`` with the error's message. Neither stops the other rows. Nothing imports this
module but the command line.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolov3.benchmark_plan import (
    RUNTIME_NAMES,
    SPECS,
    BenchmarkReport,
    Plan,
    Row,
    Spec,
    format_table,
    machine_info,
    select_specs,
    skip_reason,
)
from yolov3.config import InferConfig
from yolov3.console import Progress
from yolov3.data.dataset_config import load_dataset
from yolov3.data.images import ImageError, read_image
from yolov3.data.transforms import letterbox_uint8
from yolov3.device import select_device
from yolov3.errors import UserError
from yolov3.evaluate.api import val
from yolov3.export.exporter import export_weights
from yolov3.files import atomic_writer, make_dir
from yolov3.infer.detector import Detector
from yolov3.modelfile import load_model

WARMUP = 3  # untimed passes before the timed ones, at each batch size (kernel choice, lazy compilation)
INT8_MAX_DROP = 100.0  # mAP@0.5 points: keep every INT8 file; the row reports its mAP


def throughput_passes(runs: int) -> int:
    """Timed batch passes for ``runs`` batch-1 passes: a quarter of them, at least 3."""
    return max(3, runs // 4)


def timing_images(data: str | None, img_size: int, count: int) -> list[np.ndarray]:
    """``count`` RGB uint8 ``(S, S, 3)`` images: the data set's first readable val images letterboxed to
    ``img_size`` (repeated when fewer), else grey noise (seeded)."""
    images: list[np.ndarray] = []
    if data:
        for sample in load_dataset(data).val:
            try:
                images.append(letterbox_uint8(read_image(sample.image), img_size)[0])
            except ImageError:
                continue
            if len(images) == count:
                break
    if not images:
        rng = np.random.default_rng(0)
        images = [rng.integers(64, 192, (img_size, img_size, 3), dtype=np.uint8)]
    return [images[i % len(images)] for i in range(count)]


def median_pass(fn: Callable[[], Any], passes: int, warmup: int) -> tuple[float, list[Any]]:
    """``(median seconds of a call, the results of the timed calls)`` over ``passes`` timed calls of
    ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times, results = [], []
    for _ in range(passes):
        t0 = time.perf_counter()
        results.append(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), results


class _Exports:
    """The files each row runs, exported once into ``out`` (the fp32 file serves fp32 and bf16; a
    failed export is not tried again: its error is raised for each row that needs it)."""

    def __init__(self, weights: Path, out: Path, img_size: int, data: str | None, calib_images: int) -> None:
        self.weights, self.out, self.img_size = weights, out, img_size
        self.data, self.calib_images = data, calib_images
        self._done: dict[tuple[str, bool], tuple[Path, float] | Exception] = {}

    def file(self, spec: Spec) -> tuple[Path, float | None]:
        """``(file, seconds the export took)`` for ``spec``; the checkpoint for PyTorch rows."""
        if spec.format is None:
            return self.weights, None
        int8 = spec.precision == "int8"
        key = (spec.format, int8)
        if key not in self._done:
            suffix = ".onnx" if spec.format == "onnx" else ".xml"
            path = self.out / f"{self.weights.stem}{'_int8' if int8 else ''}{suffix}"
            extra: dict[str, Any] = {"dynamic": spec.format == "onnx" and not int8}
            if int8:
                extra.update(int8=True, data=self.data, calib_images=self.calib_images,
                             int8_max_drop=INT8_MAX_DROP)  # fmt: skip
            try:
                report = export_weights(self.weights, spec.format, path, device="cpu",
                                        settings=InferConfig(img_size=self.img_size), **extra)  # fmt: skip
                self._done[key] = (report.files[0], report.seconds)
            except Exception as exc:  # the row says why (run_row)
                self._done[key] = exc
        done = self._done[key]
        if isinstance(done, Exception):
            raise done
        return done


def _size_mb(path: Path) -> float:
    """Megabytes on disk: the file and, for an OpenVINO IR, its ``.bin``."""
    files = [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else [])
    return round(sum(f.stat().st_size for f in files if f.is_file()) / 2**20, 2)


def measure_row(spec: Spec, file: Path, plan: Plan, images: list[np.ndarray], row: Row) -> None:
    """Fill ``row``'s latency, throughput and (with ``plan.data``) mAP for ``file`` on ``spec``'s runtime;
    ``images``: ``plan.batch`` images at the input size."""
    settings = InferConfig(img_size=plan.img_size, amp=spec.amp)
    det = Detector.load(file, device=str(plan.device), backend=spec.runtime, batch_size=plan.batch,
                        settings=settings, backend_options=plan.backend_options)  # fmt: skip
    one = images[:1]
    seconds, results = median_pass(lambda: det.predict_arrays(one), plan.runs, WARMUP)
    row.latency_ms = round(1e3 * seconds, 3)
    parts = [r[0].speed for r in results]
    row.latency_parts_ms = {k: round(statistics.median(p[k] for p in parts), 3) for k in parts[0]}
    seconds, _ = median_pass(lambda: det.predict_arrays(images), throughput_passes(plan.runs), WARMUP)
    row.throughput_ips = round(len(images) / seconds, 2)
    if plan.data:
        scoring = InferConfig.for_map(img_size=plan.img_size, amp=spec.amp)
        result = val(file, plan.data, "val", device=str(plan.device), backend=spec.runtime,
                     batch_size=plan.batch, settings=scoring, coco=False, plots=False,
                     backend_options=plan.backend_options)  # fmt: skip
        row.map50, row.map50_95 = float(result.summary["map50"]), float(result.summary["map50_95"])


def _reason(exc: BaseException) -> str:
    """The first line of an error's message (with its type, unless it is meant for the user)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    return text if isinstance(exc, UserError) and text else f"{type(exc).__name__}: {text}".rstrip(": ")


def run_row(spec: Spec, exports: _Exports, plan: Plan, images: list[np.ndarray]) -> Row:
    """One row: skipped, failed or measured (never an exception but ``KeyboardInterrupt``)."""
    row = Row(spec.name, RUNTIME_NAMES[spec.runtime], spec.precision)
    why = skip_reason(spec, plan.device, plan.data)
    if why:
        row.status, row.reason = "skipped", why
        return row
    try:
        file, row.export_s = exports.file(spec)
        row.file, row.file_mb = str(file), _size_mb(file)
        row.export_s = None if row.export_s is None else round(row.export_s, 1)
        measure_row(spec, file, plan, images, row)
    except Exception as exc:  # a row's failure is its reason, and the other rows go on
        row.status, row.reason = "failed", _reason(exc)
    return row


def check_inputs(weights: Path, data: str | None, img_size: int | None, batch: int, runs: int,
                 calib_images: int, threads: int | None) -> tuple[int, int]:  # fmt: skip
    """Refuse bad settings before anything runs; ``(input size, class count)`` of the model."""
    if weights.suffix.lower() not in (".pt", ".pth", ".safetensors"):
        raise UserError(f"--weights {weights}: expected a checkpoint (.pt / .safetensors); the benchmark "
                        "exports the other formats itself")  # fmt: skip
    counts = [("--batch", batch), ("--runs", runs), ("--calib-images", calib_images)]
    for flag, value in counts + ([("--threads", threads)] if threads is not None else []):
        if value < 1:
            raise UserError(f"{flag} {value}: must be >= 1")
    _, meta = load_model(weights, device=torch.device("cpu"))
    size = meta.img_size if img_size is None else img_size
    InferConfig(img_size=size)  # a multiple of 32, or an error naming img_size
    if data:
        names = load_dataset(data).names
        if len(names) != meta.num_classes:
            raise UserError(f"--data {data}: {len(names)} classes, but {weights} predicts "
                            f"{meta.num_classes}: use the data set the model was trained for")  # fmt: skip
    return size, meta.num_classes


def benchmark(weights: str | os.PathLike, out: str | os.PathLike, data: str | os.PathLike | None = None,
              img_size: int | None = None, batch: int = 8, device: str = "auto", runs: int = 20,
              formats: Sequence[str] | None = None, calib_images: int = 300, threads: int | None = None,
              progress: bool = True) -> BenchmarkReport:  # fmt: skip
    """Measure the checkpoint ``weights`` on every row of ``formats`` (default all; the module
    docstring says what and how), exporting into ``out`` (created) and writing ``out/benchmark.json``.
    ``img_size``: default the model's own input size. ``threads``: CPU threads of every runtime
    (PyTorch's for the run, restored after; default all cores)."""
    start = time.perf_counter()
    weights, data = Path(weights), (str(data) if data else None)
    specs = select_specs(formats)
    size, _ = check_inputs(weights, data, img_size, batch, runs, calib_images, threads)
    plan = Plan(select_device(device), size, batch, runs, threads, data)
    out = make_dir(out, "output folder (--out)")  # after the checks: a refused run leaves no folder
    report = BenchmarkReport(str(weights), data, size, batch, runs, threads, str(plan.device),
                             machine_info(plan.device))  # fmt: skip
    images = timing_images(data, size, batch)
    exports = _Exports(weights, out, size, data, calib_images)
    torch_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        with Progress(total=len(specs), desc="benchmark", unit="row", enabled=progress) as bar:
            for spec in specs:
                row = run_row(spec, exports, plan, images)
                report.rows.append(row)
                bar.write(f"{spec.name}: {row.status}"
                          + (f", {row.latency_ms:.1f} ms" if row.latency_ms is not None else "")
                          + (f" ({row.reason})" if row.reason else ""))  # fmt: skip
                bar.update()
    finally:
        torch.set_num_threads(torch_threads)
    report.seconds = round(time.perf_counter() - start, 1)
    with atomic_writer(out / "benchmark.json") as f:
        f.write(json.dumps(report.to_dict(), indent=1, allow_nan=False).encode())
    return report


__all__ = ["SPECS", "BenchmarkReport", "Plan", "Row", "Spec", "benchmark", "format_table", "machine_info",
           "select_specs", "skip_reason"]  # fmt: skip
