"""Typed settings. Defaults reproduce the seed (SEED_NOTES "Settings the seed's code base uses").

Each section is a dataclass; ``from_dict`` builds one from YAML-loaded data and rejects unknown keys
by name; ``apply_overrides`` takes ``section.key=value`` strings from the command line. Only the
``build_*`` functions of the modules that construct objects read these.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from yolov3.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A configuration value that is missing, unknown or does not parse."""


@dataclass
class ModelConfig:
    name: str = "yolov3"  # yolov3 | yolov3-tiny | yolov3-spp | path to a Darknet .cfg
    num_classes: int = 80
    # input pixels, one row per scale (stride 8, 16, 32); None: the model's own (COCO for yolov3)
    anchors: list[list[list[float]]] | None = None
    width: float = 1.0  # channel multiplier for the native YOLOv3


@dataclass
class DataConfig:
    path: str = ""  # dataset config (data.yaml, .data) the loaders read
    img_size: int = 416  # train input size
    test_size: int = 544  # test input size
    max_boxes_per_scale: int = 150
    label_smoothing: float = 0.01
    positive_iou: float = 0.3  # target encoding: anchor is positive when IoU > this
    augment: bool = True  # the seed's flip / crop / translate, each p = 0.5
    hsv: bool = False
    mosaic: bool = False
    multi_scale: bool = False  # a new size in 320..608 step 32 per batch
    workers: int = 2
    cache: bool = False


@dataclass
class TrainConfig:
    epochs: int = 20
    batch: int = 2
    lr_init: float = 1e-3
    lr_end: float = 1e-4
    warmup_epochs: float = 2.0
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9
    weight_decay: float = 0.0005  # SGD only; never on BN and biases
    ignore_iou: float = 0.5  # IOU_LOSS_THRESH
    seed: int = 0
    # how the trainer runs (yolov3 train); none of these change the seed's recipe
    weights: str = ""  # initial weights: Darknet .weights (full or a backbone prefix) or a .pt checkpoint
    transfer: bool = False  # load --weights except the tensors whose shapes differ (output convs)
    freeze: bool = False  # freeze the backbone (Darknet-53)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto | bf16 | fp16 | off
    ema: bool = False  # keep an exponential moving average of the weights (evaluated, saved in best)
    ema_decay: float = 0.9999
    accumulate: int = 1  # batches per optimiser step
    clip_grad: float = 0.0  # max gradient norm; 0 = no clipping
    channels_last: bool = False
    compile: bool = False  # torch.compile the model
    sync_bn: bool = False  # SyncBatchNorm under torchrun
    freeze_bn: bool = False  # every BN layer in eval mode (fixed statistics): tiny per-process batches
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-exact resume on CPU)
    val_interval: int = 1  # validate every N epochs (and after the last)
    save_period: int = 0  # also write last.pt every N optimiser steps; 0 = at epoch ends only
    max_bad_steps: int = 10  # consecutive non-finite steps before the run stops (with a checkpoint)
    project: str = "runs"
    name: str = "exp"
    exist_ok: bool = False


@dataclass
class EvalConfig:
    conf_threshold: float = 0.3
    iou_threshold: float = 0.45
    max_det: int = 300


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML / command-line value to the annotated type, or raise naming ``where``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args or hint is Any:
            return None
        raise ConfigError(f"{where}: null is not allowed here")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where) if len(inner) == 1 else value
    try:
        if hint is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if hint in (int, float, str):
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return hint(value)
        if origin is list:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            return [_coerce(v, args[0] if args else Any, where) for v in value]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {value!r} as {getattr(hint, '__name__', hint)}") from exc
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error naming them."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()})


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with the file named in every error."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(obj: T, overrides: list[str]) -> T:
    """Return a copy of dataclass ``obj`` with ``key=value`` strings applied (YAML-parsed values)."""
    changes = {}
    hints = typing.get_type_hints(type(obj))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected key=value")
        if key not in hints:
            raise ConfigError(f"override {item!r}: unknown key {key!r}; known: {sorted(hints)}")
        changes[key] = _coerce(yaml.safe_load(raw) if raw else raw, hints[key], f"override {key}")
    return dataclasses.replace(obj, **changes)


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain data, for saving the resolved config next to a run."""
    return dataclasses.asdict(obj)


__all__ = [
    "ConfigError", "DataConfig", "EvalConfig", "ModelConfig", "TrainConfig",
    "apply_overrides", "field", "from_dict", "load_yaml", "to_dict",
]  # fmt: skip
