"""Reading tar shards (``yolov3.data.shards`` layout) with ``webdataset``: records, and a split copied out.

``read_shard(ref, nc)`` yields the shard's samples in order as ``Record`` (the key's index in the
split, the image bytes, the labels as a ``Sample``). A shard that ends early (truncated, or a broken
connection) is not an error: what it held up to the break is read, and a ``ShardWarning`` names the
shard and the samples lost. A label with a class id outside ``0..nc-1`` is a ``ShardError`` (a shard
of another data set).

``load_shards_spec(shards.yaml)`` is what ``load_dataset`` hands a shards config to (``val``, ``data
check``): a split, when first used, is read once, in order, and its images are written to a temporary
folder (removed when the process ends), so the folder-based readers take it unchanged.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from yolov3.data.formats.common import DatasetSpec, LoadReport
from yolov3.data.shards import ShardError, ShardRef, check_reachable, read_shards_config
from yolov3.data.types import Sample

_HTTP_TIMEOUT_S = 60  # a stalled server fails the shard instead of hanging the run


class ShardWarning(UserWarning):
    """A shard ended early: its remaining samples are skipped (the message names it and how many)."""


@dataclass
class Record:
    """One sample of a shard: ``index`` its place in the split (the tar key), ``ext`` / ``data`` the
    image file's suffix and bytes, ``sample`` its labels (``Sample.image`` is ``url#key.ext``).
    ``image``: the decoded pixels, once a reader needs them."""

    index: int
    ext: str
    data: bytes
    sample: Sample
    image: np.ndarray | None = None  # (H, W, 3) uint8 RGB once decoded


def parse_labels(raw: bytes, where: str, nc: int) -> Sample:
    """A ``.json`` member -> ``Sample`` (boxes in pixels); ``ShardError`` naming ``where`` when a class
    id is not in ``0..nc-1`` or the JSON is not a label record."""
    try:
        doc = json.loads(raw)
        boxes = np.asarray(doc["boxes"], np.float32).reshape(-1, 4)
        classes = np.asarray(doc["classes"], np.int64).reshape(-1)
        n = len(boxes)
        difficult = np.asarray(doc.get("difficult") or [False] * n, bool).reshape(-1)
        iscrowd = np.asarray(doc.get("iscrowd") or [False] * n, bool).reshape(-1)
        width, height = int(doc.get("width", 0)), int(doc.get("height", 0))
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{where}: not a yolov3 label record ({exc!r})") from exc
    if len(classes) != n:
        raise ShardError(f"{where}: {n} boxes but {len(classes)} classes")
    bad = classes[(classes < 0) | (classes >= nc)]
    if len(bad):
        raise ShardError(f"{where}: class id {int(bad[0])} but the data set has {nc} classes (0..{nc - 1}): "
                         "a shard of another data set?")  # fmt: skip
    return Sample(where, boxes, classes, difficult, iscrowd, width, height)


def _image_member(raw: dict) -> tuple[str, bytes] | None:
    for key, value in raw.items():
        if not key.startswith("_") and key != "json":
            return key, value
    return None


def open_shard(url: str) -> BinaryIO:
    """A shard's bytes as a stream: a local file, or an http(s) response read as it arrives (urllib,
    so no ``curl`` program is needed, which is what webdataset's own opener runs)."""
    if re.match(r"^https?://", url):
        return urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S)  # noqa: S310 (the scheme is checked)
    return open(url, "rb")


def _raw_samples(url: str, errors: list[Exception]) -> Iterator[dict]:
    """webdataset's samples (one dict per key) of the shard at ``url``; a failure to open or read it
    ends them and is appended to ``errors``."""
    from webdataset.tariterators import group_by_keys, tar_file_expander  # imports torch: not at `--help`

    def keep_going(exc: Exception) -> bool:
        errors.append(exc)
        return False  # stop this shard: what follows a broken tar header cannot be trusted

    try:
        stream = open_shard(url)
    except OSError as exc:
        errors.append(exc)
        return
    with stream:
        yield from group_by_keys(tar_file_expander([{"url": url, "stream": stream}], handler=keep_going),
                                 handler=keep_going)  # fmt: skip


def read_shard(ref: ShardRef, nc: int, warn: bool = True) -> Iterator[Record]:
    """The records of one shard in order (module docstring). With ``warn``, a shard that ends early
    warns once, naming the URL, the error and the samples lost."""
    errors: list[Exception] = []
    count = 0
    for raw in _raw_samples(ref.url, errors):
        image = _image_member(raw)
        if image is None or "json" not in raw:
            continue  # a sample cut in two by the break: counted as lost
        where = f"{ref.url}#{raw['__key__']}.{image[0]}"
        try:
            index = int(raw["__key__"])
        except ValueError:
            raise ShardError(f"{where}: key {raw['__key__']!r} is not a sample index") from None
        yield Record(index, image[0], image[1], parse_labels(raw["json"], where, nc))
        count += 1
    if warn and (errors or count < ref.samples):
        why = f" ({errors[0].args[0]})" if errors and errors[0].args else ""
        lost = max(ref.samples - count, 0)
        warnings.warn(f"shard {ref.url} ends early{why}: {lost} of its {ref.samples} samples lost, "
                      "the rest is used", ShardWarning, stacklevel=2)  # fmt: skip


def read_shards(refs: Iterable[ShardRef], nc: int) -> Iterator[Record]:
    """Every record of ``refs``, shard after shard."""
    for ref in refs:
        yield from read_shard(ref, nc)


_TEMP_DIRS: list[str] = []


def _remove_temp_dirs() -> None:
    for folder in _TEMP_DIRS:
        shutil.rmtree(folder, ignore_errors=True)


def extract_split(refs: list[ShardRef], nc: int, folder: Path) -> list[Sample]:
    """Write each record's image to ``folder/{key}.{ext}``; the samples, image paths pointing there."""
    samples = []
    for record in read_shards(refs, nc):
        path = folder / f"{record.index:08d}.{record.ext}"
        path.write_bytes(record.data)
        record.sample.image = str(path)
        samples.append(record.sample)
    return samples


class LazySplit(list):
    """A split's samples, read out of its shards on first use (``val`` reads the split it scores and
    no other): length, iteration, indexing, truth and ``+`` read it first; then it is a plain list."""

    def __init__(self, fill: Callable[[], list[Sample]]) -> None:
        super().__init__()
        self._fill: Callable[[], list[Sample]] | None = fill

    def filled(self) -> LazySplit:
        if self._fill is not None:
            fill, self._fill = self._fill, None
            super().extend(fill())
        return self

    def __len__(self) -> int:
        return super(LazySplit, self.filled()).__len__()

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[Sample]:
        return super(LazySplit, self.filled()).__iter__()

    def __getitem__(self, i):  # noqa: ANN001, ANN204 (list's own signature)
        return super(LazySplit, self.filled()).__getitem__(i)

    def __contains__(self, item: object) -> bool:
        return super(LazySplit, self.filled()).__contains__(item)

    def __add__(self, other: list) -> list:
        return [*self, *other]

    def __radd__(self, other: list) -> list:
        return [*other, *self]


def _temp_dir() -> Path:
    """A folder removed when the process ends."""
    root = tempfile.mkdtemp(prefix="yolov3-shards-")
    if not _TEMP_DIRS:
        atexit.register(_remove_temp_dirs)
    _TEMP_DIRS.append(root)
    return Path(root)


def load_shards_spec(path: str | os.PathLike, report: LoadReport | None = None,
                     splits: Iterable[str] = ("train", "val", "test")) -> DatasetSpec:  # fmt: skip
    """The data set a ``shards.yaml`` lists (module docstring); each split of ``splits`` is read out
    of its shards when first used (``LazySplit``). Every shard is checked reachable first
    (``ShardError`` naming the first that is not)."""
    config = read_shards_config(path)
    splits = [s for s in splits if s in config.splits]
    check_reachable(config, splits)
    spec = DatasetSpec(names=list(config.names), source=str(path), format="shards",
                       report=report or LoadReport())  # fmt: skip
    nc = len(config.names)
    for split in splits:
        refs = config.splits[split]
        setattr(spec, split, LazySplit(lambda refs=refs: extract_split(refs, nc, _temp_dir())))
    return spec


__all__ = [
    "LazySplit", "Record", "ShardWarning", "extract_split", "load_shards_spec", "parse_labels", "read_shard",
]  # fmt: skip
