"""Networks: the native YOLOv3 (Darknet-53 + the seed's head)."""

from yolov3.model.darknet53 import Darknet53
from yolov3.model.layers import ConvBNLeaky, Residual
from yolov3.model.yolov3 import YOLOv3

__all__ = ["ConvBNLeaky", "Darknet53", "Residual", "YOLOv3"]
