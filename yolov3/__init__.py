"""YOLOv3 in PyTorch: the seed's network, targets, loss and training recipe; Darknet-compatible.

The public API, loaded on first use (PEP 562) so that ``import yolov3.<module>`` stays light for
training workers and the command line, and imports no torch where the module needs none (the data
tools, ``yolov3.demo_data``): ``load`` / ``Detector`` / ``Detections`` (detection),
``detect`` (detection with files written), ``track`` / ``TrackedDetections`` / ``TrackConfig``
(tracking on videos and live streams), ``val``, ``analyze`` (TIDE error analysis), ``audit``
(label audit), ``train``,
``export_weights``, ``load_backend``, ``load_model`` / ``save_model`` / ``ModelMeta`` (model files),
``InferConfig`` and the data tools.
"""

import sys
import types
from typing import Any

from yolov3.config import COCO_ANCHORS, STRIDES, InferConfig, TrackConfig

__version__ = "0.1.0"
__all__ = [
    "COCO_ANCHORS", "STRIDES", "Detections", "Detector", "InferConfig", "ModelMeta", "YOLOv3", "YoloLoss",
    "build_loader", "build_model", "check_dataset", "convert_dataset", "decode", "decode_all", "detect",
    "DetectionDataset", "export_weights", "load", "load_backend", "load_dataset", "load_model",
    "preprocess_true_boxes", "run_track", "evaluate_run", "save_model", "track", "TrackConfig",
    "TrackedDetections", "train", "val", "analyze", "audit",
]  # fmt: skip

_LAZY = {"YOLOv3": "yolov3.model", "decode": "yolov3.decode", "decode_all": "yolov3.decode",
         "Detector": "yolov3.infer.detector", "load": "yolov3.infer.detector",
         "Detections": "yolov3.infer.results", "detect": "yolov3.apps.detect.runner",
         "load_backend": "yolov3.infer.backends", "val": "yolov3.evaluate.api",
         "analyze": "yolov3.evaluate.api", "audit": "yolov3.label_audit",
         "load_dataset": "yolov3.data.dataset_config", "check_dataset": "yolov3.data.check",
         "convert_dataset": "yolov3.data.convert", "build_model": "yolov3.builder",
         "load_model": "yolov3.modelfile", "save_model": "yolov3.modelfile", "ModelMeta": "yolov3.modelfile",
         "DetectionDataset": "yolov3.data.dataset", "build_loader": "yolov3.data.loader",
         "preprocess_true_boxes": "yolov3.data.targets", "train": "yolov3.engine.trainer",
         "YoloLoss": "yolov3.loss", "export_weights": "yolov3.export",
         "track": "yolov3.apps.track.runner", "TrackedDetections": "yolov3.apps.track.results",
         "run_track": "yolov3.apps.track.runner", "evaluate_run": "yolov3.apps.track.runner"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'yolov3' has no attribute {name!r}")


class _Package(types.ModuleType):
    """``yolov3.decode`` is the function, as when ``decode`` was imported eagerly here: the import
    system binds each submodule it loads to its parent's attribute, and ``yolov3/decode.py`` shares
    the function's name, so that binding is not kept (the function is then found by ``__getattr__``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "decode" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
