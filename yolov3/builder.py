"""The one place a network is built, above ``model/`` (the native net) and ``darknet/`` (cfg networks).

``build_model(ModelConfig)`` builds from settings (the only reader of ``ModelConfig``);
``build_described`` builds what a model file's meta describes; ``build_darknet`` builds a Darknet
cfg as it stands. ``cfg_path`` finds a shipped cfg by name.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from torch import nn

from yolov3.config import COCO_ANCHORS, ModelConfig
from yolov3.darknet.build import DarknetModel
from yolov3.darknet.cfg import DarknetCfg, parse_cfg, parse_cfg_text
from yolov3.darknet.edit import set_anchors, yolo_outputs
from yolov3.errors import UserError
from yolov3.model.yolov3 import YOLOv3

Anchors = tuple[tuple[tuple[float, float], ...], ...]

# Darknet cfgs shipped in yolov3/cfg; "yolov3" itself builds the native network (same layers).
SHIPPED_CFGS = ("yolov3", "yolov3-tiny", "yolov3-spp", "yolov3-voc")


def cfg_path(name: str | Path) -> Path:
    """A shipped cfg by name (``yolov3-tiny``; ``yolov3`` gives Darknet's yolov3.cfg) or a path."""
    if str(name) in SHIPPED_CFGS:
        return Path(str(resources.files("yolov3") / "cfg" / f"{name}.cfg"))
    path = Path(name)
    if not path.is_file():
        raise UserError(f"model cfg {str(name)!r}: no such file; shipped cfgs: {', '.join(SHIPPED_CFGS)}")
    return path


def model_anchors(name: str) -> list[list[tuple[float, float]]]:
    """The anchors model ``name`` (``ModelConfig.name``) has by default, one row per output scale by
    increasing stride, input pixels: COCO's for the native yolov3, a Darknet cfg's own otherwise."""
    if name == "yolov3":
        return [list(scale) for scale in COCO_ANCHORS]
    return [list(h.anchors) for h in yolo_outputs(parse_cfg(cfg_path(name)))]


def anchor_layout(name: str) -> tuple[int, int]:
    """``(output scales, anchors per scale)`` of model ``name`` (yolov3: 3 x 3, yolov3-tiny: 2 x 3)."""
    anchors = model_anchors(name)
    return len(anchors), len(anchors[0])


def build_model(cfg: ModelConfig, num_classes: int = 80) -> nn.Module:
    """A network returning raw maps ordered by increasing stride, with ``.anchors`` (per scale, input
    pixels), ``.strides`` and ``.num_classes``.

    ``cfg.name``: ``yolov3`` (the native network), ``yolov3-tiny``, ``yolov3-spp``, ``yolov3-voc``
    (Darknet's cfgs, shipped) or a path to a ``.cfg``. ``num_classes`` (the data set's) overrides the
    cfg's class count (the [yolo] layers and the convolution before each); ``cfg.anchors`` (one row per
    output, increasing stride, input pixels) overrides the cfg's; ``cfg.width`` applies to the native
    network only.
    """
    if cfg.name == "yolov3":
        anchors = tuple(tuple(tuple(a) for a in s) for s in cfg.anchors) if cfg.anchors else COCO_ANCHORS
        return YOLOv3(num_classes, anchors, cfg.width)
    if cfg.name not in SHIPPED_CFGS and not str(cfg.name).endswith(".cfg"):
        raise UserError(f"model {cfg.name!r}: expected yolov3, yolov3-tiny, yolov3-spp, yolov3-voc or a "
                        "Darknet .cfg path")  # fmt: skip
    if cfg.width != 1.0:
        raise UserError(f"model {cfg.name!r}: width={cfg.width} applies to the native yolov3 only")
    darknet = parse_cfg(cfg_path(cfg.name))
    model = DarknetModel(darknet, num_classes=num_classes)
    if cfg.anchors:
        # ModelConfig lists anchors by increasing stride; the cfg's [yolo] layers are in file order.
        by_file_order = sorted(range(len(model.output_layers)), key=lambda k: model.output_layers[k])
        if len(cfg.anchors) != len(by_file_order):
            raise UserError(f"model.anchors has {len(cfg.anchors)} rows; {cfg.name} has {len(by_file_order)} "
                            "outputs")  # fmt: skip
        darknet = set_anchors(model.cfg, [cfg.anchors[k] for k in by_file_order])
        model = DarknetModel(darknet)
    return model


def build_described(cfg_text: str | None, num_classes: int, anchors: Anchors, width: float,
                    source: str = "model file") -> nn.Module:  # fmt: skip
    """An untrained network as a model file's meta describes it: its embedded Darknet cfg text when it
    has one, else the native YOLOv3 with ``num_classes``, ``anchors`` (per scale, input pixels) and
    ``width``. ``source`` names the file in errors."""
    if cfg_text:
        return DarknetModel(parse_cfg_text(cfg_text, f"{source} (embedded cfg)"))
    return YOLOv3(num_classes, anchors, width)


def build_darknet(cfg: str | os.PathLike) -> tuple[DarknetModel, DarknetCfg]:
    """``(network, parsed cfg)`` of a Darknet cfg (a path or a shipped name) as it stands: its own
    classes and anchors, for reading the ``.weights`` written with it."""
    darknet = parse_cfg(cfg_path(cfg))
    return DarknetModel(darknet), darknet
