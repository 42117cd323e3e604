"""Training from tar shards: an ``IterableDataset`` of batches, each rank and loader worker on its own
shards, shuffled in a buffer with the run's seed, an epoch a fixed number of samples.

The epoch's plan is worked out on sample indices alone (the shards.yaml counts say which index each
shard holds), before any byte is read, so it depends only on ``(seed, epoch, rank, world, workers)``:

1. the shards in order, or permuted by ``(seed, epoch)`` when shuffling; their samples one sequence;
2. rank ``r`` of ``W`` takes the ``r``-th of ``W`` equal contiguous slices (``N // W`` samples; the
   last ``N % W`` of the sequence wait for another epoch), so the ranks' steps match and no sample is
   seen twice in an epoch;
3. the slice is cut into one contiguous piece per loader worker (``np.array_split``): each worker
   reads its own shards (a shard on a boundary is read by both neighbours, each its part);
4. a worker's samples pass a shuffle buffer of ``buffer`` samples (webdataset's ``shuffle``, drawn from
   ``default_rng((seed, epoch, rank, worker))``) and are cut into batches of ``batch_size`` (each
   worker's last batch may be short, so an epoch can have up to ``workers - 1`` batches more than
   ``ceil(N // W / batch_size)``; every rank has the same number).

The loader returns the workers' batches in turn (PyTorch's order for an ``IterableDataset``), which
``batch_order`` reproduces. A resumed epoch that has consumed ``k`` batches therefore knows how many
samples each worker has handed out; the worker starts reading at the shard and offset of the first
sample its buffer still held at that point and decodes nothing before it.

Each sample goes through ``DetectionDataset``'s item (augment, letterbox, boxes) with its index in the
split as the key of its random generator, as the folder reader does. Without shuffling (``shuffle``
False, one process, ``workers`` 0) the batches are the folder loader's, image for image. A sample a
truncated shard lost, or whose image cannot be decoded, is replaced by the worker's previous one (the
batch keeps its size; the batch's ``skipped`` names it), as the folder reader replaces unreadable images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from yolov3.data.dataset import DetectionDataset, _train_boxes
from yolov3.data.images import ImageError, decode_image
from yolov3.data.loader import MULTI_SCALE_SIZES, Collate, _worker_init
from yolov3.data.shard_read import Record, read_shard
from yolov3.data.shards import ShardError, ShardRef
from yolov3.data.types import Sample

SHUFFLE_BUFFER = 1000  # samples a worker holds to shuffle (webdataset's usual size)


def buffer_shuffle(n: int, buffer: int, rng: np.random.Generator) -> np.ndarray:
    """The order a shuffle buffer of ``buffer`` items gives a stream of ``n``: each arrival fills the
    buffer, and once it holds ``buffer`` items a uniformly drawn one leaves; the rest leave shuffled."""
    out = np.empty(n, np.int64)
    held: list[int] = []
    k = 0
    for i in range(n):
        held.append(i)
        if len(held) >= buffer:
            j = int(rng.integers(len(held)))
            held[j], held[-1] = held[-1], held[j]
            out[k] = held.pop()
            k += 1
    out[k:] = rng.permutation(np.asarray(held, np.int64))
    return out


def batch_order(counts: Sequence[int]) -> list[tuple[int, int]]:
    """``(worker, its batch)`` in the order a DataLoader returns them when worker ``w`` yields
    ``counts[w]`` batches: in turn, an exhausted worker dropping out."""
    order = []
    for j in range(max(counts, default=0)):
        order.extend((w, j) for w, c in enumerate(counts) if j < c)
    return order


class ShardStream(IterableDataset):
    """Batches (lists of ``DetectionDataset`` items, ``encode=False``) of one rank's share of the shards.

    ``transform``: a ``DetectionDataset`` (its augmentation settings, input size, seed and encoder);
    its ``samples`` are not used. ``len()`` is this rank's batches per epoch.
    """

    def __init__(self, refs: Sequence[ShardRef], transform: DetectionDataset, batch_size: int,
                 shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1, workers: int = 0,
                 multi_scale: bool = False, buffer: int = SHUFFLE_BUFFER) -> None:  # fmt: skip
        self.refs, self.transform = list(refs), transform
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.rank, self.world, self.workers = int(rank), int(world), int(workers)
        self.sizes = MULTI_SCALE_SIZES if multi_scale else None
        self.buffer, self.epoch, self.skip = int(buffer), 0, 0
        counts = np.asarray([r.samples for r in self.refs], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)])  # first split index of each shard
        self.per_rank = int(self.starts[-1]) // self.world

    @property
    def img_size(self) -> int:
        return self.transform.img_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _pieces(self) -> list[np.ndarray]:
        """Each worker's samples (split indices) in reading order, for this epoch and rank."""
        order = np.arange(len(self.refs))
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(len(self.refs))
        sequence = np.concatenate([np.arange(self.starts[s], self.starts[s + 1]) for s in order] or [[]])
        mine = sequence[self.rank * self.per_rank : (self.rank + 1) * self.per_rank].astype(np.int64)
        return np.array_split(mine, max(self.workers, 1))

    def _counts(self, pieces: list[np.ndarray]) -> list[int]:
        return [math.ceil(len(p) / self.batch_size) for p in pieces]

    def __len__(self) -> int:
        return sum(self._counts(self._pieces()))

    def samples_before(self, k: int) -> int:
        """The samples this rank's first ``k`` batches of the epoch hold."""
        pieces = self._pieces()
        b = self.batch_size
        return sum(min(b, len(pieces[w]) - j * b) for w, j in batch_order(self._counts(pieces))[:k])

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        pieces = self._pieces()
        order = batch_order(self._counts(pieces))
        mine = [i for i, (w, _) in enumerate(order) if w == worker]  # the rank's batch numbers
        done = sum(1 for i in mine if i < self.skip)  # batches this worker handed out before a resume
        piece = pieces[worker]
        out = piece
        if self.shuffle:
            rng = np.random.default_rng((self.seed, self.epoch, self.rank, worker))
            out = piece[buffer_shuffle(len(piece), self.buffer, rng)]
        size_rng = np.random.default_rng((self.seed, self.epoch, 1))  # BatchKeySampler's draw per batch
        sizes = [int(size_rng.choice(self.sizes)) if self.sizes else self.img_size for _ in order]
        return self._batches(piece, out, done, [sizes[i] for i in mine[done:]])

    def _batches(self, piece: np.ndarray, out: np.ndarray, done: int, sizes: list[int]):
        b = self.batch_size
        records = self._records(piece, out[done * b :])
        for k, size in enumerate(sizes):
            n = min(b, len(out) - (done + k) * b)
            yield [self._item(*next(records), size) for _ in range(n)]

    def _item(self, record: Record, index: int, lost: str | None, size: int) -> dict[str, Any]:
        t = self.transform
        t.samples = [Sample(record.sample.image)]
        t.current = record
        item = t[(index, size, self.epoch)]
        if lost:
            item["skipped"] = [*item["skipped"], lost]
        return item

    def _records(self, piece: np.ndarray, wanted: np.ndarray) -> Iterator[tuple[Record, int, str | None]]:
        """``(record, its split index, why it replaces the wanted one or None)`` for each index of
        ``wanted`` in turn, reading ``piece``'s shards from the first one a wanted sample is in."""
        if not len(wanted):
            return
        position = {int(i): p for p, i in enumerate(piece)}
        need = {int(i) for i in wanted}
        first = min(position[i] for i in need)
        reader = self._read_from(piece, first)
        held: dict[int, Record] = {}
        previous: Record | None = None
        for index in (int(i) for i in wanted):
            while index not in held:
                got = next(reader, None)
                if got is None:
                    break
                if got.index in need:
                    held[got.index] = got
                if position[got.index] > position[index]:
                    break  # the reader is past it: lost with its shard's tail
            record, why = held.pop(index, None), None
            if record is not None:
                record, why = self._decoded(record)
            if record is None:
                why = why or f"{self._where(index)}: lost (its shard ended early)"
                record = previous or self._any_record(piece)
            previous = record
            need.discard(index)
            yield record, index, why

    def _shard_of(self, index: int) -> int:
        return int(np.searchsorted(self.starts, index, side="right")) - 1

    def _read_from(self, piece: np.ndarray, first: int) -> Iterator[Record]:
        """Records of ``piece`` from its ``first``-th sample on, shard after shard in the piece's order
        (each shard read from its start; the samples before the offset are passed over undecoded)."""
        position = {int(i): p for p, i in enumerate(piece)}
        shards = dict.fromkeys(self._shard_of(int(i)) for i in piece[first:])
        for s in shards:
            for record in read_shard(self.refs[s], self.transform.num_classes):
                if position.get(record.index, -1) >= first:
                    yield record

    def _decoded(self, record: Record) -> tuple[Record | None, str | None]:
        try:
            record.image = decode_image(record.data, record.sample.image)
        except ImageError as exc:
            return None, str(exc)
        return record, None

    def _where(self, index: int) -> str:
        return f"{self.refs[self._shard_of(index)].url}#{index:08d}"

    def _any_record(self, piece: np.ndarray) -> Record:
        """A readable sample of ``piece`` to stand in when the first wanted one is lost."""
        for record in self._read_from(piece, 0):
            record, _ = self._decoded(record)
            if record is not None:
                return record
        raise ImageError(self._where(int(piece[0])), "no sample of this worker's shards could be read")


class RecordItems(DetectionDataset):
    """``DetectionDataset``'s item for the decoded record in ``current`` (the key's index only seeds
    its random generator): ``ShardStream`` sets ``current`` before each item."""

    current: Record

    def _load(self, i: int) -> tuple[int, np.ndarray, np.ndarray, float, tuple[int, int]]:
        image = self.current.image
        return 0, image, _train_boxes(self.current.sample), 1.0, image.shape[:2]


class ShardLoader(DataLoader):
    """The loader of a ``ShardStream``: batch dicts as ``build_loader``'s; ``from_batch(k)`` resumes."""

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return _plain_errors(super().__iter__())

    def from_batch(self, k: int) -> Iterator[dict[str, Any]]:
        """This epoch's batches after the first ``k`` (nothing before them is decoded)."""
        self.dataset.skip = int(k)
        try:
            return iter(self)  # the workers (or the single-process fetcher) take the skip with them
        finally:
            self.dataset.skip = 0


def _plain_errors(batches: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The batches; a ``ShardError`` a worker raised (a label of another class count) comes out with
    its own message, not the worker's traceback that PyTorch wraps it in."""
    try:
        yield from batches
    except ShardError as exc:
        text = str(exc).rstrip()
        if "Original Traceback" not in text:
            raise
        raise ShardError(text.rsplit("ShardError: ", 1)[-1]) from None


def build_shard_loader(stream: ShardStream, workers: int, seed: int = 0) -> ShardLoader:
    """A loader over ``stream`` with ``workers`` processes (``stream.workers`` must match)."""
    if workers != stream.workers:
        raise ValueError(f"the stream was planned for {stream.workers} workers, not {workers}")
    return ShardLoader(
        stream, batch_size=None, num_workers=int(workers), collate_fn=Collate(stream.transform.encoder),
        pin_memory=torch.cuda.is_available(), worker_init_fn=_worker_init if workers > 0 else None,
        generator=torch.Generator().manual_seed(int(seed)),
    )  # fmt: skip


__all__ = ["RecordItems", "ShardLoader", "ShardStream", "batch_order", "buffer_shuffle", "build_shard_loader"]
