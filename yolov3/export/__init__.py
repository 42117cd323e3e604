"""Deployment: export to ONNX / TorchScript / Darknet (checked against PyTorch), and inference
backends (PyTorch, TorchScript, ONNX Runtime, OpenCV DNN) sharing one raw-map contract."""

from yolov3.export.backends import (
    BACKENDS,
    Backend,
    OnnxRuntimeBackend,
    OpenCVBackend,
    TorchBackend,
    TorchScriptBackend,
    load_backend,
)
from yolov3.export.check import ExportCheckError, inspect_onnx
from yolov3.export.exporter import FORMATS, ExportReport, ExportSettings, export_model, export_weights

__all__ = [
    "BACKENDS",
    "FORMATS",
    "Backend",
    "ExportCheckError",
    "ExportReport",
    "ExportSettings",
    "OnnxRuntimeBackend",
    "OpenCVBackend",
    "TorchBackend",
    "TorchScriptBackend",
    "export_model",
    "export_weights",
    "inspect_onnx",
    "load_backend",
]
