"""Darknet files from any model of this project: ``<stem>.cfg``, ``<stem>.weights``, ``<stem>.names``.

What Darknet itself and OpenCV's ``readNetFromDarknet`` read. The native ``YOLOv3`` is written as the
cfg it equals (``yolov3.darknet.native.native_to_cfg``); a cfg-built model as its own cfg.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from yolov3.darknet.build import DarknetModel
from yolov3.darknet.cfg import Conv, write_cfg
from yolov3.darknet.edit import set_input_size
from yolov3.darknet.native import native_to_cfg
from yolov3.darknet.weights import conv_units, save_darknet_weights
from yolov3.errors import UserError
from yolov3.files import atomic_writer
from yolov3.model.yolov3 import YOLOv3
from yolov3.modelfile import ModelMeta, unwrap


def export_darknet(model: nn.Module, meta: ModelMeta, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``<stem>.cfg``, ``<stem>.weights`` and ``<stem>.names`` into ``out_dir`` (stem: the model's
    ``arch`` name); the cfg's ``[net]`` size is ``meta.img_size``. ``model`` must be unfused (Darknet
    stores BatchNorm separately)."""
    model = unwrap(model)
    if isinstance(model, YOLOv3):
        cfg = native_to_cfg(model, meta.img_size, meta.img_size)
    elif isinstance(model, DarknetModel):
        cfg = set_input_size(model.cfg, meta.img_size)
    else:
        raise UserError(f"cannot write a {type(model).__name__} as Darknet files")
    bn_in_cfg = [layer.batch_normalize for layer in cfg.layers if isinstance(layer, Conv)]
    if bn_in_cfg != [u.bn is not None for u in conv_units(model)]:
        raise UserError(
            "the model's convolutions do not match its cfg (a fused model?): export the unfused one"
        )
    out_dir = Path(out_dir)
    stem = Path(meta.arch or "model").stem
    paths = {"cfg": out_dir / f"{stem}.cfg", "weights": out_dir / f"{stem}.weights",
             "names": out_dir / f"{stem}.names"}  # fmt: skip
    with atomic_writer(paths["cfg"]) as f:
        f.write(write_cfg(cfg).encode())
    save_darknet_weights(model, paths["weights"])
    with atomic_writer(paths["names"]) as f:
        f.write("".join(f"{n}\n" for n in meta.names).encode())
    return paths


__all__ = ["export_darknet"]
