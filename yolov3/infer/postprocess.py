"""Raw head maps -> final detections per image: score, threshold, NMS, undo the letterbox.

The seed's detection path (``docs/seed.md``, "Detection"), batched and on the maps' device, with the
thresholds of an ``InferConfig`` (``yolov3.config``; defaults: the seed's):

1. decode (the seed's ``decode``, ``yolov3.decode``); score = conf * prob[argmax prob] (or, with
   ``multi_label``, one candidate per class whose conf * prob passes);
2. keep score > ``conf_threshold`` (strict, as the seed);
3. (cx, cy, w, h) -> (x1, y1, x2, y2), undo the letterbox, clip to the image, drop boxes with no area;
4. class-aware NMS: greedy at IoU > ``iou_threshold`` (the seed's ``nms(method="nms")``;
   ``torchvision.ops.nms`` with (image, class) groups shifted apart, as ``batched_nms`` does),
   Gaussian soft-NMS (the seed's ``method="soft-nms"``, sigma 0.3) or DIoU-NMS; then at most
   ``max_det`` boxes per image, highest score first.

Deliberate differences from the seed's ``postprocess_boxes`` (documented, tested for their size):

* Undoing the letterbox uses the exact inverse of the forward transform (``Letterbox``: integer
  padding ``(in - int(scale * w)) // 2``), where the seed subtracts the float padding
  ``(in - scale * w) / 2``. With ``k = in - int(scale * w)`` and ``f = scale * w - int(scale * w)``
  the two paddings differ by ``(k mod 2) / 2 - f / 2``: at most half an input pixel, so the seed's
  boxes sit up to ``0.5 / scale`` original pixels off ours (0 when ``scale * w`` is whole and ``k``
  even, e.g. every square image, or 640x480 at 416).
* Boxes are clipped to ``[0, w] x [0, h]`` (continuous pixel coordinates, as torchvision and COCO),
  not to ``[0, w - 1] x [0, h - 1]`` (pixel indices, as the seed).
* Soft-NMS drops boxes whose decayed score falls to ``conf_threshold`` or below; the seed keeps every
  box with a score above 0. Above the threshold both return the same boxes and scores.

Only the candidates whose objectness passes the threshold are decoded: ``score <= conf`` because
class probabilities are sigmoids (<= 1), so this changes no result and skips most of the work.

Exported files that decode or run NMS themselves (``yolov3.export.heads``) enter later:
``postprocess_decoded`` takes ``(B, N, 5 + C)`` decoded rows at step 1, ``postprocess_nms`` the
``(K, 7)`` detections of an in-graph NMS after step 4 (their boxes still in input pixels: the
letterbox is undone, boxes clipped, then the ``conf_threshold``, ``classes`` and ``max_det`` of the
settings applied on top of what the graph kept). ``postprocess_outputs`` picks one by output kind.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torchvision
from torch import Tensor

from yolov3.boxes import Letterbox, box_area, box_convert
from yolov3.config import InferConfig
from yolov3.decode import decode_cells
from yolov3.infer.results import Detections

SEED_SETTINGS = InferConfig()
SOFT_NMS_SIGMA = 0.3  # the seed's Gaussian soft-NMS width


def select_candidates(
    raws: Sequence[Tensor],
    anchors: Sequence[Sequence[Sequence[float]]],
    strides: Sequence[int],
    conf_threshold: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Decode the anchors whose objectness > ``conf_threshold`` only.

    Returns ``image_index (K,)`` int64, ``boxes (K, 4)`` float32 ``(x1, y1, x2, y2)`` network-input px,
    ``conf (K,)`` and ``probs (K, C)`` — the rows of ``yolov3.decode.decode_all`` whose conf passes
    (the same function, ``yolov3.decode.decode_cells``, on the selected rows).
    """
    rows, meta = [], []  # per scale: selected raw rows (K_s, 5 + C); (K_s, 6) image, x, y, aw, ah, stride
    for raw, scale_anchors, stride in zip(raws, anchors, strides, strict=True):
        b, ch, h, w = raw.shape
        na = len(scale_anchors)
        p = raw.view(b, na, ch // na, h, w)  # (B, A, 5 + C, H, W), a view: no copy
        bi, ai, yi, xi = torch.nonzero(torch.sigmoid(p[:, :, 4].float()) > conf_threshold, as_tuple=True)
        rows.append(p[bi, ai, :, yi, xi].float())  # (K_s, 5 + C)
        anchor_wh = _anchor_table(scale_anchors, stride, raw.device)[ai]  # (K_s, 3): aw, ah, stride
        meta.append(torch.cat([torch.stack([bi, xi, yi], dim=1).float(), anchor_wh], dim=1))
    meta = torch.cat(meta)
    decoded = decode_cells(torch.cat(rows), meta[:, 1:3], meta[:, 3:5], meta[:, 5:6])  # (K, 5 + C)
    boxes = box_convert(decoded[:, :4], "cxcywh", "xyxy")
    return meta[:, 0].long(), boxes, decoded[:, 4], decoded[:, 5:]


@functools.lru_cache(maxsize=64)
def _anchor_table_cached(anchors: tuple, stride: int, device: torch.device) -> Tensor:
    return torch.tensor([[w, h, stride] for w, h in anchors], dtype=torch.float32, device=device)


def _anchor_table(anchors: Sequence[Sequence[float]], stride: int, device: torch.device) -> Tensor:
    """``(A, 3)`` anchor w, h (input px) and the stride, built once per (anchors, device)."""
    return _anchor_table_cached(tuple((float(w), float(h)) for w, h in anchors), int(stride), device)


def _scores(
    conf: Tensor, probs: Tensor, conf_threshold: float, multi_label: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """``(rows, scores, classes)`` of the candidate/class pairs whose score > ``conf_threshold``."""
    if multi_label:
        all_scores = conf[:, None] * probs  # (K, C)
        rows, classes = torch.nonzero(all_scores > conf_threshold, as_tuple=True)
        return rows, all_scores[rows, classes], classes
    best, classes = probs.max(dim=1)  # the seed: class = argmax prob, score = conf * prob[class]
    scores = conf * best
    rows = torch.nonzero(scores > conf_threshold, as_tuple=True)[0]
    return rows, scores[rows], classes[rows]


def _to_original(
    boxes: Tensor,
    image_index: Tensor,
    letterboxes: Sequence[Letterbox] | None,
    image_sizes: Sequence[tuple[int, int]] | None,
    input_size: tuple[int, int],
) -> Tensor:
    """Undo each image's letterbox (``Letterbox.boxes_to_original``) and clip to its ``(w, h)``."""
    if letterboxes is not None:
        geo = boxes.new_tensor([[lb.pad_x, lb.pad_y, lb.scale] for lb in letterboxes])[image_index]
        offset = geo[:, [0, 1, 0, 1]]
        boxes = (boxes - offset) / geo[:, 2:3]
    if image_sizes is None:
        image_sizes = [input_size]
        image_index = torch.zeros_like(image_index)
    limit = boxes.new_tensor([[w, h, w, h] for w, h in image_sizes])[image_index]  # (K, 4)
    return torch.minimum(boxes.clamp(min=0.0), limit)


def soft_nms(
    boxes: Tensor, scores: Tensor, sigma: float = SOFT_NMS_SIGMA, score_threshold: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Gaussian soft-NMS (Bodla et al. 2017; the seed's ``nms(method="soft-nms")``) over one group.

    Repeatedly keeps the highest-scoring box and multiplies every remaining score by
    ``exp(-IoU^2 / sigma)``; boxes whose score falls to ``score_threshold`` or below are dropped.
    Returns ``(kept indices, their decayed scores)`` in the order kept (scores non-increasing).
    Callers separate classes by offsetting boxes (IoU 0 across classes leaves scores unchanged).
    """
    # A sequential loop over few boxes: NumPy's per-call cost is a fraction of torch's.
    b = boxes.detach().double().cpu().numpy()
    s = scores.detach().double().cpu().numpy().copy()
    area = box_area(b)
    alive = np.flatnonzero(s > score_threshold)
    keep, kept_scores = [], []
    while alive.size:
        i = int(np.argmax(s[alive]))
        best = alive[i]
        keep.append(best)
        kept_scores.append(s[best])
        alive = np.delete(alive, i)
        lt = np.maximum(b[best, :2], b[alive, :2])
        rb = np.minimum(b[best, 2:], b[alive, 2:])
        inter = np.prod(np.clip(rb - lt, 0.0, None), axis=1)
        iou = inter / (area[best] + area[alive] - inter)
        s[alive] *= np.exp(-(iou * iou) / sigma)
        alive = alive[s[alive] > score_threshold]
    keep_t = torch.as_tensor(np.array(keep, dtype=np.int64), device=scores.device)
    return keep_t, torch.as_tensor(np.array(kept_scores, dtype=np.float32), device=scores.device)


def diou_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS that suppresses by Distance-IoU (Zheng et al. 2020): a box goes when
    ``IoU - d^2 / c^2 > iou_threshold`` with the kept one (d: centre distance, c: enclosing diagonal).
    Returns kept indices, highest score first."""
    order = torch.argsort(scores, descending=True)
    diou = torchvision.ops.distance_box_iou(boxes[order], boxes[order]).cpu()  # (K, K)
    over = (diou > iou_threshold).numpy()
    suppressed = [False] * len(order)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in over[i, i + 1 :].nonzero()[0]:
            suppressed[i + 1 + j] = True
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]


NMS_CHUNK = 128  # boxes per torchvision.ops.nms call when groups are packed together


def greedy_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS within each group (``batched_nms`` semantics); kept indices, highest score first.

    torchvision's CPU kernel costs O(n^2) in the boxes of one call, plus a fixed cost per call, and
    boxes of different groups never suppress each other. So whole groups are packed into calls of
    about ``NMS_CHUNK`` boxes, shifted apart within a call (the ``batched_nms`` trick, in float64 so
    the shift loses no precision): few calls for a few boxes, no quadratic blow-up for many.
    """
    if boxes.shape[0] <= NMS_CHUNK:
        return torchvision.ops.nms(_offset_by_group(boxes, groups), scores.double(), iou_threshold)
    order = torch.argsort(groups, stable=True)
    counts = torch.unique_consecutive(groups[order], return_counts=True)[1].tolist()
    bounds, start, size = [0], 0, 0
    for c in counts:
        if size and size + c > NMS_CHUNK:
            bounds.append(start)
            size = 0
        size, start = size + c, start + c
    bounds.append(start)
    keep = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        keep.append(idx[torchvision.ops.nms(_offset_by_group(boxes[idx], groups[idx]), scores[idx].double(),
                                             iou_threshold)])  # fmt: skip
    keep_t = torch.cat(keep)
    return keep_t[torch.argsort(scores[keep_t], descending=True, stable=True)]


def _offset_by_group(boxes: Tensor, groups: Tensor) -> Tensor:
    """Shift each group's boxes far apart so IoU across groups is 0 (torchvision's batched trick)."""
    boxes = boxes.double()  # float64: offsets up to B * C * span must not blur the IoU
    if not boxes.numel():
        return boxes
    span = boxes.max() + 1.0
    return boxes + (groups.to(boxes.dtype) * span)[:, None]


def decoded_candidates(decoded: Tensor, conf_threshold: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``select_candidates`` for decoded rows ``(B, N, 5 + C)`` (``(cx, cy, w, h)`` input pixels,
    sigmoid objectness and class probabilities, as ``yolov3.decode.decode_all`` gives them)."""
    bi, ni = torch.nonzero(decoded[..., 4] > conf_threshold, as_tuple=True)
    sel = decoded[bi, ni].float()  # (K, 5 + C)
    return bi, box_convert(sel[:, :4], "cxcywh", "xyxy"), sel[:, 4], sel[:, 5:]


def _check_batch(batch: int, letterboxes: Sequence[Letterbox] | None,
                 image_sizes: Sequence[tuple[int, int]] | None) -> None:  # fmt: skip
    if letterboxes is not None and len(letterboxes) != batch:
        raise ValueError(f"{len(letterboxes)} letterboxes for a batch of {batch} images")
    if letterboxes is not None and image_sizes is None:
        raise ValueError("image_sizes (w, h) are needed with letterboxes, to clip boxes to each image")


def postprocess(
    raws: Sequence[Tensor],
    anchors: Sequence[Sequence[Sequence[float]]],
    strides: Sequence[int],
    letterboxes: Sequence[Letterbox] | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    settings: InferConfig = SEED_SETTINGS,
) -> list[Detections]:
    """Raw maps of a batch -> one ``Detections`` per image (see the module docstring), tensors on the
    maps' device.

    ``raws``: the model's output, ``(B, A * (5 + C), H_s, W_s)`` per scale; ``anchors`` per scale in
    input pixels; ``letterboxes`` / ``image_sizes`` (``(w, h)``): one per image, to return boxes in
    original pixels; without them boxes stay in input pixels, clipped to the input. ``settings``:
    ``conf_threshold``, ``iou_threshold``, ``nms``, ``multi_label``, ``classes`` and ``max_det`` are
    read (the input size is the maps' own).
    """
    batch = raws[0].shape[0]
    _check_batch(batch, letterboxes, image_sizes)
    input_size = (raws[0].shape[3] * strides[0], raws[0].shape[2] * strides[0])
    candidates = select_candidates(raws, anchors, strides, settings.conf_threshold)
    return _detections(*candidates, batch, letterboxes, image_sizes, input_size, settings)


def postprocess_decoded(
    decoded: Tensor,
    input_size: tuple[int, int],
    letterboxes: Sequence[Letterbox] | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    settings: InferConfig = SEED_SETTINGS,
) -> list[Detections]:
    """``postprocess`` for a decoded export's ``(B, N, 5 + C)`` output; ``input_size``: ``(w, h)`` of
    the network input (decoded rows do not say it)."""
    _check_batch(decoded.shape[0], letterboxes, image_sizes)
    candidates = decoded_candidates(decoded, settings.conf_threshold)
    return _detections(*candidates, decoded.shape[0], letterboxes, image_sizes, input_size, settings)


def postprocess_nms(
    rows: Tensor,
    batch: int,
    input_size: tuple[int, int],
    letterboxes: Sequence[Letterbox] | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    settings: InferConfig = SEED_SETTINGS,
) -> list[Detections]:
    """An in-graph NMS export's ``(K, 7)`` rows ``[batch_index, x1, y1, x2, y2, score, class]`` (input
    pixels) -> one ``Detections`` per image: letterbox undone, clipped, then ``settings``'
    ``conf_threshold``, ``classes`` and ``max_det`` on top of the graph's own (its IoU is the graph's)."""
    _check_batch(batch, letterboxes, image_sizes)
    rows = rows.float()
    keep = rows[:, 5] > settings.conf_threshold
    labels = rows[:, 6].long()
    if settings.classes is not None:
        keep &= torch.isin(labels, torch.as_tensor(settings.classes, device=labels.device))
    rows, labels = rows[keep], labels[keep]
    image_index = rows[:, 0].long()
    boxes = _to_original(rows[:, 1:5], image_index, letterboxes, image_sizes, input_size)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    order = torch.argsort(rows[valid, 5], descending=True, stable=True)
    return _split(image_index[valid][order], boxes[valid][order], rows[valid, 5][order], labels[valid][order],
                  batch, image_sizes, input_size, settings.max_det)  # fmt: skip


def postprocess_outputs(
    outputs: Sequence[Tensor],
    kind: str,
    anchors: Sequence[Sequence[Sequence[float]]],
    strides: Sequence[int],
    batch: int,
    input_size: tuple[int, int],
    letterboxes: Sequence[Letterbox] | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    settings: InferConfig = SEED_SETTINGS,
) -> list[Detections]:
    """A backend's ``outputs`` of ``kind`` raw | decoded | nms -> one ``Detections`` per image."""
    if kind == "raw":
        return postprocess(outputs, anchors, strides, letterboxes, image_sizes, settings)
    if kind == "decoded":
        return postprocess_decoded(outputs[0], input_size, letterboxes, image_sizes, settings)
    if kind == "nms":
        return postprocess_nms(outputs[0], batch, input_size, letterboxes, image_sizes, settings)
    raise ValueError(f"output kind {kind!r}: expected raw, decoded or nms")


def _detections(
    image_index: Tensor,
    boxes: Tensor,
    conf: Tensor,
    probs: Tensor,
    batch: int,
    letterboxes: Sequence[Letterbox] | None,
    image_sizes: Sequence[tuple[int, int]] | None,
    input_size: tuple[int, int],
    settings: InferConfig,
) -> list[Detections]:
    """Steps 1 (scores) to 4 of the module docstring on decoded candidates."""
    rows, scores, labels = _scores(conf, probs, settings.conf_threshold, settings.multi_label)
    keep = torch.ones_like(rows, dtype=torch.bool)
    if settings.classes is not None:
        keep = torch.isin(labels, torch.as_tensor(settings.classes, device=labels.device))
    image_index, boxes = image_index[rows][keep], boxes[rows][keep]
    scores, labels = scores[keep], labels[keep]
    boxes = _to_original(boxes, image_index, letterboxes, image_sizes, input_size)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    image_index, boxes, scores, labels = image_index[valid], boxes[valid], scores[valid], labels[valid]
    groups = image_index * probs.shape[1] + labels  # class-aware, and images never suppress each other
    keep, scores = _suppress(boxes, scores, groups, settings)
    image_index, boxes, scores, labels = image_index[keep], boxes[keep], scores[keep], labels[keep]
    return _split(image_index, boxes, scores, labels, batch, image_sizes, input_size, settings.max_det)


def _split(image_index: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor, batch: int,
           image_sizes: Sequence[tuple[int, int]] | None, input_size: tuple[int, int], max_det: int
           ) -> list[Detections]:  # fmt: skip
    """Rows in decreasing score -> one ``Detections`` per image, at most ``max_det`` each."""
    # split by image keeping the score order (one stable sort, not a search per image)
    order = torch.argsort(image_index, stable=True)
    counts = torch.bincount(image_index, minlength=batch).tolist()
    boxes, scores, labels = boxes[order], scores[order], labels[order]
    out, start = [], 0
    sizes = image_sizes or [input_size] * batch
    for n, (w, h) in zip(counts, sizes):
        m = min(n, max_det)
        out.append(Detections(boxes[start : start + m], scores[start : start + m], labels[start : start + m],
                              width=int(w), height=int(h)))  # fmt: skip
        start += n
    return out


def _suppress(boxes: Tensor, scores: Tensor, groups: Tensor, settings: InferConfig) -> tuple[Tensor, Tensor]:
    """``(kept indices highest score first, scores)`` after ``settings.nms`` within each group;
    soft-NMS returns its decayed scores."""
    if settings.nms == "greedy":
        return greedy_nms(boxes, scores, groups, settings.iou_threshold), scores
    if settings.nms == "diou":
        return diou_nms(_offset_by_group(boxes, groups), scores, settings.iou_threshold), scores
    shifted = _offset_by_group(boxes, groups)
    keep, kept_scores = soft_nms(shifted, scores, SOFT_NMS_SIGMA, settings.conf_threshold)
    scores = scores.clone()
    scores[keep] = kept_scores.to(scores.dtype)
    return keep, scores
