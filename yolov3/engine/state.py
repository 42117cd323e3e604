"""What a training checkpoint holds besides the model, and the checks for resuming from one.

A training checkpoint is a ``torch.save``'d dict, written and read by ``yolov3.modelfile``
(``write_torch`` / ``read_checkpoint``, always ``weights_only=True``):

- ``model``: the (unwrapped) model's ``state_dict``; ``meta``: its ``ModelMeta`` as a dict (so
  detection and export load a training checkpoint like any other);
- ``optimizer``, ``scaler`` (fp16 grad scaler, or None), ``ema`` (``ModelEMA.state_dict`` or None);
- ``step`` (optimiser steps done, the schedule's input), ``epoch`` (0-based), ``epoch_step`` (batches
  done in that epoch), ``epoch_samples`` (the samples those batches held, all processes together: what
  a resume from tar shards skips), ``best_fitness``, ``metrics``;
- ``rng`` (torch CPU / CUDA, NumPy, Python ``random`` at the step boundary) and ``rng_epoch`` (the
  same at the start of the epoch, so the resumed loader shuffles and augments identically);
- ``config``: the resolved ``{"model", "data", "train"}`` sections; ``names``: class names.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from yolov3.errors import UserError
from yolov3.modelfile import CheckpointError


class TrainingStopped(UserError):
    """The run stopped itself (too many non-finite steps); a checkpoint was saved first."""


@dataclass
class TrainState:
    """Where the run is: ``step`` optimiser steps done; ``epoch_step`` batches done in ``epoch``."""

    step: int = 0
    epoch: int = 0
    epoch_step: int = 0
    best_fitness: float = -math.inf
    bad_steps: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> TrainState:
        """Where the run that saved ``ckpt`` (a resumable ``last.pt``) stopped."""
        return cls(
            step=int(ckpt["step"]),
            epoch=int(ckpt["epoch"]),
            epoch_step=int(ckpt["epoch_step"]),
            best_fitness=float(ckpt["best_fitness"]),
            metrics=dict(ckpt.get("metrics") or {}),
        )


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop and the loader draw from, as tensors / lists / numbers."""
    np_state = np.random.get_state()  # noqa: NPY002 (the legacy global RNG is what libraries draw from)
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [
            str(np_state[0]),
            np_state[1].tolist(),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": [py_version, list(py_internal), py_gauss],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np_state = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
    np.random.set_state(np_state)  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


RESUME_KEYS = ("name", "width", "anchors")


def check_resumable(ckpt: dict[str, Any], model_cfg: dict[str, Any], names: list[str], where: str) -> None:
    """Raise naming every difference between the checkpoint's model / classes and this run's."""
    saved = ckpt.get("config", {}).get("model", {})
    diffs = [
        f"model.{k}: checkpoint {saved.get(k)!r}, now {model_cfg.get(k)!r}"
        for k in RESUME_KEYS
        if k in saved and saved.get(k) != model_cfg.get(k)
    ]
    saved_names = ckpt.get("names")
    if saved_names is not None and list(saved_names) != list(names):
        diffs.append(
            f"class names: checkpoint has {len(saved_names)} {list(saved_names)[:5]}, "
            f"this run has {len(names)} {list(names)[:5]}"
        )
    if diffs:
        raise CheckpointError(f"cannot resume from {where}, the run differs: " + "; ".join(diffs))
