"""Pascal VOC: ``Annotations/<id>.xml`` + ``JPEGImages/`` + ``ImageSets/Main/<split>.txt`` (one id a line).

Coordinate convention: VOC's ``xmin..xmax`` are 1-based **inclusive pixel indices** (a box covering
only the first pixel is ``xmin = xmax = 1``). In ``Sample.boxes`` (continuous, origin at the image's
top-left corner) that box is ``x1 = xmin - 1``, ``x2 = xmax`` (same for y), the convention of
Detectron2's VOC reader. Writing is the exact inverse (``xmin = x1 + 1``), with integers when
integral and up to 3 decimals otherwise, so a round trip is identical. ``difficult`` is kept per box
(``Sample.difficult``). The class of an object is its ``<name>``; names come from the data set
config, else the 20 VOC classes when every name found is one of them, else the sorted names found.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from yolov3.data.formats.common import (
    LabelError,
    LoadReport,
    fmt_num,
    make_sample,
    parse_number,
    place_image,
    sanitize,
    unique_names,
)
from yolov3.data.images import ImageError, image_size
from yolov3.data.types import Sample

VOC_NAMES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip


@dataclass
class VocRecord:
    """One parsed XML: the image, its declared size and its objects (name, box xyxy, difficult, where)."""

    xml: Path
    image: Path
    width: int
    height: int
    objects: list[tuple[str, list[float], bool, str]] = field(default_factory=list)


def _object_line(text: str, k: int) -> int:
    """1-based line of the ``k``-th ``<object>`` element (only computed for messages)."""
    pos = -1
    for _ in range(k + 1):
        pos = text.find("<object", pos + 1)
        if pos < 0:
            return 0
    return text.count("\n", 0, pos) + 1


def _text(node: ET.Element, tag: str) -> str | None:
    child = node.find(tag)
    return None if child is None or child.text is None else child.text.strip()


def parse_voc_xml(xml: Path, images_dir: Path, report: LoadReport) -> VocRecord | None:
    """Read one annotation file; bad objects go to ``report``; None when the file itself is unusable."""
    try:
        text = xml.read_text()
        root = ET.fromstring(text)
    except (OSError, UnicodeDecodeError, ET.ParseError) as exc:
        report.error(str(xml), f"cannot read VOC annotation ({exc})")
        return None
    filename = _text(root, "filename")
    image = images_dir / filename if filename else images_dir / f"{xml.stem}.jpg"
    if not image.is_file() and (images_dir / f"{xml.stem}.jpg").is_file():
        image = images_dir / f"{xml.stem}.jpg"  # VOC-like sets whose <filename> is stale
    size = root.find("size")
    w = h = 0
    if size is not None:
        try:
            w, h = int(float(_text(size, "width") or 0)), int(float(_text(size, "height") or 0))
        except ValueError:
            report.warn(str(xml), f"<size> does not parse: {ET.tostring(size, 'unicode')!r}", "size")
    record = VocRecord(xml, image, w, h)
    for k, obj in enumerate(root.iter("object")):
        where = f"{xml}:{_object_line(text, k)}"
        try:
            name = _text(obj, "name")
            if not name:
                raise LabelError(where, f"object {k + 1} has no <name>")
            bnd = obj.find("bndbox")
            if bnd is None:
                raise LabelError(where, f"object {k + 1} ({name}) has no <bndbox>")
            coords = []
            for tag in ("xmin", "ymin", "xmax", "ymax"):
                coords.append(parse_number(_text(bnd, tag) or "", where, f"<{tag}>"))
            difficult = parse_number(_text(obj, "difficult") or "0", where, "<difficult>") != 0
        except LabelError as exc:
            report.record(exc)
            continue
        xmin, ymin, xmax, ymax = coords
        record.objects.append((name, [xmin - 1, ymin - 1, xmax, ymax], difficult, where))
    return record


def read_ids(split_file: Path) -> list[str]:
    """Image ids of an ``ImageSets/Main/<split>.txt`` (first token of each line)."""
    try:
        lines = split_file.read_text().splitlines()
    except OSError as exc:
        raise LabelError(str(split_file), f"cannot read VOC image set ({exc.strerror})") from exc
    return [line.split()[0] for line in lines if line.strip()]


def parse_voc_split(root: Path, ids: list[str] | None, report: LoadReport) -> list[VocRecord]:
    """Records of ``ids`` (None: every ``Annotations/*.xml``) under VOC folder ``root``."""
    ann_dir, images_dir = root / "Annotations", root / "JPEGImages"
    xmls = [ann_dir / f"{i}.xml" for i in ids] if ids is not None else sorted(ann_dir.glob("*.xml"))
    records = []
    for xml in xmls:
        if not xml.is_file():
            report.error(str(xml), "annotation file not found (listed in the image set)", "missing-label")
            continue
        record = parse_voc_xml(xml, images_dir, report)
        if record is not None:
            records.append(record)
    return records


def names_found(records: list[VocRecord]) -> list[str]:
    """Class names for records without a names list: VOC's 20 when they cover all, else sorted."""
    found = {o[0] for r in records for o in r.objects}
    return list(VOC_NAMES) if found <= set(VOC_NAMES) else sorted(found)


def to_samples(
    records: list[VocRecord], names: list[str], report: LoadReport, check_files: bool = True
) -> list[Sample]:
    """Samples from parsed records; an object whose name is not in ``names`` is an error."""
    index = {n: i for i, n in enumerate(names)}
    samples = []
    for r in records:
        if check_files and not r.image.is_file():
            report.bad_image(r.image, "image file not found", str(r.xml))
            continue
        w, h = r.width, r.height
        if not (w > 0 and h > 0):
            try:
                w, h = image_size(r.image)
            except ImageError as exc:
                report.bad_image(r.image, exc.reason, str(r.xml))
                continue
        objects = []
        for obj in r.objects:
            if obj[0] not in index:
                report.error(obj[3], f"class name {obj[0]!r} is not among the names {names}", "class")
                continue
            objects.append(obj)
        sample = make_sample(
            r.image,
            [o[1] for o in objects],
            [index[o[0]] for o in objects],
            w,
            h,
            difficult=[o[2] for o in objects],
            image_id=r.xml.stem,
        )
        samples.append(sanitize(sample, report, lambda i, objects=objects: objects[i][3]))
    return samples


def format_xml(sample: Sample, filename: str, names: list[str]) -> str:
    """A VOC annotation for ``sample`` (needs ``width`` / ``height``)."""
    objects = []
    for (x1, y1, x2, y2), cls, diff in zip(sample.boxes.astype(np.float64), sample.classes, sample.difficult):
        objects.append(
            f"  <object>\n    <name>{escape(names[int(cls)])}</name>\n    <pose>Unspecified</pose>\n"
            f"    <truncated>0</truncated>\n    <difficult>{int(diff)}</difficult>\n    <bndbox>\n"
            f"      <xmin>{fmt_num(x1 + 1)}</xmin>\n      <ymin>{fmt_num(y1 + 1)}</ymin>\n"
            f"      <xmax>{fmt_num(x2)}</xmax>\n      <ymax>{fmt_num(y2)}</ymax>\n"
            "    </bndbox>\n  </object>\n"
        )
    return (
        f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{escape(filename)}</filename>\n"
        f"  <size>\n    <width>{sample.width}</width>\n    <height>{sample.height}</height>\n"
        f"    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n{''.join(objects)}</annotation>\n"
    )


def write_voc_split(
    samples: list[Sample],
    names: list[str],
    out: Path,
    split: str,
    link: str = "hard",
    taken: set[str] | None = None,
) -> str:
    """Write one split under VOC root ``out``; returns its image-set path relative to ``out``.

    ``taken``: ids already used by other splits (VOC ids share one Annotations folder).
    """
    taken = set() if taken is None else taken
    files = unique_names([s.image for s in samples])
    ids = []
    for sample, file in zip(samples, files):
        stem, k = Path(file).stem, 0
        while (f"{stem}_{k}" if k else stem) in taken:
            k += 1
        image_id = f"{stem}_{k}" if k else stem
        taken.add(image_id)
        ids.append(image_id)
        file = image_id + Path(file).suffix
        if not (sample.width and sample.height):
            sample.width, sample.height = image_size(sample.image)
        place_image(sample.image, out / "JPEGImages" / file, link)
        xml = out / "Annotations" / f"{image_id}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(format_xml(sample, file, names))
    sets = out / "ImageSets" / "Main" / f"{split}.txt"
    sets.parent.mkdir(parents=True, exist_ok=True)
    sets.write_text("".join(i + "\n" for i in ids))
    return f"ImageSets/Main/{split}.txt"
