"""Box formats, IoU / GIoU and the letterbox geometry.

One public box format, as torchvision: ``(x1, y1, x2, y2)`` in absolute pixels. Other formats are
met at the edges: the seed and the loss work in centre / size, COCO and MOTChallenge files in top-left
corner / size, YOLO label files in centre / size divided by the image size, the tracker's Kalman
filter in centre / size. ``box_convert`` is the one place a box changes format; nothing else in the
package does that arithmetic (``tests/test_boxes.py`` checks it with a grep). Functions take NumPy
arrays or torch tensors where noted and broadcast over leading dimensions, like the seed's
``bbox_iou`` / ``bbox_giou``.

The seed calls centre / size ``xywh`` (hence ``box_iou_xywh`` / ``box_giou_xywh`` below, the seed's
``bbox_iou`` / ``bbox_giou``); ``box_convert`` names formats as torchvision does, where ``xywh`` is the
top-left corner and size and centre / size is ``cxcywh``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

# torch is imported only by the functions that take tensors: the data tools (synthetic data, labels)
# use box_convert on NumPy arrays and run before torch is installed (``make demo``)
Boxes = TypeVar("Boxes", np.ndarray, "Tensor")

# torchvision.ops.box_convert's names, each also normalised by the image size with an ``n`` suffix
# (``cxcywhn``: a YOLO label file's ``cx cy w h``; ultralytics' ``xywhn``).
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def box_convert(
    boxes: Boxes, in_fmt: str, out_fmt: str, size: tuple[float, float] | None = None
) -> Boxes:
    """``(..., 4)`` boxes from ``in_fmt`` to ``out_fmt``, NumPy or torch in, the same type out.

    Formats (torchvision's): ``xyxy`` corners, ``xywh`` top-left corner and size (COCO, MOTChallenge),
    ``cxcywh`` centre and size (the seed, the loss, the tracker's Kalman state). With an ``n`` suffix
    the coordinates are divided by the image ``size`` ``(width, height)`` (``cxcywhn``: YOLO labels).
    The arithmetic is torchvision's (``cx = (x1 + x2) / 2``, ``x1 = cx - w / 2``; halving is exact, so
    ``* 0.5`` and ``/ 2`` agree to the bit); normalising scales after the pixel-free conversion, so
    ``(x1 + x2) / 2 / width`` and ``(cx - w / 2) * width`` are what a hand-written line computes. Only
    torch ops on tensors: traceable into ONNX. The input is never modified; same-format calls copy.
    """
    in_base, in_norm = _parse_format(in_fmt)
    out_base, out_norm = _parse_format(out_fmt)
    if (in_norm or out_norm) and in_norm != out_norm and size is None:
        raise ValueError(f"box_convert {in_fmt} -> {out_fmt}: the image size (width, height) is needed")
    out = _from_xyxy(_to_xyxy(boxes, in_base), out_base) if in_base != out_base else _copy(boxes[..., :4])
    if in_norm and not out_norm:
        out = out * _scale(out, size)
    elif out_norm and not in_norm:
        out = out / _scale(out, size)
    return out


def _parse_format(fmt: str) -> tuple[str, bool]:
    base = fmt[:-1] if fmt.endswith("n") else fmt
    if base not in BOX_FORMATS:
        formats = ", ".join(f"{f} / {f}n" for f in BOX_FORMATS)
        raise ValueError(f"box format {fmt!r}: expected one of {formats}")
    return base, base != fmt


def _is_numpy(boxes: Boxes) -> bool:
    return isinstance(boxes, np.ndarray)


def _cat(parts: list, like: Boxes) -> Boxes:
    if _is_numpy(like):
        return np.concatenate(parts, axis=-1)
    import torch

    return torch.cat(parts, dim=-1)


def _copy(boxes: Boxes) -> Boxes:
    return np.array(boxes, copy=True) if _is_numpy(boxes) else boxes.clone()


def _scale(boxes: Boxes, size: tuple[float, float]) -> Boxes:
    """``(4,)`` ``(w, h, w, h)`` in the boxes' float dtype (NumPy would widen float32 by an int64 array)."""
    w, h = size
    if not _is_numpy(boxes):
        return boxes.new_tensor([w, h, w, h])
    return np.asarray([w, h, w, h], dtype=boxes.dtype if boxes.dtype.kind == "f" else np.float64)


def _to_xyxy(boxes: Boxes, fmt: str) -> Boxes:
    if fmt == "xyxy":
        return boxes[..., :4]
    xy, wh = boxes[..., :2], boxes[..., 2:4]
    if fmt == "xywh":
        return _cat([xy, xy + wh], boxes)
    half = wh * 0.5  # cxcywh
    return _cat([xy - half, xy + half], boxes)


def _from_xyxy(boxes: Boxes, fmt: str) -> Boxes:
    p1, p2 = boxes[..., :2], boxes[..., 2:4]
    if fmt == "xyxy":
        return boxes
    if fmt == "xywh":
        return _cat([p1, p2 - p1], boxes)
    return _cat([(p1 + p2) * 0.5, p2 - p1], boxes)  # cxcywh


def box_area(boxes: Boxes) -> Boxes:
    """``(..., 4)`` corners -> ``(...)`` areas ``(x2 - x1) * (y2 - y1)`` (torchvision's ``box_area``),
    NumPy or torch; negative where a box is inverted."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou_xywh(boxes1: Tensor, boxes2: Tensor, eps: float = 0.0) -> Tensor:
    """IoU of ``(..., 4)`` centre/size boxes, broadcast elementwise (the seed's ``bbox_iou``).

    ``eps`` is added to the union; 0 reproduces the seed exactly (and divides by zero for two
    empty boxes, as the seed does).
    """
    import torch

    area1 = boxes1[..., 2] * boxes1[..., 3]
    area2 = boxes2[..., 2] * boxes2[..., 3]
    b1, b2 = box_convert(boxes1, "cxcywh", "xyxy"), box_convert(boxes2, "cxcywh", "xyxy")
    left_up = torch.maximum(b1[..., :2], b2[..., :2])
    right_down = torch.minimum(b1[..., 2:], b2[..., 2:])
    inter = (right_down - left_up).clamp(min=0.0)
    inter_area = inter[..., 0] * inter[..., 1]
    return inter_area / (area1 + area2 - inter_area + eps)


def box_giou_xywh(boxes1: Tensor, boxes2: Tensor, eps: float = 0.0) -> Tensor:
    """Generalised IoU of ``(..., 4)`` centre/size boxes, broadcast elementwise (the seed's ``bbox_giou``).

    Corners are re-ordered with min/max first, as the seed does, so negative sizes are tolerated.
    ``eps`` guards the two divisions; 0 reproduces the seed exactly.
    """
    import torch

    b1, b2 = box_convert(boxes1, "cxcywh", "xyxy"), box_convert(boxes2, "cxcywh", "xyxy")
    b1 = torch.cat([torch.minimum(b1[..., :2], b1[..., 2:]), torch.maximum(b1[..., :2], b1[..., 2:])], -1)
    b2 = torch.cat([torch.minimum(b2[..., :2], b2[..., 2:]), torch.maximum(b2[..., :2], b2[..., 2:])], -1)
    area1, area2 = box_area(b1), box_area(b2)
    left_up = torch.maximum(b1[..., :2], b2[..., :2])
    right_down = torch.minimum(b1[..., 2:], b2[..., 2:])
    inter = (right_down - left_up).clamp(min=0.0)
    inter_area = inter[..., 0] * inter[..., 1]
    union = area1 + area2 - inter_area
    iou = inter_area / (union + eps)
    enclose = torch.maximum(b1[..., 2:], b2[..., 2:]) - torch.minimum(b1[..., :2], b2[..., :2])
    enclose = enclose.clamp(min=0.0)
    enclose_area = enclose[..., 0] * enclose[..., 1]
    return iou - (enclose_area - union) / (enclose_area + eps)


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``(width, height)`` was fitted into a square-or-not network input.

    ``docs/seed.md``, "Letterbox": ``scale = min(W_in / w, H_in / h)``, new size
    ``int(scale * w) x int(scale * h)``, pasted at ``((W_in - new_w) // 2, (H_in - new_h) // 2)``
    on a canvas of grey 128.
    """

    scale: float
    pad_x: int
    pad_y: int
    new_w: int
    new_h: int
    in_w: int
    in_h: int

    @classmethod
    def fit(cls, width: int, height: int, in_w: int, in_h: int | None = None) -> Letterbox:
        in_h = in_w if in_h is None else in_h
        scale = min(in_w / width, in_h / height)
        # at least 1 px: a 3 x 1000 image at 320 would resize to 0 rows (the seed crashes there)
        new_w, new_h = max(1, int(scale * width)), max(1, int(scale * height))
        return cls(scale, (in_w - new_w) // 2, (in_h - new_h) // 2, new_w, new_h, in_w, in_h)

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """``(N, >=4)`` x1, y1, x2, y2 in original pixels -> network-input pixels (extra columns kept)."""
        out = np.array(boxes, dtype=np.float64 if boxes.dtype == np.float64 else np.float32, copy=True)
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale + self.pad_y
        return out

    def boxes_to_original(self, boxes: Tensor) -> Tensor:
        """``(..., 4)`` x1, y1, x2, y2 in network-input pixels -> original-image pixels (not clipped)."""
        offset = boxes.new_tensor([self.pad_x, self.pad_y, self.pad_x, self.pad_y])
        return (boxes[..., :4] - offset) / self.scale
