"""Training checkpoints: what a run needs to continue exactly where it stopped, written atomically.

A checkpoint is a ``torch.save``'d dict readable with ``torch.load(weights_only=True)``:

- ``model``: the (unwrapped) model's ``state_dict``; ``meta``: ``yolov3.checkpoint.model_meta`` (so
  detection and export can load a training checkpoint like any other);
- ``optimizer``, ``scaler`` (fp16 grad scaler, or None), ``ema`` (``ModelEMA.state_dict`` or None);
- ``step`` (optimiser steps done, the schedule's input), ``epoch`` (0-based), ``epoch_step`` (batches
  done in that epoch), ``best_fitness``;
- ``rng`` (torch CPU / CUDA, NumPy, Python ``random`` at the step boundary) and ``rng_epoch`` (the
  same at the start of the epoch, so the resumed loader shuffles and augments identically);
- ``config``: the resolved ``{"model", "data", "train"}`` sections; ``names``: class names.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolov3.errors import UserError


class CheckpointError(UserError):
    """A checkpoint that cannot be written, read, or does not fit the run."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    A failed write (unwritable folder, full disk) removes the temporary file and raises
    ``CheckpointError``; whatever was at ``path`` before is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise CheckpointError(
            f"cannot write checkpoint {path}: {reason}; the previous checkpoint there (if any) is intact"
        ) from exc
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU, safely (``weights_only=True``), with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holding objects we refuse to unpickle
        raise CheckpointError(f"{path}: cannot read as a checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a yolov3 checkpoint (expected a dict with a 'model' entry)")
    return ckpt


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


RESUME_KEYS = ("name", "num_classes", "width", "anchors")


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
