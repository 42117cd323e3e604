"""OpenCV DNN backend: an ONNX export (raw outputs) or Darknet ``.cfg`` + ``.weights``, on the CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from yolov3.builder import cfg_path
from yolov3.darknet.cfg import Conv, parse_cfg
from yolov3.darknet.edit import yolo_outputs
from yolov3.errors import UserError
from yolov3.infer.backends import Backend, cpu_cores
from yolov3.infer.backends.onnxfile import inspect_onnx
from yolov3.modelfile import ModelMeta, read_names


class OpenCVBackend(Backend):
    """OpenCV DNN on an ONNX file (raw outputs) or on Darknet ``.cfg`` + ``.weights``. For Darknet files
    the raw maps are read from the convolution before each ``[yolo]`` layer (OpenCV's own [yolo] output
    is decoded and thresholded)."""

    kind = "opencv"

    def __init__(self, path: str | os.PathLike, cfg: str | os.PathLike | None = None, names: Any = None,
                 threads: int | None = None) -> None:  # fmt: skip
        path = Path(path)
        cv2.setNumThreads(threads or cpu_cores())
        if path.suffix == ".onnx":
            meta = self._read_onnx(path, names)
        else:
            if cfg is None:
                raise UserError(f"{path}: the OpenCV backend reads Darknet weights with their --cfg")
            meta, conv_indices = darknet_meta(cfg, names)
            self.net = cv2.dnn.readNetFromDarknet(str(cfg_path(cfg)), str(path))
            # OpenCV's Darknet importer names cfg layer i's convolution "conv_i".
            self.output_names = [f"conv_{i}" for i in conv_indices]
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        super().__init__(meta, torch.device("cpu"), str(path))

    def _read_onnx(self, path: Path, names: Any) -> ModelMeta:
        iface = inspect_onnx(path)
        if iface.outputs != "raw" or iface.input_dtype != np.float32:
            raise UserError(f"{path}: the OpenCV backend needs a float32 export with --outputs raw; run this "
                            "file with --backend onnxruntime (the default for .onnx)")  # fmt: skip
        if not all(isinstance(d, int) for d in iface.input_shape[2:]):
            raise UserError(f"{path}: input shape {iface.input_shape} has symbolic sizes; OpenCV DNN "
                            "cannot infer the graph's shapes then: export without --dynamic")  # fmt: skip
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise UserError(f"{path}: OpenCV DNN cannot read this ONNX file: {exc}") from exc
        self.output_names = iface.output_names
        self.input_size, self.fixed_batch = iface.input_size, iface.fixed_batch
        return iface.model_meta(names)

    def __call__(self, images: Tensor) -> list[Tensor]:
        return self._in_fixed_batches(images, self._run)

    def _run(self, images: Tensor) -> list[Tensor]:
        self.net.setInput(np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32))
        try:
            maps = self.net.forward(self.output_names)
        except cv2.error as exc:
            raise UserError(
                f"{self.source}: OpenCV DNN failed on input {tuple(images.shape)}: {exc}"
            ) from exc
        return self._sorted(list(maps))


def darknet_meta(cfg_file: str | os.PathLike, names: Any) -> tuple[ModelMeta, list[int]]:
    """Meta from a Darknet cfg (anchors, classes and stride of each [yolo]), and the cfg indices of the
    convolutions feeding the [yolo] layers, in increasing stride."""
    cfg = parse_cfg(cfg_path(cfg_file))
    heads = yolo_outputs(cfg)
    for h in heads:
        if h.index == 0 or not isinstance(cfg.layers[h.index - 1], Conv):
            raise UserError(f"{cfg_file}: [yolo] layer {h.index} does not follow a convolution")
    meta = ModelMeta.create(names=read_names(names, cfg.num_classes, str(cfg_file)),
                            anchors=[h.anchors for h in heads], strides=[h.stride for h in heads],
                            img_size=cfg.width, arch=str(cfg_file))  # fmt: skip
    return meta, [h.index - 1 for h in heads]


def load(path: Path, device: torch.device, cfg: Any = None, names: Any = None, threads: int | None = None,
         **_: Any) -> Backend:  # fmt: skip
    if device.type != "cpu":
        raise UserError(f"--backend opencv runs on the CPU only, got --device {device}")
    if path.suffix.lower() not in (".onnx", ".weights"):
        raise UserError(f"--backend opencv runs .onnx exports or Darknet .weights with --cfg, got {path} "
                        "(yolov3 export --format onnx writes one)")  # fmt: skip
    return OpenCVBackend(path, cfg, names, threads)


__all__ = ["OpenCVBackend", "darknet_meta", "load"]
