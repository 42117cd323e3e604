"""PyTorch backends: a model in this process (checkpoints, Darknet cfg + weights) and TorchScript files."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from yolov3.device import autocast_dtype
from yolov3.errors import UserError
from yolov3.infer.backends import Backend
from yolov3.model.fuse import prepare_for_inference
from yolov3.modelfile import ModelMeta, load_model

TORCHSCRIPT_META = "yolov3.json"  # the extra file of a TorchScript export that holds its ModelMeta
TORCHSCRIPT_SUFFIXES = (".torchscript", ".ts")


class TorchBackend(Backend):
    """A PyTorch model, prepared for inference: BN folded, channels_last, ``inference_mode``, weights
    in bf16 / fp16 when ``amp`` says so (``yolov3.device.autocast_dtype``: bf16 on CPUs with AVX512-BF16
    / AMX and on GPUs), and on CUDA, with ``cuda_graph=True``, one CUDA graph per input shape (replayed:
    no per-layer launch cost; the input is copied into a static buffer)."""

    kind = "torch"

    def __init__(self, model: nn.Module, meta: ModelMeta, device: torch.device | str = "cpu",
                 amp: str = "auto", cuda_graph: bool = False, source: str = "model") -> None:  # fmt: skip
        device = torch.device(device)
        super().__init__(meta, device, source)
        self.dtype = autocast_dtype(device, amp) or torch.float32
        self.model = prepare_for_inference(model, device, self.dtype)
        self.cuda_graph = cuda_graph and device.type == "cuda"
        self._graphs: dict[tuple[int, ...], tuple[Any, Tensor, list[Tensor]]] = {}

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> list[Tensor]:
        x = images.to(self.device, self.dtype, non_blocking=True).contiguous(
            memory_format=torch.channels_last
        )
        if self.cuda_graph:  # copies: the graph's output buffers are overwritten by the next replay
            return [r.to(torch.float32, copy=True) for r in self._replay(x)]
        return [r.float() for r in self.model(x)]

    def _replay(self, x: Tensor) -> list[Tensor]:
        """Capture (first call per shape) or replay the CUDA graph of ``model(x)``."""
        key = tuple(x.shape)
        if key not in self._graphs:
            static_in = x.clone()
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm-up: cuDNN picks its algorithms outside the capture
                    self.model(static_in)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.model(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out


def load_torchscript(path: str | os.PathLike, device: torch.device | str = "cpu"
                     ) -> tuple[torch.jit.ScriptModule, ModelMeta]:  # fmt: skip
    """``(module, meta)`` of a file written by ``yolov3 export --format torchscript``."""
    extra = {TORCHSCRIPT_META: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit is deprecated": still the C++ path
        try:
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{path}: not a readable TorchScript file ({exc})") from exc
    if not extra[TORCHSCRIPT_META]:
        raise UserError(f"{path}: a TorchScript file without yolov3 metadata ({TORCHSCRIPT_META})")
    return module.eval(), ModelMeta.from_json(extra[TORCHSCRIPT_META], str(path))


class TorchScriptBackend(Backend):
    """A file from ``yolov3 export --format torchscript`` (raw or decoded outputs); traced without
    ``--dynamic``, it takes its traced input size only."""

    kind = "torch"

    def __init__(self, path: str | os.PathLike, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        module, meta = load_torchscript(path, device)
        export = meta.export
        super().__init__(meta, device, str(path))
        if export is not None and not export.dynamic:
            self.input_size = (meta.img_size, meta.img_size)
        self.module = module
        self.dtype = torch.float16 if export is not None and export.half else torch.float32

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> list[Tensor]:
        out = self.module(images.to(self.device, self.dtype))
        return self._sorted([out] if isinstance(out, Tensor) else list(out))


def load(path: Path, device: torch.device, cfg: Any = None, names: Any = None, amp: str = "auto",
         cuda_graph: bool = False, **_: Any) -> Backend:  # fmt: skip
    """The PyTorch backend for a checkpoint, Darknet ``.weights`` (with ``cfg``) or TorchScript file."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        raise UserError(f"--backend torch cannot run {path}: use --backend onnxruntime or opencv")
    if suffix in TORCHSCRIPT_SUFFIXES:
        return TorchScriptBackend(path, device)
    model, meta = load_model(path, cfg=cfg, names=names, device=device)
    return TorchBackend(model, meta, device, amp, cuda_graph, str(path))


__all__ = ["TORCHSCRIPT_META", "TorchBackend", "TorchScriptBackend", "load", "load_torchscript"]
