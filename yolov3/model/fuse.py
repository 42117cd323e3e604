"""Inference-time graph changes: BatchNorm folded into the preceding convolution, channels-last.

Both work on any model of this project (native ``YOLOv3`` or ``DarknetModel``): a BatchNorm2d that
directly follows a Conv2d among a module's children is folded into it. The input must then be fed
as ``x.to(memory_format=torch.channels_last)`` for the layout to pay off.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every Conv2d + BatchNorm2d pair replaced by one Conv2d
    (with bias) and an Identity. Outputs equal the eval-mode original up to float rounding."""
    fused = copy.deepcopy(model).eval()
    for parent in list(fused.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
    return fused


def prepare_for_inference(
    model: nn.Module, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> nn.Module:
    """A fused, eval-mode, channels-last copy on ``device`` (cast to ``dtype`` if given) with
    ``requires_grad`` off. Run it under ``torch.inference_mode()``."""
    prepared = fuse_conv_bn(model).to(device=device, memory_format=torch.channels_last)
    if dtype is not None:
        prepared = prepared.to(dtype=dtype)
    prepared.requires_grad_(False)
    return prepared
