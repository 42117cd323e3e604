"""Training options by their command-line names, and how they become the three config sections.

``yolov3 train --epochs 30 --img 320`` and ``yolov3.train(data=..., epochs=30, img=320)`` share
these names; each maps to one field of ``ModelConfig`` / ``DataConfig`` / ``TrainConfig``.
"""

from __future__ import annotations

from typing import Any

from yolov3.config import DataConfig, ModelConfig, TrainConfig, from_dict
from yolov3.errors import UserError

# option name -> (section, field)
OPTIONS: dict[str, tuple[str, str]] = {
    "model": ("model", "name"), "width": ("model", "width"),
    "data": ("data", "path"), "img": ("data", "img_size"), "workers": ("data", "workers"),
    "multi_scale": ("data", "multi_scale"), "augment": ("data", "augment"), "cache": ("data", "cache"),
    "hsv": ("data", "hsv"), "mosaic": ("data", "mosaic"),
    "epochs": ("train", "epochs"), "batch": ("train", "batch"), "lr_init": ("train", "lr_init"),
    "lr_end": ("train", "lr_end"), "warmup_epochs": ("train", "warmup_epochs"),
    "optimizer": ("train", "optimizer"), "seed": ("train", "seed"), "weights": ("train", "weights"),
    "transfer": ("train", "transfer"), "freeze": ("train", "freeze"), "device": ("train", "device"),
    "amp": ("train", "amp"), "ema": ("train", "ema"), "accumulate": ("train", "accumulate"),
    "clip_grad": ("train", "clip_grad"), "channels_last": ("train", "channels_last"),
    "compile": ("train", "compile"), "sync_bn": ("train", "sync_bn"), "freeze_bn": ("train", "freeze_bn"),
    "deterministic": ("train", "deterministic"), "val_interval": ("train", "val_interval"),
    "save_period": ("train", "save_period"), "max_bad_steps": ("train", "max_bad_steps"),
    "project": ("train", "project"), "name": ("train", "name"), "exist_ok": ("train", "exist_ok"),
}  # fmt: skip


def build_configs(
    options: dict[str, Any], base: dict[str, dict[str, Any]] | None = None
) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    """``base`` sections (a config file, a resumed run's saved config) with ``options`` applied;
    options that are None are "not given" and leave the base as it is."""
    sections: dict[str, dict[str, Any]] = {
        k: dict((base or {}).get(k) or {}) for k in ("model", "data", "train")
    }
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(f"unknown training option(s) {unknown}; known: {sorted(OPTIONS)}")
    for option, value in options.items():
        if value is not None:
            section, key = OPTIONS[option]
            sections[section][key] = value
    return (
        from_dict(ModelConfig, sections["model"], "model"),
        from_dict(DataConfig, sections["data"], "data"),
        from_dict(TrainConfig, sections["train"], "train"),
    )
