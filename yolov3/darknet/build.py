"""A PyTorch network from a parsed Darknet cfg: ``DarknetModel``.

``layers[i]`` is cfg layer ``i`` (0-based after ``[net]``), so module names mirror Darknet's layer
numbers and a ``.weights`` file loads by walking ``modules()``: every convolution block declares its
``conv`` before its ``bn``. The model follows the project's contract: ``forward`` returns the raw maps
of the ``[yolo]`` layers ordered by increasing stride (Darknet's cfgs list stride 32 first), each
``(B, A * (5 + C), H / stride, W / stride)``; ``.anchors`` (per output, (w, h) input pixels),
``.strides`` and ``.num_classes`` describe them. Decoding lives in ``yolov3.decode``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yolov3.darknet.cfg import Conv, DarknetCfg, MaxPool, Route, Shortcut, Upsample, Yolo
from yolov3.darknet.edit import YoloOutput, set_num_classes, yolo_outputs
from yolov3.errors import UserError
from yolov3.model.conv import Conv2d


def activation(name: str) -> nn.Module:
    """Darknet's activations (leaky is LeakyReLU(0.1))."""
    return {
        "leaky": lambda: nn.LeakyReLU(0.1, inplace=True),
        "linear": nn.Identity,
        "relu": lambda: nn.ReLU(inplace=True),
        "logistic": nn.Sigmoid,
        "mish": nn.Mish,
        "swish": nn.SiLU,
    }[name]()


class ConvBlock(nn.Module):
    """``[convolutional]``: conv (bias only without BN), optional BatchNorm, activation."""

    def __init__(self, c_in: int, spec: Conv) -> None:
        super().__init__()
        bn = spec.batch_normalize
        self.conv = Conv2d(c_in, spec.filters, spec.size, spec.stride, spec.padding, bias=not bn)
        # eps 1e-6 as Darknet's (sqrt(var) + 1e-6) and OpenCV's reader; see yolov3.model.layers
        self.bn = nn.BatchNorm2d(spec.filters, eps=1e-6, momentum=0.01) if bn else nn.Identity()
        self.act = activation(spec.activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class MaxPoolLayer(nn.Module):
    """``[maxpool]``: Darknet pads ``size - 1`` in total (half before, rest after) with -inf, so
    tiny's ``size=2 stride=1`` keeps the size (pads one column/row at the end)."""

    def __init__(self, spec: MaxPool) -> None:
        super().__init__()
        self.size, self.stride = spec.size, spec.stride
        self.pad = (spec.pad_begin, spec.pad_end, spec.pad_begin, spec.pad_end)  # (left, right, top, bottom)

    def forward(self, x: Tensor) -> Tensor:
        if any(self.pad) and not self._pad_unused(x.shape[-2:]):
            x = F.pad(x, self.pad, value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)

    def _pad_unused(self, hw: tuple[int, int]) -> bool:
        """True when no window reaches the padding: none before, and the windows of the unpadded map
        are as many (tiny's ``size=2 stride=2`` on even sizes). The pad is a full copy of the map."""
        left, right = self.pad[0], self.pad[1]
        return left == 0 and all((n - self.size) // self.stride == (n + right - self.size) // self.stride
                                 for n in hw)  # fmt: skip


class UpsampleLayer(nn.Module):
    """``[upsample]``: nearest neighbour by an integer factor."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=float(self.stride), mode="nearest")


class RouteLayer(nn.Module):
    """``[route]``: concatenation of earlier outputs along channels (``sources``: absolute indices)."""

    def __init__(self, sources: tuple[int, ...]) -> None:
        super().__init__()
        self.sources = sources

    def forward(self, outputs: list[Tensor]) -> Tensor:
        parts = [outputs[j] for j in self.sources]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class ShortcutLayer(nn.Module):
    """``[shortcut]``: the previous output plus earlier ones, then the activation."""

    def __init__(self, sources: tuple[int, ...], act: str) -> None:
        super().__init__()
        self.sources = sources
        self.act = activation(act)

    def forward(self, x: Tensor, outputs: list[Tensor]) -> Tensor:
        for j in self.sources:
            x = x + outputs[j]
        return self.act(x)


class YoloLayer(nn.Identity):
    """``[yolo]``: identity on the raw map; records what decoding needs."""

    def __init__(self, output: YoloOutput) -> None:
        super().__init__()
        self.anchors = [(float(w), float(h)) for w, h in output.anchors]
        self.stride = output.stride
        self.classes = output.classes


def _module(i: int, layer, c_in: int, outputs: dict[int, YoloOutput]) -> nn.Module:
    if isinstance(layer, Conv):
        return ConvBlock(c_in, layer)
    if isinstance(layer, MaxPool):
        return MaxPoolLayer(layer)
    if isinstance(layer, Upsample):
        return UpsampleLayer(layer.stride)
    if isinstance(layer, Route):
        return RouteLayer(layer.sources)
    if isinstance(layer, Shortcut):
        return ShortcutLayer(layer.sources, layer.activation)
    assert isinstance(layer, Yolo)
    return YoloLayer(outputs[i])


class DarknetModel(nn.Module):
    """The network a cfg describes: ``(B, C_in, H, W) -> [raw map per [yolo], increasing stride]``.

    ``num_classes`` (optional) overrides the cfg's class count: every ``[yolo]``'s ``classes`` and the
    ``filters`` of the convolution before it change (``set_num_classes``); ``self.cfg`` is the cfg
    actually built, so ``write_cfg(model.cfg)`` describes this model. ``H`` and ``W`` must be
    multiples of the largest stride (32 for the official cfgs).
    """

    def __init__(self, cfg: DarknetCfg, num_classes: int | None = None) -> None:
        super().__init__()
        if num_classes is not None and num_classes != cfg.num_classes:
            cfg = set_num_classes(cfg, num_classes)
        heads = yolo_outputs(cfg)
        yolos = [h.index for h in heads]
        if not yolos:
            raise UserError(f"{cfg.source}: no [yolo] layer, so the network has no detection output")
        if cfg.num_classes < 0:
            raise UserError(f"{cfg.source}: the [yolo] layers disagree on classes")
        self.cfg = cfg
        modules = []
        for i, layer in enumerate(cfg.layers):
            c_in = cfg.shapes[i - 1][0] if i else cfg.channels
            modules.append(_module(i, layer, c_in, {h.index: h for h in heads}))
        self.layers = nn.ModuleList(modules)
        keep = {j for layer in cfg.layers if isinstance(layer, (Route, Shortcut)) for j in layer.sources}
        self.output_layers = yolos  # by increasing stride, file order among equals
        self._keep = frozenset(keep | set(yolos))
        self.anchors = [list(self.layers[i].anchors) for i in self.output_layers]
        self.strides = [self.layers[i].stride for i in self.output_layers]
        self.num_classes = cfg.num_classes
        self.size_multiple = max(self.strides)

    def forward(self, x: Tensor) -> list[Tensor]:
        m = self.size_multiple
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"input height and width must be multiples of {m}, got {tuple(x.shape[-2:])}")
        outputs: list[Tensor | None] = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, RouteLayer):
                x = layer(outputs)
            elif isinstance(layer, ShortcutLayer):
                x = layer(x, outputs)
            else:
                x = layer(x)
            outputs.append(x if i in self._keep else None)
        return [outputs[i] for i in self.output_layers]
