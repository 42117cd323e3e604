"""A split source's index: its file list, file stats, image sizes and labels as packed arrays.

Reading a YOLO folder of N images costs N label files and N image headers (about 0.3 ms an image:
5 minutes at 1 M), and a ``list[Sample]`` of it about 10 KB an image. The index keeps what that read
found in a few NumPy arrays (``IndexArrays``), saved beside the source (``index_path_for``), and
``PackedSamples`` serves it as a ``Sequence[Sample]`` that makes one ``Sample`` when asked: the
dataset, loader and evaluation take it as they take a list.

File (``write_index``; written to a temporary file and ``os.replace``d, so a reader sees the old or
the new index, never half of one): ``MAGIC``, the version (``INDEX_VERSION``) and a JSON header that
gives each array's dtype, shape and place and a CRC-32 of them all, then the arrays' raw bytes, each
at a 64-byte boundary. No pickles, and no zip: a million-image index (about 125 MB) is read in one
call and its arrays are views of that buffer, in a tenth of a second where ``np.load`` of the same
arrays in an ``.npz`` took 1.5-1.8 s. The arrays: ``paths`` (every image path below the indexed
folder, or as a list file gives them; UTF-8, each ended by a NUL byte); ``image_stat`` /
``label_stat`` ``(N, 3)`` int64 size, mtime_ns, inode (-1 for a missing label file), the key an
image's row is reused by; ``size`` ``(N, 2)`` int32 width, height; ``flag`` ``(N,)`` uint8
(``NO_LABEL``, ``REREAD``); ``box_start`` ``(N + 1,)`` int64 offsets into ``boxes`` ``(M, 4)``
float32 ``(x1, y1, x2, y2)`` pixels (clipped, empty boxes dropped, as the reader leaves them);
``classes`` ``(M,)`` int32; and ``path_end`` ``(N,)`` int64, where each path's NUL byte is (finding
them again takes 0.15 s at 1 M rows).

A row whose reading met anything the load report must show (a warning, a bad line, a bad image)
carries ``REREAD``: the loader reads that image again with the format's own reader, so the report's
messages are the reader's own; rows read cleanly are never reread.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from yolov3.data.types import Sample
from yolov3.errors import UserError

INDEX_VERSION = 2  # 1: the same arrays in an .npz
MAGIC = b"YOLOV3IX"
_HEAD = struct.Struct("<8sII")  # MAGIC, version, header length
_ALIGN = 64
INDEX_SUFFIX = ".yolov3-index"
NO_LABEL = 1  # no label file: a negative (counted in the load report)
REREAD = 2  # the reader reported something for this image: read it again at load
MAP_FILES = False  # read_index maps files rather than reading them (yolov3.data.prefetch's child only:
# a mapped file cut short under the reader is a SIGBUS, which there loses only the read-ahead)
CACHE_ENV = "YOLOV3_INDEX_CACHE"  # where indexes of read-only data sets go (default ~/.cache/yolov3/index)
FIELDS = ("paths", "image_stat", "label_stat", "size", "flag", "box_start", "boxes", "classes")
STORED = (*FIELDS, "path_end")  # and each path's end, which takes 0.15 s to find again at 1 M rows


class IndexVersionError(UserError):
    """An index written by a newer yolov3 (its format is unknown to this one)."""


@dataclass
class IndexArrays:
    """The arrays of one index (see the module docstring for their shapes and meaning)."""

    paths: bytes
    image_stat: np.ndarray
    label_stat: np.ndarray
    size: np.ndarray
    flag: np.ndarray
    box_start: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.flag)

    def path_ends(self) -> np.ndarray:
        """``(N,)`` offsets of each path's NUL terminator in ``paths`` (kept until ``paths`` changes)."""
        cached = self.__dict__.get("_ends")
        if cached is None or cached[0] is not self.paths:
            cached = (self.paths, path_ends(self.paths))
            self.__dict__["_ends"] = cached
        return cached[1]

    def path_list(self) -> list[str]:
        return self.paths.decode("utf-8", "surrogateescape").split("\0")[:-1] if self.paths else []

    def box_rows(self) -> np.ndarray:
        """``(M,)`` the row of each box."""
        return np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.box_start))

    def box_index(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(indices into boxes / classes of every box of rows, in order; boxes per row)``."""
        counts = np.diff(self.box_start)[rows]
        starts = self.box_start[rows]
        first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return np.repeat(starts - first, counts) + np.arange(counts.sum()), counts

    def take(self, rows: np.ndarray) -> IndexArrays:
        """The index of ``rows`` only (in that order)."""
        rows = np.asarray(rows, np.int64)
        box_idx, counts = self.box_index(rows)
        names = self.path_list()
        return IndexArrays(
            pack_paths([names[r] for r in rows.tolist()]), self.image_stat[rows], self.label_stat[rows],
            self.size[rows], self.flag[rows], np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            self.boxes[box_idx], self.classes[box_idx],
        )  # fmt: skip


def path_ends(paths: bytes) -> np.ndarray:
    """``(N,)`` offsets of the NUL byte ending each path of a ``pack_paths`` blob."""
    return np.flatnonzero(np.frombuffer(paths, np.uint8) == 0)


def path_starts(ends: np.ndarray) -> np.ndarray:
    """``(N,)`` offsets of each path's first byte, from ``path_ends``."""
    return np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)


def pack_paths(paths: Sequence[str]) -> bytes:
    """Paths as one NUL-terminated UTF-8 blob (``IndexArrays.paths``)."""
    return ("\0".join(paths) + "\0").encode("utf-8", "surrogateescape") if len(paths) else b""


def concat(parts: Sequence[IndexArrays]) -> IndexArrays:
    """Rows of ``parts`` one after the other."""
    starts = [np.diff(p.box_start) for p in parts]
    counts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    return IndexArrays(
        b"".join(p.paths for p in parts),
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("image_stat", "label_stat", "size",
                                                                   "flag")),
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        np.concatenate([p.boxes for p in parts]).reshape(-1, 4).astype(np.float32),
        np.concatenate([p.classes for p in parts]).astype(np.int32),
    )  # fmt: skip


def index_path_for(source: Path) -> Path:
    """Where the index of ``source`` (an image folder or a list file) lives: beside it
    (``images/train`` -> ``images/train.yolov3-index``), or in ``$YOLOV3_INDEX_CACHE`` (default
    ``~/.cache/yolov3/index``) under a hash of its absolute path when that folder is not writable."""
    source = Path(source)
    beside = source.parent / (source.name + INDEX_SUFFIX)
    if os.access(source.parent, os.W_OK):
        return beside
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "yolov3" / "index")
    key = hashlib.sha1(str(source.absolute()).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return cache / f"{source.name}-{key}{INDEX_SUFFIX}"


def _encode(arrays: IndexArrays) -> tuple[bytes, list[tuple[int, np.ndarray]]]:
    """The header (``MAGIC``, version, JSON) padded to ``_ALIGN``, and the arrays to write after it
    with their offsets from its end."""
    data = [np.frombuffer(arrays.paths, np.uint8)]
    data += [np.ascontiguousarray(getattr(arrays, f)) for f in FIELDS[1:]] + [arrays.path_ends()]
    fields, offset, crc = [], 0, 0
    for name, a in zip(STORED, data):
        offset = -(-offset // _ALIGN) * _ALIGN
        fields.append([name, a.dtype.str, list(a.shape), offset, a.nbytes])
        crc = zlib.crc32(a, crc)
        offset += a.nbytes
    header = json.dumps({"fields": fields, "crc32": crc, "payload": offset}).encode()
    head = _HEAD.pack(MAGIC, INDEX_VERSION, len(header)) + header
    return head + bytes(-len(head) % _ALIGN), [(f[3], a) for f, a in zip(fields, data)]


def write_index(path: Path, arrays: IndexArrays) -> None:
    """Save atomically: a temporary file in the same folder, then ``os.replace``; two processes
    writing at once leave one whole index (the last one's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head, data = _encode(arrays)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            for offset, a in data:
                f.write(bytes(len(head) + offset - f.tell()))  # up to the array's boundary
                f.write(a.reshape(-1).view(np.uint8))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would create it (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class IndexUnreadable(Exception):
    """A torn, corrupt or inconsistent index file (the caller rebuilds it); the message says why."""


class IndexOutdated(IndexUnreadable):
    """An index file of an older version (the caller rebuilds it, saying so); the message is its version."""


def read_index(path: Path) -> IndexArrays | None:
    """The index at ``path``; None when there is none. ``IndexUnreadable`` for a torn or corrupt file
    (``IndexOutdated`` for an older one), ``IndexVersionError`` for one written by a newer version."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if MAP_FILES and size:  # the file's own pages, private: no fresh memory to fault in
                buf = np.frombuffer(mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY), np.uint8)
                got = size
            else:
                buf = np.empty(size, np.uint8)  # NumPy asks for huge pages
                got = f.readinto(buf)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexUnreadable(f"{exc.__class__.__name__}: {exc}") from exc
    if got != len(buf):
        raise IndexUnreadable("it is cut short")
    got = _arrays_of(buf, _payload_start(buf, path))
    ends = got.pop("path_end")
    arrays = IndexArrays(got.pop("paths").tobytes(), **got)
    arrays.__dict__["_ends"] = (arrays.paths, ends)  # what path_ends() would find
    _check_shapes(arrays)
    return arrays


def _payload_start(buf: np.ndarray, path: Path) -> tuple[int, dict]:
    """``(where the arrays begin, the JSON header)`` of an index file's bytes, its magic and version
    checked."""
    if bytes(buf[:4]) == b"PK\x03\x04":  # version 1 was an .npz (a zip)
        raise IndexOutdated("version 1")
    if len(buf) < _HEAD.size:
        raise IndexUnreadable("it is cut short")
    magic, version, size = _HEAD.unpack_from(buf)
    if magic != MAGIC:
        raise IndexUnreadable("not an index file")
    if version > INDEX_VERSION:
        raise IndexVersionError(
            f"{path}: an index of version {version}, written by a newer yolov3 (this one reads "
            f"version {INDEX_VERSION}): upgrade yolov3, or delete the file to rebuild it"
        )
    if version != INDEX_VERSION:
        raise IndexOutdated(f"version {version}")
    if len(buf) < _HEAD.size + size:
        raise IndexUnreadable("it is cut short")
    try:
        header = json.loads(bytes(buf[_HEAD.size : _HEAD.size + size]))
    except ValueError as exc:
        raise IndexUnreadable(f"{exc.__class__.__name__}: {exc}") from exc
    return _HEAD.size + size + (-(_HEAD.size + size) % _ALIGN), header


def _arrays_of(buf: np.ndarray, where: tuple[int, dict]) -> dict[str, np.ndarray]:
    """The arrays the header names, as views of ``buf``, their sizes, names and checksum checked."""
    start, header = where
    try:
        end = start + header["payload"]
        if end != len(buf):
            raise IndexUnreadable("it is cut short" if end > len(buf) else "it is too long")
        got, crc = {}, 0
        for name, dtype, shape, offset, nbytes in header["fields"]:
            a = np.frombuffer(buf, np.dtype(dtype), int(np.prod(shape)), start + offset).reshape(shape)
            if a.nbytes != nbytes:
                raise ValueError(f"{name}: {a.nbytes} bytes, not {nbytes}")
            crc = zlib.crc32(a, crc)
            got[name] = a
        if sorted(got) != sorted(STORED):
            raise IndexUnreadable(f"fields {sorted(got)}, not {sorted(STORED)}")
        if crc != header["crc32"]:
            raise IndexUnreadable("its checksum does not match")
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexUnreadable(f"{exc.__class__.__name__}: {exc}") from exc
    return got


def _check_shapes(a: IndexArrays) -> None:
    n, ends, blob = len(a.flag), a.path_ends(), np.frombuffer(a.paths, np.uint8)
    ends_fit = (
        ends.dtype == np.int64
        and ends.shape == (n,)
        and (
            n == 0 or (ends[-1] == len(blob) - 1 and bool((np.diff(ends) > 0).all()) and not blob[ends].any())
        )
    )  # each path's end is a NUL byte, the last one the blob's last byte
    ok = (
        ends_fit and a.image_stat.shape == (n, 3) and a.label_stat.shape == (n, 3)
        and a.size.shape == (n, 2) and a.box_start.shape == (n + 1,) and a.boxes.ndim == 2
        and a.boxes.shape[1:] == (4,) and len(a.classes) == len(a.boxes) == a.box_start[-1]
        and (n == 0 or a.box_start[0] == 0) and bool((np.diff(a.box_start) >= 0).all())
    )  # fmt: skip
    if not ok:
        raise IndexUnreadable("its arrays do not fit together")


class PackedSamples(Sequence[Sample]):
    """Rows ``rows`` of an index as a ``Sequence[Sample]`` (``Sample.image``: ``prefix`` + the stored
    path): item ``i`` is made when asked (a fresh
    ``Sample`` each time; changing it changes nothing stored), except rows in ``overrides`` (row ->
    the reader's own ``Sample``), returned as they are. A slice gives a list."""

    def __init__(self, arrays: IndexArrays, rows: np.ndarray, overrides: dict[int, Sample] | None = None,
                 prefix: str = ""):  # fmt: skip
        self.arrays = arrays
        self.rows = np.asarray(rows, np.int64)
        self.overrides = overrides or {}
        self.prefix = prefix  # written before each stored path (the indexed folder's own path)
        self.index_key: tuple[str, tuple[int, int, int]] | None = None  # the index file, if read from one
        self._bounds()

    def _bounds(self) -> None:
        self._path_end = self.arrays.path_ends()
        self._path_start = path_starts(self._path_end)

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        """Pickled without the file stats (the index's key, which no sample needs: 48 bytes an image)."""
        no_stat = np.zeros((0, 3), np.int64)
        arrays = replace(self.arrays, image_stat=no_stat, label_stat=no_stat)
        arrays.__dict__["_ends"] = (arrays.paths, self._path_end)
        return {**self.__dict__, "arrays": arrays}

    def __getitem__(self, i):  # noqa: ANN001, ANN204 (int -> Sample, slice -> list[Sample])
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        row = int(self.rows[i])
        if row in self.overrides:
            return self.overrides[row]
        return self.sample(row)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def box_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Every box of this sequence, in order, without making a ``Sample``: ``(boxes (M, 4) float32
        xyxy pixels, classes (M,) int64, (M, 2) width and height of each box's image)``. None when a
        row is the reader's own ``Sample`` (``overrides``) or an image's size is unknown: the caller
        then reads the samples."""
        if self.overrides and np.isin(np.fromiter(self.overrides, np.int64), self.rows).any():
            return None
        idx, counts = self.arrays.box_index(self.rows)
        sizes = np.repeat(self.arrays.size[self.rows], counts, axis=0)
        if (sizes <= 0).any():  # an image of unknown size: the caller's own check names it
            return None
        return self.arrays.boxes[idx], self.arrays.classes[idx].astype(np.int64), sizes

    def image(self, row: int) -> str:
        """The image path of index row ``row``."""
        a, b = int(self._path_start[row]), int(self._path_end[row])
        return self.prefix + self.arrays.paths[a:b].decode("utf-8", "surrogateescape")

    def sample(self, row: int) -> Sample:
        """Index row ``row`` as a ``Sample`` (ignoring overrides)."""
        arr = self.arrays
        a, b = int(arr.box_start[row]), int(arr.box_start[row + 1])
        w, h = arr.size[row].tolist()
        return Sample(
            self.image(row), arr.boxes[a:b].copy(), arr.classes[a:b].astype(np.int64),
            np.zeros(b - a, bool), np.zeros(b - a, bool), int(w), int(h),
        )  # fmt: skip


def box_tables(samples: Sequence[Sample]) -> list[tuple | Sequence[Sample]]:
    """``samples`` (a ``SampleChain`` read part by part) as a list of parts: each index part's
    ``box_table()``, and any other part (a list, or an index part with overrides) as it is."""
    parts = samples.parts if isinstance(samples, SampleChain) else [samples]
    out: list[tuple | Sequence[Sample]] = []
    for part in parts:
        table = part.box_table() if isinstance(part, PackedSamples) else None
        out.append(part if table is None else table)
    return out


class SampleChain(Sequence[Sample]):
    """Several sequences of samples read as one (a split with several sources)."""

    def __init__(self, parts: Sequence[Sequence[Sample]]):
        self.parts = [p for p in parts if len(p)]
        self._ends = np.cumsum([len(p) for p in self.parts]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, i):  # noqa: ANN001, ANN204 (int -> Sample, slice -> list[Sample])
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        part = int(np.searchsorted(self._ends, i, side="right"))
        return self.parts[part][i - (int(self._ends[part - 1]) if part else 0)]
