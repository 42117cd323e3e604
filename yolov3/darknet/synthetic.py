"""Random weights that behave like trained ones (tests and benchmarks download nothing).

Plain random kernels through 75 layers and 23 residual sums make activations explode or vanish.
``randomize(model, images)`` draws kernels ~ N(0, 1/fan_in), BN gamma ~ U(0.5, 1.5) and beta ~
U(-0.5, 0.5), then sets every BatchNorm's running mean and variance to the statistics it sees on
``images`` (one forward in training mode, momentum 1), so in eval mode every BN output is about
``N(beta, gamma^2)`` per channel on those images, as in a trained network. The output convolutions
(bias, no BN) get small kernels so that ``t_w``, ``t_h`` stay within a few units.

Such a network sits at the edge of chaos: a little input noise moves its outputs by far more than
it moves a trained detector's (which makes any low-precision comparison meaningless). ``damping``
< 1 then scales every gamma without re-calibrating, so each layer shrinks perturbations a little:
at the default, outputs move about as much as the input noise while different images still give
clearly different outputs (``docs/benchmarks.md``, "Measurements behind design choices").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


@torch.no_grad()
def randomize(model: nn.Module, images: Tensor, seed: int = 0, damping: float = 0.85) -> nn.Module:
    """Fill ``model`` (in place; returned in eval mode) as described above. ``images``:
    ``(B, 3, H, W)`` float in [0, 1], H and W valid for the model."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            scale = fan_in**-0.5 * (0.5 if m.bias is not None else 1.0)
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * scale)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 1.0  # running stats := this batch's stats
    model.train()
    model(images)
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum
        bn.num_batches_tracked.zero_()
        bn.weight.mul_(damping)
    return model.eval()


@torch.no_grad()
def sparsify_head(model: nn.Module, images: Tensor, per_image: float = 20.0, conf_threshold: float = 0.3,
                  sharpen: float = 8.0) -> nn.Module:  # fmt: skip
    """Make a ``randomize``-d detector answer as a trained one does: about ``per_image`` anchors over
    ``conf_threshold`` on ``images`` (instead of thousands) and a decided class for each.

    Random output convolutions put objectness near 0.5 everywhere, so a random YOLOv3 returns
    ``max_det`` boxes of every image, and a benchmark of it times NMS, drawing and JSON of noise. Here
    the objectness and class rows of each output convolution (found by their ``A * (5 + C)`` channels
    and bias) are scaled by ``sharpen`` (margins far beyond INT8 rounding), then one offset is added
    to every objectness bias so that ``per_image * len(images)`` anchors pass the threshold on
    ``images`` (in Darknet's channel order: ``(A, 5 + C)``)."""
    na, nc = len(model.anchors[0]), model.num_classes
    heads = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None
             and m.out_channels == na * (5 + nc)]  # fmt: skip
    for conv in heads:
        conv.weight.view(na, 5 + nc, -1)[:, 4:] *= sharpen
        conv.bias.view(na, 5 + nc)[:, 4:] *= sharpen
    objectness = torch.cat([raw.view(raw.shape[0], na, 5 + nc, *raw.shape[2:])[:, :, 4].flatten()
                            for raw in model.eval()(images)])  # fmt: skip
    k = min(max(1, round(per_image * images.shape[0])), objectness.numel())
    kth = objectness.topk(k).values[-1]
    shift = torch.logit(torch.tensor(conf_threshold)) - kth + 1e-3
    for conv in heads:
        conv.bias.view(na, 5 + nc)[:, 4] += shift
    return model
