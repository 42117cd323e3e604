"""What a model file holds, read without running it: ``describe_model`` (``yolov3 info MODEL``).

For every file a backend loads — a checkpoint (``.pt`` / ``.safetensors``), Darknet ``.weights`` with
its cfg, an ONNX, TorchScript or OpenVINO export — the format, the input size it runs at by default
and whether the file fixes it, the classes, anchors and strides, the precision (fp32, fp16 or INT8,
read from the file's own graph: quantize nodes, float16 weights or input), what its outputs are (raw
maps, decoded boxes, detections after in-graph NMS with the graph's thresholds) and, for a training
checkpoint, where it came from (epoch, best mAP, whether it can be resumed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from yolov3.errors import UserError
from yolov3.infer.backends import auto_kind
from yolov3.modelfile import TORCH_SUFFIXES, ModelMeta, read_checkpoint

_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")  # buffers, not parameters
_ONNX_INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger"}


def describe_model(path: str | os.PathLike, cfg: str | os.PathLike | None = None) -> dict[str, Any]:
    """A JSON-able description of the model file ``path`` (module docstring); ``cfg`` for Darknet
    ``.weights``. Fields: ``file``, ``bytes``, ``format``, ``img_size``, ``fixed_size``, ``classes``,
    ``names``, ``anchors``, ``strides``, ``arch``, ``precision``, ``outputs`` and, when known,
    ``thresholds`` (in-graph NMS), ``parameters``, ``training``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES or suffix == ".safetensors":
        info = _checkpoint(path)
    elif suffix == ".weights":
        info = _darknet(path, cfg)
    elif auto_kind(path) == "onnxruntime":
        info = _onnx(path)
    elif auto_kind(path) == "openvino":
        info = _openvino(path)
    else:
        info = _torchscript(path)
    files = [path, path.with_suffix(".bin")] if info["format"] == "openvino" else [path]
    return {"file": str(path), "bytes": sum(f.stat().st_size for f in files), **info}


def _meta_fields(meta: ModelMeta) -> dict[str, Any]:
    export = meta.export
    out: dict[str, Any] = {
        "img_size": meta.img_size, "classes": meta.num_classes, "names": list(meta.names),
        "anchors": [[list(a) for a in scale] for scale in meta.anchors], "strides": list(meta.strides),
        "arch": meta.arch, "outputs": export.outputs if export is not None else "raw",
    }  # fmt: skip
    if export is not None and export.outputs == "nms":
        out["thresholds"] = {"conf_threshold": export.conf_threshold, "iou_threshold": export.iou_threshold,
                             "max_det": export.max_det}  # fmt: skip
    return out


def _checkpoint(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        from yolov3.modelfile import META_KEY

        with safe_open(path, framework="numpy") as f:
            meta = ModelMeta.from_json((f.metadata() or {}).get(META_KEY, "null"), str(path))
            shapes = [f.get_slice(k).get_shape() for k in f.keys() if not k.endswith(_BN_STATS)]
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        ckpt: dict[str, Any] = {}
    else:
        ckpt = read_checkpoint(path)
        if "meta" not in ckpt:
            raise UserError(f"{path}: a checkpoint without model metadata ('meta' entry)")
        meta = ModelMeta.from_dict(ckpt["meta"], str(path))
        shapes = [tuple(t.shape) for k, t in ckpt["model"].items() if not k.endswith(_BN_STATS)]
        dtypes = {str(t.dtype).replace("torch.", "") for t in ckpt["model"].values()}
    info = {"format": "checkpoint", "fixed_size": False, **_meta_fields(meta),
            "precision": "fp16" if dtypes & {"float16", "F16"} else "fp32",
            "parameters": int(sum(np.prod(s) for s in shapes))}  # fmt: skip
    if "epoch" in ckpt:
        metrics = ckpt.get("metrics") or {}
        info["training"] = {"epoch": int(ckpt["epoch"]) + 1, "step": ckpt.get("step"),
                            "val_map50": metrics.get("val/map50"),
                            "val_map50_95": metrics.get("val/map50_95"),
                            "resumable": "optimizer" in ckpt}  # fmt: skip
    return info


def _darknet(path: Path, cfg: str | os.PathLike | None) -> dict[str, Any]:
    from yolov3.infer.backends.opencv import darknet_meta

    if cfg is None:
        raise UserError(f"{path}: Darknet weights need their cfg (--cfg)")
    meta, _ = darknet_meta(cfg, None)
    return {"format": "darknet", "cfg": str(cfg), "fixed_size": False, **_meta_fields(meta),
            "precision": "fp32"}  # fmt: skip


def _onnx(path: Path) -> dict[str, Any]:
    import onnx

    from yolov3.infer.backends.onnxfile import inspect_onnx

    iface = inspect_onnx(path)
    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    precision = "int8" if ops & _ONNX_INT8_OPS else ("fp16" if iface.input_dtype == np.float16 else "fp32")
    meta = iface.model_meta(None)
    return {"format": "onnx", "fixed_size": iface.input_size is not None, "input_shape": iface.input_shape,
            **_meta_fields(meta), "outputs": iface.outputs, "precision": precision}  # fmt: skip


def _openvino(path: Path) -> dict[str, Any]:
    from yolov3.infer.backends.openvino import ir_meta, read_ir

    model, meta = read_ir(path)
    meta = ir_meta(model, meta, None, str(path))
    types = {op.get_type_name() for op in model.get_ops()}
    weights = {str(op.get_element_type()) for op in model.get_ops() if op.get_type_name() == "Constant"}
    if "FakeQuantize" in types or weights & {"<Type: 'int8_t'>", "<Type: 'uint8_t'>"}:
        precision = "int8"
    else:
        precision = "fp16" if "<Type: 'float16'>" in weights else "fp32"
    shape = model.inputs[0].get_partial_shape()
    return {"format": "openvino", "fixed_size": False, "input_shape": str(shape), **_meta_fields(meta),
            "precision": precision}  # fmt: skip


def _torchscript(path: Path) -> dict[str, Any]:
    from yolov3.infer.backends.pytorch import load_torchscript

    _, meta = load_torchscript(path)
    export = meta.export
    return {"format": "torchscript", "fixed_size": export is None or not export.dynamic, **_meta_fields(meta),
            "precision": "fp16" if export is not None and export.half else "fp32"}  # fmt: skip


def format_description(info: dict[str, Any]) -> str:
    """``describe_model``'s fields as the lines ``yolov3 info MODEL`` prints."""
    size = f"{info['img_size']}x{info['img_size']}" + (" (fixed in the file)" if info["fixed_size"] else
                                                       " (its default; others run too)")  # fmt: skip
    names = ", ".join(info["names"][:12]) + (f", ... ({len(info['names'])} in all)" if len(info["names"]) > 12
                                             else "")  # fmt: skip
    outputs = {"raw": "raw maps (decoded and NMS'd by yolov3)", "decoded": "decoded boxes (B, N, 5 + C)",
               "nms": "detections after in-graph NMS"}[info["outputs"]]  # fmt: skip
    lines = [
        f"{info['file']}: {info['format']}, {info['bytes'] / 2**20:.1f} MiB, {info['precision']}",
        f"  input      {size}",
        f"  classes    {info['classes']}: {names}",
        "  anchors    " + "; ".join(" ".join(f"{w:g}x{h:g}" for w, h in scale) for scale in info["anchors"])
        + f"  (strides {', '.join(str(s) for s in info['strides'])})",
        f"  outputs    {outputs}",
        f"  arch       {info['arch']}",
    ]  # fmt: skip
    if "thresholds" in info:
        t = info["thresholds"]
        lines.append(f"  in-graph   score > {t['conf_threshold']}, NMS IoU {t['iou_threshold']}, "
                     f"at most {t['max_det']} boxes per class")  # fmt: skip
    if "parameters" in info:
        lines.append(f"  parameters {info['parameters']:,}")
    if "training" in info:
        t = info["training"]
        score = f", val mAP@0.5 {t['val_map50']:.4g}" if t.get("val_map50") is not None else ""
        resume = "resumable (optimiser state kept)" if t["resumable"] else "weights only"
        lines.append(f"  training   epoch {t['epoch']}, step {t['step']}{score}; {resume}")
    return "\n".join(lines)


__all__ = ["describe_model", "format_description"]
