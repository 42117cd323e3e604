"""Export: write a model as ONNX, TorchScript or Darknet files, each checked against PyTorch by running
the written file before success is reported. The runtimes that load those files live in
``yolov3.infer.backends``."""

from yolov3.export.check import ExportCheckError
from yolov3.export.exporter import FORMATS, ExportReport, ExportSettings, export_model, export_weights

__all__ = ["FORMATS", "ExportCheckError", "ExportReport", "ExportSettings", "export_model", "export_weights"]
