"""Model files: the typed model meta, native checkpoints (safetensors or ``torch.save``) and Darknet
cfg + weights + names. The one module that reads and writes ``.pt`` / ``.safetensors`` files.

``ModelMeta`` describes a model well enough to rebuild it and to run it without any other file:
class names, anchors (input pixels, one row per output, increasing stride), strides, input size,
the architecture (``yolov3`` native, or the Darknet cfg text it was built from) and the format
version. It travels as JSON: under the metadata key ``yolov3`` of a ``.safetensors`` file, as the
``meta`` entry of a ``.pt`` checkpoint, inside exported ONNX / TorchScript files. Files written before
the version field existed (version 0: a nested ``model`` entry) still read.

A ``.pt`` checkpoint is ``{"model": state_dict, "meta": meta, ...}`` (the trainer's add optimiser and
RNG state) and is only ever read with ``torch.load(weights_only=True)``: no pickled code runs.
Every write goes through ``yolov3.files.atomic_writer``.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as st_save
from torch import nn

from yolov3.builder import build_darknet, build_described
from yolov3.darknet.build import DarknetModel
from yolov3.darknet.cfg import write_cfg
from yolov3.darknet.weights import load_darknet_weights
from yolov3.errors import UserError
from yolov3.files import atomic_writer
from yolov3.model.yolov3 import YOLOv3

META_KEY = "yolov3"  # safetensors metadata key, ONNX metadata_props key
FORMAT_VERSION = 1
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt")

Anchors = tuple[tuple[tuple[float, float], ...], ...]


class CheckpointError(UserError):
    """A model file that cannot be read, written, or does not fit what it is used for."""


@dataclass(frozen=True)
class ExportInfo:
    """How an exported file was written: ``outputs`` raw | decoded | nms, dynamic sizes, float16,
    and for in-graph NMS the thresholds baked into the graph."""

    format: str = "onnx"
    outputs: str = "raw"
    dynamic: bool = False
    half: bool = False
    conf_threshold: float | None = None
    iou_threshold: float | None = None
    max_det: int | None = None


@dataclass(frozen=True)
class ModelMeta:
    """See the module docstring. ``arch``: ``yolov3`` for the native network, else the name or path of
    the Darknet cfg the model was built from (its text is ``cfg``). ``width``: the native network's
    channel multiplier. ``export``: set in exported files only."""

    names: tuple[str, ...]
    anchors: Anchors
    strides: tuple[int, ...]
    img_size: int = 416
    arch: str = "yolov3"
    width: float = 1.0
    cfg: str | None = None
    export: ExportInfo | None = field(default=None, compare=False)
    version: int = FORMAT_VERSION

    @classmethod
    def create(cls, **fields: Any) -> ModelMeta:
        """A meta with every field normalised to its type (tuples of floats, ints) and checked."""
        names = tuple(str(n) for n in fields["names"])
        anchors = tuple(tuple((float(w), float(h)) for w, h in scale) for scale in fields["anchors"])
        strides = tuple(int(s) for s in fields["strides"])
        if not names:
            raise ValueError("no class names")
        if len(anchors) != len(strides) or not anchors:
            raise ValueError(f"{len(anchors)} anchor rows for {len(strides)} strides")
        if len({len(a) for a in anchors}) != 1:
            raise ValueError(f"every output needs the same number of anchors, got {anchors}")
        return cls(
            names=names,
            anchors=anchors,
            strides=strides,
            img_size=int(fields.get("img_size", 416)),
            arch=str(fields.get("arch", "yolov3")),
            width=float(fields.get("width", 1.0)),
            cfg=fields.get("cfg"),
            export=fields.get("export"),
            version=FORMAT_VERSION,
        )

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def num_anchors(self) -> int:
        return len(self.anchors[0])

    def replace(self, **changes: Any) -> ModelMeta:
        """A copy with ``changes`` (``names``, ``img_size``, ``export`` ...)."""
        return ModelMeta.create(**{**self._fields(), **changes})

    def _fields(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        out = asdict(self)
        out["names"], out["strides"] = list(self.names), list(self.strides)
        out["anchors"] = [[list(a) for a in scale] for scale in self.anchors]
        out["num_classes"] = self.num_classes  # for readers of the JSON; recomputed on reading
        if self.export is None:
            del out["export"]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model file") -> ModelMeta:
        """Read any version's layout, validating what every consumer relies on; errors name ``source``
        and the field."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: model metadata is not a JSON object")
        data = dict(data)
        if "version" not in data:  # version 0: the architecture nested under "model", export flat
            spec = data.pop("model", None) or {}
            data.update(arch=spec.get("name", "yolov3"), width=spec.get("width", 1.0), cfg=spec.get("cfg"))
            exported = {k: data.pop(k) for k in list(data) if k in ExportInfo.__dataclass_fields__}
            if exported:
                data["export"] = exported
        missing = [k for k in ("names", "anchors", "strides") if k not in data]
        if missing:
            raise CheckpointError(f"{source}: model metadata lacks {missing}")
        count = data.pop("num_classes", None)
        if count is not None and count != len(data["names"]):
            raise CheckpointError(f"{source}: {len(data['names'])} class names for num_classes={count}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if isinstance(known.get("export"), dict):
            known["export"] = ExportInfo(**{k: v for k, v in known["export"].items()
                                            if k in ExportInfo.__dataclass_fields__})  # fmt: skip
        try:
            return ModelMeta.create(**known)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: model metadata does not describe a model ({exc})") from exc

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "model file") -> ModelMeta:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{source}: the {META_KEY!r} metadata is not valid JSON ({exc})") from exc
        return cls.from_dict(data, source)

    @classmethod
    def of_model(cls, model: nn.Module, names: list[str] | None, img_size: int, arch: str | None = None
                 ) -> ModelMeta:  # fmt: skip
        """The meta of ``model`` (native ``YOLOv3`` or ``DarknetModel``, wrappers removed); names default
        to ``class0 .. classC-1``; ``arch`` names a cfg-built model (default ``darknet``)."""
        model = unwrap(model)
        c = int(model.num_classes)
        names = [str(n) for n in names] if names is not None else default_names(c)
        if len(names) != c:
            raise UserError(f"{len(names)} class names for a model with {c} classes")
        if isinstance(model, YOLOv3):
            arch, width, cfg = "yolov3", model.width, None
        elif isinstance(model, DarknetModel):
            arch, width, cfg = arch or "darknet", 1.0, write_cfg(model.cfg)
        else:
            raise UserError(f"cannot describe a {type(model).__name__}: expected YOLOv3 or DarknetModel")
        return ModelMeta.create(names=names, anchors=model.anchors, strides=model.strides, img_size=img_size,
                     arch=arch, width=width, cfg=cfg)  # fmt: skip

    def build(self, source: str = "model file") -> nn.Module:
        """An untrained model with the architecture this meta describes."""
        model = build_described(self.cfg, self.num_classes, self.anchors, self.width, source)
        if unwrap(model).num_classes != self.num_classes:
            raise CheckpointError(f"{source}: {self.num_classes} class names for a cfg with "
                                  f"{model.num_classes} classes")  # fmt: skip
        return model


def default_names(num_classes: int) -> list[str]:
    return [f"class{i}" for i in range(num_classes)]


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside ``DistributedDataParallel`` and ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def read_names(names: str | os.PathLike | list[str] | None, num_classes: int, source: str) -> list[str]:
    """Class names from a list or a ``.names`` file (one per line); ``class0 ..`` when None. A count
    other than ``num_classes`` is an error naming ``source``."""
    if names is None:
        return default_names(num_classes)
    if not isinstance(names, (list, tuple)):
        try:
            names = [line.strip() for line in Path(names).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise UserError(f"{names}: cannot read the class names ({exc.strerror})") from exc
    if len(names) != num_classes:
        raise UserError(f"{len(names)} class names but {source} has {num_classes} classes")
    return [str(n) for n in names]


# ---------------------------------------------------------------------------------------------------
# .pt / .safetensors


def write_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (``yolov3.files.atomic_writer``)."""
    path = Path(path)
    with atomic_writer(path) as f:
        torch.save(obj, f)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A ``.pt`` checkpoint on the CPU, read safely (``weights_only=True``), with errors naming the file."""
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


def save_model(path: str | os.PathLike, model: nn.Module, meta: ModelMeta) -> Path:
    """Write ``model``'s weights and ``meta``: ``.safetensors``, or ``.pt`` / ``.pth`` via torch.save."""
    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in unwrap(model).state_dict().items()}
    if path.suffix == ".safetensors":
        payload = st_save(state, metadata={META_KEY: meta.to_json()})
    elif path.suffix in TORCH_SUFFIXES:
        buffer = io.BytesIO()
        torch.save({"model": state, "meta": meta.to_dict()}, buffer)
        payload = buffer.getvalue()
    else:
        raise UserError(f"{path}: expected a .safetensors or .pt file name")
    with atomic_writer(path) as f:
        f.write(payload)
    return path


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{source}: the weights do not fit the model its metadata describes: {exc}"
        ) from exc


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    try:
        with safe_open(path, framework="pt") as f:
            text = (f.metadata() or {})[META_KEY]
        state = load_file(path)
    except (SafetensorError, KeyError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: not a yolov3 safetensors checkpoint ({exc})") from exc
    return state, ModelMeta.from_json(text, str(path))


def _read_darknet(weights: Path, cfg: str | os.PathLike | None, names: Any) -> tuple[nn.Module, ModelMeta]:
    if cfg is None:
        raise UserError(f"{weights}: Darknet weights need their cfg (--cfg)")
    model, darknet = build_darknet(cfg)
    load_darknet_weights(model, weights)
    names = read_names(names, model.num_classes, str(cfg))
    return model, ModelMeta.of_model(model, names, darknet.width, arch=str(cfg))


def load_model(weights: str | os.PathLike, cfg: str | os.PathLike | None = None,
               names: str | os.PathLike | list[str] | None = None, device: str | torch.device = "cpu",
               ) -> tuple[nn.Module, ModelMeta]:  # fmt: skip
    """``(model in eval mode on device, meta)`` from a ``.safetensors`` or ``.pt`` checkpoint (the
    trainer's too), or from Darknet ``.weights`` plus ``cfg`` (a path or a shipped name such as
    ``yolov3-tiny``). ``names`` (a ``.names`` file or a list) replaces the stored names; a count that
    differs from the model's classes is an error."""
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"{weights}: no such weights file")
    suffix = weights.suffix.lower()
    if suffix == ".weights":
        model, meta = _read_darknet(weights, cfg, names)
    elif suffix in (".safetensors", *TORCH_SUFFIXES):
        if suffix == ".safetensors":
            state, meta = _read_safetensors(weights)
        else:
            ckpt = read_checkpoint(weights)
            if "meta" not in ckpt:
                raise CheckpointError(f"{weights}: a checkpoint without model metadata ('meta' entry)")
            state, meta = ckpt["model"], ModelMeta.from_dict(ckpt["meta"], str(weights))
        model = meta.build(str(weights))
        _load_state(model, state, str(weights))
        if names is not None:
            meta = meta.replace(names=read_names(names, meta.num_classes, str(weights)))
    else:
        raise UserError(f"{weights}: expected .safetensors, .pt or Darknet .weights")
    return model.to(device).eval(), meta


__all__ = [
    "FORMAT_VERSION", "META_KEY", "CheckpointError", "ExportInfo", "ModelMeta", "default_names", "load_model",
    "read_checkpoint", "read_names", "save_model", "unwrap", "write_torch",
]  # fmt: skip
