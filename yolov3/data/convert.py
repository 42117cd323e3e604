"""``yolov3 data convert``: any annotation format to any other (``yolov3.data.formats.FORMATS``).

The source is a format's own layout (``formats.read``) or a data.yaml / Darknet .data
(``load_dataset``); the output is the target format's layout plus ``out/data.yaml``. Boxes pass
through ``Sample`` unchanged, so a round trip X -> Y -> X restores them exactly for the pixel formats
(seed, COCO, VOC; 3 decimals) and within 1e-3 px through YOLO's normalised coordinates. What a target
format cannot hold is said in ``ConvertResult.notes``: VOC ``difficult`` / COCO ``iscrowd`` flags in
seed or YOLO output (the boxes are kept as ordinary boxes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from yolov3.data.dataset_config import load_dataset
from yolov3.data.formats import FORMATS, DatasetSpec, LoadReport, read, write
from yolov3.data.formats.common import LabelError

CONFIG_SUFFIXES = (".yaml", ".yml", ".data")


@dataclass
class ConvertResult:
    data_yaml: Path  # the written config describing the output
    spec: DatasetSpec  # what was read
    notes: list[str] = field(default_factory=list)


def open_source(
    src: str | os.PathLike, fmt: str | None = None, names: list[str] | None = None, strict: bool = False
) -> DatasetSpec:
    """Read ``src``: a data.yaml / .data (any format), else format ``fmt``'s own layout."""
    src = Path(src)
    if src.suffix.lower() in CONFIG_SUFFIXES:
        spec = load_dataset(src, strict=strict)
        if fmt is not None and spec.format != fmt:
            raise LabelError(str(src), f"describes a {spec.format} data set, not {fmt}")
        if names is not None and spec.names != names:
            raise LabelError(str(src), f"class names {spec.names} differ from the given {names}", "names")
        return spec
    if fmt is None:
        raise LabelError(str(src), f"not a data.yaml / .data: say its format (one of {list(FORMATS)})")
    return read(fmt, src, names=names, report=LoadReport(strict=strict))


def convert_dataset(
    src: str | os.PathLike,
    to: str,
    out: str | os.PathLike,
    fmt: str | None = None,
    names: list[str] | None = None,
    link: str = "hard",
    strict: bool = False,
) -> ConvertResult:
    """Read ``src`` (format ``fmt``, or a config) and write it as format ``to`` under ``out``."""
    if to not in FORMATS:
        raise LabelError("--to", f"unknown format {to!r}; expected one of {list(FORMATS)}")
    spec = open_source(src, fmt, names, strict)
    if not spec.splits:
        raise LabelError(str(src), "no images found to convert")
    notes = []
    if to in ("seed", "yolo"):
        for flag in ("difficult", "iscrowd"):
            n = sum(int(getattr(s, flag).sum()) for split in spec.splits.values() for s in split)
            if n:
                notes.append(f"{n} {flag} boxes written as ordinary boxes ({to} has no {flag} flag)")
    path = write(to, spec.splits, spec.names, out, category_ids=spec.category_ids, link=link)
    return ConvertResult(path, spec, notes)
