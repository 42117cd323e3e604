"""Darknet's building blocks: convolution + batch norm + LeakyReLU(0.1), and the residual unit."""

from __future__ import annotations

from torch import Tensor, nn

from yolov3.model.conv import Conv2d


class ConvBNLeaky(nn.Module):
    """Darknet ``[convolutional]`` with ``batch_normalize=1, activation=leaky``.

    'same' padding (``(k - 1) // 2``); with stride 2 this samples exactly the windows of the seed's
    top-left zero padding, so the seed and Darknet agree. The convolution has no bias (BN's beta is it).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, bias=False)
        # Darknet's inference BN divides by sqrt(var) + .000001 and OpenCV's reader uses eps 1e-6: with
        # 1e-5, channels of small variance (var ~ 1e-3 is common) differ from Darknet by ~0.5 %.
        self.bn = nn.BatchNorm2d(c_out, eps=1e-6, momentum=0.01)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class Residual(nn.Module):
    """1x1 conv to half the channels, 3x3 back to ``channels``, plus the input (Darknet ``[shortcut]``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNLeaky(channels, channels // 2, 1)
        self.conv2 = ConvBNLeaky(channels // 2, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))
