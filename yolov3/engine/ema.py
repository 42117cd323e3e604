"""Exponential moving average of a model's weights, evaluated and saved beside the trained ones.

``ema = d * ema + (1 - d) * model`` after each optimiser step, with ``d = decay * (1 - exp(-n /
ramp))`` so the average follows the model closely while it is young (n = updates so far). Buffers
(BN running statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


class ModelEMA:
    """Holds ``module``, an eval-mode copy of the model whose parameters are the running average."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, ramp: float = 2000.0) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.ramp, self.updates = decay, ramp, 0
        self._param_names = {name for name, _ in self.module.named_parameters()}

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold ``model`` (unwrapped, same architecture) into the average."""
        self.updates += 1
        d = self.current_decay()
        ema_state = self.module.state_dict()
        for name, value in model.state_dict().items():
            ema = ema_state[name]
            if name in self._param_names:
                ema.mul_(d).add_(value.detach().to(ema.dtype), alpha=1.0 - d)
            else:
                ema.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])
