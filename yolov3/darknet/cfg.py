"""Darknet ``.cfg`` files: parse, validate, edit (class count, anchors) and write back.

A cfg is a list of ``[section]`` blocks of ``key=value`` lines; ``#`` and ``;`` start comments and,
as in Darknet's ``read_cfg``, all whitespace inside a line is dropped (``mask = 3, 4`` is ``3,4``).
The first block is ``[net]``; the others are layers, numbered from 0 in file order (the indices
``[route]`` and ``[shortcut]`` refer to). Supported layers: convolutional, shortcut, route, upsample,
maxpool, yolo. Parsing also runs shape inference at the ``[net]`` size, so a cfg that parses builds.

Every error is a ``UserError`` naming the file, the line and the key. Keys Darknet uses only for
training (jitter, ignore_thresh, ...) are kept for round trips; keys nobody here knows are listed in
one ``UserWarning`` when they are harmless ([net], [yolo]) and rejected elsewhere.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from yolov3.errors import UserError

ACTIVATIONS = ("leaky", "linear", "relu", "logistic", "mish", "swish")

# Keys each section understands: key -> (kind, default); default None means required.
_SCHEMA: dict[str, dict[str, tuple[str, object]]] = {
    "net": {"width": ("int", None), "height": ("int", None), "channels": ("int", 3)},
    "convolutional": {
        "filters": ("int", None), "size": ("int", None), "stride": ("int", 1), "pad": ("int", 0),
        "padding": ("int", 0), "batch_normalize": ("int", 0), "activation": ("act", None),
    },
    "shortcut": {"from": ("ints", None), "activation": ("act", "linear")},
    "route": {"layers": ("ints", None)},
    "upsample": {"stride": ("int", 2)},
    "maxpool": {"size": ("int", None), "stride": ("int", 1), "padding": ("int", -1)},
    "yolo": {
        "mask": ("ints", ()), "anchors": ("floats", None), "classes": ("int", None), "num": ("int", -1),
        "jitter": ("float", 0.2), "ignore_thresh": ("float", 0.5), "truth_thresh": ("float", 1.0),
        "random": ("int", 0),
    },
}  # fmt: skip
# Keys whose other values would change the network: allowed only with the value Darknet defaults to.
_NEUTRAL: dict[str, dict[str, float]] = {
    "convolutional": {"groups": 1, "dilation": 1, "binary": 0, "xnor": 0, "antialiasing": 0},
    "upsample": {"scale": 1},
    "maxpool": {"maxpool_depth": 0},
    "route": {"groups": 1, "group_id": 0},
    "yolo": {"scale_x_y": 1, "new_coords": 0},
}
# [net] keys that only steer Darknet's training loop: kept, never warned about.
_NET_TRAINING = set(
    "batch subdivisions momentum decay angle saturation exposure hue learning_rate burn_in max_batches "
    "policy steps scales power gamma step mosaic flip letter_box min_crop max_crop aspect jitter "
    "max_chart_loss track time_steps adam B1 B2 eps inputs".split()
)
_HARMLESS_UNKNOWN = ("net", "yolo")  # sections where unknown keys are listed in a warning, not refused


@dataclass
class Section:
    """One ``[type]`` block: raw values (whitespace removed) in file order and the line of each."""

    type: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Conv:
    filters: int
    size: int
    stride: int
    padding: int  # zero-padding on every side, pixels
    batch_normalize: bool
    activation: str


@dataclass(frozen=True)
class Shortcut:
    sources: tuple[int, ...]  # absolute layer indices added to the previous layer's output
    activation: str


@dataclass(frozen=True)
class Route:
    sources: tuple[int, ...]  # absolute layer indices, concatenated along channels in this order


@dataclass(frozen=True)
class Upsample:
    stride: int  # nearest-neighbour factor


@dataclass(frozen=True)
class MaxPool:
    size: int
    stride: int
    pad_begin: int  # Darknet pads ``padding`` in total: padding // 2 before, the rest after
    pad_end: int


@dataclass(frozen=True)
class Yolo:
    anchors: tuple[tuple[float, float], ...]  # this layer's masked anchors, (w, h) input pixels
    mask: tuple[int, ...]
    classes: int


Layer = Conv | Shortcut | Route | Upsample | MaxPool | Yolo


@dataclass
class DarknetCfg:
    """A parsed cfg. ``layers[i]`` is the typed form of ``sections[i + 1]``; ``shapes[i]`` is layer
    ``i``'s output ``(channels, height, width)`` at the ``[net]`` input size."""

    source: str
    sections: list[Section]
    layers: list[Layer]
    shapes: list[tuple[int, int, int]]
    width: int
    height: int
    channels: int

    @property
    def num_classes(self) -> int:
        classes = {layer.classes for layer in self.layers if isinstance(layer, Yolo)}
        return classes.pop() if len(classes) == 1 else -1


def cfg_error(source: str, line: int, msg: str) -> UserError:
    return UserError(f"{source}:{line}: {msg}")


def _parse_value(kind: str, raw: str, where: str, source: str, line: int) -> object:
    """Convert one raw value; ``where`` is ``[section] key`` for the message."""
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        if kind in ("ints", "floats"):
            parts = raw.split(",")
            if parts and parts[-1] == "":  # a trailing comma, as Darknet tolerates
                parts.pop()
            values = [_parse_value(kind[:-1], p, where, source, line) for p in parts]
            if not values:
                raise ValueError(raw)
            return tuple(values)
        if kind == "act":
            if raw not in ACTIVATIONS:
                raise ValueError(raw)
            return raw
    except ValueError:
        expect = {
            "int": "an integer", "float": "a number", "ints": "comma-separated integers",
            "floats": "comma-separated numbers", "act": f"one of {', '.join(ACTIVATIONS)}",
        }[kind]  # fmt: skip
        raise cfg_error(source, line, f"{where}={raw!r}: expected {expect}") from None
    raise AssertionError(kind)


def read_sections(text: str, source: str) -> list[Section]:
    """Split cfg text into sections, keeping each key's line number (1-based)."""
    sections: list[Section] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = "".join(raw_line.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if line[-1] != "]" or len(line) < 3:
                raise cfg_error(source, number, f"malformed section header {raw_line.strip()!r}")
            sections.append(Section(line[1:-1], number))
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise cfg_error(source, number, f"expected key=value or [section], got {raw_line.strip()!r}")
        if not sections:
            raise cfg_error(source, number, f"key {key!r} before the first [section]")
        section = sections[-1]
        if key in section.options:
            raise cfg_error(source, number, f"[{section.type}] key {key!r} repeated (first on line "
                        f"{section.lines[key]})")  # fmt: skip
        section.options[key] = value
        section.lines[key] = number
    return sections


def _options(section: Section, source: str, unknown: list[str]) -> dict[str, object]:
    """Typed values of one section's schema keys (defaults filled in), checking the rest."""
    schema = _SCHEMA.get(section.type)
    if schema is None:
        raise cfg_error(source, section.line, f"unknown section [{section.type}]; supported: "
                    f"{', '.join('[' + s + ']' for s in _SCHEMA)}")  # fmt: skip
    out: dict[str, object] = {}
    for key, (kind, default) in schema.items():
        if key in section.options:
            where = f"[{section.type}] {key}"
            out[key] = _parse_value(kind, section.options[key], where, source, section.lines[key])
        elif default is None:
            raise cfg_error(source, section.line, f"[{section.type}] is missing the required key {key!r}")
        else:
            out[key] = default
    neutral = _NEUTRAL.get(section.type, {})
    for key, raw in section.options.items():
        if key in schema:
            continue
        line = section.lines[key]
        if key in neutral:
            value = _parse_value("float", raw, f"[{section.type}] {key}", source, line)
            if value != neutral[key]:
                raise cfg_error(source, line, f"[{section.type}] {key}={raw} is not supported (only "
                            f"{neutral[key]:g})")  # fmt: skip
        elif section.type == "net" and key in _NET_TRAINING:
            continue
        elif section.type in _HARMLESS_UNKNOWN:
            unknown.append(f"{source}:{line} [{section.type}] {key}")
        else:
            raise cfg_error(source, line, f"unknown key {key!r} in [{section.type}]; known: {sorted(schema)}")
    return out


def _absolute(refs: tuple[int, ...], index: int, key: str, section: Section, source: str) -> tuple[int, ...]:
    """Darknet's layer references: negative is relative to this layer, otherwise absolute."""
    out = []
    for ref in refs:
        target = index + ref if ref < 0 else ref
        if not 0 <= target < index:
            raise cfg_error(source, section.lines[key], f"[{section.type}] {key}={ref} refers to layer "
                        f"{target}; layer {index} can only use layers 0..{index - 1}")  # fmt: skip
        out.append(target)
    return tuple(out)


_LIMITS = {"filters": 1 << 16, "size": 64, "stride": 64, "width": 1 << 14, "height": 1 << 14, "channels": 64}


def _positive(values: dict[str, object], keys: tuple[str, ...], section: Section, source: str) -> None:
    """Each of ``keys`` must be at least 1 (and within a sane limit, so a typo cannot ask for
    terabytes)."""
    for key in keys:
        value, limit = int(values[key]), _LIMITS.get(key, 1 << 16)
        if not 1 <= value <= limit:
            line = section.lines.get(key, section.line)
            raise cfg_error(source, line, f"[{section.type}] {key}={value}: expected 1..{limit}")


def _non_negative(values: dict[str, object], key: str, section: Section, source: str) -> None:
    if key in section.options and int(values[key]) < 0:
        raise cfg_error(source, section.lines[key], f"[{section.type}] {key}={values[key]}: expected >= 0")


def _typed_layer(index: int, section: Section, o: dict[str, object], source: str) -> Layer:
    """The typed layer for section ``index`` (0-based, after [net]) from its parsed options."""
    kind = section.type
    if kind == "convolutional":
        _positive(o, ("filters", "size", "stride"), section, source)
        size = int(o["size"])
        _non_negative(o, "padding", section, source)
        padding = size // 2 if o["pad"] else int(o["padding"])
        return Conv(int(o["filters"]), size, int(o["stride"]), padding, bool(o["batch_normalize"]),
                    str(o["activation"]))  # fmt: skip
    if kind == "shortcut":
        return Shortcut(_absolute(o["from"], index, "from", section, source), str(o["activation"]))
    if kind == "route":
        return Route(_absolute(o["layers"], index, "layers", section, source))
    if kind == "upsample":
        _positive(o, ("stride",), section, source)
        return Upsample(int(o["stride"]))
    if kind == "maxpool":
        _positive(o, ("size", "stride"), section, source)
        size, stride = int(o["size"]), int(o["stride"])
        _non_negative(o, "padding", section, source)
        padding = int(o["padding"]) if "padding" in section.options else size - 1  # Darknet's default
        return MaxPool(size, stride, padding // 2, padding - padding // 2)
    # yolo
    values: tuple[float, ...] = o["anchors"]
    if len(values) % 2:
        raise cfg_error(source, section.lines["anchors"], f"[yolo] anchors has {len(values)} numbers; "
                    "expected (w, h) pairs")  # fmt: skip
    pairs = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
    num = int(o["num"])
    if num != -1 and num != len(pairs):
        raise cfg_error(
            source, section.lines["num"], f"[yolo] num={num} but anchors holds {len(pairs)} pairs"
        )
    mask: tuple[int, ...] = o["mask"] or tuple(range(len(pairs)))
    for m in mask:
        if not 0 <= m < len(pairs):
            raise cfg_error(source, section.lines["mask"], f"[yolo] mask index {m} is outside the "
                        f"{len(pairs)} anchors")  # fmt: skip
    _positive(o, ("classes",), section, source)
    return Yolo(tuple(pairs[m] for m in mask), mask, int(o["classes"]))


def _infer_shapes(cfg_source: str, sections: list[Section], layers: list[Layer], chw: tuple[int, int, int]):
    """Each layer's output ``(C, H, W)`` from the input ``chw``; a UserError at the first mismatch."""
    shapes: list[tuple[int, int, int]] = []
    for i, (layer, section) in enumerate(zip(layers, sections, strict=True)):
        c, h, w = shapes[-1] if shapes else chw

        def fail(msg: str, section: Section = section, i: int = i) -> UserError:
            return cfg_error(cfg_source, section.line, f"layer {i} [{section.type}]: {msg}")

        if isinstance(layer, Conv):
            h = (h + 2 * layer.padding - layer.size) // layer.stride + 1
            w = (w + 2 * layer.padding - layer.size) // layer.stride + 1
            c = layer.filters
        elif isinstance(layer, MaxPool):
            pad = layer.pad_begin + layer.pad_end
            h, w = (h + pad - layer.size) // layer.stride + 1, (w + pad - layer.size) // layer.stride + 1
        elif isinstance(layer, Upsample):
            h, w = h * layer.stride, w * layer.stride
        elif isinstance(layer, Route):
            parts = [shapes[j] for j in layer.sources]
            if len({p[1:] for p in parts}) != 1:
                raise fail(
                    f"cannot concatenate layers {list(layer.sources)} of sizes {[p[1:] for p in parts]}"
                )
            c, h, w = sum(p[0] for p in parts), parts[0][1], parts[0][2]
        elif isinstance(layer, Shortcut):
            if i == 0:
                raise fail("a shortcut needs a previous layer")
            for j in layer.sources:
                if shapes[j] != (c, h, w):
                    raise fail(f"adds layer {j} of shape {shapes[j]} to layer {i - 1} of shape {(c, h, w)}")
        elif isinstance(layer, Yolo):
            want = len(layer.mask) * (5 + layer.classes)
            if c != want:
                raise fail(f"expects {len(layer.mask)} * (5 + classes={layer.classes}) = {want} input "
                           f"channels, the layer before gives {c} (set filters={want} there)")  # fmt: skip
        if h < 1 or w < 1:
            raise fail(f"output size {h}x{w} at input {chw[2]}x{chw[1]}: the input is too small")
        shapes.append((c, h, w))
    return shapes


def cfg_from_sections(sections: list[Section], source: str = "<cfg>", warn: bool = True) -> DarknetCfg:
    """Validate ``sections`` (``[net]`` first, then layers) into a ``DarknetCfg``."""
    if not sections or sections[0].type != "net":
        line = sections[0].line if sections else 1
        raise cfg_error(source, line, "a Darknet cfg starts with a [net] section")
    if len(sections) < 2:
        raise cfg_error(source, sections[0].line, "no layers after [net]")
    unknown: list[str] = []
    net = _options(sections[0], source, unknown)
    _positive(net, ("width", "height", "channels"), sections[0], source)
    layers: list[Layer] = []
    for i, section in enumerate(sections[1:]):
        if section.type == "net":
            raise cfg_error(source, section.line, "a second [net] section")
        layers.append(_typed_layer(i, section, _options(section, source, unknown), source))
    if warn and unknown:
        warnings.warn(f"{source}: ignoring keys this project does not use: {'; '.join(unknown)}",
                      UserWarning, stacklevel=3)  # fmt: skip
    width, height, channels = int(net["width"]), int(net["height"]), int(net["channels"])
    shapes = _infer_shapes(source, sections[1:], layers, (channels, height, width))
    return DarknetCfg(source, sections, layers, shapes, width, height, channels)


def parse_cfg_text(text: str, source: str = "<cfg>") -> DarknetCfg:
    """Parse cfg text; ``source`` names it in messages."""
    return cfg_from_sections(read_sections(text, source), source)


def parse_cfg(path: str | Path) -> DarknetCfg:
    """Parse a cfg file (a UserError if it cannot be read or is not a valid cfg)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the cfg ({exc})") from exc
    return parse_cfg_text(text, str(path))


def write_cfg(cfg: DarknetCfg) -> str:
    """The cfg as text: every section and key in order, one blank line between sections."""
    blocks = ["\n".join([f"[{s.type}]"] + [f"{k}={v}" for k, v in s.options.items()]) for s in cfg.sections]
    return "\n\n".join(blocks) + "\n"
