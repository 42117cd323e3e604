"""YOLO / Darknet txt labels: one ``.txt`` per image, a line ``cls cx cy w h`` per box, normalised to 0..1.

Where the labels are: the image path with its last ``images`` (or VOC-style ``JPEGImages``) folder
replaced by ``labels`` and the suffix by ``.txt`` (``data/images/train/a.jpg`` ->
``data/labels/train/a.txt``); with no such folder the label sits beside the image. A missing label
file is an image without boxes (counted in the report, since a wrong layout makes every image look
like that); an empty one is a negative sample. A line with more than 5 fields is read as an
ultralytics segment ``cls x1 y1 x2 y2 ...`` and its bounding box taken.

Sizes come from the image headers (the format has none). Writing uses 7 decimals: a round trip
through this format restores boxes within 1e-3 px for images up to 10,000 px. ``format_label_text``
is the one writer of these lines: data conversion, the synthetic data sets and ``yolov3 detect
--save-txt`` (which may append the score) all call it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from yolov3.boxes import box_convert
from yolov3.data.formats.common import (
    MAX_COORDINATE,
    LabelError,
    LoadReport,
    make_sample,
    parse_class,
    parse_number,
    place_image,
    resolve_listed,
    sanitize,
    unique_names,
)
from yolov3.data.images import ImageError, image_size, is_image_file, list_images
from yolov3.data.types import Sample

_IMAGE_DIRS = ("images", "JPEGImages")


def label_path_for(image: str | os.PathLike) -> Path:
    """The label file of ``image``: last ``images`` / ``JPEGImages`` folder -> ``labels``, suffix .txt."""
    parts = list(Path(image).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in _IMAGE_DIRS:
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def parse_label_line(line: str, num_classes: int | None, where: str) -> tuple[int, list[float]]:
    """``(class, [cx, cy, w, h])`` normalised, from a box line or an ultralytics segment line."""
    fields = line.split()
    if len(fields) < 5:
        raise LabelError(where, f"{line.strip()!r}: expected 'class cx cy w h' (5 fields), got {len(fields)}")
    cls = parse_class(fields[0], num_classes, where)
    values = [parse_number(f, where, "coordinate") for f in fields[1:]]
    if len(values) == 4:
        return cls, values
    if len(values) % 2 or len(values) < 6:
        raise LabelError(where, f"{len(fields)} fields: neither a box (5) nor a segment (1 + x,y pairs)")
    xs, ys = values[0::2], values[1::2]
    bounds = np.array([min(xs), min(ys), max(xs), max(ys)])
    return cls, box_convert(bounds, "xyxy", "cxcywh").tolist()


def _parse_all(text: str, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """The whole file at once when every line is a valid 5-field box line, else None (the caller
    then parses line by line, which names the bad line)."""
    numbered = [(ln, line.split()) for ln, line in enumerate(text.splitlines(), 1) if line.strip()]
    try:
        rows = np.array([fields for _, fields in numbered], dtype=np.float64).reshape(len(numbered), -1)
    except ValueError:
        return None
    if rows.shape[1] != 5 or not np.isfinite(rows).all() or (np.abs(rows) > MAX_COORDINATE).any():
        return None
    cls = rows[:, 0]
    if (
        (cls != np.floor(cls)).any()
        or (cls < 0).any()
        or (num_classes is not None and (cls >= num_classes).any())
    ):
        return None
    return rows[:, 1:], cls.astype(np.int64), [ln for ln, _ in numbered]


def read_label_file(
    path: Path, num_classes: int | None, report: LoadReport
) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """``(boxes (N, 4) normalised cx cy w h, classes (N,), line numbers)``; None when there is no file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        report.error(str(path), f"cannot read label file ({exc})", "parse")
        return np.zeros((0, 4)), np.zeros(0, np.int64), []
    fast = _parse_all(text, num_classes)
    if fast is not None:
        return fast
    boxes, classes, lines = [], [], []
    for ln, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            cls, box = parse_label_line(line, num_classes, f"{path}:{ln}")
        except LabelError as exc:
            report.record(exc)
            continue
        boxes.append(box)
        classes.append(cls)
        lines.append(ln)
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(classes, np.int64), lines


def read_yolo_images(
    images: list[tuple[Path, str]], num_classes: int | None, report: LoadReport
) -> list[Sample]:
    """Samples for ``(image path, where it was listed)`` pairs: labels found by ``label_path_for``."""
    samples = []
    for image, listed_by in images:
        try:
            w, h = image_size(image)
        except ImageError as exc:
            report.bad_image(image, exc.reason, listed_by)
            continue
        label = label_path_for(image)
        found = read_label_file(label, num_classes, report)
        if found is None:
            report.no_label_file += 1
            report.no_label_example = report.no_label_example or str(label)
            samples.append(make_sample(image, [], [], w, h))
            continue
        norm, classes, lines = found
        if len(norm) and np.abs(norm).max() > 1.5:
            report.warn(
                str(label),
                f"coordinate {np.abs(norm).max():g} > 1: YOLO labels are normalised "
                "to 0..1 (pixel coordinates written by mistake?)",
                "not-normalised",
            )
        boxes = box_convert(norm, "cxcywhn", "xyxy", size=(w, h))
        sample = make_sample(image, boxes, classes, w, h)
        samples.append(sanitize(sample, report, lambda i, label=label, lines=lines: f"{label}:{lines[i]}"))
    return samples


def source_path(entry: str | os.PathLike, base: Path) -> Path:
    """The path a split entry names, relative ones against ``base``."""
    path = Path(entry)
    path = path if path.is_absolute() else base / path
    if not path.exists() and str(entry).startswith("../") and (base / str(entry)[3:]).exists():
        path = base / str(entry)[3:]  # Roboflow exports write '../train/images' (ultralytics' fallback)
    return path


def list_source(entry: str | os.PathLike, base: Path) -> list[tuple[Path, str]]:
    """Images named by one split entry: a folder (searched recursively), a ``.txt`` list of image paths,
    or one image; each with what listed it (for messages)."""
    path = source_path(entry, base)
    if path.is_dir():
        return [(p, str(path)) for p in list_images(path)]
    if path.suffix.lower() == ".txt":
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise LabelError(str(path), f"cannot read image list ({exc.strerror})") from exc
        return [
            (resolve_listed(t.strip(), path.parent), f"{path}:{ln}")
            for ln, t in enumerate(lines, 1)
            if t.strip()
        ]
    if is_image_file(path):
        return [(path, str(path))]
    raise LabelError(str(path), "expected a folder of images, a .txt list of image paths or an image")


def _fmt_norm(value: float) -> str:
    return f"{value:.7f}".rstrip("0").rstrip(".") or "0"


def format_label_text(
    boxes: np.ndarray, classes: np.ndarray, width: int, height: int, scores: np.ndarray | None = None
) -> str:
    """A label file's text: a line ``cls cx cy w h`` (``+ score`` when ``scores`` are given) per box of
    ``boxes (N, 4)`` ``(x1, y1, x2, y2)`` pixels of a ``width x height`` image; every number with at
    most 7 decimals, trailing zeros dropped."""
    norm = box_convert(np.asarray(boxes, np.float64).reshape(-1, 4), "xyxy", "cxcywhn", size=(width, height))
    columns = [norm] if scores is None else [norm, np.asarray(scores, np.float64).reshape(-1, 1)]
    rows = zip(np.asarray(classes).tolist(), np.concatenate(columns, axis=1).tolist())
    return "".join(" ".join([str(int(cls)), *map(_fmt_norm, values)]) + "\n" for cls, values in rows)


def format_labels(sample: Sample) -> str:
    """The label file text for ``sample`` (needs ``width`` / ``height``)."""
    return format_label_text(sample.boxes, sample.classes, sample.width, sample.height)


def write_yolo_split(samples: list[Sample], out: Path, split: str, link: str = "hard") -> str:
    """Write ``out/images/<split>/`` and ``out/labels/<split>/``; returns the data.yaml entry."""
    names = unique_names([s.image for s in samples])
    for sample, name in zip(samples, names):
        if not (sample.width and sample.height):
            sample.width, sample.height = image_size(sample.image)
        image = out / "images" / split / name
        place_image(sample.image, image, link)
        label = label_path_for(image)
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(format_labels(sample))
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    return f"images/{split}"
