"""YOLOv3 in PyTorch: the seed's network, targets, loss and training recipe; Darknet-compatible."""

from yolov3.decode import decode, decode_all
from yolov3.model import COCO_ANCHORS, STRIDES, YOLOv3

__version__ = "0.1.0"
__all__ = ["COCO_ANCHORS", "STRIDES", "YOLOv3", "decode", "decode_all"]
