"""Building and updating a YOLO source's index (``yolov3.data.index``), and reading a split through it.

``read_source(entry, base, num_classes, report)`` is what ``read_split`` calls for a YOLO entry; a
folder or list file of at least ``index_min_images()`` images goes to ``read_indexed``, which lists
the images with their stats (``yolov3.data.formats.yolo_scan``), compares each row's key (path,
image size / mtime / inode, label size / mtime / inode) with the saved index, reads only the rows
that are new or changed
(``read_rows``: ``yolo_fast.quick_row`` for the common clean JPEG, the format's own reader for the
rest; in forked processes when there are many, with a progress bar), writes the index back when
anything changed, and returns a ``PackedSamples`` whose load report says what a fresh read would
have said.

A torn, corrupt or older-version index is rebuilt with a one-line note; one written by a newer
version is an ``IndexVersionError`` (rebuilding it here would make that newer yolov3 rebuild it in
turn, and a message that names both versions and the file is what the user needs).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from yolov3.console import Progress, note
from yolov3.data.formats.common import LoadReport
from yolov3.data.formats.yolo import label_path_for, list_source, read_yolo_images, source_path
from yolov3.data.formats.yolo_fast import quick_row
from yolov3.data.formats.yolo_scan import Listing, folder_prefix, scan_folder, stat_listed
from yolov3.data.index import (
    INDEX_VERSION,
    NO_LABEL,
    REREAD,
    IndexArrays,
    IndexOutdated,
    IndexUnreadable,
    PackedSamples,
    SampleChain,
    concat,
    index_path_for,
    read_index,
    write_index,
)
from yolov3.data.types import Sample
from yolov3.errors import UserError

PARALLEL_MIN = 2000  # rows to read before worker processes pay for themselves
CHUNK = 1000  # rows per task of a worker process
INDEX_MIN = 1000  # images in a source below which it is read directly (an index would not pay)
INDEX_MIN_ENV = "YOLOV3_INDEX_MIN"


def _read_chunk(paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(sizes (n, 2), flags (n,), boxes per row (n,), boxes (M, 4), classes (M,))`` of images read
    with any class id accepted (the class count is checked at load): by ``quick_row`` where it
    can, else by the YOLO reader, whose findings flag the row ``REREAD``."""
    sizes = np.zeros((len(paths), 2), np.int32)
    flags = np.zeros(len(paths), np.uint8)
    counts = np.zeros(len(paths), np.int64)
    boxes, classes, label_dirs = [], [], {}
    for i, p in enumerate(paths):
        quick = quick_row(p, label_dirs)
        if quick is not None:
            w, h, b, c, has_label = quick
            flags[i] = 0 if has_label else NO_LABEL
        else:
            report = LoadReport(collect=True)
            got = read_yolo_images([(Path(p), p)], None, report)
            if report.problems or report.clipped or report.dropped or not got:
                flags[i] |= REREAD
            flags[i] |= NO_LABEL if report.no_label_file else 0
            s = got[0] if got else None
            w, h = (s.width, s.height) if s else (0, 0)
            b = s.boxes if s else np.zeros((0, 4), np.float32)
            c = s.classes.astype(np.int32) if s else np.zeros(0, np.int32)
        sizes[i] = (w, h)
        counts[i] = len(c)
        boxes.append(b)
        classes.append(c)
    cat_boxes = (
        np.concatenate(boxes).reshape(-1, 4).astype(np.float32) if boxes else np.zeros((0, 4), np.float32)
    )
    cat_classes = np.concatenate(classes).astype(np.int32) if classes else np.zeros(0, np.int32)
    return sizes, flags, counts, cat_boxes, cat_classes


_LISTING: Listing | None = None  # the listing being read, which forked workers see without a copy


def _read_listed(rows: np.ndarray) -> tuple[np.ndarray, ...]:
    return _read_chunk(_LISTING.paths_of(rows))


def read_rows(listing: Listing, rows: np.ndarray, desc: str = "indexing") -> IndexArrays:
    """Read ``listing``'s images ``rows`` (and their labels) into index arrays; stats are left at 0
    for the caller. Many rows are read in forked worker processes, ``CHUNK`` rows a task (the
    workers take the paths from the listing they inherit, so no list of paths is made or sent),
    behind a progress bar."""
    global _LISTING
    chunks = [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]
    out: list[IndexArrays] = []
    with Progress(len(rows), desc, "images") as bar:
        if len(rows) >= PARALLEL_MIN and (os.cpu_count() or 1) > 1:
            workers = min(len(os.sched_getaffinity(0)), 16)
            _LISTING = listing
            try:
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    for chunk, got in zip(chunks, pool.imap(_read_listed, chunks)):
                        out.append(_to_arrays(len(chunk), *got))
                        bar.update(len(chunk))
            finally:
                _LISTING = None
        else:
            for chunk in chunks:
                out.append(_to_arrays(len(chunk), *_read_chunk(listing.paths_of(chunk))))
                bar.update(len(chunk))
    arrays = concat(out) if out else _to_arrays(0, *_read_chunk([]))
    arrays.paths = listing.paths if len(rows) == len(listing) else listing.packed(rows)
    return arrays


def _to_arrays(n: int, sizes: np.ndarray, flags: np.ndarray, counts: np.ndarray, boxes: np.ndarray,
               classes: np.ndarray) -> IndexArrays:  # fmt: skip
    """Index arrays of ``n`` rows without paths (``read_rows`` sets them) or stats (the caller's)."""
    zeros = np.zeros((n, 3), np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return IndexArrays(b"", zeros, zeros.copy(), sizes, flags, starts, boxes, classes)


def update_index(listing: Listing, old: IndexArrays | None) -> IndexArrays:
    """The index of ``listing``, reusing ``old``'s rows whose key is unchanged (``old`` itself when
    nothing changed)."""
    n = len(listing)
    if old is not None and old.paths == listing.paths:
        same = (old.image_stat == listing.image_stat).all(1) & (old.label_stat == listing.label_stat).all(1)
        source = np.where(same, np.arange(n), -1)
    elif old is not None:
        where = {p: i for i, p in enumerate(old.path_list())}
        source = np.array([where.get(p, -1) for p in listing.path_list()], np.int64).reshape(-1)
        known = source >= 0
        same = np.zeros(n, bool)
        same[known] = (old.image_stat[source[known]] == listing.image_stat[known]).all(1) & (
            old.label_stat[source[known]] == listing.label_stat[known]
        ).all(1)
        source = np.where(same, source, -1)
    else:
        source = np.full(n, -1, np.int64)
    todo = np.flatnonzero(source < 0)
    if old is not None and len(todo) == 0 and np.array_equal(source, np.arange(len(old))):
        return old
    if len(todo) == 0 and old is not None:  # rows removed or moved (a list file reordered), none to read
        merged = old.take(source)
    else:
        fresh = read_rows(listing, todo)
        source[todo] = (len(old) if old is not None else 0) + np.arange(len(todo))
        merged = fresh if len(todo) == n else concat([old, fresh]).take(source)
    merged.paths, merged.image_stat, merged.label_stat = listing.paths, listing.image_stat, listing.label_stat
    return merged


def load_or_build(path: Path, listing: Listing) -> tuple[IndexArrays, IndexKey | None]:
    """The up-to-date index of ``listing`` (the index file ``path`` updated and saved back when it
    changed), and the key of that file when it now holds exactly these arrays."""
    try:
        old = read_index(path)
    except IndexOutdated as exc:
        note(f"index {path} was written by an older yolov3 ({exc}; this one writes version "
             f"{INDEX_VERSION}): rebuilding it")  # fmt: skip
        old = None
    except IndexUnreadable as exc:
        note(f"index {path} is unreadable ({exc}): rebuilding it")
        old = None
    arrays = update_index(listing, old)
    if arrays is not old:
        try:
            write_index(path, arrays)
        except OSError as exc:
            note(f"cannot save the index {path} ({exc.strerror}): the next start reads the images again")
            return arrays, None
    return arrays, index_key(path)


IndexKey = tuple[int, int, int]  # an index file's inode, mtime_ns and size
_TRUSTED: dict[str, IndexKey] = {}  # index files taken as current without a listing (``trusting``)


def index_key(path: Path) -> IndexKey | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextmanager
def trusting(keys: dict[str, IndexKey]) -> Iterator[None]:
    """Within it an index file whose key is one of ``keys`` ({path: key}, from ``index_keys`` of a
    data set read by torchrun's rank 0 in this run) is taken as current without listing its source:
    the other ranks then read the data set rank 0 checked, in 0.2 s instead of a listing each (4 s at
    1 M images), and the same rows even if a file changed since. A file whose key differs (saved
    again since) is read as usual."""
    _TRUSTED.update(keys)
    try:
        yield
    finally:
        for k in keys:
            _TRUSTED.pop(k, None)


def index_keys(samples: Sequence[Sample]) -> dict[str, IndexKey]:
    """The index files ``samples`` (a split, or a ``SampleChain`` of splits) were read from, with the
    key each had then."""
    if isinstance(samples, SampleChain):
        return {k: v for part in samples.parts for k, v in index_keys(part).items()}
    got = getattr(samples, "index_key", None)
    return {got[0]: got[1]} if got else {}


def _trusted_index(path: Path, rows: int | None) -> IndexArrays | None:
    """The index at ``path`` if it is the file rank 0 read (its key checked after reading it: a file
    replaced before the read has another inode), with ``rows`` rows when given; else None."""
    key = _TRUSTED.get(str(path))
    if key is None:
        return None
    try:
        arrays = read_index(path)
    except IndexUnreadable:
        return None
    if arrays is None or index_key(path) != key or rows not in (None, len(arrays)):
        return None
    return arrays


def read_indexed(source: Path, listing: list[tuple[Path, str]] | None, num_classes: int | None,
                 report: LoadReport, scanned: Listing | None = None) -> PackedSamples:  # fmt: skip
    """The samples of a YOLO source (an image folder: ``listing`` None; a list file: its
    ``(image, listed by)`` pairs) through its index, with ``report`` filled as a fresh read would
    fill it: rows flagged ``REREAD`` or with a class id >= ``num_classes`` are read again by the
    reader (which reports them, or raises when ``report.collect`` is False). ``scanned``: the
    folder's ``scan_folder`` when the caller has it. The result's ``index_key`` is ``(index file,
    key)`` when that file holds what was read (``index_keys``)."""
    path = index_path_for(source)
    listed_by: list[str] | str = str(source) if listing is None else [by for _, by in listing]
    prefix = folder_prefix(source) if listing is None else ""
    arrays = _trusted_index(path, None if listing is None else len(listing))
    if arrays is not None:
        key = _TRUSTED[str(path)]
    else:
        if listing is None:
            files = scanned or scan_folder(source)
        else:
            files = stat_listed([str(p) for p, _ in listing])
        arrays, key = load_or_build(path, files)
    redo = (arrays.flag & REREAD) != 0
    if num_classes is not None and len(arrays.classes):
        bad = np.flatnonzero(arrays.classes >= num_classes)  # boxes; their rows by where they start
        redo[np.searchsorted(arrays.box_start, bad, side="right") - 1] = True
    packed = PackedSamples(arrays, np.arange(len(arrays)), prefix=prefix)
    packed.index_key = (str(path), key) if key else None
    no_label = np.flatnonzero((arrays.flag & NO_LABEL) != 0)
    if len(no_label) and not report.no_label_example:  # the first in order, as a fresh read finds it
        report.no_label_example = str(label_path_for(packed.image(int(no_label[0]))))
    skipped, overrides = [], {}
    for row in np.flatnonzero(redo).tolist():
        by = listed_by if isinstance(listed_by, str) else listed_by[row]
        got = read_yolo_images([(Path(packed.image(row)), by)], num_classes, report)
        if got:
            overrides[row] = got[0]
        else:
            skipped.append(row)
    report.no_label_file += int((~redo[no_label]).sum())  # the reread ones counted themselves
    if skipped:
        packed.rows = np.setdiff1d(packed.rows, np.array(skipped, np.int64), assume_unique=True)
    packed.overrides = overrides
    return packed


def index_min_images() -> int:
    """Sources with fewer images are read directly, without an index (``$YOLOV3_INDEX_MIN``, default
    ``INDEX_MIN``; a huge number turns the index off)."""
    text = os.environ.get(INDEX_MIN_ENV, "").strip()
    try:
        return int(text) if text else INDEX_MIN
    except ValueError:
        raise UserError(f"{INDEX_MIN_ENV} = {text!r}: expected a number of images") from None


def read_source(entry: str | os.PathLike, base: Path, num_classes: int | None,
                report: LoadReport) -> Sequence[Sample]:  # fmt: skip
    """The samples of one YOLO split entry (``yolov3.data.formats.yolo.list_source``): an image
    folder or a list file of at least ``index_min_images()`` images through its index, else (and
    a single image) by the reader directly."""
    path = source_path(entry, base)
    if path.is_dir():
        if str(index_path_for(path)) in _TRUSTED:  # rank 0 read it through this index in this run
            return read_indexed(path, None, num_classes, report)
        files = scan_folder(path)
        if len(files) < index_min_images():
            images = [(Path(files.prefix + p), str(path)) for p in files.path_list()]
            return read_yolo_images(images, num_classes, report)
        return read_indexed(path, None, num_classes, report, files)
    listing = list_source(entry, base)
    if len(listing) < index_min_images() or path.suffix.lower() != ".txt":
        return read_yolo_images(listing, num_classes, report)
    return read_indexed(path, listing, num_classes, report)
