"""The seed's target encoder (``Dataset.preprocess_true_boxes``), vectorised over boxes.

For every ground-truth box and every scale, the three anchors of that scale are centred in the
cell holding the box centre and compared with the box by IoU (both in stride units). Every anchor
with IoU > 0.3 on every scale is positive; a box with no positive anchor anywhere falls back to the
single best anchor over all scales (first maximum of the flattened IoUs). A positive (scale, cell,
anchor) holds ``(cx, cy, w, h)`` in input pixels, objectness 1 and the smoothed one-hot
``onehot * (1 - d) + d / C``; a later box overwrites an earlier one in the same slot. Each scale
also lists its positive boxes ``(cx, cy, w, h)`` in a ring of 150 rows (slot ``count % 150``).

The seed loops over boxes; here each step is one array operation over all boxes, and the seed's
order-dependent writes are resolved explicitly: "last writer wins" for the label slots, cumulative
counts for the ring. IoUs are computed in float64 with the seed's operation order so the anchor
choice is bit-identical; outputs are float32.

One deliberate deviation: the seed indexes the cell by ``floor(c / stride)``, which is out of range
for a centre exactly on the input's right/bottom edge (the seed crashes) and wraps around for a
negative centre. Here the cell index is clamped to ``[0, S - 1]`` (also for the anchor centre used
in the IoU). Centres in ``[0, input_size)`` -- every ordinary input -- are unaffected.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from yolov3.boxes import box_convert
from yolov3.config import COCO_ANCHORS, STRIDES, DataConfig

# The seed's anchors as its encoder takes them: stride units, one row per scale (stride 8, 16, 32).
SEED_ANCHORS = np.array(COCO_ANCHORS, dtype=np.float64) / np.array(STRIDES, dtype=np.float64)[:, None, None]

# NumPy's switch for madvise(MADV_HUGEPAGE) on large arrays (private; absent: leave it alone).
_set_madvise_hugepage = getattr(getattr(np, "_core", np).multiarray, "_set_madvise_hugepage", None)


def _check_boxes(bboxes: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``(N, 5)`` boxes into coordinates (dtype kept, as the seed computes in it) and int classes."""
    bboxes = np.asarray(bboxes)
    if bboxes.size == 0:
        bboxes = bboxes.reshape(0, 5)
    if bboxes.ndim != 2 or bboxes.shape[1] != 5:
        raise ValueError(f"boxes: expected shape (N, 5) x1, y1, x2, y2, class; got {bboxes.shape}")
    coor = bboxes[:, :4] if bboxes.dtype.kind == "f" else bboxes[:, :4].astype(np.int64)
    classes = bboxes[:, 4].astype(np.int64)
    if len(classes) and (
        classes.min() < 0
        or classes.max() >= num_classes
        or (bboxes.dtype.kind == "f" and (bboxes[:, 4] != classes).any())
    ):
        bad = (classes < 0) | (classes >= num_classes) | (bboxes[:, 4] != classes)
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"boxes[{i}]: class {bboxes[i, 4].item()!r} is not an integer in [0, {num_classes})")
    return coor, classes


def _last_writer(keys: np.ndarray) -> np.ndarray:
    """Positions of the last occurrence of each distinct key (``keys`` in write order)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    return order[last]


@dataclass(frozen=True)
class _Layout:
    """Constants of one (input size, strides, anchors): the T = sum(A_i) anchors laid side by side."""

    sizes: np.ndarray  # (L,) grid size S per scale
    counts: np.ndarray  # (L,) anchors per scale
    strides: np.ndarray  # (1, L, 1) float64
    scale_of: np.ndarray  # (T,) scale of each anchor
    first: np.ndarray  # (L,) first anchor of each scale
    anchor_in_scale: np.ndarray  # (T,) float64, index of the anchor within its scale
    slots: np.ndarray  # (L,) label slots per scale: S^2 * A
    slot_base: np.ndarray  # (L,) offset of each scale's slots in the one label buffer
    anchor_wh: np.ndarray  # (T, 2) (w, h), stride units
    anchor_area: np.ndarray  # (T,) w * h, stride units
    cell_max: np.ndarray  # (1, L, 1) S - 1, float64


@functools.lru_cache(maxsize=64)
def _layout(input_size: int, strides: tuple[int, ...], anchors: tuple[tuple[float, ...], ...]) -> _Layout:
    sizes = np.array([input_size // s for s in strides])
    if (sizes < 1).any():
        raise ValueError(f"input_size {input_size} is smaller than a stride in {strides}")
    counts = np.array([len(a) // 2 for a in anchors])
    scale_of = np.repeat(np.arange(len(strides)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots = sizes**2 * counts
    wh = np.concatenate([np.array(a, dtype=np.float64).reshape(-1, 2) for a in anchors])
    return _Layout(
        sizes=sizes,
        counts=counts,
        strides=np.asarray(strides, dtype=np.float64)[None, :, None],
        scale_of=scale_of,
        first=first,
        anchor_in_scale=(np.arange(len(scale_of)) - first[scale_of]).astype(np.float64),
        slots=slots,
        slot_base=np.concatenate([[0], np.cumsum(slots)[:-1]]),
        anchor_wh=wh,
        anchor_area=wh[:, 0] * wh[:, 1],
        cell_max=(sizes - 1)[None, :, None].astype(np.float64),
    )


def _layout_of(
    input_size: int, anchors: Sequence[np.ndarray] | np.ndarray, strides: Sequence[int]
) -> _Layout:
    if isinstance(anchors, np.ndarray) and anchors.ndim == 3:  # (L, A, 2): one cheap key
        key = tuple(tuple(row) for row in anchors.reshape(len(anchors), -1).tolist())
    else:
        key = tuple(tuple(np.asarray(a, dtype=np.float64).ravel().tolist()) for a in anchors)
    if len(key) != len(strides):
        raise ValueError(f"anchors: {len(key)} scales, strides: {len(strides)}; they must match")
    return _layout(int(input_size), tuple(int(s) for s in strides), key)


@functools.lru_cache(maxsize=16)
def _smooth_onehot(num_classes: int, label_smoothing: float) -> np.ndarray:
    """``(C, C)`` row c = the seed's ``onehot * (1 - deta) + deta * uniform`` for class c."""
    table = np.eye(num_classes) * (1 - label_smoothing) + label_smoothing * np.full(
        num_classes, 1.0 / num_classes
    )
    table = table.astype(np.float32)
    table.flags.writeable = False
    return table


def lazy_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """Zero-filled float32 without transparent huge pages.

    The encoder writes a few rows of a large, mostly-zero buffer; with the huge pages NumPy asks for
    on buffers >= 4 MB, each first write makes the kernel zero a whole 2 MB page, most of it never
    used (measured: ``docs/benchmarks.md``, "Measurements behind design choices").
    """
    if _set_madvise_hugepage is None:
        return np.zeros(shape, dtype=np.float32)
    previous = _set_madvise_hugepage(False)
    try:
        return np.zeros(shape, dtype=np.float32)
    finally:
        _set_madvise_hugepage(previous)


def _encode_batch(
    boxes_list: Sequence[np.ndarray],
    num_classes: int,
    lay: _Layout,
    max_boxes_per_scale: int,
    positive_iou: float,
    label_smoothing: float,
    zeros: Callable[[tuple[int, ...]], np.ndarray] = lazy_zeros,
) -> tuple[np.ndarray, np.ndarray]:
    """Core of the encoder over a batch of images: every step is one array operation over all
    (box, scale) or (box, anchor) pairs of all images; no loop over boxes or images.

    Returns the label buffer ``(B * sum_i S_i^2 A_i, 5 + C)``, scale-major (scale i is a contiguous
    ``(B, S_i, S_i, A_i, 5 + C)`` block, see ``_split_scales``), and the box lists
    ``(L, B, max_boxes_per_scale, 4)``, both float32 and allocated by ``zeros`` (zero-filled).
    """
    parts = [_check_boxes(b, num_classes) for b in boxes_list]
    lengths = np.array([len(c) for c, _ in parts], dtype=np.int64)
    coor = parts[0][0] if len(parts) == 1 else np.concatenate([c for c, _ in parts])
    classes = parts[0][1] if len(parts) == 1 else np.concatenate([k for _, k in parts])
    n, num_images, total_slots = len(coor), len(parts), int(lay.slots.sum())

    # (N, 4) centre/size in the input's dtype, as the seed (int boxes give float64).
    xywh = box_convert(coor, "xyxy", "cxcywh")
    # (N, 5 + C) the row each positive slot receives: xywh, objectness 1, smoothed one-hot.
    rows = np.empty((n, 5 + num_classes), dtype=np.float32)
    rows[:, :4] = xywh
    rows[:, 4] = 1.0
    rows[:, 5:] = _smooth_onehot(num_classes, label_smoothing)[classes]
    image_of = np.repeat(np.arange(num_images), lengths)  # (N,)
    positive, first_slot = _positive_anchors(xywh, image_of, num_images, lay, positive_iou)

    # Labels: one write per positive (box, anchor), in the seed's order; the last writer of a slot wins.
    box_n, t = np.nonzero(positive)  # box-major, as the seed's loop
    slot = (first_slot[box_n, t] + lay.anchor_in_scale[t]).astype(np.int64)
    keep = _last_writer(slot)
    label_buf = zeros((num_images * total_slots, 5 + num_classes))
    label_buf[slot[keep]] = rows[box_n[keep]]

    list_buf = zeros((len(lay.sizes), num_images, max_boxes_per_scale, 4))
    if n:
        _fill_box_lists(list_buf, positive, rows[:, :4], lengths, image_of, lay)
    return label_buf, list_buf


def _positive_anchors(
    xywh: np.ndarray, image_of: np.ndarray, num_images: int, lay: _Layout, positive_iou: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(positive (N, T) bool, first label slot of each (box, anchor)'s cell (N, T))``: every anchor
    whose IoU with the box (both centred in the box's cell, stride units) passes ``positive_iou``, and
    for a box with none, its first best anchor over all scales."""
    # Per (box, scale), in stride units: the seed's bbox_iou terms of the box, and its cell.
    scaled = xywh.astype(np.float64)[:, None, :] / lay.strides  # (N, L, 4); seed: 1.0 * xywh / strides
    cell = np.minimum(np.maximum(np.floor(scaled[..., :2]), 0.0), lay.cell_max)  # clamp: the one deviation
    # (N, L) first label slot of the cell; the buffer is scale-major: (B, S, S, A) of scale 0, then 1...
    flat_cell = (cell[..., 1] * lay.sizes + cell[..., 0]) * lay.counts + lay.slot_base * num_images
    flat_cell += image_of[:, None] * lay.slots
    per_scale = np.concatenate(
        [
            box_convert(scaled, "cxcywh", "xyxy"),  # 0:2 box left-up, 2:4 right-down
            (scaled[..., 2] * scaled[..., 3])[..., None],  # 4 box area
            cell + 0.5,  # 5:7 anchor centre (the seed: floor(c).astype(int32) + 0.5)
            flat_cell[..., None],  # 7 first label slot of the cell
        ],
        axis=-1,
    )
    g = per_scale[:, lay.scale_of]  # (N, T, 8): the same terms repeated for each anchor of the scale
    anchor_wh = np.broadcast_to(lay.anchor_wh, g.shape[:-1] + (2,))
    anchors = box_convert(np.concatenate([g[..., 5:7], anchor_wh], axis=-1), "cxcywh", "xyxy")  # (N, T, 4)
    left_up = np.maximum(g[..., 0:2], anchors[..., :2])
    right_down = np.minimum(g[..., 2:4], anchors[..., 2:])
    inter = np.maximum(right_down - left_up, 0.0)
    inter_area = inter[..., 0] * inter[..., 1]
    iou = inter_area / (g[..., 4] + lay.anchor_area - inter_area)  # (N, T); union >= anchor area > 0
    positive = iou > positive_iou
    none = np.flatnonzero(~positive.any(axis=1))
    if len(none):
        positive[none, np.argmax(iou[none], axis=1)] = True
    return positive, g[..., 7]


def _fill_box_lists(list_buf: np.ndarray, positive: np.ndarray, xywh: np.ndarray, lengths: np.ndarray,
                    image_of: np.ndarray, lay: _Layout) -> None:  # fmt: skip
    """Write each scale's box list ``(L, B, max, 4)``: a box counts once per scale it is positive on,
    into ring slot ``count % max`` of its image (a later box overwrites an earlier one)."""
    num_scales, num_images, max_boxes = list_buf.shape[:3]
    hit = np.logical_or.reduceat(positive, lay.first, axis=1)  # (N, L)
    ordinal = np.cumsum(hit, axis=0)  # (N, L) running count, 1-based
    if num_images > 1:  # count within each image: subtract the images before
        ends = np.cumsum(lengths)
        running = np.concatenate([np.zeros((1, num_scales), np.int64), ordinal])
        before = running[ends - lengths]  # (B, L)
        count = (running[ends] - before)[image_of]  # (N, L) the image's total per scale
        ordinal -= before[image_of]
    else:
        count = ordinal[-1]
    hit &= ordinal > count - max_boxes  # only the last `max` survive the ring
    box_n, sc = np.nonzero(hit)
    ring = (sc * num_images + image_of[box_n]) * max_boxes
    list_buf.reshape(-1, 4)[ring + (ordinal[box_n, sc] - 1) % max_boxes] = xywh[box_n]


def _split_scales(label_buf: np.ndarray, lay: _Layout, num_images: int | None) -> list[np.ndarray]:
    """The scale-major label buffer -> per scale ``(B, S, S, A, 5 + C)`` contiguous views
    (``(S, S, A, 5 + C)`` when ``num_images`` is None: one image)."""
    b, c = num_images or 1, label_buf.shape[-1]
    lead = () if num_images is None else (num_images,)
    return [
        label_buf[b * base : b * (base + k)].reshape(*lead, s, s, a, c)
        for base, k, s, a in zip(lay.slot_base, lay.slots, lay.sizes, lay.counts)
    ]


@dataclass(frozen=True)
class TargetEncoder:
    """The seed's encoder bound to one model and input size; what datasets and collates hold.

    ``anchors_px``: per scale ``(A_i, 2)`` anchor (w, h) in input pixels, ordered as ``strides``
    (the model's ``.anchors`` / ``.strides``). ``encode`` is ``encode_targets`` for one image;
    ``encode_batch`` encodes a whole batch in one vectorised pass (the loader's collate uses it).
    """

    num_classes: int
    input_size: int
    anchors_px: tuple[tuple[tuple[float, float], ...], ...]
    strides: tuple[int, ...]
    max_boxes_per_scale: int = DataConfig.max_boxes_per_scale
    positive_iou: float = DataConfig.positive_iou
    label_smoothing: float = DataConfig.label_smoothing

    @classmethod
    def create(
        cls,
        num_classes: int,
        input_size: int,
        anchors_px: Sequence[Sequence[Sequence[float]]],
        strides: Sequence[int],
        **options: float,
    ) -> TargetEncoder:
        anchors = tuple(tuple((float(w), float(h)) for w, h in scale) for scale in anchors_px)
        return cls(int(num_classes), int(input_size), anchors, tuple(int(s) for s in strides), **options)

    def with_size(self, input_size: int) -> TargetEncoder:
        """The same encoder for another input size (multi-scale training)."""
        return dataclasses.replace(self, input_size=int(input_size))

    def grid_sizes(self) -> list[int]:
        return [self.input_size // s for s in self.strides]

    def _lay(self) -> _Layout:
        anchors = [np.asarray(a, dtype=np.float64) / s for a, s in zip(self.anchors_px, self.strides)]
        return _layout_of(self.input_size, anchors, self.strides)

    def encode(self, boxes: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One image: ``(N, 5)`` input-px x1, y1, x2, y2, class -> (labels per scale, box lists per scale)."""
        lay = self._lay()
        label_buf, list_buf = _encode_batch(
            [boxes], self.num_classes, lay, self.max_boxes_per_scale, self.positive_iou, self.label_smoothing
        )
        return _split_scales(label_buf, lay, None), list(list_buf[:, 0])

    def encode_batch(
        self, boxes_list: Sequence[np.ndarray], zeros: Callable[[tuple[int, ...]], np.ndarray] = lazy_zeros
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """B images at once -> labels per scale ``(B, S, S, A, 5 + C)``, box lists per scale ``(B, max, 4)``.

        Each image's arrays equal ``encode`` of that image when the batch's boxes share one dtype
        (the seed computes centres in the boxes' dtype). ``zeros(shape)`` allocates the zero-filled
        float32 outputs (the collate passes one that allocates in shared memory).
        """
        lay = self._lay()
        label_buf, list_buf = _encode_batch(
            boxes_list,
            self.num_classes,
            lay,
            self.max_boxes_per_scale,
            self.positive_iou,
            self.label_smoothing,
            zeros,
        )
        return _split_scales(label_buf, lay, len(boxes_list)), list(list_buf)


def encode_targets(
    boxes: np.ndarray,
    num_classes: int,
    input_size: int,
    anchors_px: Sequence[Sequence[Sequence[float]]],
    strides: Sequence[int],
    max_boxes_per_scale: int = DataConfig.max_boxes_per_scale,
    positive_iou: float = DataConfig.positive_iou,
    label_smoothing: float = DataConfig.label_smoothing,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The seed's encoder for any number of scales and anchors per scale (YOLOv3, -tiny, -spp).

    ``boxes``: ``(N, 5)`` x1, y1, x2, y2 in network-input pixels + class index.
    ``anchors_px``: per scale, ``(A_i, 2)`` anchor (w, h) in input pixels, ordered as ``strides``.
    Returns ``(labels, bboxes)``: per scale ``(S_i, S_i, A_i, 5 + C)`` float32 with
    ``S_i = input_size // stride_i``, and ``(max_boxes_per_scale, 4)`` float32 (cx, cy, w, h) px.
    """
    if len(anchors_px) != len(strides):
        raise ValueError(f"anchors: {len(anchors_px)} scales, strides: {len(strides)}; they must match")
    anchors = [np.asarray(a, dtype=np.float64).reshape(-1, 2) / s for a, s in zip(anchors_px, strides)]
    lay = _layout_of(input_size, anchors, strides)
    label_buf, list_buf = _encode_batch(
        [boxes], num_classes, lay, max_boxes_per_scale, positive_iou, label_smoothing
    )
    return _split_scales(label_buf, lay, None), list(list_buf[:, 0])


def preprocess_true_boxes(
    bboxes: np.ndarray,
    num_classes: int,
    input_size: int = 416,
    anchors: np.ndarray = SEED_ANCHORS,
    strides: Sequence[int] = STRIDES,
    max_boxes_per_scale: int = DataConfig.max_boxes_per_scale,
    positive_iou: float = DataConfig.positive_iou,
    label_smoothing: float = DataConfig.label_smoothing,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The seed's ``preprocess_true_boxes``, same arguments and output layout, for porting and comparing.

    ``bboxes``: ``(N, 5)`` x1, y1, x2, y2, class in network-input pixels (the letterboxed image).
    ``anchors``: ``(3, 3, 2)`` (w, h) in STRIDE units (the seed's ``yolo_anchors`` form), rows ordered
    as ``strides`` (8, 16, 32). Returns ``(label_sbbox, label_mbbox, label_lbbox, sbboxes, mbboxes,
    lbboxes)``: labels ``(S, S, 3, 5 + C)`` float32 for S = input_size / 8, / 16, / 32, each slot
    ``(cx, cy, w, h)`` px, objectness, smoothed one-hot; box lists ``(150, 4)`` float32 (cx, cy, w, h) px.
    Values equal the seed's loop cast to float32 (see the module docstring for the one deviation).
    """
    lay = _layout_of(input_size, np.asarray(anchors, dtype=np.float64), strides)
    label_buf, list_buf = _encode_batch(
        [bboxes], num_classes, lay, max_boxes_per_scale, positive_iou, label_smoothing
    )
    return (*_split_scales(label_buf, lay, None), *list_buf[:, 0])  # type: ignore[return-value]


__all__ = [
    "SEED_ANCHORS",
    "TargetEncoder",
    "encode_targets",
    "lazy_zeros",
    "preprocess_true_boxes",
]
