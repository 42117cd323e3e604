"""YOLOv3 in PyTorch: the seed's network, targets, loss and training recipe; Darknet-compatible."""

from typing import Any

from yolov3.decode import decode, decode_all
from yolov3.model import COCO_ANCHORS, STRIDES, YOLOv3

__version__ = "0.1.0"
__all__ = [
    "COCO_ANCHORS", "STRIDES", "Detector", "Result", "YOLOv3", "check_dataset", "convert_dataset", "decode",
    "decode_all", "detect", "load", "val", "load_dataset", "build_model", "load_model", "save_model",
    "DetectionDataset", "build_loader", "preprocess_true_boxes", "train", "YoloLoss",
    "export_weights", "load_backend",
]  # fmt: skip

# The detection API pulls in OpenCV, ONNX Runtime and pycocotools' neighbours: loaded on first use
# (PEP 562) so that `import yolov3.<module>` stays light for training workers and the CLI.
_LAZY = {"Detector": "yolov3.predict", "Result": "yolov3.predict", "load": "yolov3.predict",
         "val": "yolov3.evaluate.api", "detect": "yolov3.inference",
         "load_dataset": "yolov3.data.dataset_config", "check_dataset": "yolov3.data.check",
         "convert_dataset": "yolov3.data.convert", "build_model": "yolov3.model.factory",
         "load_model": "yolov3.checkpoint", "save_model": "yolov3.checkpoint",
         "DetectionDataset": "yolov3.data.dataset", "build_loader": "yolov3.data.loader",
         "preprocess_true_boxes": "yolov3.data.targets", "train": "yolov3.engine.trainer",
         "YoloLoss": "yolov3.loss",
         "export_weights": "yolov3.export", "load_backend": "yolov3.export"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'yolov3' has no attribute {name!r}")
