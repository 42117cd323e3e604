"""What an ONNX file takes and gives, read without running it: ``inspect_onnx``.

Used by the ONNX Runtime and OpenCV backends before they load a file, and by the exporter's check. A
file that does not fit the raw-map contract a backend needs gets an error naming the tensor, its
shape and what was expected — for files from this exporter and from other tools alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from yolov3.errors import UserError
from yolov3.infer.backends import foreign_meta
from yolov3.modelfile import META_KEY, ModelMeta

_ONNX_DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}
_RAW = "raw maps (B, A*(5+C), H/stride, W/stride), one per stride"


@dataclass
class OnnxInterface:
    """What an ONNX file takes and gives. ``outputs``: raw | decoded | nms; ``meta`` is None for a
    file without yolov3 metadata. ``input_dtype`` is float32 or float16."""

    path: Path
    input_name: str
    input_shape: list[Any]
    input_dtype: type
    output_names: list[str]
    output_shapes: list[list[Any]]
    outputs: str
    meta: ModelMeta | None

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(H, W)`` when the file fixes both, else None."""
        h, w = self.input_shape[2:]
        return (h, w) if isinstance(h, int) and isinstance(w, int) else None

    @property
    def fixed_batch(self) -> int | None:
        b = self.input_shape[0]
        return b if isinstance(b, int) else None

    def model_meta(self, names: Any) -> ModelMeta:
        """The file's meta, or for another tool's file one made from its outputs and ``names``."""
        if self.meta is not None:
            return self.meta
        size = self.input_size[0] if self.input_size else None
        return foreign_meta(len(self.output_names), self.channels, names, str(self.path), size)

    @property
    def channels(self) -> int | None:
        """The first output's channel count when the file fixes it."""
        c = self.output_shapes[0][1] if len(self.output_shapes[0]) > 1 else None
        return c if isinstance(c, int) else None


def _dims(value_info: onnx.ValueInfoProto) -> list[Any]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in shape.dim]


def _load(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such file") from exc
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not ONNX
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc


def inspect_onnx(path: str | Path) -> OnnxInterface:
    """Read ``path``'s interface (weights are not loaded) and check it is one this project can run:
    one image input ``(B, 3, H, W)`` float, and raw maps ``(B, A * (5 + C), H / s, W / s)`` (or, for this
    exporter's files, decoded / NMS outputs as its metadata says)."""
    path = Path(path)
    proto = _load(path)
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UserError(f"{path}: {len(inputs)} inputs {[i.name for i in inputs]}; expected one image "
                        "input (B, 3, H, W)")  # fmt: skip
    inp = inputs[0]
    in_shape = _dims(inp)
    elem = inp.type.tensor_type.elem_type
    if len(in_shape) != 4 or (isinstance(in_shape[1], int) and in_shape[1] != 3):
        raise UserError(f"{path}: input {inp.name!r} has shape {in_shape}; expected (B, 3, H, W), RGB")
    if elem not in _ONNX_DTYPES:
        raise UserError(f"{path}: input {inp.name!r} has element type "
                        f"{onnx.TensorProto.DataType.Name(elem)}; expected FLOAT or FLOAT16")  # fmt: skip
    props = {p.key: p.value for p in proto.metadata_props}
    meta = ModelMeta.from_json(props[META_KEY], str(path)) if META_KEY in props else None
    outputs = meta.export.outputs if meta is not None and meta.export is not None else "raw"
    names = [o.name for o in graph.output]
    shapes = [_dims(o) for o in graph.output]
    if outputs == "raw":
        check_raw_outputs(path, names, shapes, meta)
    return OnnxInterface(path, inp.name, in_shape, _ONNX_DTYPES[elem], names, shapes, outputs, meta)


def check_raw_outputs(path: Path, names: list[str], shapes: list[list[Any]], meta: ModelMeta | None) -> None:
    for name, shape in zip(names, shapes):
        if len(shape) != 4:
            hint = " (decoded or post-NMS outputs? export with --outputs raw)" if len(shape) in (2, 3) else ""
            raise UserError(f"{path}: output {name!r} has shape {shape}; expected {_RAW}{hint}")
    channels = {s[1] for s in shapes if isinstance(s[1], int)}
    if len(channels) > 1:
        raise UserError(f"{path}: outputs {names} have channel counts {sorted(channels)}; every raw map "
                        "needs the same A*(5+C)")  # fmt: skip
    if meta is not None:
        if len(names) != len(meta.strides):
            raise UserError(
                f"{path}: {len(names)} outputs but the metadata lists strides {list(meta.strides)}"
            )
        expect = meta.num_anchors * (5 + meta.num_classes)
        if channels and channels != {expect}:
            na, nc = meta.num_anchors, meta.num_classes
            raise UserError(f"{path}: outputs have {channels.pop()} channels; the metadata's {na} anchors "
                            f"x (5 + {nc} classes) need {expect}")  # fmt: skip
    elif len(names) not in (2, 3):
        raise UserError(f"{path}: {len(names)} outputs {names}; a file without yolov3 metadata must give "
                        f"3 (YOLOv3) or 2 (YOLOv3-tiny) {_RAW}")  # fmt: skip
    elif channels and (min(channels) % 3 or min(channels) < 18):
        raise UserError(f"{path}: outputs have {min(channels)} channels; expected 3 anchors x (5 + C)")


__all__ = ["OnnxInterface", "check_raw_outputs", "inspect_onnx"]
