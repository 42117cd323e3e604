"""The training / evaluation dataset: read -> augment -> letterbox -> the seed's targets.

One item, as the seed's ``Dataset.parse_annotation`` + ``preprocess_true_boxes``: the image is read
as RGB, augmented on its original pixels (training), letterboxed to the input size, and its boxes
(in input pixels) encoded into the seed's labels. Crowd (COCO) and difficult (VOC) boxes are left
out of the targets (they stay on the ``Sample`` for evaluation).

Determinism: an item's randomness comes from ``np.random.default_rng((seed, epoch, index))`` only,
so it does not depend on worker count, worker assignment or order. The key may be an index, or
``(index, size)`` / ``(index, size, epoch)`` as the loader's batch sampler sends (multi-scale).

A missing or corrupt image is replaced by the next index that loads, so batches keep their size and
a loader worker never dies of it; ``strict=True`` raises ``ImageError`` instead. Each replacement is
reported: in the item (``skipped``: ``"path: reason"`` strings, which the collate gathers per batch so
that a caller in another process sees them), in ``unreadable`` (path -> reason, this process's
finds) and, with ``warn``, once per path by ``warnings.warn``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from yolov3.boxes import Letterbox
from yolov3.config import COCO_ANCHORS, STRIDES, DataConfig
from yolov3.data.augment import hsv_jitter, mosaic, seed_augment
from yolov3.data.images import ImageError, read_image
from yolov3.data.targets import TargetEncoder
from yolov3.data.tiling import cut_boxes
from yolov3.data.transforms import image_to_tensor, letterbox_uint8
from yolov3.data.types import Sample
from yolov3.errors import UserError

Key = int | tuple[int, int] | tuple[int, int, int]
MAX_SUBSTITUTES = 16  # consecutive unreadable images before an item gives up


class SkippedImageWarning(UserWarning):
    """An image that could not be read was skipped (its path is in the message)."""


def _train_boxes(sample: Sample) -> np.ndarray:
    """``(N, 5)`` float32 x1, y1, x2, y2, class of the boxes that train (no crowd, no difficult)."""
    boxes = np.asarray(sample.boxes, dtype=np.float32).reshape(-1, 4)
    classes = np.asarray(sample.classes).reshape(-1)
    keep = np.ones(len(boxes), dtype=bool)
    for flag in (sample.iscrowd, sample.difficult):
        flag = np.asarray(flag, dtype=bool).reshape(-1)
        if len(flag) == len(keep):
            keep &= ~flag
    return np.concatenate([boxes[keep], classes[keep, None].astype(np.float32)], axis=1)


class DetectionDataset(Dataset):
    """Samples -> network inputs and the seed's targets.

    ``samples``: a sequence of ``Sample`` (``yolov3.data.dataset_config.load_dataset(...).train``).
    ``anchors_px`` / ``strides``: the model's (``model.anchors``, ``model.strides``); default the
    seed's (COCO anchors, 8/16/32). ``augment``: the seed's flip / crop / translate (p = 0.5 each);
    ``hsv`` / ``mosaic`` add HSV jitter / 4-image mosaic (only with ``augment``). ``cache``: decode
    every image once at construction, resized so its long side is ``img_size`` (as the letterbox
    would), and keep it in RAM (shared with forked workers). ``tile`` > 0 (``train --tile``): each item
    is a random ``tile`` x ``tile`` window of its picture (issue 25: large pictures, small objects),
    boxes cut as ``yolov3 data tile`` cuts them (``min_visible``), before any augmentation.

    Item (``encode=True``, the default)::

        image      float32 tensor (3, S, S), RGB in [0, 1] (the seed's letterboxed input)
        labels     list per scale of float32 tensors (S_i, S_i, A, 5 + C): the seed's label arrays
        bboxes     list per scale of float32 tensors (max_boxes_per_scale, 4): (cx, cy, w, h) px
        boxes      float32 tensor (N, 5): x1, y1, x2, y2 in input px + class (after augmentation)
        path       str; orig_size (h, w) of the file's image
        letterbox  Letterbox from original-image px to input px (exact without augmentation)

    With ``encode=False`` (what ``build_loader`` uses) ``image`` is a uint8 (3, S, S) view of the
    letterboxed HWC canvas and ``labels`` / ``bboxes`` are absent: the loader's collate converts and
    encodes a whole batch at once.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        num_classes: int,
        img_size: int = 416,
        anchors_px: Sequence[Sequence[Sequence[float]]] = COCO_ANCHORS,
        strides: Sequence[int] = STRIDES,
        augment: bool = False,
        hsv: bool = False,
        mosaic: bool = False,
        cache: bool = False,
        seed: int = 0,
        strict: bool = False,
        max_boxes_per_scale: int = DataConfig.max_boxes_per_scale,
        positive_iou: float = DataConfig.positive_iou,
        label_smoothing: float = DataConfig.label_smoothing,
        encode: bool = True,
        warn: bool = True,
        tile: int = 0,
        min_visible: float = 0.5,
    ):
        if img_size % max(strides) != 0:
            raise UserError(f"img_size {img_size} must be a multiple of the largest stride {max(strides)}")
        # a list is copied (the caller may change it); another Sequence (an index's PackedSamples, which
        # makes each Sample when asked) is kept as it is: a list of a million Samples is ~10 GB
        keep = isinstance(samples, Sequence) and not isinstance(samples, list)
        self.samples = samples if keep else list(samples)
        self.num_classes = int(num_classes)
        self.img_size = int(img_size)
        self.encoder = TargetEncoder.create(
            num_classes,
            img_size,
            anchors_px,
            strides,
            max_boxes_per_scale=max_boxes_per_scale,
            positive_iou=positive_iou,
            label_smoothing=label_smoothing,
        )
        self.augment, self.hsv, self.mosaic = bool(augment), bool(hsv), bool(mosaic)
        self.seed, self.strict, self.encode, self.warn = int(seed), bool(strict), bool(encode), bool(warn)
        self.tile, self.min_visible = int(tile), float(min_visible)
        if self.tile and cache:
            raise UserError("tile with cache: the cache keeps pictures resized to the input size; drop one")
        self.epoch = 0
        self.unreadable: dict[str, str] = {}
        self._skipped_now: list[str] = []  # this item's replacements, handed out with it
        self._cache: list[tuple[np.ndarray, float, tuple[int, int]] | None] | None = None
        if cache:
            self._cache = [self._read_resized(i) for i in range(len(self.samples))]

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Epoch mixed into each item's random generator when the key does not carry one."""
        self.epoch = int(epoch)

    def loader_view(self) -> DetectionDataset:
        """A shallow copy that leaves conversion and target encoding to the batch collate."""
        view = object.__new__(DetectionDataset)
        view.__dict__.update(self.__dict__, encode=False)
        return view

    # ----- reading ---------------------------------------------------------------------------
    def _read_resized(self, i: int) -> tuple[np.ndarray, float, tuple[int, int]] | None:
        """Cache entry: the image resized as the letterbox resizes it (long side = img_size), the
        scale from the file's pixels, and the file's (h, w)."""
        try:
            image = read_image(self.samples[i].image)
        except ImageError as exc:
            self._skip(exc)
            return None
        h, w = image.shape[:2]
        lb = Letterbox.fit(w, h, self.img_size)
        return cv2.resize(image, (lb.new_w, lb.new_h)), lb.scale, (h, w)

    def _skip(self, exc: ImageError) -> None:
        if self.strict:
            raise exc
        self._skipped_now.append(str(exc))
        if exc.path not in self.unreadable:
            self.unreadable[exc.path] = exc.reason
            if self.warn:
                warnings.warn(f"{exc}; skipped", SkippedImageWarning, stacklevel=3)

    def _load(self, i: int) -> tuple[int, np.ndarray, np.ndarray, float, tuple[int, int]]:
        """``(index used, RGB image, (N, 5) boxes in that image's px, scale from the file's px, the
        file's (h, w))``; an unreadable image is replaced by the next readable one."""
        for attempt in range(MAX_SUBSTITUTES):
            j = (i + attempt) % len(self.samples)
            if self._cache is not None:
                entry = self._cache[j]
                if entry is None:
                    continue
                image, scale, orig = entry
            else:
                try:
                    image, scale = read_image(self.samples[j].image), 1.0
                except ImageError as exc:
                    self._skip(exc)
                    continue
                orig = image.shape[:2]
            boxes = _train_boxes(self.samples[j])
            if scale != 1.0:
                boxes[:, :4] *= np.float32(scale)
            return j, image, boxes, scale, orig
        raise UserError(
            f"{MAX_SUBSTITUTES} consecutive images from index {i} ({self.samples[i].image}) could not be read"
        )

    def _loaded(self, i: int, rng: np.random.Generator) -> tuple[int, np.ndarray, np.ndarray, float, tuple]:
        """``_load``, then with ``tile`` a random tile of the picture (a side shorter than the tile
        whole) and its boxes by ``yolov3 data tile``'s rule (``cut_boxes``: clipped, kept when at least
        ``min_visible`` of the box lies inside)."""
        j, image, boxes, scale, orig = self._load(i)
        if not self.tile:
            return j, image, boxes, scale, orig
        h, w = image.shape[:2]
        tw, th = min(self.tile, w), min(self.tile, h)
        x, y = int(rng.integers(0, w - tw + 1)), int(rng.integers(0, h - th + 1))
        cut = cut_boxes(boxes[:, :4], (x, y, tw, th), self.min_visible)
        boxes = np.concatenate([cut.boxes, boxes[cut.index, 4:5]], axis=1).astype(np.float32)
        return j, image[y : y + th, x : x + tw], boxes, scale, orig

    # ----- one item --------------------------------------------------------------------------
    def _parse_key(self, key: Key) -> tuple[int, int, int]:
        """``index`` | ``(index, size)`` | ``(index, size, epoch)`` -> ``(index, size, epoch)``."""
        if isinstance(key, int | np.integer):
            return int(key), self.img_size, self.epoch
        if len(key) == 2:
            return int(key[0]), int(key[1]), self.epoch
        return int(key[0]), int(key[1]), int(key[2])

    def __getitem__(self, key: Key) -> dict[str, Any]:
        index, size, epoch = self._parse_key(key)
        self._skipped_now = []
        rng = np.random.default_rng((self.seed, epoch, index))
        j, image, boxes, scale, (orig_h, orig_w) = self._loaded(index, rng)
        if self.augment:
            if self.mosaic:
                others = [self._loaded(int(k), rng)[1:3] for k in rng.integers(0, len(self.samples), 3)]
                image, boxes = mosaic(
                    [image, *(o[0] for o in others)], [boxes, *(o[1] for o in others)], rng, size
                )
            image, boxes = seed_augment(image, boxes, rng)
            if self.hsv:
                image = hsv_jitter(image, rng)
        canvas, lb = letterbox_uint8(image, size)
        boxes = lb.boxes_to_input(boxes)
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        if scale != 1.0:
            lb = replace(lb, scale=lb.scale * scale)  # file px -> input px (the cache's resize composed)
        item: dict[str, Any] = {
            "boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
            "path": str(self.samples[j].image),
            "orig_size": (int(orig_h), int(orig_w)),
            "letterbox": lb,
            "skipped": self._skipped_now,
        }
        chw = torch.from_numpy(canvas).permute(2, 0, 1)  # (3, S, S) view of the HWC canvas
        if not self.encode:
            item["image"] = chw  # uint8 view; the collate converts and lays out the batch in one copy
            return item
        item["image"] = image_to_tensor(canvas)
        labels, bboxes = self.encoder.with_size(size).encode(boxes)
        item["labels"] = [torch.from_numpy(a) for a in labels]
        item["bboxes"] = [torch.from_numpy(np.ascontiguousarray(a)) for a in bboxes]
        return item


__all__ = ["DetectionDataset", "SkippedImageWarning"]
