"""Checks on exported files: numeric parity with PyTorch, and the interface of any ONNX file.

``max_rel_error`` and ``match_detections`` are how an export proves itself before it reports success
(``yolov3.export.exporter``). ``inspect_onnx`` reads an ONNX file's inputs, outputs and metadata and says
what does not fit the raw-map contract a backend needs (``yolov3.export.backends``), naming the tensor,
its shape and what was expected — for files from this exporter and from other tools alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor

from yolov3.errors import UserError
from yolov3.export.meta import META_KEY, loads_meta

_ONNX_DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}


class ExportCheckError(UserError):
    """The written file does not reproduce PyTorch's outputs (or cannot be read back)."""


def max_rel_error(got: np.ndarray | Tensor, want: np.ndarray | Tensor) -> float:
    """``max |got - want| / max(1, max |want|)`` over the finite values: the largest error relative to
    the output's scale. Non-finite values (``exp`` overflowing to inf in a decoded box) must match
    exactly, else the error is inf."""
    got = torch.as_tensor(np.asarray(got, dtype=np.float32) if not isinstance(got, Tensor) else got)
    got, want = got.detach().float().cpu(), torch.as_tensor(want).detach().float().cpu()
    if got.shape != want.shape:
        return float("inf")
    finite = torch.isfinite(want)
    same_specials = torch.equal(torch.isfinite(got), finite) and torch.equal(
        got[~finite].nan_to_num(), want[~finite].nan_to_num()
    )
    if not same_specials:
        return float("inf")
    if not bool(finite.any()):
        return 0.0
    got, want = got[finite], want[finite]
    return float((got - want).abs().max()) / max(1.0, float(want.abs().max()))


def compare_outputs(got: list, want: list[Tensor], names: list[str], tol: float, source: str) -> float:
    """Raise ``ExportCheckError`` naming the first output whose shape or values differ; return the
    largest relative error."""
    worst = 0.0
    for g, w, name in zip(got, want, names, strict=True):
        g_shape, w_shape = tuple(np.shape(g)), tuple(w.shape)
        if g_shape != w_shape:
            raise ExportCheckError(f"{source}: output {name!r} has shape {g_shape}, PyTorch gives {w_shape}")
        err = max_rel_error(g, w)
        if not err <= tol:
            raise ExportCheckError(
                f"{source}: output {name!r} differs from PyTorch by {err:.3g} (relative to its scale; "
                f"allowed {tol:g})"
            )
        worst = max(worst, err)
    return worst


def match_detections(got: np.ndarray | Tensor, want: Tensor, tol: float) -> float:
    """Fraction of rows (``[batch, x1, y1, x2, y2, score, class]``) of either set with no partner in the
    other: same batch and class, the score within ``tol`` and every coordinate within
    ``tol * max(1, |x|)``. Order does not matter. A row whose score ties another of its image and class
    needs no box match: which of two equal scores survives NMS or the ``max_det`` cut is up to each
    runtime's sort. Near-tie decisions may still flip between runtimes, hence a fraction."""
    a = torch.as_tensor(np.asarray(got, dtype=np.float32)).float().reshape(-1, 7)
    b = want.detach().float().cpu().reshape(-1, 7)
    if len(a) == 0 and len(b) == 0:
        return 0.0
    missing = 0
    for key in torch.unique(torch.cat([a[:, [0, 6]], b[:, [0, 6]]]), dim=0):  # per (image, class)
        ga = a[(a[:, 0] == key[0]) & (a[:, 6] == key[1])]
        gb = b[(b[:, 0] == key[0]) & (b[:, 6] == key[1])]
        missing += _unmatched(ga, gb, tol) + _unmatched(gb, ga, tol)
    return missing / (len(a) + len(b))


def _unmatched(x: Tensor, y: Tensor, tol: float) -> int:
    """Rows of ``x`` (one image and class) with no partner in ``y`` (see ``match_detections``)."""
    if len(y) == 0:
        return len(x)
    score_close = (x[:, None, 5] - y[None, :, 5]).abs() <= tol  # (n, m)
    box_close = ((x[:, None, 1:5] - y[None, :, 1:5]).abs() <= tol * x[:, None, 1:5].abs().clamp(min=1.0)).all(
        -1
    )
    ties = ((x[:, None, 5] - x[None, :, 5]).abs() <= 1e-6).sum(1) > 1  # (n,): another row, same score
    matched = (score_close & (box_close | ties[:, None])).any(1)
    return int((~matched).sum())


def check_inputs(img_size: int, batch: int, dynamic: bool, dtype: torch.dtype, device) -> list[Tensor]:  # noqa: ANN001
    """Deterministic [0, 1] images: the export size, and with ``dynamic`` a second batch size and a
    non-square size (so both spatial axes are proven free)."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(batch, 3, img_size, img_size)]
    if dynamic:
        shapes.append((batch + 1, 3, img_size, img_size + 64))
    return [torch.rand(s, generator=gen).to(device=device, dtype=dtype) for s in shapes]


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
    meta: dict[str, Any] | None


def _dims(value_info: onnx.ValueInfoProto) -> list[Any]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in shape.dim]


def inspect_onnx(path: str | Path) -> OnnxInterface:
    """Read ``path``'s interface (weights are not loaded) and check it is one this project can run:
    one image input ``(B, 3, H, W)`` float, and raw maps ``(B, A * (5 + C), H / s, W / s)`` (or, for this
    exporter's files, decoded / NMS outputs as its metadata says)."""
    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such file") from exc
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not ONNX
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
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
    meta = loads_meta(props[META_KEY], str(path)) if META_KEY in props else None
    outputs = (meta or {}).get("outputs", "raw")
    names = [o.name for o in graph.output]
    shapes = [_dims(o) for o in graph.output]
    if outputs == "raw":
        _check_raw_outputs(path, names, shapes, meta)
    return OnnxInterface(path, inp.name, in_shape, _ONNX_DTYPES[elem], names, shapes, outputs, meta)


def _check_raw_outputs(path: Path, names: list[str], shapes: list[list[Any]], meta: dict | None) -> None:
    want = "raw maps (B, A*(5+C), H/stride, W/stride), one per stride"
    for name, shape in zip(names, shapes):
        if len(shape) != 4:
            hint = " (decoded or post-NMS outputs? export with --outputs raw)" if len(shape) in (2, 3) else ""
            raise UserError(f"{path}: output {name!r} has shape {shape}; expected {want}{hint}")
    channels = {s[1] for s in shapes if isinstance(s[1], int)}
    if len(channels) > 1:
        raise UserError(f"{path}: outputs {names} have channel counts {sorted(channels)}; every raw map "
                        "needs the same A*(5+C)")  # fmt: skip
    if meta is not None:
        if len(names) != len(meta["strides"]):
            raise UserError(f"{path}: {len(names)} outputs but the metadata lists strides {meta['strides']}")
        expect = len(meta["anchors"][0]) * (5 + meta["num_classes"])
        if channels and channels != {expect}:
            na, nc = len(meta["anchors"][0]), meta["num_classes"]
            raise UserError(f"{path}: outputs have {channels.pop()} channels; the metadata's {na} anchors "
                            f"x (5 + {nc} classes) need {expect}")  # fmt: skip
    elif len(names) not in (2, 3):
        raise UserError(f"{path}: {len(names)} outputs {names}; a file without yolov3 metadata must give "
                        f"3 (YOLOv3) or 2 (YOLOv3-tiny) {want}")  # fmt: skip
    elif channels and (min(channels) % 3 or min(channels) < 18):
        raise UserError(f"{path}: outputs have {min(channels)} channels; expected 3 anchors x (5 + C)")
