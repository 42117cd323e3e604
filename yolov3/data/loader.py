"""Batches for the trainer and the evaluator: samplers, the collate, ``build_loader``.

The batch (what ``yolov3.engine`` and ``yolov3.evaluate`` consume)::

    images       float32 (B, 3, S, S), RGB in [0, 1]
    labels       list per scale (stride 8, 16, 32) of float32 (B, S_i, S_i, A, 5 + C): the seed's
                 label arrays stacked ((cx, cy, w, h) input px, objectness, smoothed one-hot)
    bboxes       list per scale of float32 (B, max_boxes_per_scale, 4): (cx, cy, w, h) input px
    boxes        list of B float32 (N_i, 5): x1, y1, x2, y2 input px + class (after augmentation)
    paths        list of B str;  orig_sizes: list of B (h, w);  letterboxes: list of B Letterbox
    skipped      "path: reason" of every unreadable image replaced while loading the batch

Determinism: the order (per epoch), the multi-scale size of each batch and each item's
augmentation depend only on ``seed`` and the epoch, never on the number of workers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, get_worker_info

from yolov3.data.dataset import DetectionDataset
from yolov3.data.targets import TargetEncoder, lazy_zeros
from yolov3.device import keep_freed_memory

MULTI_SCALE_SIZES = tuple(range(320, 609, 32))  # the seed's list: 320 ... 608 step 32


class EpochSampler(Sampler[int]):
    """Indices ``0..n-1``, permuted by ``(seed, epoch)`` when ``shuffle``."""

    def __init__(self, n: int, shuffle: bool, seed: int = 0):
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        return iter(np.random.default_rng((self.seed, self.epoch)).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class BatchKeySampler(Sampler[list[tuple[int, int, int]]]):
    """Batches of ``(index, size, epoch)`` keys; ``size`` is fixed, or drawn per batch from ``sizes``.

    Each ``iter()`` is one epoch: it uses the epoch given to ``set_epoch`` (else one more than the
    last), passes it to the index sampler, and stamps it into every key for the dataset's generator.
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
        img_size: int,
        sizes: Sequence[int] | None = None,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), bool(drop_last)
        self.img_size, self.sizes, self.seed = int(img_size), tuple(sizes) if sizes else None, int(seed)
        self._next_epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self._next_epoch = int(epoch)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        rng = np.random.default_rng((self.seed, epoch, 1))
        batch: list[int] = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield self._keys(batch, rng, epoch)
                batch = []
        if batch and not self.drop_last:
            yield self._keys(batch, rng, epoch)

    def _keys(self, batch: list[int], rng: np.random.Generator, epoch: int) -> list[tuple[int, int, int]]:
        size = int(rng.choice(self.sizes)) if self.sizes else self.img_size
        return [(i, size, epoch) for i in batch]

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


def _empty(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised tensor; inside a loader worker, in a new shared-memory segment, so the batch
    leaves the worker without a copy (a new segment reads as zeros: POSIX ftruncate)."""
    if get_worker_info() is None:
        return torch.empty(tuple(shape), dtype=dtype)
    proto = torch.empty(0, dtype=dtype)
    storage = proto._typed_storage()._new_shared(math.prod(shape), device=proto.device)
    return proto.new(storage).view(tuple(shape))


class _TargetBuffers:
    """The ``zeros`` allocator handed to ``TargetEncoder.encode_batch``: lazily-zeroed NumPy memory in
    the main process; in a worker, fresh shared-memory segments (zero-filled by the kernel, only the
    written rows ever touched) whose NumPy views are mapped back to torch views afterwards."""

    def __init__(self) -> None:
        self.in_worker = get_worker_info() is not None
        self.bases: list[tuple[np.ndarray, torch.Tensor]] = []

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        if not self.in_worker:
            return lazy_zeros(shape)
        tensor = _empty(shape)
        array = tensor.numpy()
        self.bases.append((array, tensor))
        return array

    def to_torch(self, view: np.ndarray) -> torch.Tensor:
        """A torch tensor over the same memory as ``view`` (a contiguous view of an allocated buffer)."""
        for array, tensor in self.bases:
            offset = view.ctypes.data - array.ctypes.data
            if 0 <= offset < array.nbytes:
                flat = tensor.view(-1)[offset // view.itemsize : offset // view.itemsize + view.size]
                return flat.view(view.shape)
        return torch.from_numpy(view)


@dataclass(frozen=True)
class Collate:
    """Items of one input size -> the batch dict (module docstring). Items from ``DetectionDataset``
    with ``encode=False`` are converted and target-encoded here, the whole batch in one pass."""

    encoder: TargetEncoder

    def __call__(self, items: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
        items = [it for it in items if it is not None]
        if not items:
            raise ValueError("collate: empty batch")
        first = items[0]["image"]
        images = _empty((len(items), *first.shape))
        for k, it in enumerate(items):
            if it["image"].dtype == torch.uint8:  # HWC uint8 view -> CHW float32 / 255 in one pass
                torch.div(it["image"], 255.0, out=images[k])
            else:
                images[k].copy_(it["image"])
        # the boxes as views of one tensor: one shared-memory segment on the way out, not one per image
        lengths = [len(it["boxes"]) for it in items]
        flat = _empty((sum(lengths), 5))
        torch.cat([it["boxes"] for it in items], out=flat)
        boxes = list(flat.split(lengths))
        if "labels" in items[0]:
            labels = [torch.stack([it["labels"][i] for it in items]) for i in range(len(items[0]["labels"]))]
            bboxes = [torch.stack([it["bboxes"][i] for it in items]) for i in range(len(items[0]["bboxes"]))]
        else:
            buffers = _TargetBuffers()
            lab, lst = self.encoder.with_size(first.shape[-1]).encode_batch(
                [b.numpy() for b in boxes], buffers
            )
            labels = [buffers.to_torch(a) for a in lab]
            bboxes = [buffers.to_torch(a) for a in lst]
        return {
            "images": images,
            "labels": labels,
            "bboxes": bboxes,
            "boxes": boxes,
            "paths": [it["path"] for it in items],
            "orig_sizes": [it["orig_size"] for it in items],
            "letterboxes": [it["letterbox"] for it in items],
            "skipped": [msg for it in items for msg in it.get("skipped", ())],
        }


def _worker_init(worker_id: int) -> None:
    """One torch thread per worker (the workers are the parallelism; OpenCV was set to one thread
    before the fork, see ``build_loader``), glibc keeps its heap, and the global generators are
    seeded (the dataset itself draws only from per-item generators)."""
    torch.set_num_threads(1)
    keep_freed_memory()
    seed = torch.initial_seed() % 2**32  # base_seed (from the loader's seeded generator) + worker_id
    np.random.seed(seed)  # noqa: NPY002 (third-party code may draw from the legacy global generator)
    random.seed(seed)


class DetectionLoader(DataLoader):
    """A ``DataLoader`` whose ``set_epoch`` reaches the batch sampler (and a DistributedSampler)."""

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)


def build_loader(
    dataset: DetectionDataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int = 0,
    distributed: bool = False,
    multi_scale: bool = False,
    drop_last: bool = False,
) -> DetectionLoader:
    """A loader of batch dicts (module docstring) over ``dataset``.

    ``workers`` processes (persistent, forked; 0 loads in the calling process; > 0 also sets this
    process's OpenCV to one thread, which fork needs), pinned memory when CUDA is
    available, a ``DistributedSampler`` (rank / world from the process group) when ``distributed``,
    a new input size from ``MULTI_SCALE_SIZES`` per batch when ``multi_scale``. ``seed`` sets the
    order, the sizes and every item's augmentation (it replaces the dataset's own seed).
    """
    if workers > 0:
        # OpenCV's thread pool does not survive fork: a worker forked while the pool has threads can
        # hang in its first cv2 call. One thread here (workers are the parallelism) before any fork.
        cv2.setNumThreads(1)
    view = dataset.loader_view() if isinstance(dataset, DetectionDataset) else dataset
    if isinstance(view, DetectionDataset):
        view.seed = int(seed)
    if distributed:
        sampler: Sampler[int] = DistributedSampler(view, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        sampler = EpochSampler(len(view), shuffle, seed)
    batch_sampler = BatchKeySampler(
        sampler, batch_size, drop_last, dataset.img_size, MULTI_SCALE_SIZES if multi_scale else None, seed
    )
    generator = torch.Generator().manual_seed(int(seed))
    return DetectionLoader(
        view,
        batch_sampler=batch_sampler,
        num_workers=int(workers),
        collate_fn=Collate(dataset.encoder),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None,
        generator=generator,
    )


__all__ = [
    "MULTI_SCALE_SIZES", "BatchKeySampler", "Collate", "DetectionLoader", "EpochSampler", "build_loader",
]  # fmt: skip
