"""``data check``: read every label and image header of a data set and say what is wrong with it.

``check_dataset(config) -> CheckReport``: the problems (file and line), then a summary per split:
images, boxes per class, a box-size histogram, images without boxes, duplicate images (same path or
same bytes) and duplicate boxes, YOLO label files that no image reads (a renamed or missing image),
plus advice for the usual causes of a model that trains to mAP 0 (labels not found, classes without
boxes, boxes tiny at the input size, many boxes clipped).
``CheckReport.ok`` is False when there are errors; ``format()`` renders it for the terminal.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from yolov3.boxes import box_area
from yolov3.data.dataset_config import load_dataset
from yolov3.data.duplicates import find_duplicates, orphan_labels
from yolov3.data.formats.common import LoadReport, Problem
from yolov3.data.images import ImageError, image_size
from yolov3.data.index import IndexArrays, PackedSamples, SampleChain
from yolov3.data.types import Sample

# Box-size buckets by sqrt(w * h) in pixels: <8, 8-16, ..., >256.
SIZE_EDGES = (8, 16, 32, 64, 128, 256)
SIZE_LABELS = ("<8", "8-16", "16-32", "32-64", "64-128", "128-256", ">256")
SHOW_PER_KIND = 10  # problems printed per kind; the report keeps them all
ORPHAN_EXEMPT = ("classes.txt",)  # the class list some labelling tools write beside the labels


@dataclass
class SplitStats:
    """Counts of one split. ``size_hist`` buckets sqrt(box area) in original pixels (``SIZE_LABELS``);
    ``input_hist`` the same after letterboxing to the check's input size."""

    images: int = 0
    boxes: int = 0
    per_class: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    size_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(SIZE_LABELS), np.int64))
    input_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(SIZE_LABELS), np.int64))
    no_boxes: int = 0
    crowd_or_difficult: int = 0


@dataclass
class CheckReport:
    """What ``data check`` found. ``problems`` (from loading and checking) carry file and line."""

    config: str
    data_format: str
    names: list[str]
    load: LoadReport
    splits: dict[str, SplitStats] = field(default_factory=dict)
    duplicate_images: list[list[str]] = field(default_factory=list)  # groups of identical files
    cross_split: list[str] = field(default_factory=list)  # images in more than one split
    duplicate_boxes: int = 0
    advice: list[str] = field(default_factory=list)  # warnings about the data set as a whole
    input_size: int = 416

    @property
    def problems(self) -> list[Problem]:
        return self.load.problems

    @property
    def errors(self) -> list[Problem]:
        return self.load.errors

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        """The report as text for the terminal (``yolov3 data check`` prints it)."""
        return "\n".join(_render(self))


def _size_hist(sizes: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(SIZE_EDGES, sizes, side="right"), minlength=len(SIZE_LABELS))


def _parts(samples: Sequence[Sample]) -> Iterator[Sequence[Sample]]:
    """A split's sources: each an index's ``PackedSamples`` or a list."""
    if isinstance(samples, SampleChain):
        for part in samples.parts:
            yield from _parts(part)
    else:
        yield samples


def _plain_rows(part: PackedSamples) -> tuple[np.ndarray, list[Sample]]:
    """``(rows served from the arrays, the reader's samples of the other rows)``."""
    reread = np.isin(part.rows, np.array(list(part.overrides), np.int64))
    return part.rows[~reread], [part.overrides[int(r)] for r in part.rows[reread]]


def _split_stats(samples: Sequence[Sample], num_classes: int, input_size: int) -> SplitStats:
    st = SplitStats(images=len(samples), per_class=np.zeros(num_classes, np.int64))
    sizes, input_sizes = [], []
    for part in _parts(samples):
        if isinstance(part, PackedSamples):
            rows, reread = _plain_rows(part)
            _packed_stats(st, part.arrays, rows, (sizes, input_sizes), input_size)
            part = reread
        for s in part:
            n = len(s.boxes)
            st.boxes += n
            st.no_boxes += n == 0
            if not n:
                continue
            st.per_class += np.bincount(s.classes, minlength=num_classes)[:num_classes]
            st.crowd_or_difficult += int((s.iscrowd | s.difficult).sum())
            side = np.sqrt(box_area(s.boxes))
            sizes.append(side)
            if s.width and s.height:
                input_sizes.append(side * input_size / max(s.width, s.height))
    if sizes:
        st.size_hist = _size_hist(np.concatenate(sizes))
    if input_sizes:
        st.input_hist = _size_hist(np.concatenate(input_sizes))
    return st


def _packed_stats(st: SplitStats, arr: IndexArrays, rows: np.ndarray, out: tuple[list, list],
                  input_size: int) -> None:  # fmt: skip
    """``_split_stats`` of index rows ``rows``, from the arrays at once (YOLO: no crowd or difficult)."""
    counts = np.diff(arr.box_start)[rows]
    st.boxes += int(counts.sum())
    st.no_boxes += int((counts == 0).sum())
    chosen = np.zeros(len(arr), bool)
    chosen[rows] = True
    box_rows = arr.box_rows()
    pick = chosen[box_rows]
    box_rows = box_rows[pick]
    st.per_class += np.bincount(arr.classes[pick], minlength=len(st.per_class))[: len(st.per_class)]
    side = np.sqrt(box_area(arr.boxes[pick]))
    out[0].append(side)
    wh = arr.size[box_rows]
    known = (wh > 0).all(1)
    out[1].append(side[known] * input_size / wh[known].max(1).astype(np.float32))


def _check_headers(spec_splits: dict[str, list[Sample]], report: LoadReport) -> dict[str, list[Sample]]:
    """Read every image header (COCO / VOC only stat the files); compare with the declared sizes."""
    out = {}
    for split, samples in spec_splits.items():
        kept = []
        for s in samples:
            try:
                w, h = image_size(s.image)
            except ImageError as exc:
                report.bad_image(s.image, exc.reason)
                continue
            if (s.width, s.height) != (w, h):
                report.warn(
                    s.image, f"annotations give size {s.width}x{s.height}, the image is {w}x{h}", "size"
                )
            kept.append(s)
        out[split] = kept
    return out


def _duplicate_boxes(splits: dict[str, Sequence[Sample]], report: LoadReport) -> int:
    total = 0
    for samples in splits.values():
        for part in _parts(samples):
            if isinstance(part, PackedSamples):
                found = _packed_duplicate_boxes(part)
            else:
                found = ((s.image, _duplicates_in(s)) for s in part)
            for image, n in found:
                if n:
                    total += n
                    report.warn(image, f"{n} duplicate box(es) (same class and coordinates)", "duplicate-box")
    return total


def _duplicates_in(s: Sample) -> int:
    if len(s.boxes) < 2:
        return 0
    rows = np.concatenate([s.boxes, s.classes[:, None].astype(np.float32)], 1)
    return len(rows) - len(np.unique(rows, axis=0))


def _packed_duplicate_boxes(part: PackedSamples) -> Iterator[tuple[str, int]]:
    """``(image, duplicate boxes)`` of an index's rows in order, counted for all rows at once."""
    arr = part.arrays
    box_rows = arr.box_rows()
    several = (np.diff(arr.box_start) > 1)[box_rows]
    keys = np.concatenate([box_rows[several, None].astype(np.float64), arr.boxes[several],
                           arr.classes[several, None].astype(np.float32)], 1)  # fmt: skip
    distinct = np.unique(keys, axis=0)[:, 0].astype(np.int64)
    dups = np.bincount(box_rows[several], minlength=len(arr)) - np.bincount(distinct, minlength=len(arr))
    for row in part.rows[(dups[part.rows] > 0) | np.isin(part.rows, list(part.overrides))].tolist():
        s = part.overrides.get(row)
        yield (s.image, _duplicates_in(s)) if s is not None else (part.image(row), int(dups[row]))


def check_dataset(config: str | os.PathLike, strict: bool = False, input_size: int = 416) -> CheckReport:
    """Check the data set ``config`` (a data.yaml or Darknet .data) describes; never stops at a bad line.

    ``strict``: missing / unreadable images are errors. ``input_size``: the training input the
    box sizes are also measured at (after letterboxing). A config that cannot be read at all (no
    file, no splits, names that differ between splits) raises ``UserError``.
    """
    report = LoadReport(collect=True, strict=strict)
    spec = load_dataset(config, report=report)
    splits = {k: v for k, v in (("train", spec.train), ("val", spec.val), ("test", spec.test))}
    if spec.format in ("coco", "voc"):
        splits = _check_headers(splits, report)
    out = CheckReport(str(config), spec.format, spec.names, report, input_size=input_size)
    out.splits = {k: _split_stats(v, len(spec.names), input_size) for k, v in splits.items() if v}
    out.duplicate_images, out.cross_split = find_duplicates(splits)
    out.duplicate_boxes = _duplicate_boxes(splits, report)
    if spec.format == "yolo":
        _orphan_labels(splits, report)
    out.advice = _advice(out, report)
    return out


def _orphan_labels(splits: dict[str, Sequence[Sample]], report: LoadReport) -> None:
    """Warn, per label folder, about ``.txt`` files that no listed image reads: their boxes are not
    trained on (usually an image renamed or deleted after labelling)."""
    skipped = [p.where for p in report.problems if p.kind == "missing-image"]
    for folder, orphans in orphan_labels(splits, skipped, ORPHAN_EXEMPT):
        shown = ", ".join(orphans[:3]) + (" ..." if len(orphans) > 3 else "")
        message = f"{len(orphans)} label file(s) that no image reads: {shown} (their boxes are not used; "
        report.warn(folder, message + "was an image renamed or removed?)", "orphan-label")


def _advice(r: CheckReport, report: LoadReport) -> list[str]:
    """Whole-data-set warnings, aimed at the usual reasons training gives mAP 0."""
    tips = []
    train, val = r.splits.get("train"), r.splits.get("val")
    if train is None:
        report.error(r.config, "the train split has no usable images", "empty")
    if val is None:
        tips.append("no val split: training cannot report mAP")
    total = sum(st.boxes for st in r.splits.values())
    images = sum(st.images for st in r.splits.values())
    if images and total == 0:
        tips.append("no boxes at all: every image is a negative sample; the model can only learn 'nothing'")
    if report.no_label_file:
        tips.append(
            f"{report.no_label_file} images have no label file (read as negatives); "
            f"expected e.g. {report.no_label_example} - labels go in a 'labels' folder beside 'images'"
        )
    if train is not None and train.boxes:
        empty = [n for n, c in zip(r.names, train.per_class) if c == 0]
        if empty:
            tips.append(
                f"{len(empty)} of {len(r.names)} classes have no training boxes: {empty[:10]}"
                + (" ..." if len(empty) > 10 else "")
                + " (is nc / names right?)"
            )
        tiny = train.input_hist[0] / max(1, train.input_hist.sum())
        if tiny > 0.5:
            tips.append(
                f"{tiny:.0%} of training boxes are under 8 px at the {r.input_size} input "
                "(less than one stride-8 cell): raise the input size or tile the images"
            )
    if total and report.clipped + report.dropped > 0.1 * (total + report.dropped):
        tips.append(
            f"{report.clipped} boxes clipped and {report.dropped} dropped out of {total + report.dropped}: "
            "are the coordinates in the format's convention (YOLO: normalised cx cy w h)?"
        )
    if r.cross_split:
        tips.append(f"{len(r.cross_split)} images are in more than one split (train/val leakage)")
    for tip in tips:
        report.warn(r.config, tip, "advice")
    return tips


def _table(header: list[str], rows: list[list[object]], first: int = 10) -> list[str]:
    cols = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cols) for i in range(len(header))]
    widths[0] = max(widths[0], first)
    return [
        "  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in cols
    ]


def _render(r: CheckReport) -> list[str]:
    lines = [f"data check: {r.config} ({r.data_format}, {len(r.names)} classes)"]
    errors = [p for p in r.problems if p.severity == "error"]
    by_kind: dict[str, list[Problem]] = defaultdict(list)  # warnings, kinds in order of first sight
    for p in r.problems:
        if p.severity != "error" and p.kind != "advice":
            by_kind[p.kind].append(p)
    if errors or by_kind:
        lines.append("problems:")
        for kind, items in [("errors", errors), *by_kind.items()]:
            lines += [f"  {p}" for p in items[:SHOW_PER_KIND]]
            if len(items) > SHOW_PER_KIND:
                lines.append(f"  ... and {len(items) - SHOW_PER_KIND} more {kind} problems")
    names = list(r.splits)
    lines.append("")
    rows = [[k, st.images, st.no_boxes, st.boxes, st.crowd_or_difficult] for k, st in r.splits.items()]
    lines += _table(["split", "images", "no boxes", "boxes", "crowd/difficult"], rows)
    lines.append("")
    rows = [[n, *(int(r.splits[k].per_class[i]) for k in names)] for i, n in enumerate(r.names)]
    lines += _table(["boxes per class", *names], rows)
    for title, attr in (("original px", "size_hist"), (f"at the {r.input_size} input", "input_hist")):
        lines.append("")
        rows = [[k, *getattr(st, attr).tolist()] for k, st in r.splits.items()]
        lines += _table([f"box size sqrt(w*h), {title}", *SIZE_LABELS], rows)
    lines.append("")
    dup = sum(len(g) for g in r.duplicate_images) - len(r.duplicate_images)
    lines.append(
        f"duplicates: {dup} duplicate images in {len(r.duplicate_images)} groups, "
        f"{len(r.cross_split)} in more than one split, {r.duplicate_boxes} duplicate boxes"
    )
    for g in r.duplicate_images[:5]:
        if len(set(g)) == 1:
            lines.append(f"  listed {len(g)} times: {g[0]}")
        else:
            lines.append("  same bytes: " + " = ".join(g[:4]) + (" ..." if len(g) > 4 else ""))
    lines.append(
        f"boxes clipped {r.load.clipped}, dropped {r.load.dropped}; images skipped {r.load.skipped_images}"
    )
    if r.advice:
        lines.append("warnings:")
        lines += [f"  - {tip}" for tip in r.advice]
    n_err, n_warn = len(r.errors), len(r.load.warnings)
    lines.append(f"{'OK' if r.ok else 'FAILED'}: {n_err} errors, {n_warn} warnings")
    return lines
