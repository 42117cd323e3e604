"""ONNX Runtime backend: an ONNX file, this exporter's (raw maps, decoded boxes or detections after
in-graph NMS, fixed or free sizes) or another tool's with raw-map outputs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from torch import Tensor

from yolov3.errors import UserError
from yolov3.infer.backends import Backend, cpu_cores
from yolov3.infer.backends.onnxfile import inspect_onnx


def ort_session(model: str | os.PathLike | bytes, device: torch.device, threads: int | None = None,
                spin: bool = False) -> ort.InferenceSession:  # fmt: skip
    """An ONNX Runtime session tuned for latency: every graph optimisation (constant folding, Conv +
    activation fusion, NCHWc layout), ``threads`` intra-op threads (default: the cores this process
    may use), sequential execution, and by default no spin-waiting between calls (spinning threads
    steal the cores other work in the process needs; ``spin=True`` trades that for a little latency).
    CUDA when ``device`` is CUDA and this ONNX Runtime has the provider."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads or cpu_cores()
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError(f"--device {device}: this onnxruntime has no CUDAExecutionProvider "
                            "(install onnxruntime-gpu, or use --device cpu)")  # fmt: skip
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), so, providers=providers)


class OnnxRuntimeBackend(Backend):
    """An ONNX file run by ONNX Runtime (module docstring); outputs come back through NumPy. A file
    with a fixed batch size runs larger batches in chunks of it."""

    kind = "onnxruntime"

    def __init__(self, path: str | os.PathLike, device: torch.device | str = "cpu", names: Any = None,
                 threads: int | None = None, spin: bool = False) -> None:  # fmt: skip
        device = torch.device(device)
        iface = inspect_onnx(path)
        super().__init__(iface.model_meta(names), device, str(path))
        self.input_size, self.fixed_batch = iface.input_size, iface.fixed_batch
        self.session = ort_session(path, device, threads, spin)
        self.input_name = iface.input_name
        self.input_dtype = iface.input_dtype

    def __call__(self, images: Tensor) -> list[Tensor]:
        return self._in_fixed_batches(images, self._run)

    def _run(self, images: Tensor) -> list[Tensor]:
        x = images.detach().cpu().numpy().astype(self.input_dtype, copy=False)
        return self._sorted(self.session.run(None, {self.input_name: x}))


def load(path: Path, device: torch.device, names: Any = None, threads: int | None = None, spin: bool = False,
         **_: Any) -> Backend:  # fmt: skip
    if path.suffix.lower() != ".onnx":
        raise UserError(f"--backend onnxruntime runs .onnx files, got {path} (export it first)")
    return OnnxRuntimeBackend(path, device, names, threads, spin)


__all__ = ["OnnxRuntimeBackend", "load", "ort_session"]
