"""Darknet interop: cfg parse/write (``cfg``), cfg -> PyTorch (``build``), ``.weights`` I/O (``weights``)."""

from yolov3.darknet.build import DarknetModel
from yolov3.darknet.cfg import DarknetCfg, parse_cfg, parse_cfg_text, write_cfg
from yolov3.darknet.edit import set_anchors, set_num_classes, yolo_outputs
from yolov3.darknet.native import native_to_cfg

__all__ = [
    "DarknetCfg",
    "DarknetModel",
    "native_to_cfg",
    "parse_cfg",
    "parse_cfg_text",
    "set_anchors",
    "set_num_classes",
    "write_cfg",
    "yolo_outputs",
]
