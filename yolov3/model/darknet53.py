"""Darknet-53, the seed's ``backbone.darknet53``: a stem and five downsampling stages.

Modules are declared in Darknet's layer order, so a ``.weights`` file loads by walking
``modules()`` and taking every ``ConvBNLeaky`` in turn (52 convolutions here).
"""

from __future__ import annotations

from torch import Tensor, nn

from yolov3.model.layers import ConvBNLeaky, Residual


def _stage(c_in: int, c_out: int, blocks: int) -> nn.Sequential:
    """A 3x3 stride-2 convolution, then ``blocks`` residual units at ``c_out`` channels."""
    return nn.Sequential(ConvBNLeaky(c_in, c_out, 3, 2), *[Residual(c_out) for _ in range(blocks)])


class Darknet53(nn.Module):
    """``(B, 3, H, W) -> (route_1, route_2, x)`` at strides 8, 16, 32 with 256, 512, 1024 channels.

    ``width`` scales every channel count (1.0 is Darknet-53; smaller values give fast CPU variants).
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = [max(8, int(round(n * width))) for n in (32, 64, 128, 256, 512, 1024)]
        self.channels = (c[3], c[4], c[5])
        self.stem = ConvBNLeaky(3, c[0], 3)
        self.stage1 = _stage(c[0], c[1], 1)  # stride 2
        self.stage2 = _stage(c[1], c[2], 2)  # stride 4
        self.stage3 = _stage(c[2], c[3], 8)  # stride 8  -> route_1
        self.stage4 = _stage(c[3], c[4], 8)  # stride 16 -> route_2
        self.stage5 = _stage(c[4], c[5], 4)  # stride 32

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.stage2(self.stage1(self.stem(x)))
        route_1 = self.stage3(x)  # (B, 256, H/8, W/8)
        route_2 = self.stage4(route_1)  # (B, 512, H/16, W/16)
        return route_1, route_2, self.stage5(route_2)  # last: (B, 1024, H/32, W/32)
