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

from collections.abc import Sequence

import numpy as np

# The seed's anchors in stride units, one row per scale (stride 8, 16, 32); SEED_NOTES.
SEED_ANCHORS = np.array(
    [
        [[1.25, 1.625], [2.0, 3.75], [4.125, 2.875]],
        [[1.875, 3.8125], [3.875, 2.8125], [3.6875, 7.4375]],
        [[3.625, 2.8125], [4.875, 6.1875], [11.65625, 10.1875]],
    ]
)
SEED_STRIDES = (8, 16, 32)


def _check_boxes(bboxes: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``(N, 5)`` boxes into coordinates (dtype kept, as the seed computes in it) and int classes."""
    bboxes = np.asarray(bboxes)
    if bboxes.size == 0:
        bboxes = bboxes.reshape(0, 5)
    if bboxes.ndim != 2 or bboxes.shape[1] != 5:
        raise ValueError(f"boxes: expected shape (N, 5) x1, y1, x2, y2, class; got {bboxes.shape}")
    coor = bboxes[:, :4]
    if not np.issubdtype(coor.dtype, np.floating):
        coor = coor.astype(np.int64)
    classes = bboxes[:, 4].astype(np.int64)
    bad = (classes < 0) | (classes >= num_classes) | (bboxes[:, 4] != classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"boxes[{i}]: class {bboxes[i, 4].item()!r} is not an integer in [0, {num_classes})")
    return coor, classes


def _iou_seed(box: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """The seed's ``bbox_iou`` on ``(..., 4)`` centre/size float64 arrays, same operation order."""
    area1 = box[..., 2] * box[..., 3]
    area2 = anchors[..., 2] * anchors[..., 3]
    b1 = np.concatenate([box[..., :2] - box[..., 2:] * 0.5, box[..., :2] + box[..., 2:] * 0.5], axis=-1)
    b2 = np.concatenate(
        [anchors[..., :2] - anchors[..., 2:] * 0.5, anchors[..., :2] + anchors[..., 2:] * 0.5], axis=-1
    )
    left_up = np.maximum(b1[..., :2], b2[..., :2])
    right_down = np.minimum(b1[..., 2:], b2[..., 2:])
    inter = np.maximum(right_down - left_up, 0.0)
    inter_area = inter[..., 0] * inter[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):  # two empty boxes: NaN, as the seed
        return inter_area / (area1 + area2 - inter_area)


def _last_writer(keys: np.ndarray) -> np.ndarray:
    """Positions of the last occurrence of each distinct key (``keys`` in write order)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    return order[last]


def _encode(
    bboxes: np.ndarray,
    num_classes: int,
    input_size: int,
    anchors: Sequence[np.ndarray],
    strides: Sequence[int],
    max_bbox_per_scale: int,
    iou_threshold: float,
    smoothing: float,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Core of the encoder; ``anchors`` per scale ``(A_i, 2)`` in stride units (the seed's form)."""
    coor, classes = _check_boxes(bboxes, num_classes)
    n = len(coor)
    # (N, 4) centre/size in the input's dtype, as the seed (int boxes give float64).
    xywh = np.concatenate([(coor[:, 2:] + coor[:, :2]) * 0.5, coor[:, 2:] - coor[:, :2]], axis=-1)
    # (N, 5 + C) the row each positive slot receives: xywh, objectness 1, smoothed one-hot.
    onehot = np.zeros((n, num_classes))
    onehot[np.arange(n), classes] = 1.0
    rows = np.empty((n, 5 + num_classes), dtype=np.float32)
    rows[:, :4] = xywh
    rows[:, 4] = 1.0
    rows[:, 5:] = onehot * (1 - smoothing) + smoothing * np.full(num_classes, 1.0 / num_classes)

    cells, ious, positive = [], [], []
    for stride, anc in zip(strides, anchors):
        size = input_size // stride
        scaled = 1.0 * xywh.astype(np.float64) / stride  # (N, 4) stride units
        cell = np.clip(np.floor(scaled[:, :2]).astype(np.int32), 0, size - 1)  # (N, 2) x, y
        anc_xywh = np.empty((n, len(anc), 4))
        anc_xywh[:, :, :2] = (cell + 0.5)[:, None, :]
        anc_xywh[:, :, 2:] = anc
        iou = _iou_seed(scaled[:, None, :], anc_xywh)  # (N, A_i)
        cells.append(cell)
        ious.append(iou)
        positive.append(iou > iou_threshold)

    # Boxes with no positive anchor on any scale: the best anchor over the flattened IoUs.
    flat_iou = np.concatenate(ious, axis=1) if n else np.zeros((0, 1))
    none = ~np.concatenate(positive, axis=1).any(axis=1) if n else np.zeros(0, bool)
    best = np.argmax(flat_iou, axis=1)
    offset = 0
    for iou, pos in zip(ious, positive):
        a = iou.shape[1]
        fb = none & (best >= offset) & (best < offset + a)
        pos[np.flatnonzero(fb), best[fb] - offset] = True
        offset += a

    labels, boxlists = [], []
    for stride, anc, cell, pos in zip(strides, anchors, cells, positive):
        size, a = input_size // stride, len(anc)
        label = np.zeros((size, size, a, 5 + num_classes), dtype=np.float32)
        box_n, box_a = np.nonzero(pos)  # write order: box by box, anchors within a box
        slot = (cell[box_n, 1] * size + cell[box_n, 0]) * a + box_a
        keep = _last_writer(slot)
        label.reshape(-1, 5 + num_classes)[slot[keep]] = rows[box_n[keep]]

        boxlist = np.zeros((max_bbox_per_scale, 4), dtype=np.float32)
        hit = np.flatnonzero(pos.any(axis=1))  # each box counted once per scale
        ring = np.arange(len(hit)) % max_bbox_per_scale
        tail = slice(max(0, len(hit) - max_bbox_per_scale), None)  # later boxes overwrite the ring
        boxlist[ring[tail]] = rows[hit[tail], :4]
        labels.append(label)
        boxlists.append(boxlist)
    return labels, boxlists


def encode_targets(
    boxes: np.ndarray,
    num_classes: int,
    input_size: int,
    anchors_px: Sequence[Sequence[Sequence[float]]],
    strides: Sequence[int],
    max_bbox_per_scale: int = 150,
    iou_threshold: float = 0.3,
    smoothing: float = 0.01,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The seed's encoder for any number of scales and anchors per scale (YOLOv3, -tiny, -spp).

    ``boxes``: ``(N, 5)`` x1, y1, x2, y2 in network-input pixels + class index.
    ``anchors_px``: per scale, ``(A_i, 2)`` anchor (w, h) in input pixels, ordered as ``strides``.
    Returns ``(labels, bboxes)``: per scale ``(S_i, S_i, A_i, 5 + C)`` float32 with
    ``S_i = input_size // stride_i``, and ``(max_bbox_per_scale, 4)`` float32 (cx, cy, w, h) px.
    """
    if len(anchors_px) != len(strides):
        raise ValueError(f"anchors: {len(anchors_px)} scales, strides: {len(strides)}; they must match")
    anchors = [np.asarray(a, dtype=np.float64).reshape(-1, 2) / s for a, s in zip(anchors_px, strides)]
    return _encode(
        boxes, num_classes, input_size, anchors, strides, max_bbox_per_scale, iou_threshold, smoothing
    )


def preprocess_true_boxes(
    bboxes: np.ndarray,
    num_classes: int,
    input_size: int = 416,
    anchors: np.ndarray = SEED_ANCHORS,
    strides: Sequence[int] = SEED_STRIDES,
    max_bbox_per_scale: int = 150,
    iou_threshold: float = 0.3,
    smoothing: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The seed's ``preprocess_true_boxes``, same arguments and output layout, for porting and comparing.

    ``bboxes``: ``(N, 5)`` x1, y1, x2, y2, class in network-input pixels (the letterboxed image).
    ``anchors``: ``(3, 3, 2)`` (w, h) in STRIDE units (the seed's ``yolo_anchors`` form), rows ordered
    as ``strides`` (8, 16, 32). Returns ``(label_sbbox, label_mbbox, label_lbbox, sbboxes, mbboxes,
    lbboxes)``: labels ``(S, S, 3, 5 + C)`` float32 for S = input_size / 8, / 16, / 32, each slot
    ``(cx, cy, w, h)`` px, objectness, smoothed one-hot; box lists ``(150, 4)`` float32 (cx, cy, w, h) px.
    Values equal the seed's loop cast to float32 (see the module docstring for the one deviation).
    """
    anchors = [np.asarray(a, dtype=np.float64).reshape(-1, 2) for a in anchors]
    labels, boxlists = _encode(
        bboxes, num_classes, input_size, anchors, strides, max_bbox_per_scale, iou_threshold, smoothing
    )
    return (*labels, *boxlists)  # type: ignore[return-value]


__all__ = ["SEED_ANCHORS", "SEED_STRIDES", "encode_targets", "preprocess_true_boxes"]
