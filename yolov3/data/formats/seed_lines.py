"""The seed's annotation lines: ``path x1,y1,x2,y2,cls x1,y1,x2,y2,cls ...``, one image per line.

Coordinates are absolute pixels of the original image (``Sample.boxes`` directly; the seed writes
ints, floats are accepted). The image path is the first whitespace-separated token, so paths with
spaces cannot be written (an error). Relative paths are resolved against the lines file's folder,
then the working directory (where the seed resolves them). The format has no image sizes: they come
from the image headers (``read_sizes``), which also finds missing images.
"""

from __future__ import annotations

import os
from pathlib import Path

from yolov3.data.formats.common import (
    LabelError,
    LoadReport,
    fmt_num,
    make_sample,
    parse_class,
    parse_number,
    relative_to,
    resolve_listed,
    sanitize,
)
from yolov3.data.images import ImageError, image_size
from yolov3.data.types import Sample


def parse_line(line: str, num_classes: int | None, where: str) -> tuple[str, list[list[float]], list[int]]:
    """``(path, boxes, classes)`` from one annotation line; ``LabelError`` naming ``where`` and the value."""
    tokens = line.split()
    if not tokens:
        raise LabelError(where, "empty line")
    boxes, classes = [], []
    for k, token in enumerate(tokens[1:], 1):
        fields = token.split(",")
        if len(fields) != 5:
            raise LabelError(
                where, f"box {k} {token!r}: expected x1,y1,x2,y2,class (5 comma-separated fields)"
            )
        boxes.append([parse_number(f, where, f"box {k} coordinate") for f in fields[:4]])
        classes.append(parse_class(fields[4], num_classes, where))
    return tokens[0], boxes, classes


def read_seed_lines(
    path: str | os.PathLike, num_classes: int | None, report: LoadReport, read_sizes: bool = True
) -> list[Sample]:
    """Samples of one lines file. Bad lines go to ``report`` (raise, or recorded and skipped)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(str(path), f"cannot read annotation lines ({exc})") from exc
    samples = []
    for ln, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{ln}"
        try:
            image, boxes, classes = parse_line(line, num_classes, where)
        except LabelError as exc:
            report.record(exc)
            continue
        image_path = resolve_listed(image, path.parent)
        w = h = 0
        if read_sizes:
            try:
                w, h = image_size(image_path)
            except ImageError as exc:
                report.bad_image(image_path, exc.reason, where)
                continue
        sample = make_sample(image_path, boxes, classes, w, h)
        samples.append(sanitize(sample, report, lambda i, where=where: where))
    return samples


def format_line(sample: Sample, base: Path) -> str:
    """One annotation line for ``sample``, its image path relative to ``base``; ints when integral."""
    image = relative_to(sample.image, base)
    if any(c.isspace() for c in image):
        raise LabelError(sample.image, "the seed's lines format cannot hold an image path with spaces")
    parts = [image]
    for box, cls in zip(sample.boxes, sample.classes):
        parts.append(",".join([*(fmt_num(float(v)) for v in box), str(int(cls))]))
    return " ".join(parts)


def write_seed_lines(samples: list[Sample], path: str | os.PathLike) -> None:
    """Write ``samples`` as a lines file at ``path`` (image paths relative to its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [format_line(s, path.parent) for s in samples]
    path.write_text("".join(line + "\n" for line in lines))
