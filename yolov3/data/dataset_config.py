"""One dataset config for every annotation format: ``load_dataset(path) -> DatasetSpec``.

A **data.yaml** (ultralytics keys, plus ``format``)::

    path: ../datasets/coco8     # optional: root the other paths are relative to (default: the
                                # yaml's folder; a relative ``path`` is relative to the yaml's folder)
    format: yolo                # yolo (default) | coco | voc | seed
    train: images/train         # a split's source(s): one entry or a list of entries
    val: images/val
    test: images/test           # optional
    names: [person, bicycle]    # or {0: person, 1: bicycle}; nc optional (checked when given)

Split entries by format: ``yolo``: an image folder (labels found by replacing ``images`` with
``labels``), a ``.txt`` list of image paths, or an image; ``coco``: an ``instances_*.json`` (its image
folder from ``images:`` - one folder or ``{train: dir, val: dir}`` - or an entry
``{annotations: x.json, images: dir}``, else guessed); ``voc``: an ``ImageSets/Main/<split>.txt``
(its VOC root two folders up) or a VOC root; ``seed``: a lines file. ``category_ids`` (COCO ids per
class index) is kept when present so a COCO round trip restores the ids.

A **Darknet .data** (``classes``, ``train``, ``valid``, ``names``; paths relative to the file's
folder, else to the working directory as Darknet reads them) is a YOLO data set with list files.

Class names come from the config, the ``.names`` file or the COCO categories; names that differ
between splits (or from the config's) are an error. Image sizes come from the annotations where the
format has them, else from the image headers (no pixels decoded, nothing cached on disk).
"""

from __future__ import annotations

import os
from pathlib import Path

from yolov3.config import load_yaml
from yolov3.data.formats import FORMATS, infer_names, read, read_split
from yolov3.data.formats.common import (
    SPLITS,
    DatasetSpec,
    LabelError,
    LoadReport,
    check_names,
    read_names_file,
    resolve_listed,
)
from yolov3.data.index import SampleChain
from yolov3.data.shard_read import load_shards_spec
from yolov3.data.shards import is_shards_config

__all__ = ["DatasetSpec", "LoadReport", "load_dataset", "parse_names"]


def parse_names(value: object, where: str, nc: object = None) -> list[str]:
    """Class names from a YAML ``names`` value: a list, or a ``{index: name}`` mapping over 0..n-1."""
    if isinstance(value, dict):
        try:
            index = {int(k): v for k, v in value.items()}
        except (TypeError, ValueError):
            raise LabelError(
                where, f"names: keys must be class indices, got {list(value)}", "names"
            ) from None
        if sorted(index) != list(range(len(index))):
            raise LabelError(
                where, f"names: indices must be 0..{len(index) - 1}, got {sorted(index)}", "names"
            )
        value = [index[i] for i in range(len(index))]
    if not isinstance(value, list):
        raise LabelError(where, f"names: expected a list or {{index: name}}, got {value!r}", "names")
    names = check_names(value, f"{where}: names")
    if nc is not None and nc != len(names):
        raise LabelError(where, f"nc: {nc} but {len(names)} names", "names")
    return names


def _entries(value: object) -> list:
    return value if isinstance(value, list) else [value]


def _load_yaml(path: Path, report: LoadReport, check_files: bool) -> DatasetSpec:
    cfg = load_yaml(path)
    where = str(path)
    # `path:` is relative to the config file's folder (ultralytics); without it, that folder is the root.
    root = path.parent / cfg["path"] if cfg.get("path") else path.parent
    fmt = str(cfg.get("format", "yolo")).lower()
    if fmt not in FORMATS:
        raise LabelError(where, f"format: {fmt!r} is not one of {list(FORMATS)}", "names")
    names = parse_names(cfg["names"], where, cfg.get("nc")) if "names" in cfg else None
    if "val" not in cfg and "valid" in cfg:
        cfg["val"] = cfg["valid"]
    if not cfg.get("train") and not cfg.get("val"):
        raise LabelError(where, "needs at least one of 'train' / 'val' (a split's images or annotations)")
    images = cfg.get("images")
    spec = DatasetSpec(names=[], source=str(path), format=fmt, report=report)
    given = names is not None
    for split in SPLITS:
        if not cfg.get(split):
            continue
        img = images.get(split) if isinstance(images, dict) else images
        samples, got, ids = read_split(fmt, _entries(cfg[split]), root, names, report, img, check_files)
        if names is not None and got != names:
            raise LabelError(where, f"class names of '{split}' {got} differ from {names}", "names")
        names = got
        if ids is not None:
            if spec.category_ids is not None and ids != spec.category_ids:
                raise LabelError(
                    where, f"'{split}' category ids {ids} differ from {spec.category_ids}", "names"
                )
            spec.category_ids = ids
        setattr(spec, split, samples)
    if cfg.get("category_ids") is not None:
        spec.category_ids = [int(i) for i in cfg["category_ids"]]
        if len(spec.category_ids) != len(names or []):
            raise LabelError(
                where, f"{len(spec.category_ids)} category_ids for {len(names or [])} names", "names"
            )
    spec.names = list(names) if names is not None else []
    if not given and fmt in ("yolo", "seed"):
        spec.names = infer_names(SampleChain([spec.train, spec.val, spec.test]), report, where)
    return spec


def _read_darknet_data(path: Path) -> dict[str, str]:
    """``key = value`` lines of a Darknet ``.data`` file (``#`` comments allowed)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise LabelError(str(path), f"cannot read ({exc.strerror})") from exc
    out = {}
    for ln, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise LabelError(f"{path}:{ln}", f"{line!r}: expected key = value")
        out[key.strip()] = value.strip()
    return out


def _load_darknet(path: Path, report: LoadReport, check_files: bool) -> DatasetSpec:
    cfg = _read_darknet_data(path)
    if "names" not in cfg:
        raise LabelError(str(path), "needs 'names = <file with one class name a line>'", "names")
    names = read_names_file(resolve_listed(cfg["names"], path.parent))
    if "classes" in cfg and cfg["classes"] != str(len(names)):
        raise LabelError(
            str(path), f"classes = {cfg['classes']} but {cfg['names']} has {len(names)} names", "names"
        )
    spec = DatasetSpec(names=names, source=str(path), format="yolo", report=report)
    for split, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        if cfg.get(key):
            entry = resolve_listed(cfg[key], path.parent)
            samples, _, _ = read_split("yolo", [entry], path.parent, names, report, None, check_files)
            setattr(spec, split, samples)
    return spec


def load_dataset(
    path: str | os.PathLike,
    strict: bool = False,
    report: LoadReport | None = None,
    check_files: bool = True,
) -> DatasetSpec:
    """Read the data set a ``data.yaml`` or Darknet ``.data`` describes (see the module docstring);
    a COCO ``.json`` is read directly (its split from its name, images found beside it).

    Boxes are clipped to their image and empty ones dropped (counted in ``spec.report``); a label
    that does not parse or a class id out of range raises ``LabelError`` (a ``UserError`` naming the
    file, line and value) unless ``report.collect``; missing / unreadable images are skipped and
    reported (``strict``: an error). ``check_files=False`` skips the per-image existence check for
    formats that carry image sizes (COCO, VOC) on very large sets.
    """
    path = Path(path)
    report = report if report is not None else LoadReport(strict=strict)
    if path.is_dir():
        raise LabelError(
            str(path),
            "is a folder: give its data.yaml or .data (`yolov3 data convert --from "
            "FORMAT` writes one for a folder in any format)",
        )
    if not path.is_file():
        raise LabelError(str(path), "dataset config not found (expected a data.yaml or a Darknet .data)")
    if is_shards_config(path):  # tar shards (yolov3 data shard): a split is read out of them when used
        return load_shards_spec(path, report)
    if path.suffix.lower() == ".json":
        return read("coco", path, report=report)
    if path.suffix.lower() == ".data":
        return _load_darknet(path, report, check_files)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _load_yaml(path, report, check_files)
    raise LabelError(str(path), "expected a data.yaml or a Darknet .data file")
