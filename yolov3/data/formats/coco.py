"""COCO detection JSON (``instances_*.json``): images, annotations, categories.

Category ids (sparse: 1..90 in COCO) map to contiguous class indices in **sorted id order**;
``category_ids[i]`` is the id of index ``i``, kept so that writing restores the original ids and
names. ``bbox`` ``[x, y, w, h]`` (absolute pixels, top-left corner) becomes ``(x, y, x + w, y + h)``.
``iscrowd`` is kept per box (``Sample.iscrowd``): training leaves crowd boxes out, evaluation
honours them. Images without annotations are negative samples. ``file_name`` is relative to the
split's image folder. Writing rounds coordinates to 3 decimals (COCO's own have 2) and sets
``area`` to the box area (the reader ignores ``area`` and ``segmentation``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from yolov3.boxes import box_convert
from yolov3.data.formats.common import (
    LabelError,
    LoadReport,
    check_names,
    fmt_num,
    make_sample,
    place_image,
    sanitize,
    unique_names,
)
from yolov3.data.images import ImageError, image_size
from yolov3.data.types import Sample


def load_json(path: Path) -> dict:
    """The JSON object at ``path`` with ``images`` / ``annotations`` / ``categories``, or ``LabelError``."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise LabelError(str(path), f"cannot read COCO annotations ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LabelError(str(path), f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise LabelError(str(path), "expected a COCO object with an 'images' list")
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise LabelError(str(path), f"'{key}' must be a list")
    return data


def categories_of(data: dict, where: str) -> tuple[list[str], list[int]]:
    """``(names, ids)`` sorted by category id."""
    cats = []
    for k, cat in enumerate(data.get("categories", [])):
        try:
            cats.append((int(cat["id"]), str(cat["name"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelError(
                f"{where}: categories[{k}]", f"expected {{'id': int, 'name': str}}, got {cat!r}", "names"
            ) from exc
    cats.sort()
    ids = [i for i, _ in cats]
    if len(set(ids)) != len(ids):
        raise LabelError(where, f"category ids repeat: {ids}", "names")
    return check_names([n for _, n in cats], where), ids


def _read_annotation(
    ann: object, where: str, index_of: dict[int, int]
) -> tuple[object, list[float], int, bool]:
    if not isinstance(ann, dict):
        raise LabelError(where, f"expected an object, got {ann!r}")
    try:
        image_id, cat, bbox = ann["image_id"], ann["category_id"], ann["bbox"]
    except KeyError as exc:
        raise LabelError(where, f"missing key {exc.args[0]!r}") from None
    if not isinstance(image_id, int | str) or isinstance(image_id, bool):
        raise LabelError(where, f"image_id {image_id!r} is not an id")
    if not isinstance(cat, int) or isinstance(cat, bool) or cat not in index_of:
        raise LabelError(where, f"category_id {cat!r} is not in 'categories' {sorted(index_of)}", "class")
    if not (isinstance(bbox, list) and len(bbox) == 4):
        raise LabelError(where, f"bbox {bbox!r}: expected [x, y, width, height]")
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise LabelError(where, f"bbox {bbox!r} is not 4 numbers") from None
    if not all(np.isfinite([x, y, w, h])):
        raise LabelError(where, f"bbox {bbox!r} is not 4 finite numbers")
    box = box_convert(np.array([x, y, w, h]), "xywh", "xyxy").tolist()
    return image_id, box, index_of[cat], bool(ann.get("iscrowd", 0))


def _read_images(data: dict, path: Path, report: LoadReport) -> dict[object, dict]:
    """``images`` by id: ``{file, w, h, anns: []}`` (width / height 0 when absent); a malformed entry
    is reported and left out."""
    images: dict[object, dict] = {}
    for k, im in enumerate(data["images"]):
        try:
            images[im["id"]] = {
                "file": str(im["file_name"]),
                "w": int(im.get("width") or 0),
                "h": int(im.get("height") or 0),
                "anns": [],
            }
        except (KeyError, TypeError, ValueError):
            report.error(f"{path}: images[{k}]", f"expected id, file_name, width, height; got {im!r}")
    return images


def read_coco(
    path: str | os.PathLike, images_dir: str | os.PathLike, report: LoadReport, check_files: bool = True
) -> tuple[list[Sample], list[str], list[int]]:
    """``(samples, names, category_ids)`` of one COCO file; images under ``images_dir``.

    ``check_files``: stat each image and skip (report) the missing ones.
    """
    path, images_dir = Path(path), Path(images_dir)
    data = load_json(path)
    names, ids = categories_of(data, str(path))
    index_of = {cid: i for i, cid in enumerate(ids)}
    images = _read_images(data, path, report)
    for k, ann in enumerate(data.get("annotations", [])):
        aid = ann.get("id", "?") if isinstance(ann, dict) else "?"
        where = f"{path}: annotations[{k}] (id {aid})"
        try:
            image_id, box, cls, crowd = _read_annotation(ann, where, index_of)
            if image_id not in images:
                raise LabelError(where, f"image_id {image_id!r} is not in 'images'")
        except LabelError as exc:
            report.record(exc)
            continue
        images[image_id]["anns"].append((box, cls, crowd, where))
    samples = []
    for image_id, im in images.items():
        file = images_dir / im["file"]
        if check_files and not file.is_file():
            report.bad_image(
                file, ImageError(file, "image file not found").reason, f"{path}: image id {image_id}"
            )
            continue
        anns = im["anns"]
        sample = make_sample(
            file,
            [a[0] for a in anns],
            [a[1] for a in anns],
            im["w"],
            im["h"],
            iscrowd=[a[2] for a in anns],
            image_id=image_id,
        )
        samples.append(sanitize(sample, report, lambda i, anns=anns: anns[i][3]))
    return samples, names, ids


def write_coco(
    samples: list[Sample],
    names: list[str],
    json_path: Path,
    images_dir: Path,
    category_ids: list[int] | None = None,
    link: str = "hard",
) -> None:
    """Write one split: images placed in ``images_dir`` (unique names), annotations at ``json_path``.

    Category ids are ``category_ids`` (restoring a COCO source) or ``1..len(names)``. Image ids are
    the samples' own integer ids when unique, else a numeric file stem, else ``1..N``.
    """
    ids = list(category_ids) if category_ids is not None else list(range(1, len(names) + 1))
    if len(ids) != len(names):
        raise LabelError(str(json_path), f"{len(ids)} category ids for {len(names)} names")
    files = unique_names([s.image for s in samples])
    image_ids = _image_ids(samples)
    out_images, out_anns = [], []
    for sample, file, image_id in zip(samples, files, image_ids):
        if not (sample.width and sample.height):
            sample.width, sample.height = image_size(sample.image)
        place_image(sample.image, images_dir / file, link)
        out_images.append({"id": image_id, "file_name": file, "width": sample.width, "height": sample.height})
        out_anns += _annotations(sample, image_id, ids, first_id=len(out_anns) + 1)
    categories = [{"id": i, "name": n, "supercategory": ""} for i, n in zip(ids, names)]
    json_path.parent.mkdir(parents=True, exist_ok=True)
    images_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "info": {"description": "written by yolov3"},
        "licenses": [],
        "images": out_images,
        "annotations": out_anns,
        "categories": categories,
    }
    json_path.write_text(json.dumps(doc))


def _annotations(sample: Sample, image_id: int, category_ids: list[int], first_id: int) -> list[dict]:
    """The sample's boxes as COCO annotations, numbered from ``first_id``."""
    # A Sample built without flags has an empty iscrowd: every box is then a normal one (zip over
    # the empty array would silently drop all of them).
    crowds = sample.iscrowd if len(sample.iscrowd) else np.zeros(len(sample.boxes), bool)
    xywh = box_convert(sample.boxes.astype(np.float64).reshape(-1, 4), "xyxy", "xywh")
    out = []
    for box, cls, crowd in zip(xywh, sample.classes, crowds, strict=True):
        bbox = [float(fmt_num(v)) for v in box]
        out.append(
            {
                "id": first_id + len(out),
                "image_id": image_id,
                "category_id": category_ids[int(cls)],
                "bbox": bbox,
                "area": round(bbox[2] * bbox[3], 3),
                "iscrowd": int(crowd),
                "segmentation": [],
            }
        )
    return out


def _image_ids(samples: list[Sample]) -> list[int]:
    own = [s.image_id for s in samples]
    if all(isinstance(i, int) and not isinstance(i, bool) for i in own) and len(set(own)) == len(own):
        return own
    stems = [Path(s.image).stem for s in samples]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(samples) + 1))
