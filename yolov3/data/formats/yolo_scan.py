"""Listing a YOLO source's images with the key its index rows are reused by (``yolov3.data.index``).

A warm start of a million-image folder is this listing: a million image files and a million label
files to ``stat``, about 1.3 us of kernel time each on a 2-core VM, plus about 1 us of Python's.
The folder is walked with ``os.scandir`` (names and file types, no ``stat``); its top level here,
then each subfolder, and each run of ``STAT_CHUNK`` images directly in a folder, is one task. The
tasks run here until ``SMALL`` images are done, the rest in forked worker processes. Each ``stat``
is relative to an open folder (``dir_fd``), not a whole path, and a label file is ``stat``-ed by its
name rather than found in a listing of its folder. On the 1 M-image set of
``benchmarks/bench_index.py`` (100 folders; 2-core Intel Xeon) it takes 3.4-3.8 s, where one
``DirEntry.stat`` per file in one process, after listing each label folder, took 9-14 s. One
process does 5.8-6.5 us an image; two do 3.3-3.4."""

from __future__ import annotations

import bisect
import multiprocessing
import os
import stat as stat_module
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolov3.data.formats.yolo import label_path_for
from yolov3.data.images import IMAGE_SUFFIXES
from yolov3.data.index import pack_paths, path_ends, path_starts

STAT_CHUNK = 8192  # images a worker task stats
SMALL = 4096  # images listed here before the rest goes to worker processes (a small source never does)
MISSING = (-1, -1, -1)
_AT_DIR = os.stat in os.supports_dir_fd


@dataclass
class Listing:
    """A source's images as listed now: ``paths`` (NUL-terminated UTF-8, as ``IndexArrays.paths``),
    ``image_stat`` / ``label_stat`` ``(N, 3)`` int64 size, mtime_ns, inode (-1s: no such file)."""

    paths: bytes
    image_stat: np.ndarray
    label_stat: np.ndarray
    prefix: str = ""  # what each of ``paths`` follows in ``Sample.image``: a folder's own path, kept out
    # of the index so that naming the folder otherwise (from another working directory) changes nothing

    def __len__(self) -> int:
        return len(self.image_stat)

    def path_list(self) -> list[str]:
        """The paths as stored (without ``prefix``)."""
        return self.paths.decode("utf-8", "surrogateescape").split("\0")[:-1] if self.paths else []

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "_ends"):
            self._ends = path_ends(self.paths)
            self._starts = path_starts(self._ends)
        return self._starts, self._ends

    def paths_of(self, rows: np.ndarray) -> list[str]:
        """The full paths (``prefix`` + stored path) of ``rows``."""
        starts, ends = self._bounds()
        blob = self.paths
        return [
            self.prefix + blob[a:b].decode("utf-8", "surrogateescape")
            for a, b in zip(starts[rows].tolist(), ends[rows].tolist())
        ]

    def packed(self, rows: np.ndarray) -> bytes:
        """The paths of ``rows`` as an ``IndexArrays.paths`` blob."""
        starts, ends = self._bounds()
        return b"".join(self.paths[a : b + 1] for a, b in zip(starts[rows].tolist(), ends[rows].tolist()))


def _open_folder(folder: str) -> int | None:
    try:
        return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None


def _stat_names(folder: str, names: list[str], img: array, lbl: array) -> None:
    """Append the stats of ``names`` in ``folder`` (images, links followed) to ``img`` and of their
    label files (regular files only; ``Path.with_suffix('.txt')`` of the name) to ``lbl``, 3 int64 a
    file. One loop without calls of its own: it is most of a warm start's time."""
    label_folder = str(label_path_for(os.path.join(folder, "x.jpg")).parent)
    fd, lfd = _open_folder(folder), _open_folder(label_folder)
    at, lat = (fd if _AT_DIR else None), (lfd if _AT_DIR else None)  # else whole paths
    pre = "" if at is not None else os.path.join(folder, "")
    lpre = "" if lat is not None else os.path.join(label_folder, "")
    stat, add, add_label, regular = os.stat, img.extend, lbl.extend, stat_module.S_IFREG
    try:
        for name in names:
            try:
                st = stat(pre + name, dir_fd=at)
                add((st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                add(MISSING)  # a dangling link: the reader reports it
            dot = name.rfind(".")
            try:
                st = stat(lpre + (name[:dot] if dot > 0 else name) + ".txt", dir_fd=lat)
                is_file = st.st_mode & 0o170000 == regular
                add_label((st.st_size, st.st_mtime_ns, st.st_ino) if is_file else MISSING)
            except OSError:
                add_label(MISSING)
    finally:
        for d in (fd, lfd):
            if d is not None:
                os.close(d)


def _walk(folder: str, below: str, parts: list) -> None:
    """Append ``folder``'s parts in ``list_images`` order (by name, files and subfolders together) to
    ``parts``: ``(folder, below, names)`` for a run of image files between subfolders (``below``: the
    folder's path under the scanned one, with a trailing separator), ``(subfolder, its below)`` for a
    subfolder to enter (hidden ones and links to folders are not)."""
    files: list[str] = []
    subfolders: list[str] = []
    with os.scandir(folder) as it:
        for e in it:
            name = e.name
            if name.startswith("."):
                continue
            if e.is_dir():
                if not e.is_symlink():
                    subfolders.append(name)
            elif name.lower().endswith(IMAGE_SUFFIXES):
                files.append(name)
    files.sort()
    start = 0
    for sub in sorted(subfolders):
        cut = bisect.bisect(files, sub, start)
        if cut > start:
            parts.append((folder, below, files[start:cut]))
        parts.append((os.path.join(folder, sub), below + sub + os.sep))
        start = cut
    if start < len(files):
        parts.append((folder, below, files[start:] if start else files))


def _scan_part(part: tuple) -> tuple[bytes, bytes, bytes]:
    """``(paths blob, image stats, label stats)`` of a part of ``_walk``: its images, or every image
    under its subfolder (walked here)."""
    blobs: list[bytes] = []
    img, lbl = array("q"), array("q")
    todo = [part]
    while todo:
        got = todo.pop()
        if len(got) == 2:  # a subfolder: its parts, in order, before what follows it
            inner: list = []
            _walk(got[0], got[1], inner)
            todo.extend(reversed(inner))
            continue
        folder, below, names = got
        if below is not None:  # None: a list file's run, whose paths the caller packs as listed
            blobs.append(pack_paths([below + n for n in names]))
        _stat_names(folder, names, img, lbl)
    return b"".join(blobs), img.tobytes(), lbl.tobytes()


def _scan_parts(parts: list) -> list[tuple[bytes, bytes, bytes]]:
    """``_scan_part`` of each of ``parts`` (runs of images split into ``STAT_CHUNK``s), in order: here
    until ``SMALL`` images are done, the rest in forked worker processes if there is more than one."""
    split = []
    for part in parts:
        if len(part) == 3:
            folder, below, names = part
            split += [(folder, below, names[i : i + STAT_CHUNK]) for i in range(0, len(names), STAT_CHUNK)]
        else:
            split.append(part)
    out, done = [], 0
    while split and done < SMALL:
        out.append(_scan_part(split.pop(0)))
        done += len(out[-1][1]) // 24
    workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1, 16)
    if len(split) > 1 and workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return out + pool.map(_scan_part, split, chunksize=1)
    return out + [_scan_part(p) for p in split]


def _listing(got: list[tuple[bytes, bytes, bytes]], prefix: str = "", paths: bytes | None = None) -> Listing:
    blob = b"".join(g[0] for g in got) if paths is None else paths
    return Listing(blob, *(_as_stats(b"".join(g[k] for g in got)) for k in (1, 2)), prefix)


def _as_stats(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, np.int64).reshape(-1, 3) if raw else np.zeros((0, 3), np.int64)


def scan_folder(folder: Path) -> Listing:
    """The images under ``folder`` in the order and spelling of ``yolov3.data.images.list_images``
    (hidden files and folders skipped, symlinked folders not entered), with their label files' stats.
    A few bytes an image: paths are packed a run of images at a time, stats go to flat int64 arrays."""
    parts: list = []
    _walk(str(folder), "", parts)
    return _listing(_scan_parts(parts), folder_prefix(folder))


def folder_prefix(folder: Path) -> str:
    """What the paths below ``folder`` follow in ``Sample.image`` (as ``Path(folder) / p`` spells it)."""
    top = str(folder)
    if top == ".":
        return ""  # Path('.') / 'a.jpg' is 'a.jpg', not './a.jpg'
    return top if top.endswith(os.sep) else top + os.sep


def stat_listed(paths: list[str]) -> Listing:
    """A list file's images with their stats (runs of one folder's images stat'ed as a folder's are)."""
    parts: list = []
    for p in paths:
        folder, _, name = p.rpartition(os.sep)
        folder = folder or ("." if not p.startswith(os.sep) else os.sep)
        if parts and parts[-1][0] == folder:
            parts[-1][2].append(name)
        else:
            parts.append((folder, None, [name]))
    return _listing(_scan_parts(parts), paths=pack_paths(paths))
