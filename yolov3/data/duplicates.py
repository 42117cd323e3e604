"""``data check``'s file-level searches, streaming over the splits: duplicate images, leakage between
splits, label files that no image reads.

Memory stays a few numbers an image: the paths are walked (``image_paths``: an index's
``PackedSamples`` gives them without making ``Sample`` objects), each ``stat``ed once into NumPy
arrays (device, inode, size, split), and only the images that may be duplicates (sharing an inode,
or a byte size with another file) are walked again for their paths. Hard links and symlinks to one
file share its inode, so one file's bytes are hashed once however often it is linked; files of one
size are hashed in worker processes, streaming (1 MB blocks).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

from yolov3.data.formats.yolo import label_path_for
from yolov3.data.index import PackedSamples, SampleChain
from yolov3.data.types import Sample

PARALLEL_HASH_MIN = 64  # files to hash before worker processes pay for themselves


def image_paths(samples: Sequence[Sample]) -> Iterator[str]:
    """The image path of each sample, without making the samples of an index."""
    if isinstance(samples, PackedSamples):
        for row in samples.rows.tolist():
            yield samples.image(row)
    elif isinstance(samples, SampleChain):
        for part in samples.parts:
            yield from image_paths(part)
    else:
        for s in samples:
            yield s.image


def _walk(splits: dict[str, Sequence[Sample]]) -> Iterator[tuple[int, str]]:
    for k, samples in enumerate(splits.values()):
        for path in image_paths(samples):
            yield k, path


def file_hash(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _RealPaths:
    """``os.path.realpath`` with each folder resolved once (a file itself is a link or not: one lstat)."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        if os.path.islink(path):
            return os.path.realpath(path)
        folder, name = os.path.split(path)
        if folder not in self.folders:
            self.folders[folder] = os.path.realpath(folder or ".")
        return os.path.join(self.folders[folder], name)


def _stats(splits: dict[str, Sequence[Sample]]) -> np.ndarray:
    """``(N, 4)`` int64 device, inode, size, split of every listed image (-1s when it cannot be stat'ed)."""
    rows = []
    for k, path in _walk(splits):
        try:
            st = os.stat(path)
            rows.append((st.st_dev, st.st_ino, st.st_size, k))
        except OSError:
            rows.append((-1, -1, -1, k))
    return np.array(rows, np.int64).reshape(-1, 4)


def _shared(keys: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: rows whose key (a row of ``keys``) occurs more than once."""
    if not len(keys):
        return np.zeros(0, bool)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] > 1


def find_duplicates(splits: dict[str, Sequence[Sample]]) -> tuple[list[list[str]], list[str]]:
    """``(groups of identical images, images in more than one split)``.

    Identical means the same resolved path (a group ``[p, p, ...]``, one entry a listing) or the same
    bytes (a group of the distinct resolved paths); only files sharing a byte size are hashed.
    """
    st = _stats(splits)
    ok = st[:, 2] >= 0
    first_of_inode = np.zeros(len(st), bool)
    if ok.any():
        _, first = np.unique(st[ok][:, :2], axis=0, return_index=True)
        first_of_inode[np.flatnonzero(ok)[first]] = True
    candidates = ok & _shared(st[:, :2])  # the same file listed again, linked or hard-linked
    sized = np.zeros(len(st), bool)
    sized[first_of_inode] = _shared(st[first_of_inode][:, 2:3])  # distinct files sharing a byte size
    candidates |= ok & np.isin(st[:, 2], st[sized, 2])
    real = _RealPaths()
    path_of: dict[int, str] = {}
    split_of_path: dict[str, set[str]] = defaultdict(set)
    names = list(splits)
    for k, (split, path) in enumerate(_walk(splits)):
        if candidates[k]:
            path_of[k] = real(path)
            split_of_path[path_of[k]].add(names[split])
    count = Counter(path_of.values())
    groups = [[p] * n for p, n in count.items() if n > 1]
    groups += _same_bytes(st, path_of)
    content_split = {g[0]: set().union(*(split_of_path[p] for p in g)) for g in groups}
    cross = sorted(p for p, s in content_split.items() if len(s) > 1)
    return sorted(groups), cross


def _same_bytes(st: np.ndarray, path_of: dict[int, str]) -> list[list[str]]:
    """Groups of distinct resolved paths with the same bytes, among the files of ``path_of``."""
    by_inode: dict[tuple[int, int], set[str]] = defaultdict(set)
    size_of: dict[tuple[int, int], int] = {}
    for k, p in path_of.items():
        key = (int(st[k, 0]), int(st[k, 1]))
        by_inode[key].add(p)
        size_of[key] = int(st[k, 2])
    by_size: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for key, size in size_of.items():
        by_size[size].append(key)
    todo = [key for keys in by_size.values() if len(keys) > 1 for key in keys]
    hashes = _hash_all([min(by_inode[key]) for key in todo])
    by_hash: dict[tuple[int, str], set[str]] = defaultdict(set)
    for key, h in zip(todo, hashes):
        by_hash[(size_of[key], h)] |= by_inode[key]
    for key, paths in by_inode.items():  # hard links of one file whose size no other file has
        if len(paths) > 1 and len(by_size[size_of[key]]) == 1:
            by_hash[(size_of[key], "")] |= paths
    return [sorted(g) for g in by_hash.values() if len(g) > 1]


def _hash_all(paths: list[str]) -> list[str]:
    if len(paths) < PARALLEL_HASH_MIN or (os.cpu_count() or 1) < 2:
        return [file_hash(p) for p in paths]
    with multiprocessing.get_context("fork").Pool(min(len(os.sched_getaffinity(0)), 8)) as pool:
        return pool.map(file_hash, paths, chunksize=16)


def orphan_labels(splits: dict[str, Sequence[Sample]], skipped: list[str],
                  exempt: tuple[str, ...]) -> list[tuple[str, list[str]]]:  # fmt: skip
    """``(label folder, sorted orphan file names)`` per folder, in folder order: ``.txt`` files no
    listed image (``skipped`` ones included) reads, except ``exempt`` names."""
    used: dict[str, set[str]] = defaultdict(set)  # label folder -> label file names read
    label_dir: dict[str, str] = {}

    def note_used(image: str) -> None:
        folder, name = os.path.split(image)
        if folder not in label_dir:  # label_path_for's folder depends on the image's folder alone
            label = label_path_for(os.path.join(folder, "x.jpg"))
            label_dir[folder] = os.path.normcase(os.path.abspath(label.parent))
        stem = name.rsplit(".", 1)[0] if "." in name[1:] else name  # Path(name).stem, faster
        used[label_dir[folder]].add(os.path.normcase(stem + ".txt"))

    for _, image in _walk(splits):
        note_used(image)
    for image in skipped:
        note_used(image)
    out = []
    for folder in sorted(used):
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".txt") and n not in exempt)
        except OSError:
            continue
        orphans = [n for n in names if os.path.normcase(n) not in used[folder]]
        if orphans:
            out.append((folder, orphans))
    return out
