"""What every annotation format shares: the load report, the dataset spec, box clean-up, number parsing.

Conventions (every reader and writer):
- Boxes in memory are ``Sample.boxes``: ``(N, 4)`` float32 ``(x1, y1, x2, y2)`` in absolute pixels of
  the original image, continuous coordinates: the top-left corner of the image is (0, 0) and its
  bottom-right corner is (width, height).
- ``sanitize`` clips boxes to the image (counted as "clipped" when they stick out by more than
  ``CLIP_TOLERANCE_PX``) and drops boxes with zero or negative area after clipping ("dropped"). Neither
  is an error.
- A field that does not parse or a class id out of range is an error naming the file, the line
  (1-based; for JSON / XML the annotation or object) and the value. ``LoadReport.collect`` decides
  whether the first error raises ``LabelError`` (loading for training) or is recorded and the line
  skipped (``data check``, which reports them all).
- A missing or unreadable image is a warning and the image is skipped; with ``strict`` it is an error.
"""

from __future__ import annotations

import math
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolov3.data.types import Sample
from yolov3.errors import UserError

# Boxes sticking out of the image by less than this are clipped silently (float rounding of
# normalised labels, e.g. 1.0000001), by more they are counted as clipped.
CLIP_TOLERANCE_PX = 0.01
# Larger numbers in a label are not coordinates of any real image (and overflow float32).
MAX_COORDINATE = 1e9


class LabelError(UserError, ValueError):
    """A label that does not parse, or a class id out of range: names file, line and value.

    ``where`` is ``path:line`` (or ``path``), ``kind`` a short code for reports (parse, class, names).
    """

    def __init__(self, where: str, message: str, kind: str = "parse"):
        self.where, self.message, self.kind = where, message, kind
        super().__init__(f"{where}: {message}")


@dataclass
class Problem:
    """One thing wrong with the data: ``where`` is ``path:line``, ``path`` or ``path: annotation id``."""

    severity: str  # "error" | "warning"
    kind: str  # short code: parse, class, missing-image, clipped, dropped, names, size, ...
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.severity}: {self.message}"


@dataclass
class LoadReport:
    """Counts and problems met while reading a data set.

    ``collect=False`` (training): the first error raises ``LabelError``. ``collect=True`` (``data
    check``): errors are recorded and the offending line / file skipped. ``strict``: missing or
    unreadable images are errors instead of warnings.
    """

    collect: bool = False
    strict: bool = False
    problems: list[Problem] = field(default_factory=list)
    clipped: int = 0  # boxes clipped to the image
    dropped: int = 0  # boxes with zero or negative area (after clipping), removed
    skipped_images: int = 0  # images left out because missing or unreadable
    no_label_file: int = 0  # YOLO images without a label file (read as negatives)
    no_label_example: str = ""  # the label path expected for the first of those

    def error(self, where: str, message: str, kind: str = "parse") -> None:
        """Raise ``LabelError`` (``collect=False``) or record it."""
        if not self.collect:
            raise LabelError(where, message, kind)
        self.problems.append(Problem("error", kind, where, message))

    def record(self, exc: LabelError) -> None:
        """Re-raise ``exc`` (``collect=False``) or record it; the caller then skips the bad line."""
        if not self.collect:
            raise exc
        self.problems.append(Problem("error", exc.kind, exc.where, exc.message))

    def warn(self, where: str, message: str, kind: str) -> None:
        self.problems.append(Problem("warning", kind, where, message))

    def bad_image(self, path: str | os.PathLike, reason: str, referenced_by: str = "") -> None:
        """A missing or unreadable image: skipped (warning), or an error when ``strict``."""
        self.skipped_images += 1
        by = f" (referenced by {referenced_by})" if referenced_by else ""
        message = f"{reason}{by}; image skipped"
        if self.strict:
            self.error(str(path), message, "missing-image")
        else:
            self.warn(str(path), message, "missing-image")

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def summary(self) -> str:
        """One line: ``clipped 3, dropped 1, skipped images 0, errors 0, warnings 4 (clipped 3, ...)``."""
        kinds = Counter(p.kind for p in self.problems)
        detail = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        return (
            f"boxes clipped {self.clipped}, dropped {self.dropped}; images skipped {self.skipped_images}; "
            f"errors {len(self.errors)}, warnings {len(self.warnings)}" + (f" ({detail})" if detail else "")
        )


@dataclass
class DatasetSpec:
    """A whole data set, whatever its format: class names and the samples of each split.

    ``names[i]`` is the name of class index ``i`` (``Sample.classes`` values). ``category_ids`` (COCO)
    maps each index back to the source's category id, so writing COCO restores the original ids.
    ``source`` is the file or folder it was read from; ``format`` one of ``FORMATS``. A split read
    through an index (a large YOLO folder, ``yolov3.data.index``) is a ``Sequence[Sample]`` that makes
    each ``Sample`` when asked, not a list: iterate, index and slice it, but do not concatenate it.
    """

    names: list[str]
    train: Sequence[Sample] = field(default_factory=list)
    val: Sequence[Sample] = field(default_factory=list)
    test: Sequence[Sample] = field(default_factory=list)
    source: str = ""
    format: str = ""
    category_ids: list[int] | None = None
    report: LoadReport = field(default_factory=LoadReport)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def splits(self) -> dict[str, Sequence[Sample]]:
        """The non-empty splits by name, in the order train, val, test."""
        return {k: v for k, v in (("train", self.train), ("val", self.val), ("test", self.test)) if v}


SPLITS = ("train", "val", "test")


def split_of(name: str) -> str:
    """Guess a split from a file or folder name: ``instances_val2017`` -> val, ``test.txt`` -> test."""
    low = Path(name).stem.lower()
    if "val" in low:
        return "val"
    if "test" in low:
        return "test"
    return "train"


def parse_number(text: str, where: str, what: str) -> float:
    """A finite float from ``text``, else ``LabelError`` naming ``where``, ``what`` and the value."""
    try:
        value = float(text)
    except ValueError:
        raise LabelError(where, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > MAX_COORDINATE:
        raise LabelError(where, f"{what} {text!r} is not a finite number below {MAX_COORDINATE:g}")
    return value


def parse_class(text: str, num_classes: int | None, where: str) -> int:
    """A class index in ``[0, num_classes)`` (``None``: any >= 0); ``"3.0"`` is accepted as 3."""
    value = parse_number(text, where, "class id")
    if not value.is_integer():
        raise LabelError(where, f"class id {text!r} is not an integer", "class")
    cls = int(value)
    if cls < 0 or (num_classes is not None and cls >= num_classes):
        limit = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise LabelError(where, f"class id {cls} out of range (expected {limit})", "class")
    return cls


def sanitize(sample: Sample, report: LoadReport, where: Callable[[int], str]) -> Sample:
    """Clip ``sample``'s boxes to its image and drop empty ones, counting both in ``report``.

    ``where(i)`` names box ``i`` (``path:line``) for the warnings. Needs ``sample.width/height``;
    with an unknown size (0) only the empty boxes are dropped.
    """
    boxes = sample.boxes
    if len(boxes) == 0:
        return sample
    w, h = sample.width, sample.height
    if w > 0 and h > 0:
        limit = np.array([w, h, w, h], np.float32)
        outside = (boxes < -CLIP_TOLERANCE_PX) | (boxes > limit + CLIP_TOLERANCE_PX)
        clipped = np.clip(boxes, 0, limit)
    else:
        outside = np.zeros(boxes.shape, bool)
        clipped = boxes
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    for i in np.flatnonzero(outside.any(1) & ~empty):
        report.clipped += 1
        report.warn(where(i), f"box {_fmt_box(boxes[i])} outside the {w}x{h} image, clipped", "clipped")
    for i in np.flatnonzero(empty):
        report.dropped += 1
        report.warn(
            where(i), f"box {_fmt_box(boxes[i])} has no area inside the {w}x{h} image, dropped", "dropped"
        )
    keep = ~empty
    sample.boxes = np.ascontiguousarray(clipped[keep], np.float32)
    sample.classes = sample.classes[keep]
    sample.difficult = sample.difficult[keep]
    sample.iscrowd = sample.iscrowd[keep]
    return sample


def _fmt_box(box: np.ndarray) -> str:
    return "(" + ", ".join(fmt_num(float(v)) for v in box) + ")"


def fmt_num(value: float, decimals: int = 3) -> str:
    """``12`` for integral values, else up to ``decimals`` decimals without trailing zeros."""
    if not math.isfinite(value):
        return str(value)
    r = round(value, decimals)
    if r == int(r):
        return str(int(r))
    return f"{r:.{decimals}f}".rstrip("0").rstrip(".")


def make_sample(
    image: str | os.PathLike,
    boxes: list[list[float]],
    classes: list[int],
    width: int = 0,
    height: int = 0,
    difficult: list[bool] | None = None,
    iscrowd: list[bool] | None = None,
    image_id: int | str | None = None,
) -> Sample:
    """A ``Sample`` from Python lists, with the dtypes the contract fixes."""
    n = len(classes)
    return Sample(
        image=str(image),
        boxes=np.asarray(boxes, np.float32).reshape(n, 4),
        classes=np.asarray(classes, np.int64).reshape(n),
        difficult=np.asarray(difficult if difficult is not None else [False] * n, bool).reshape(n),
        iscrowd=np.asarray(iscrowd if iscrowd is not None else [False] * n, bool).reshape(n),
        width=int(width),
        height=int(height),
        image_id=image_id,
    )


def place_image(src: str | os.PathLike, dst: Path, link: str = "hard") -> None:
    """Put image ``src`` at ``dst``: ``link`` = "hard" (hard link, copy across devices), "symlink", "copy"."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and dst.resolve() == Path(src).resolve():
        return  # writing over the source itself (converting in place)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    if link == "symlink":
        dst.symlink_to(Path(src).resolve())
        return
    if link == "hard":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def unique_names(paths: list[str], keep_suffix: bool = True) -> list[str]:
    """File names for ``paths`` inside one folder, unique by stem (``a.jpg``, ``a.png`` -> ``a_1.png``).

    Unique by stem because YOLO and VOC derive the label file name from the stem alone.
    """
    used: set[str] = set()
    out = []
    for p in paths:
        stem, suffix = Path(p).stem, Path(p).suffix if keep_suffix else ""
        name, k = stem, 0
        while name.lower() in used:
            k += 1
            name = f"{stem}_{k}"
        used.add(name.lower())
        out.append(name + suffix)
    return out


def check_names(names: list[str], where: str) -> list[str]:
    """Class names as a list of non-empty unique strings, else ``LabelError`` naming ``where``."""
    names = [str(n).strip() for n in names]
    for i, n in enumerate(names):
        if not n:
            raise LabelError(where, f"class {i} has an empty name", "names")
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise LabelError(where, f"class names repeat: {dup}", "names")
    return names


def read_names_file(path: str | os.PathLike) -> list[str]:
    """A Darknet ``.names`` / ``classes.txt``: one class name per line, blank lines ignored."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise LabelError(str(path), f"cannot read class names ({exc.strerror})", "names") from exc
    return check_names([ln.strip() for ln in lines if ln.strip()], str(path))


def resolve_listed(text: str, base: Path) -> Path:
    """A path written in a list / lines file: absolute as is; relative ones against ``base`` (the
    list file's folder), falling back to the current directory when only that one has the file (the
    seed and Darknet resolve against the working directory)."""
    p = Path(text)
    if p.is_absolute():
        return p
    here = base / p
    if not here.exists() and p.exists():
        return p.absolute()
    return here


def relative_to(path: str | os.PathLike, base: Path) -> str:
    """``path`` written relative to folder ``base`` (``../`` allowed), with forward slashes."""
    return Path(os.path.relpath(Path(path).absolute(), base.absolute())).as_posix()
