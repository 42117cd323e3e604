"""Annotation formats, read into and written from ``Sample`` (``yolov3.data.types``).

``FORMATS``: ``seed`` (the seed's annotation lines), ``yolo`` (YOLO / Darknet txt labels), ``coco``
(COCO JSON), ``voc`` (Pascal VOC XML). ``read(format, src)`` reads a format's own layout (a lines
file, a YOLO folder, a COCO json or folder, a VOC root); ``write(format, samples, names, out)``
writes that layout plus an ``out/data.yaml`` describing it, which ``yolov3.data.dataset_config``
reads back. ``read_split`` reads one split's sources and is what the dataset config calls.
Coordinate conventions and round-trip tolerances are in each format's module docstring.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from yolov3.data.formats import coco, seed_lines, voc, yolo
from yolov3.data.formats.common import (
    SPLITS,
    DatasetSpec,
    LabelError,
    LoadReport,
    Problem,
    read_names_file,
    split_of,
)
from yolov3.data.formats.yolo_index import read_source
from yolov3.data.index import SampleChain, box_tables
from yolov3.data.types import Sample

FORMATS = ("seed", "yolo", "coco", "voc")

# One source of a split: a path, or for COCO {"annotations": json, "images": folder}.
Entry = str | os.PathLike | dict


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise LabelError("format", f"unknown annotation format {fmt!r}; expected one of {list(FORMATS)}")
    return fmt


def _path(entry: str | os.PathLike, base: Path) -> Path:
    p = Path(entry)
    return p if p.is_absolute() else base / p


def guess_coco_images(json_path: Path) -> Path:
    """The folder COCO ``file_name`` values are relative to, for a json without one named.

    Tries, for ``root/annotations/instances_val2017.json``: ``root/val2017``, ``root/images/val2017``,
    ``root/images``, ``root/annotations/images``, ``root``, ``root/annotations``; the first that exists.
    """
    stem = json_path.stem.removeprefix("instances_")
    ann_dir = json_path.parent
    root = ann_dir.parent if ann_dir.name == "annotations" else ann_dir
    for cand in (root / stem, root / "images" / stem, root / "images", ann_dir / "images", root, ann_dir):
        if cand.is_dir():
            return cand
    return root


def _read_coco_entry(entry: Entry, base: Path, images: str | os.PathLike | None, names: list[str] | None,
                     category_ids: list[int] | None, report: LoadReport,
                     check_files: bool) -> tuple[list[Sample], list[str], list[int]]:  # fmt: skip
    """One COCO source of a split: ``(samples, names, category ids)``, which must equal those of the
    split's other sources (``names`` / ``category_ids``, None for the first)."""
    ann = entry.get("annotations") if isinstance(entry, dict) else entry
    if ann is None:
        raise LabelError(str(entry), "a COCO source needs 'annotations' (a json file)")
    json_path = _path(ann, base)
    img = entry.get("images", images) if isinstance(entry, dict) else images
    img_dir = _path(img, base) if img is not None else guess_coco_images(json_path)
    got, got_names, ids = coco.read_coco(json_path, img_dir, report, check_files)
    if names is not None and got_names != names:
        raise LabelError(str(json_path), f"class names {got_names} differ from {names}", "names")
    if category_ids is not None and ids != category_ids:
        raise LabelError(str(json_path), f"category ids {ids} differ from {category_ids}", "names")
    return got, got_names, ids


def read_split(
    fmt: str,
    entries: list[Entry],
    base: Path,
    names: list[str] | None,
    report: LoadReport,
    images: str | os.PathLike | None = None,
    check_files: bool = True,
) -> tuple[Sequence[Sample], list[str] | None, list[int] | None]:
    """``(samples, names, category_ids)`` of one split's sources, paths relative to ``base``.

    ``names`` None: YOLO / seed classes are read unchecked (the caller infers names afterwards); VOC
    names are inferred from the objects; COCO names always come from its categories (and must equal
    ``names`` when given: an error naming both otherwise). ``images``: COCO image folder. A YOLO
    folder or list file of many images is read through its index (``yolov3.data.formats.yolo_index``): the
    samples are then a ``Sequence`` that makes each ``Sample`` when asked, not a list.
    """
    _check_format(fmt)
    samples: list[Sample] = []
    parts: list[Sequence[Sample]] = []  # YOLO sources, each a list or an index's PackedSamples
    category_ids = None
    nc = len(names) if names is not None else None
    for entry in entries:
        if fmt == "coco":
            got, names, category_ids = _read_coco_entry(entry, base, images, names, category_ids, report,
                                                         check_files)  # fmt: skip
            samples += got
        elif isinstance(entry, dict):
            raise LabelError(str(entry), f"a {fmt} source is a path, not a mapping")
        elif fmt == "yolo":
            parts.append(read_source(entry, base, nc, report))
        elif fmt == "seed":
            samples += seed_lines.read_seed_lines(_path(entry, base), nc, report, read_sizes=True)
        else:  # voc: an ImageSets/Main/<split>.txt file, or a VOC root (every annotation)
            path = _path(entry, base)
            if path.is_dir():
                records = voc.parse_voc_split(path, None, report)
            else:
                records = voc.parse_voc_split(path.parents[2], voc.read_ids(path), report)
            if names is None:
                names = voc.names_found(records)
            samples += voc.to_samples(records, names, report, check_files)
    if any(not isinstance(p, list) for p in parts):
        return SampleChain(parts) if len(parts) > 1 else parts[0], names, category_ids
    return samples + [s for p in parts for s in p], names, category_ids


def infer_names(samples: Sequence[Sample], report: LoadReport, where: str) -> list[str]:
    """``class0 .. classK`` for labels read without names (K = the largest class id), with a warning."""
    top = -1
    for part in box_tables(samples):  # an index part by its arrays, without a Sample per image
        if isinstance(part, tuple):
            top = max(top, int(part[1].max()) if len(part[1]) else -1)
        else:
            top = max([top, *(int(s.classes.max()) for s in part if len(s.classes))])
    report.warn(where, f"no class names given: using class0..class{top} (pass names)", "names")
    return [f"class{i}" for i in range(top + 1)]


def native_entries(fmt: str, src: Path) -> dict[str, list[Entry]]:
    """The splits of a format's own layout at ``src`` (see ``read``)."""
    if fmt == "yolo" and src.is_dir():
        img = src / "images"
        if img.is_dir():
            subs = [d for d in sorted(img.iterdir()) if d.is_dir()]
            if subs:
                return {split: [str(d) for d in subs if split_of(d.name) == split] for split in SPLITS}
            return {"train": [str(img)]}
        return {"train": [str(src)]}
    if fmt == "coco" and src.is_dir():
        jsons = sorted((src / "annotations").glob("*.json")) or sorted(src.glob("*.json"))
        jsons = [j for j in jsons if j.stem.startswith("instances_")] or jsons
        return {split: [str(j) for j in jsons if split_of(j.name) == split] for split in SPLITS}
    if fmt == "seed" and src.is_dir():
        return {split: [str(src / f"{split}.txt")] for split in SPLITS if (src / f"{split}.txt").is_file()}
    if fmt == "voc" and src.is_dir():
        sets = src / "ImageSets" / "Main"
        found = {split: [str(sets / f"{split}.txt")] for split in SPLITS if (sets / f"{split}.txt").is_file()}
        if "train" not in found and (sets / "trainval.txt").is_file():
            found["train"] = [str(sets / "trainval.txt")]
        return found or {"train": [str(src)]}
    if not src.exists():
        raise LabelError(str(src), "no such file or folder")
    return {split_of(src.name): [str(src)]}


def read(
    fmt: str,
    src: str | os.PathLike,
    names: list[str] | None = None,
    strict: bool = False,
    report: LoadReport | None = None,
) -> DatasetSpec:
    """Read a format's own layout at ``src`` into a ``DatasetSpec``.

    ``seed``: a lines file (its split guessed from the name) or a folder with train/val/test.txt.
    ``yolo``: a folder with ``images/<split>/`` (+ ``labels/<split>/``), or ``images/``, or images
    with labels beside them; names from ``names``, else ``classes.txt`` / a single ``*.names`` there.
    ``coco``: an instances json (images found by ``guess_coco_images``) or a folder with
    ``annotations/*.json``. ``voc``: a VOC root (``ImageSets/Main/{train,val,test,trainval}.txt``).
    A data.yaml / .data is read by ``yolov3.data.dataset_config.load_dataset`` instead.
    """
    _check_format(fmt)
    src = Path(src).absolute()  # the layout's entries name paths under src, read relative to src
    report = report or LoadReport(strict=strict)
    if names is None and fmt in ("yolo", "seed") and src.is_dir():
        files = [src / "classes.txt", *sorted(src.glob("*.names"))]
        names = next((read_names_file(f) for f in files if f.is_file()), None)
    spec = DatasetSpec(names=list(names or []), source=str(src), format=fmt, report=report)
    given = names is not None
    for split, entries in native_entries(fmt, src).items():
        if not entries:
            continue
        samples, got, ids = read_split(fmt, entries, src if src.is_dir() else src.parent, names, report)
        if names is not None and got != names:
            raise LabelError(str(src), f"class names of {split} {got} differ from {names}", "names")
        names, spec.category_ids = got, ids or spec.category_ids
        setattr(spec, split, samples)
    spec.names = list(names) if names is not None else []
    if not given and fmt in ("yolo", "seed"):
        spec.names = infer_names(SampleChain([spec.train, spec.val, spec.test]), report, str(src))
    return spec


def write(
    fmt: str,
    samples: Mapping[str, list[Sample]] | list[Sample],
    names: list[str],
    out: str | os.PathLike,
    category_ids: list[int] | None = None,
    link: str = "hard",
) -> Path:
    """Write ``samples`` (by split, or one list = train) in format ``fmt`` under folder ``out``.

    Images are hard-linked (copied across file systems; ``link`` = "copy" / "symlink") where the
    format needs them in its own folders (yolo, coco, voc); seed lines point at them where they are.
    Writes ``out/data.yaml`` (names, the splits, and ``category_ids`` when known) and returns its path.
    """
    _check_format(fmt)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = dict(samples) if isinstance(samples, Mapping) else {"train": list(samples)}
    doc: dict = {} if fmt == "yolo" else {"format": fmt}
    taken: set[str] = set()  # VOC ids, shared by all splits
    coco_images: dict[str, str] = {}
    for split, items in splits.items():
        if fmt == "yolo":
            doc[split] = yolo.write_yolo_split(items, out, split, link)
        elif fmt == "seed":
            seed_lines.write_seed_lines(items, out / f"{split}.txt")
            doc[split] = f"{split}.txt"
        elif fmt == "coco":
            doc[split] = f"annotations/instances_{split}.json"
            coco_images[split] = f"images/{split}"
            coco.write_coco(items, names, out / doc[split], out / "images" / split, category_ids, link)
        else:
            doc[split] = voc.write_voc_split(items, names, out, split, link, taken)
    if coco_images:
        doc["images"] = coco_images
    doc["nc"] = len(names)
    doc["names"] = list(names)
    if category_ids is not None:
        doc["category_ids"] = [int(i) for i in category_ids]
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


__all__ = [
    "FORMATS", "DatasetSpec", "LabelError", "LoadReport", "Problem",
    "infer_names", "read", "read_split", "write",
]  # fmt: skip
