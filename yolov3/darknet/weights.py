"""Darknet ``.weights`` files: read into any model of this project, write back byte for byte.

Layout (little-endian): int32 major, minor, revision; ``seen`` (images trained on) as uint64 when
``major * 10 + minor >= 2`` (and both < 1000, Darknet's and OpenCV's guard), else int32. Then, per
convolution in cfg order: with BatchNorm, beta (bias), gamma (scale), running mean, running variance;
without, the conv bias; then the kernel ``(out, in, kh, kw)``; all float32.

A model is read by walking ``modules()``: each ``nn.Conv2d`` starts a unit and a ``BatchNorm2d``
right after it joins that unit. The native ``YOLOv3`` and ``DarknetModel`` declare their modules in
Darknet's order, so the walk is the file's order. Loading checks every size first and copies only
when the whole file fits: a failed load leaves the model untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yolov3.errors import UserError
from yolov3.files import atomic_writer

MODES = ("exact", "prefix", "transfer")


@dataclass
class WeightsHeader:
    major: int = 0
    minor: int = 2
    revision: int = 0
    seen: int = 0

    @property
    def seen_is_64bit(self) -> bool:
        return self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000

    def to_bytes(self) -> bytes:
        seen = np.array([self.seen], "<u8" if self.seen_is_64bit else "<i4")
        return np.array([self.major, self.minor, self.revision], "<i4").tobytes() + seen.tobytes()


@dataclass
class Unit:
    """One Darknet convolution: the conv, its BatchNorm (or None) and a readable name."""

    name: str
    conv: nn.Conv2d
    bn: nn.BatchNorm2d | None = None

    def sizes(self, out: int | None = None) -> list[int]:
        """Float counts in file order: (beta, gamma, mean, var | bias), kernel; ``out`` overrides
        the number of filters (for a file made for another class count)."""
        out = self.conv.out_channels if out is None else out
        kernel = out * self.conv.weight[0].numel()
        return [out] * (4 if self.bn is not None else 1) + [kernel]

    def describe(self, out: int | None = None) -> str:
        c = self.conv
        out = c.out_channels if out is None else out
        shape = f"{out}x{c.in_channels}x{c.kernel_size[0]}x{c.kernel_size[1]}"
        return f"{self.name} ({shape}{', BN' if self.bn is not None else ', bias'})"


@dataclass
class LoadReport:
    header: WeightsHeader
    loaded: int  # convolutions loaded
    total: int  # convolutions in the model
    skipped: list[str] = field(default_factory=list)  # names of convolutions left as they were


def conv_units(model: nn.Module) -> list[Unit]:
    """The model's convolutions in Darknet file order, each with the BatchNorm that follows it."""
    units: list[Unit] = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            units.append(Unit(name, m))
        elif isinstance(m, nn.BatchNorm2d):
            if not units or units[-1].bn is not None or units[-1].conv.out_channels != m.num_features:
                raise ValueError(
                    f"BatchNorm {name} does not follow a convolution of {m.num_features} filters"
                )
            units[-1].bn = m
    return units


def _output_units(model: nn.Module, units: list[Unit]) -> set[int]:
    """Indices of the output convolutions (bias, no BN, ``A * (5 + C)`` filters): the only ones whose
    shape depends on the class count."""
    c = getattr(model, "num_classes", None)
    if c is None:
        return set()
    outs = {len(a) * (5 + c) for a in getattr(model, "anchors", [])}
    return {
        i
        for i, u in enumerate(units)
        if u.bn is None and u.conv.bias is not None and u.conv.out_channels in outs
    }


def read_weights_file(path: str | Path) -> tuple[WeightsHeader, np.ndarray]:
    """The header and every float after it (a float32 array)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the weights ({exc.strerror})") from exc
    if len(raw) < 16:
        raise UserError(f"{path}: {len(raw)} bytes is too short for a Darknet weights header")
    major, minor, revision = (int(v) for v in np.frombuffer(raw, "<i4", 3))
    header = WeightsHeader(major, minor, revision)
    start = 20 if header.seen_is_64bit else 16
    if len(raw) < start:
        raise UserError(f"{path}: {len(raw)} bytes is too short for a version {major}.{minor} header")
    header.seen = int(np.frombuffer(raw, "<u8" if start == 20 else "<i4", 1, 12)[0])
    body = len(raw) - start
    if body % 4:
        raise UserError(
            f"{path}: {body} bytes after the {start}-byte header is not a whole number of float32"
        )
    return header, np.frombuffer(raw, "<f4", body // 4, start)


def _file_classes(model: nn.Module, units: list[Unit], outputs: set[int], n: int) -> int | None:
    """The class count for which this network holds exactly ``n`` floats, or None."""
    if not outputs:
        return None
    c = model.num_classes
    fixed = sum(sum(u.sizes()) for i, u in enumerate(units) if i not in outputs)
    # each output conv has A * (5 + C') filters of (1 bias + in * kh * kw) floats
    per_class = sum(
        units[i].conv.out_channels // (5 + c) * (1 + units[i].conv.weight[0].numel()) for i in outputs
    )
    rest = n - fixed
    if rest <= 0 or rest % per_class or rest // per_class - 5 < 1:
        return None
    return rest // per_class - 5


def _mismatch(model: nn.Module, units: list[Unit], outputs: set[int], n: int, mode: str, path: Path) -> str:
    """Why ``n`` floats do not fit: sizes, the first convolution that does not fit, and a hint."""
    need = [sum(u.sizes()) for u in units]
    total = sum(need)
    msg = f"{path}: {n} floats after the header; this model ({len(units)} convolutions) needs {total}"
    c_file = _file_classes(model, units, outputs, n)
    if c_file is not None and c_file != model.num_classes:
        k = min(outputs)
        in_file = units[k].describe(units[k].conv.out_channels // (5 + model.num_classes) * (5 + c_file))
        return (f"{msg}; the first convolution that differs is #{k} {units[k].describe()}, which the file "
                f"holds as {in_file}. "
                f"The file fits this network with {c_file} classes, the model has {model.num_classes}: "
                "load it with mode='transfer' (command line: --transfer) to take every layer except the "
                "output convolutions")  # fmt: skip
    offset = 0
    for k, size in enumerate(need):
        if offset + size > n:
            msg += (f"; convolution #{k} {units[k].describe()} needs {size} floats at float {offset}, "
                    f"only {n - offset} remain")  # fmt: skip
            break
        offset += size
    else:
        msg += f"; {n - total} floats are left after the last convolution {units[-1].describe()}"
    if mode == "exact" and n < total and n in np.cumsum(need):
        msg += (". It ends exactly after a convolution, like a backbone file (darknet53.conv.74): load "
                "it with mode='prefix' (command line: --backbone)")  # fmt: skip
    return msg


def _plan(
    model: nn.Module, units: list[Unit], n: int, mode: str, path: Path
) -> tuple[list[int | None], set[int]]:
    """Per unit, the filter count the file holds for it (None: the file ends before it), and the
    units read but not copied (the output convolutions in ``transfer`` mode)."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {MODES}")
    outputs = _output_units(model, units)
    own = [u.conv.out_channels for u in units]
    if mode == "transfer":
        c_file = _file_classes(model, units, outputs, n)
        if c_file is None:
            raise UserError(_mismatch(model, units, outputs, n, mode, path) + " (transfer needs a full "
                            "network file for some class count)")  # fmt: skip
        c = model.num_classes
        return [f // (5 + c) * (5 + c_file) if i in outputs else f for i, f in enumerate(own)], outputs
    need = np.cumsum([sum(u.sizes()) for u in units]).tolist()
    if n == need[-1]:
        return list(own), set()
    if mode == "prefix" and n in need:
        k = need.index(n) + 1
        return own[:k] + [None] * (len(units) - k), set()
    raise UserError(_mismatch(model, units, outputs, n, mode, path))


def load_darknet_weights(model: nn.Module, path: str | Path, mode: str = "exact") -> LoadReport:
    """Load a ``.weights`` file into ``model`` (in place); returns what was loaded.

    ``mode``: ``exact`` -- the file must hold exactly this network; ``prefix`` -- the file may stop
    after any convolution (a backbone such as ``darknet53.conv.74``, the first 52); ``transfer`` --
    the file holds this network for another class count (COCO's 80): everything is loaded except
    the output convolutions before each [yolo], which keep their values. A file that does not fit
    raises a UserError naming the expected and found sizes and the first convolution that does not
    fit; the model is changed only once the whole file has been checked.
    """
    path = Path(path)
    header, data = read_weights_file(path)
    units = conv_units(model)
    if not units:
        raise UserError(f"{path}: the model has no convolutions to load")
    filters, skip = _plan(model, units, data.size, mode, path)
    staged: list[tuple[torch.Tensor, np.ndarray]] = []
    offset = 0
    for i, (unit, out) in enumerate(zip(units, filters)):
        if out is None:
            break
        pieces = []
        for size in unit.sizes(out):
            pieces.append(data[offset : offset + size])
            offset += size
        if i in skip:
            continue
        bn = unit.bn
        targets = (
            [bn.bias, bn.weight, bn.running_mean, bn.running_var] if bn is not None else [unit.conv.bias]
        )
        staged += list(zip(targets + [unit.conv.weight], pieces))
    with torch.no_grad():
        for tensor, values in staged:
            tensor.copy_(torch.from_numpy(values.copy()).view_as(tensor))
    loaded = sum(1 for f in filters if f is not None) - len(skip)
    return LoadReport(header, loaded, len(units), [units[i].name for i in sorted(skip)])


def save_darknet_weights(model: nn.Module, path: str | Path, header: WeightsHeader | None = None) -> Path:
    """Write ``model``'s convolutions as a ``.weights`` file (header: version 0.2, seen 0 unless
    given). Written atomically."""
    header = header or WeightsHeader()
    path = Path(path)
    with atomic_writer(path) as f:
        f.write(header.to_bytes())
        for unit in conv_units(model):
            bn = unit.bn
            if bn is not None:
                parts = [bn.bias, bn.weight, bn.running_mean, bn.running_var]
            elif unit.conv.bias is not None:
                parts = [unit.conv.bias]
            else:
                raise ValueError(f"{unit.name} has neither BatchNorm nor bias: Darknet cannot store it")
            for t in parts + [unit.conv.weight]:
                f.write(t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes())
    return path
