"""``build_model(ModelConfig)``: the only place a model is built from settings."""

from __future__ import annotations

from torch import nn

from yolov3.config import ModelConfig
from yolov3.errors import UserError
from yolov3.model.yolov3 import COCO_ANCHORS, YOLOv3


def build_model(cfg: ModelConfig) -> nn.Module:
    """A network returning raw maps ordered by increasing stride, with ``.anchors`` (per scale, input
    pixels), ``.strides`` and ``.num_classes``."""
    if cfg.name == "yolov3":
        anchors = tuple(tuple(tuple(a) for a in s) for s in cfg.anchors) if cfg.anchors else COCO_ANCHORS
        return YOLOv3(cfg.num_classes, anchors, cfg.width)
    raise UserError(f"model {cfg.name!r}: expected yolov3, yolov3-tiny, yolov3-spp or a Darknet .cfg path")
