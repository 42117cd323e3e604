"""Box formats, IoU / GIoU and the letterbox geometry.

One public box format, as torchvision: ``(x1, y1, x2, y2)`` in absolute pixels. The seed works in
``(cx, cy, w, h)``; the two converters here are the only place the formats change. Functions take
NumPy arrays or torch tensors where noted and broadcast over leading dimensions, like the seed's
``bbox_iou`` / ``bbox_giou``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def box_xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(..., 4)`` centre / size -> corners, same units."""
    xy, wh = boxes[..., :2], boxes[..., 2:4]
    return torch.cat([xy - wh * 0.5, xy + wh * 0.5], dim=-1)


def box_xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``(..., 4)`` corners -> centre / size, same units."""
    return torch.cat([(boxes[..., :2] + boxes[..., 2:4]) * 0.5, boxes[..., 2:4] - boxes[..., :2]], dim=-1)


def box_iou_xywh(boxes1: Tensor, boxes2: Tensor, eps: float = 0.0) -> Tensor:
    """IoU of ``(..., 4)`` centre/size boxes, broadcast elementwise (the seed's ``bbox_iou``).

    ``eps`` is added to the union; 0 reproduces the seed exactly (and divides by zero for two
    empty boxes, as the seed does).
    """
    area1 = boxes1[..., 2] * boxes1[..., 3]
    area2 = boxes2[..., 2] * boxes2[..., 3]
    b1, b2 = box_xywh_to_xyxy(boxes1), box_xywh_to_xyxy(boxes2)
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
    b1, b2 = box_xywh_to_xyxy(boxes1), box_xywh_to_xyxy(boxes2)
    b1 = torch.cat([torch.minimum(b1[..., :2], b1[..., 2:]), torch.maximum(b1[..., :2], b1[..., 2:])], -1)
    b2 = torch.cat([torch.minimum(b2[..., :2], b2[..., 2:]), torch.maximum(b2[..., :2], b2[..., 2:])], -1)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
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
