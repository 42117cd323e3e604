"""The seed's YOLOv3 network: Darknet-53 plus the three-scale head of ``yolov3.YOLOv3``.

The model returns raw head maps only; decoding (``yolov3.decode``), the loss and NMS live outside it.
Module order follows Darknet's ``yolov3.cfg`` (75 convolutions), so weight import is a plain walk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yolov3.config import COCO_ANCHORS, STRIDES
from yolov3.model.conv import Conv2d
from yolov3.model.darknet53 import Darknet53
from yolov3.model.layers import ConvBNLeaky


def _five_convs(c_in: int, c_mid: int) -> nn.Sequential:
    """The seed's five-convolution set: 1x1, 3x3, 1x1, 3x3, 1x1 ending at ``c_mid`` channels."""
    c2 = c_mid * 2
    return nn.Sequential(
        ConvBNLeaky(c_in, c_mid, 1), ConvBNLeaky(c_mid, c2, 3), ConvBNLeaky(c2, c_mid, 1),
        ConvBNLeaky(c_mid, c2, 3), ConvBNLeaky(c2, c_mid, 1),
    )  # fmt: skip


class _Output(nn.Sequential):
    """A 3x3 ConvBNLeaky then the 1x1 output convolution (bias, no BN, no activation)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(ConvBNLeaky(c_in, c_in * 2, 3), Conv2d(c_in * 2, c_out, 1, bias=True))


class YOLOv3(nn.Module):
    """``(B, 3, H, W) -> [s, m, l]`` raw maps, ``(B, A * (5 + C), H / stride, W / stride)`` each.

    Outputs are ordered by increasing stride (8, 16, 32), as the seed's ``[conv_sbbox, conv_mbbox,
    conv_lbbox]``; channel ``a * (5 + C) + k`` is anchor ``a``'s field ``k`` (tx, ty, tw, th, conf,
    classes...), as in Darknet. ``H`` and ``W`` must be multiples of 32.
    """

    def __init__(
        self,
        num_classes: int = 80,
        anchors: tuple[tuple[tuple[float, float], ...], ...] = COCO_ANCHORS,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width = float(width)
        self.anchors = [[(float(w), float(h)) for w, h in scale] for scale in anchors]
        self.strides = list(STRIDES)
        na = len(self.anchors[0])
        c_out = na * (5 + num_classes)
        self.backbone = Darknet53(width)
        c3, c4, c5 = self.backbone.channels  # 256, 512, 1024 at width 1
        # Declared in Darknet's order: large-object branch first, then medium, then small.
        self.head_l = _five_convs(c5, c5 // 2)
        self.out_l = _Output(c5 // 2, c_out)
        self.lateral_l = ConvBNLeaky(c5 // 2, c4 // 2, 1)
        self.head_m = _five_convs(c4 + c4 // 2, c4 // 2)
        self.out_m = _Output(c4 // 2, c_out)
        self.lateral_m = ConvBNLeaky(c4 // 2, c3 // 2, 1)
        self.head_s = _five_convs(c3 + c3 // 2, c3 // 2)
        self.out_s = _Output(c3 // 2, c_out)

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"input height and width must be multiples of 32, got {tuple(x.shape[-2:])}")
        route_1, route_2, x = self.backbone(x)
        x = self.head_l(x)  # (B, 512, H/32, W/32)
        out_l = self.out_l(x)
        x = F.interpolate(self.lateral_l(x), scale_factor=2.0, mode="nearest")
        x = self.head_m(torch.cat([x, route_2], dim=1))  # concat: upsampled first, as the seed
        out_m = self.out_m(x)
        x = F.interpolate(self.lateral_m(x), scale_factor=2.0, mode="nearest")
        x = self.head_s(torch.cat([x, route_1], dim=1))
        out_s = self.out_s(x)
        return [out_s, out_m, out_l]
