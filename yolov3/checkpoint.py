"""Model files: native checkpoints (safetensors or ``torch.save``) and Darknet cfg + weights + names.

``meta`` is plain JSON-able data describing a model well enough to rebuild it without any other file::

    {"names": [str] * C, "num_classes": C, "anchors": [[[w, h]] * A] * S (input pixels, per output,
     increasing stride), "strides": [8, 16, 32], "img_size": 416,
     "model": {"name": "yolov3" | cfg name or path, "num_classes": C, "anchors": ..., "width": 1.0,
               "cfg": Darknet cfg text (cfg-built models) or None (native YOLOv3)}}

A ``.safetensors`` checkpoint holds the state dict with ``meta`` as JSON under metadata key
``yolov3``; a ``.pt`` checkpoint is ``torch.save({"model": state_dict, "meta": meta, ...})`` (the
trainer's checkpoints add optimiser state) and is read with ``weights_only=True``. Every write is
atomic (temporary file, fsync, rename).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as st_save
from torch import nn

from yolov3.config import ModelConfig
from yolov3.darknet.build import DarknetModel
from yolov3.darknet.cfg import Conv, parse_cfg, parse_cfg_text, write_cfg
from yolov3.darknet.native import native_to_cfg
from yolov3.darknet.weights import atomic_writer, conv_units, load_darknet_weights, save_darknet_weights
from yolov3.errors import UserError
from yolov3.model.factory import cfg_path
from yolov3.model.yolov3 import YOLOv3

META_KEY = "yolov3"
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt")


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _native_width(model: YOLOv3) -> float:
    return model.backbone.channels[2] / 1024  # c5 = round(1024 * width) exactly for width >= 1/128


def model_meta(
    model: nn.Module, names: list[str] | None, img_size: int, model_cfg: ModelConfig | None = None
) -> dict[str, Any]:
    """The meta above for ``model`` (names default to ``class0 .. classC-1``)."""
    model = _unwrap(model)
    c = int(model.num_classes)
    names = [str(n) for n in names] if names is not None else [f"class{i}" for i in range(c)]
    if len(names) != c:
        raise UserError(f"{len(names)} class names for a model with {c} classes")
    anchors = [[[float(w), float(h)] for w, h in scale] for scale in model.anchors]
    if isinstance(model, YOLOv3):
        spec = {
            "name": "yolov3",
            "width": model_cfg.width if model_cfg else _native_width(model),
            "cfg": None,
        }
    elif isinstance(model, DarknetModel):
        spec = {
            "name": str(model_cfg.name) if model_cfg else "darknet",
            "width": 1.0,
            "cfg": write_cfg(model.cfg),
        }
    else:
        raise UserError(f"cannot describe a {type(model).__name__}: expected YOLOv3 or DarknetModel")
    spec.update(num_classes=c, anchors=anchors)
    return {"names": names, "num_classes": c, "anchors": anchors, "strides": [int(s) for s in model.strides],
            "img_size": int(img_size), "model": spec}  # fmt: skip


def model_from_meta(meta: dict[str, Any], source: str = "checkpoint") -> nn.Module:
    """An untrained model with the architecture ``meta`` describes."""
    try:
        spec = meta["model"]
        if spec.get("cfg"):
            return DarknetModel(parse_cfg_text(spec["cfg"], f"{source} (embedded cfg)"))
        anchors = tuple(tuple(tuple(a) for a in s) for s in spec["anchors"])
        return YOLOv3(int(spec["num_classes"]), anchors, float(spec.get("width", 1.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{source}: model metadata does not describe a model ({exc!r})") from exc


def save_model(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``meta``: ``.safetensors``, or ``.pt``/``.pth`` via torch.save."""
    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in _unwrap(model).state_dict().items()}
    if path.suffix == ".safetensors":
        payload = st_save(state, metadata={META_KEY: json.dumps(meta)})
    elif path.suffix in TORCH_SUFFIXES:
        buffer = io.BytesIO()
        torch.save({"model": state, "meta": meta}, buffer)
        payload = buffer.getvalue()
    else:
        raise UserError(f"{path}: expected a .safetensors or .pt file name")
    with atomic_writer(path) as f:
        f.write(payload)
    return path


def read_names(names: str | Path | list[str] | None, num_classes: int, source: str) -> list[str]:
    """Class names from a list or a ``.names`` file (one per line); ``class0 ..`` when None."""
    if names is None:
        return [f"class{i}" for i in range(num_classes)]
    if not isinstance(names, list):
        try:
            names = [line.strip() for line in Path(names).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise UserError(f"{names}: cannot read the class names ({exc.strerror})") from exc
    if len(names) != num_classes:
        raise UserError(f"{len(names)} class names but {source} has {num_classes} classes")
    return list(names)


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{source}: the weights do not fit the model its metadata describes: {exc}") from exc


def load_model(
    weights: str | Path, cfg: str | Path | None = None, names: str | Path | list[str] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
    """``(model in eval mode on device, meta)`` from a ``.safetensors`` or ``.pt`` checkpoint, or from
    Darknet ``.weights`` plus ``cfg`` (a path or a shipped name such as ``yolov3-tiny``) and
    optional ``names`` (a ``.names`` file or a list; an error if its count differs from the cfg's)."""
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"{weights}: no such weights file")
    if weights.suffix == ".weights":
        if cfg is None:
            raise UserError(f"{weights}: Darknet weights need their cfg (--cfg)")
        darknet = parse_cfg(cfg_path(cfg))
        model = DarknetModel(darknet)
        load_darknet_weights(model, weights)
        meta = model_meta(model, read_names(names, model.num_classes, str(cfg)), darknet.width,
                          ModelConfig(name=str(cfg), num_classes=model.num_classes))  # fmt: skip
    elif weights.suffix == ".safetensors":
        try:
            with safe_open(weights, framework="pt") as f:
                meta = json.loads((f.metadata() or {})[META_KEY])
            state = load_file(weights)
        except (SafetensorError, KeyError, ValueError, OSError) as exc:
            raise UserError(f"{weights}: not a yolov3 safetensors checkpoint ({exc})") from exc
        model = model_from_meta(meta, str(weights))
        _load_state(model, state, str(weights))
    elif weights.suffix in TORCH_SUFFIXES:
        try:
            ckpt = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds for a bad or unsafe file
            raise UserError(f"{weights}: cannot read as a torch checkpoint ({exc})") from exc
        if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
            raise UserError(f"{weights}: expected a dict with 'model' and 'meta' entries")
        meta = ckpt["meta"]
        model = model_from_meta(meta, str(weights))
        _load_state(model, ckpt["model"], str(weights))
    else:
        raise UserError(f"{weights}: expected .safetensors, .pt or Darknet .weights")
    if names is not None and weights.suffix != ".weights":
        meta = {**meta, "names": read_names(names, int(meta["num_classes"]), str(weights))}
    return model.to(device).eval(), meta


def export_darknet(model: nn.Module, meta: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``<stem>.cfg``, ``<stem>.weights`` and ``<stem>.names`` into ``out_dir`` (stem: the model
    name) for Darknet and OpenCV. ``model`` must be unfused (Darknet stores BatchNorm separately)."""
    model = _unwrap(model)
    size = int(meta.get("img_size", 416))
    if isinstance(model, YOLOv3):
        cfg = native_to_cfg(model, size, size)
    elif isinstance(model, DarknetModel):
        cfg = model.cfg
    else:
        raise UserError(f"cannot write a {type(model).__name__} as Darknet files")
    bn_in_cfg = [layer.batch_normalize for layer in cfg.layers if isinstance(layer, Conv)]
    if bn_in_cfg != [u.bn is not None for u in conv_units(model)]:
        raise UserError(
            "the model's convolutions do not match its cfg (a fused model?): export the unfused one"
        )
    out_dir = Path(out_dir)
    stem = Path(str(meta.get("model", {}).get("name") or "model")).stem
    paths = {"cfg": out_dir / f"{stem}.cfg", "weights": out_dir / f"{stem}.weights",
             "names": out_dir / f"{stem}.names"}  # fmt: skip
    with atomic_writer(paths["cfg"]) as f:
        f.write(write_cfg(cfg).encode())
    save_darknet_weights(model, paths["weights"])
    with atomic_writer(paths["names"]) as f:
        f.write("".join(f"{n}\n" for n in meta["names"]).encode())
    return paths
