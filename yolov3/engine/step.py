"""One training step: forward under autocast, the seed's loss, backward, the optimiser step.

``TrainStep`` is the one place these happen, in this order: the trainer calls its parts (``loss``,
``backward`` for each batch, ``apply`` at the end of an accumulation window, around which it keeps the
schedule, the non-finite checks across processes and the logging); the demo's speed probe and the
training benchmarks call it whole (``step(batch)``), so they time what the trainer runs.

The loss is computed in float32 outside autocast (the criterion casts the maps it is given); with
float16 autocast a ``GradScaler`` scales the loss and unscales the gradients before clipping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from yolov3.config import TrainConfig
from yolov3.device import autocast, autocast_dtype
from yolov3.engine.builders import to_device_batch
from yolov3.engine.ema import ModelEMA
from yolov3.engine.schedule import build_optimizer
from yolov3.loss import YoloLoss


@dataclass
class TrainStep:
    """What a step needs. ``net`` runs the forward pass (the model itself, or it wrapped in DDP /
    ``torch.compile``); ``model`` is the bare network whose gradients are clipped and which the EMA
    follows."""

    model: nn.Module
    net: nn.Module
    criterion: YoloLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None  # None: float32
    clip_grad: float = 0.0  # max gradient norm; 0 = no clipping (the norm is still measured)
    accumulate: int = 1  # batches per optimiser step; each batch's loss is divided by it
    ema: ModelEMA | None = None
    channels_last: bool = False

    def loss(self, images: torch.Tensor, labels: list, bboxes: list) -> dict[str, torch.Tensor]:
        """The seed's loss terms (``YoloLoss``) for one batch: images ``[B, 3, H, W]`` on the device,
        labels / bboxes per scale as ``encode_targets`` makes them."""
        with autocast(self.device, self.amp_dtype):
            raws = self.net(images)
        return self.criterion(raws, labels, bboxes)

    def backward(self, terms: dict[str, torch.Tensor]) -> None:
        """Gradients of ``total / accumulate`` added to ``.grad`` (scaled when float16)."""
        self.scaler.scale(terms["total"] / self.accumulate).backward()

    def apply(self) -> tuple[bool, torch.Tensor]:
        """Unscale, clip to ``clip_grad``, step the optimiser and the EMA. Returns ``(stepped, grad
        norm)``; not stepped when the norm is not finite without a scaler (a scaler skips such a step
        itself and lowers its scale). The gradients are left for the caller to zero."""
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.clip_grad if self.clip_grad > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if params else torch.zeros(())
        if not self.scaler.is_enabled() and not bool(torch.isfinite(norm)):
            return False, norm
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema:
            self.ema.update(self.model)
        return True, norm

    def state_dict(self) -> dict[str, Any]:
        """The ``optimizer``, ``scaler`` (None without one) and ``ema`` (or None) entries of a resumable
        checkpoint (``yolov3.engine.state``)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "ema": self.ema.state_dict() if self.ema else None,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved (a scaler or EMA state only where this step keeps one)."""
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])

    def __call__(self, batch: dict) -> dict[str, float]:
        """One whole step on one batch (a loader's dict of ``images``, ``labels``, ``bboxes``): the
        loss terms as floats."""
        images, labels, bboxes = to_device_batch(batch, self.device, self.channels_last)
        terms = self.loss(images, labels, bboxes)
        self.backward(terms)
        self.apply()
        self.optimizer.zero_grad(set_to_none=True)
        return {k: float(v.detach()) for k, v in terms.items()}


def build_step(model: nn.Module, cfg: TrainConfig, device: torch.device, net: nn.Module | None = None,
               ema: ModelEMA | None = None) -> TrainStep:  # fmt: skip
    """The trainer's step for ``model`` (already on ``device``): Adam as ``build_optimizer`` makes it,
    the precision ``cfg.amp`` picks, a ``GradScaler`` for float16, the seed's loss with
    ``cfg.ignore_iou``."""
    dtype = autocast_dtype(device, cfg.amp)
    return TrainStep(
        model=model,
        net=net if net is not None else model,
        criterion=YoloLoss(model.anchors, model.strides, model.num_classes, cfg.ignore_iou),
        optimizer=build_optimizer(model, cfg),
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        device=device,
        amp_dtype=dtype,
        clip_grad=cfg.clip_grad,
        accumulate=cfg.accumulate,
        ema=ema,
        channels_last=cfg.channels_last,
    )
