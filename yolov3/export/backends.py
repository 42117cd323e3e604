"""Inference backends: PyTorch, TorchScript, ONNX Runtime and OpenCV DNN behind one callable.

Every backend is ``backend(images) -> raws``: ``images`` ``(B, 3, H, W)`` float32 RGB in [0, 1]
(letterboxed, H and W multiples of 32) and ``raws`` the list of raw maps ``(B, A * (5 + C), H / s,
W / s)`` float32 on ``backend.device``, ordered by increasing stride, exactly as ``YOLOv3.forward``.
Each also carries ``anchors`` (per output, (w, h) input pixels), ``strides``, ``num_classes``,
``names`` and ``img_size``, so decoding, NMS and un-letterboxing (``yolov3.postprocess``) are shared.

``load_backend(path, kind)`` picks one from the file: ``.onnx`` (ONNX Runtime or OpenCV), ``.torchscript``
(TorchScript), Darknet ``.weights`` + ``.cfg`` (PyTorch or OpenCV), checkpoints (PyTorch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from yolov3.checkpoint import load_model, read_names
from yolov3.darknet.cfg import Conv, Yolo, parse_cfg
from yolov3.device import autocast_dtype, select_device
from yolov3.errors import UserError
from yolov3.export.check import inspect_onnx
from yolov3.export.meta import check_meta
from yolov3.export.torchscript import load_torchscript
from yolov3.model.factory import cfg_path
from yolov3.model.fuse import prepare_for_inference
from yolov3.model.yolov3 import COCO_ANCHORS

BACKENDS = ("torch", "onnxruntime", "opencv")
# YOLOv3-tiny's COCO anchors (yolov3-tiny.cfg), stride 16 then 32: for ONNX files from other tools.
TINY_ANCHORS = (((10, 14), (23, 27), (37, 58)), ((81, 82), (135, 169), (344, 319)))


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Backend:
    """Base: the model description shared by all backends. Subclasses implement ``__call__``."""

    kind = "?"

    def __init__(self, meta: dict[str, Any], device: torch.device, source: str) -> None:
        self.meta = check_meta(meta, source)
        self.names: list[str] = list(meta["names"])
        self.num_classes: int = int(meta["num_classes"])
        self.anchors = [[tuple(a) for a in scale] for scale in meta["anchors"]]
        self.strides: list[int] = [int(s) for s in meta["strides"]]
        self.img_size: int = int(meta.get("img_size", 416))
        self.device = device
        self.source = source

    def __call__(self, images: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source}, classes={self.num_classes}, device={self.device})"

    def _sorted(self, maps: list[np.ndarray | Tensor]) -> list[Tensor]:
        """Raw maps as float32 tensors on ``self.device``, largest grid (smallest stride) first."""
        maps = sorted(maps, key=lambda m: -m.shape[-2] * m.shape[-1])
        return [torch.as_tensor(np.asarray(m) if not isinstance(m, Tensor) else m).float().to(self.device)
                for m in maps]  # fmt: skip


def _foreign_meta(num_outputs: int, channels: int | None, names, source: str) -> dict[str, Any]:  # noqa: ANN001
    """Meta for an ONNX file without yolov3 metadata: COCO anchors for 3 outputs, tiny's for 2."""
    anchors = COCO_ANCHORS if num_outputs == 3 else TINY_ANCHORS
    strides = [8, 16, 32] if num_outputs == 3 else [16, 32]
    if channels is None:
        raise UserError(f"{source}: output channel count is not fixed in the file and there is no yolov3 "
                        "metadata: cannot tell the number of classes")  # fmt: skip
    num_classes = channels // 3 - 5
    anchors = [[list(a) for a in scale] for scale in anchors]
    names = read_names(names, num_classes, source)
    return {
        "names": names,
        "num_classes": num_classes,
        "anchors": anchors,
        "strides": strides,
        "img_size": 416,
    }


class TorchBackend(Backend):
    """A PyTorch model, prepared for inference: BN folded, channels_last, ``inference_mode``, weights
    in bf16 / fp16 when ``amp`` says so (``yolov3.device.autocast_dtype``: bf16 on CPUs with AVX512-BF16
    / AMX and on GPUs), and on CUDA, with ``cuda_graph=True``, one CUDA graph per input shape (replayed:
    no per-layer launch cost; the input is copied into a static buffer)."""

    kind = "torch"

    def __init__(self, model: nn.Module, meta: dict[str, Any], device: torch.device | str = "cpu",
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


class TorchScriptBackend(Backend):
    """A file from ``yolov3 export --format torchscript --outputs raw``."""

    kind = "torch"

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        module, meta = load_torchscript(path, device)
        if meta.get("outputs", "raw") != "raw":
            raise UserError(
                f"{path}: exported with --outputs {meta['outputs']}; a backend needs --outputs raw"
            )
        super().__init__(meta, device, str(path))
        self.module = module
        self.dtype = torch.float16 if meta.get("half") else torch.float32

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> list[Tensor]:
        return self._sorted(list(self.module(images.to(self.device, self.dtype))))


def ort_session(path: str | Path | bytes, device: torch.device, threads: int | None = None,
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
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError(f"--device {device}: this onnxruntime has no CUDAExecutionProvider "
                            "(install onnxruntime-gpu, or use --device cpu)")  # fmt: skip
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), so, providers=providers)


class OnnxRuntimeBackend(Backend):
    """An ONNX file with raw-map outputs (this exporter's, or another tool's that fits the contract)
    run by ONNX Runtime. Outputs come back through NumPy (host memory)."""

    kind = "onnxruntime"

    def __init__(self, path: str | Path, device: torch.device | str = "cpu", names=None,  # noqa: ANN001
                 threads: int | None = None, spin: bool = False) -> None:  # fmt: skip
        device = torch.device(device)
        iface = inspect_onnx(path)
        if iface.outputs != "raw":
            raise UserError(f"{path}: exported with --outputs {iface.outputs}; a backend needs --outputs raw")
        channels = iface.output_shapes[0][1] if isinstance(iface.output_shapes[0][1], int) else None
        meta = iface.meta or _foreign_meta(len(iface.output_names), channels, names, str(path))
        super().__init__(meta, device, str(path))
        self.session = ort_session(path, device, threads, spin)
        self.input_name = iface.input_name
        self.input_dtype = iface.input_dtype

    def __call__(self, images: Tensor) -> list[Tensor]:
        x = images.detach().cpu().numpy().astype(self.input_dtype, copy=False)
        return self._sorted(self.session.run(None, {self.input_name: x}))


class OpenCVBackend(Backend):
    """OpenCV DNN on an ONNX file (raw outputs) or on Darknet ``.cfg`` + ``.weights``. For Darknet files
    the raw maps are read from the convolution before each ``[yolo]`` layer (OpenCV's own [yolo] output
    is decoded and thresholded)."""

    kind = "opencv"

    def __init__(self, path: str | Path, cfg: str | Path | None = None, names=None,  # noqa: ANN001
                 threads: int | None = None) -> None:  # fmt: skip
        path = Path(path)
        cv2.setNumThreads(threads or cpu_cores())
        if path.suffix == ".onnx":
            iface = inspect_onnx(path)
            if iface.outputs != "raw" or iface.input_dtype != np.float32:
                raise UserError(f"{path}: the OpenCV backend needs a float32 export with --outputs raw")
            if not all(isinstance(d, int) for d in iface.input_shape[2:]):
                raise UserError(f"{path}: input shape {iface.input_shape} has symbolic sizes; OpenCV DNN "
                                "cannot infer the graph's shapes then: export without --dynamic")  # fmt: skip
            channels = iface.output_shapes[0][1] if isinstance(iface.output_shapes[0][1], int) else None
            meta = iface.meta or _foreign_meta(len(iface.output_names), channels, names, str(path))
            try:
                self.net = cv2.dnn.readNetFromONNX(str(path))
            except cv2.error as exc:
                raise UserError(f"{path}: OpenCV DNN cannot read this ONNX file: {exc}") from exc
            self.outputs = iface.output_names
        else:
            if cfg is None:
                raise UserError(f"{path}: the OpenCV backend reads Darknet weights with their --cfg")
            meta, conv_indices = _darknet_meta(cfg, names)
            self.net = cv2.dnn.readNetFromDarknet(str(cfg_path(cfg)), str(path))
            # OpenCV's Darknet importer names cfg layer i's convolution "conv_i".
            self.outputs = [f"conv_{i}" for i in conv_indices]
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        super().__init__(meta, torch.device("cpu"), str(path))

    def __call__(self, images: Tensor) -> list[Tensor]:
        self.net.setInput(np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32))
        try:
            maps = self.net.forward(self.outputs)
        except cv2.error as exc:
            raise UserError(
                f"{self.source}: OpenCV DNN failed on input {tuple(images.shape)}: {exc}"
            ) from exc
        return self._sorted(list(maps))


def _darknet_meta(cfg_file: str | Path, names) -> tuple[dict[str, Any], list[int]]:  # noqa: ANN001
    """Meta from a Darknet cfg (anchors and classes of each [yolo], stride from its grid), and the
    cfg indices of the convolutions feeding the [yolo] layers, in increasing stride."""
    cfg = parse_cfg(cfg_path(cfg_file))
    heads = []
    for i, layer in enumerate(cfg.layers):
        if isinstance(layer, Yolo):
            if i == 0 or not isinstance(cfg.layers[i - 1], Conv):
                raise UserError(f"{cfg_file}: [yolo] layer {i} does not follow a convolution")
            heads.append((cfg.height // cfg.shapes[i][1], i - 1, layer))
    heads.sort(key=lambda h: h[0])
    num_classes = cfg.num_classes
    meta = {"names": read_names(names, num_classes, str(cfg_file)), "num_classes": num_classes,
            "anchors": [[list(a) for a in h[2].anchors] for h in heads], "strides": [h[0] for h in heads],
            "img_size": cfg.width}  # fmt: skip
    return meta, [h[1] for h in heads]


def load_backend(path: str | Path, kind: str = "auto", device: str | torch.device = "auto",
                 cfg: str | Path | None = None, names=None, amp: str = "auto", **options: Any) -> Backend:  # noqa: ANN001 # fmt: skip
    """A backend for ``path``. ``kind``: auto | torch | onnxruntime | opencv. auto: ``.onnx`` ->
    onnxruntime, ``.torchscript`` / ``.ts`` -> TorchScript, anything else (checkpoints, Darknet
    ``.weights`` with ``cfg``) -> PyTorch via ``yolov3.checkpoint.load_model``. ``options`` go to the
    backend (``threads``, ``spin``, ``cuda_graph``)."""
    path = Path(path)
    if kind not in ("auto", *BACKENDS):
        raise UserError(f"--backend {kind!r}: expected one of auto, {', '.join(BACKENDS)}")
    if not path.exists():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    dev = select_device(str(device))
    if kind == "auto":
        kind = "onnxruntime" if suffix == ".onnx" else "torch"
    if kind == "onnxruntime":
        if suffix != ".onnx":
            raise UserError(f"--backend onnxruntime runs .onnx files, got {path} (export it first)")
        return OnnxRuntimeBackend(path, dev, names, options.get("threads"), options.get("spin", False))
    if kind == "opencv":
        if dev.type != "cpu":
            raise UserError(f"--backend opencv runs on the CPU only, got --device {dev}")
        if suffix not in (".onnx", ".weights"):
            raise UserError(f"--backend opencv runs .onnx exports or Darknet .weights with --cfg, got {path} "
                            "(yolov3 export --format onnx writes one)")  # fmt: skip
        return OpenCVBackend(path, cfg, names, options.get("threads"))
    if suffix == ".onnx":
        raise UserError(f"--backend torch cannot run {path}: use --backend onnxruntime or opencv")
    if suffix in (".torchscript", ".ts"):
        return TorchScriptBackend(path, dev)
    model, meta = load_model(path, cfg=cfg, names=names, device=dev)
    return TorchBackend(model, meta, dev, amp, options.get("cuda_graph", False), str(path))
