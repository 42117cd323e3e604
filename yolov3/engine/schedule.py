"""The seed's learning-rate schedule (a pure function of the step) and the optimiser builders.

Seed (its ``train.py``; ``docs/seed.md``, "Schedule")::

    if global_steps < warmup_steps: lr = global_steps / warmup_steps * LR_INIT
    else: lr = LR_END + 0.5 * (LR_INIT - LR_END) * (1 + cos((global_steps - warmup_steps)
                                                          / (total_steps - warmup_steps) * pi))

``global_steps`` counts optimiser steps from 1; the seed sets the lr after a step for the next one,
so step ``s`` (1-based) runs at ``lr_at(s)``. (The seed's very first step ran at Adam's default
1e-3 because its lr was not yet assigned; ours runs at ``lr_at(1)``.) Past ``total_steps`` the lr
stays at ``lr_end`` instead of climbing the cosine back up.

On a time budget (``--time``) the cosine also follows the fraction of the training time used
(``yolov3.engine.budget``): its progress is the larger of the step fraction and the time fraction,
so the lr reaches ``lr_end`` at the deadline on any machine, or at ``total_steps`` if that comes first.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from yolov3.config import TrainConfig
from yolov3.errors import UserError


def lr_at(step: int, lr_init: float, lr_end: float, warmup_steps: int, total_steps: int,
          time_progress: float = 0.0) -> float:  # fmt: skip
    """The learning rate for optimiser step ``step`` (1-based): linear warmup, then cosine over the
    larger of the step fraction and ``time_progress`` (the fraction of a time budget used, in [0, 1])."""
    if step < warmup_steps:
        return step / warmup_steps * lr_init
    span = max(total_steps - warmup_steps, 1)
    progress = min(max((step - warmup_steps) / span, time_progress), 1.0)
    return lr_end + 0.5 * (lr_init - lr_end) * (1.0 + math.cos(progress * math.pi))


def schedule_steps(cfg: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """``(warmup_steps, total_steps)`` in optimiser steps, as the seed: epochs times steps per epoch."""
    return int(round(cfg.warmup_epochs * steps_per_epoch)), int(cfg.epochs * steps_per_epoch)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: conv / linear weights with ``weight_decay``; BN parameters and biases with none.

    Every parameter is listed, frozen ones too (they get no gradient, so they do not move), so the
    optimiser's state has the same layout whatever is frozen; resume relies on it.
    """
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm | nn.GroupNorm | nn.LayerNorm)
            (no_decay if is_norm or name == "bias" or p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (the seed's; Keras' epsilon 1e-7, no weight decay) or SGD with momentum and weight
    decay on conv weights only. The lr is set per step by ``set_lr``.

    Both use PyTorch's fused kernels where the parameters live on a CPU or CUDA device: the same
    update (to float rounding) as the default per-tensor loop, whose per-tensor launches are a
    noticeable share of a small model's CPU step (``docs/benchmarks.md``)."""
    fused = _fusable(model)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr_init, betas=(0.9, 0.999), eps=1e-7, fused=fused)
    if cfg.optimizer == "sgd":
        groups = param_groups(model, cfg.weight_decay)
        return torch.optim.SGD(groups, lr=cfg.lr_init, momentum=cfg.momentum, fused=fused)
    raise UserError(f"optimizer {cfg.optimizer!r}: expected adam or sgd")


def _fusable(model: nn.Module) -> bool | None:
    """True when every parameter is a floating tensor on one CPU or CUDA device (what the fused
    optimiser kernels take), else None (PyTorch's default implementation)."""
    params = list(model.parameters())
    devices = {p.device for p in params}
    ok = len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")
    return True if ok and all(p.is_floating_point() for p in params) else None
