"""Edits of a parsed Darknet cfg (class count, anchors), and its detection outputs in the project's order.

Each edit returns a new ``DarknetCfg`` re-parsed from edited sections, so shapes and checks stay those
of ``yolov3.darknet.cfg``; the original is untouched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from yolov3.darknet.cfg import DarknetCfg, Section, Yolo, cfg_error, cfg_from_sections
from yolov3.errors import UserError


@dataclass(frozen=True)
class YoloOutput:
    """One ``[yolo]`` layer: cfg layer ``index``, its ``stride`` (input / grid), anchors, classes."""

    index: int
    stride: int
    anchors: tuple[tuple[float, float], ...]
    classes: int


def yolo_outputs(cfg: DarknetCfg) -> list[YoloOutput]:
    """The ``[yolo]`` layers by increasing stride (file order among equal strides), the order of the
    raw maps every model of this project returns. A grid that does not divide the input is an error."""
    out = []
    for i, layer in enumerate(cfg.layers):
        if not isinstance(layer, Yolo):
            continue
        grid_h, grid_w = cfg.shapes[i][1:]
        stride = cfg.height // grid_h
        if stride * grid_h != cfg.height or cfg.width // grid_w != stride:
            where = f"{cfg.source}:{cfg.sections[i + 1].line}"
            raise UserError(f"{where}: [yolo] layer {i} grid {grid_h}x{grid_w} does not divide the input "
                            f"{cfg.height}x{cfg.width} evenly")  # fmt: skip
        out.append(YoloOutput(i, stride, layer.anchors, layer.classes))
    return sorted(out, key=lambda o: o.stride)


def _edited(cfg: DarknetCfg, edit) -> DarknetCfg:
    sections = [dataclasses.replace(s, options=dict(s.options), lines=dict(s.lines)) for s in cfg.sections]
    edit(sections)
    return cfg_from_sections(sections, cfg.source, warn=False)


def set_input_size(cfg: DarknetCfg, size: int) -> DarknetCfg:
    """A copy whose ``[net]`` says ``width`` = ``height`` = ``size`` (the size the model runs at)."""

    def edit(sections: list[Section]) -> None:
        for section in sections:
            if section.type in ("net", "network"):
                section.options.update(width=str(size), height=str(size))

    return _edited(cfg, edit)


def set_num_classes(cfg: DarknetCfg, num_classes: int) -> DarknetCfg:
    """A copy with ``classes`` of every [yolo] and ``filters`` of the convolution feeding it changed
    to match (``len(mask) * (5 + num_classes)``)."""
    if num_classes < 1:
        raise UserError(f"num_classes={num_classes}: must be at least 1")

    def edit(sections: list[Section]) -> None:
        for i, section in enumerate(sections):
            if section.type != "yolo":
                continue
            section.options["classes"] = str(num_classes)
            before = sections[i - 1]
            if before.type != "convolutional":
                raise cfg_error(cfg.source, section.line, "[yolo] does not follow a [convolutional]: cannot "
                            "change the class count")  # fmt: skip
            mask = cfg.layers[i - 1].mask  # type: ignore[union-attr]
            before.options["filters"] = str(len(mask) * (5 + num_classes))

    return _edited(cfg, edit)


def set_anchors(cfg: DarknetCfg, anchors: list[list[list[float]]]) -> DarknetCfg:
    """A copy whose [yolo] layers use ``anchors``: one list of (w, h) input pixels per [yolo], in
    file order; each layer gets all of them (comma list) and a mask selecting its own."""
    yolos = [s for s in cfg.sections if s.type == "yolo"]
    if len(anchors) != len(yolos):
        raise UserError(f"{cfg.source}: {len(yolos)} [yolo] layers but {len(anchors)} anchor groups given")
    flat = [pair for group in anchors for pair in group]
    text = ",".join(f"{float(v):g}" for pair in flat for v in pair)

    def edit(sections: list[Section]) -> None:
        start = 0
        for section, group in zip([s for s in sections if s.type == "yolo"], anchors):
            mask = ",".join(str(start + k) for k in range(len(group)))
            section.options.update(anchors=text, num=str(len(flat)), mask=mask)
            start += len(group)

    return _edited(cfg, edit)
