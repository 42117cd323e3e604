"""Raw head maps -> boxes, confidence and class probabilities: the seed's ``decode``.

Input: one raw map ``(B, A * (5 + C), H, W)`` as the model returns it (channel ``a * (5 + C) + k``).
Output: ``(B, H, W, A, 5 + C)`` holding ``(cx, cy, w, h)`` in network-input pixels, then
``sigmoid(conf)``, then ``sigmoid(class logits)`` — the seed's layout and values:

    pred_xy = (sigmoid(t_xy) + grid) * stride
    pred_wh = exp(t_wh) * anchor          (anchor in input pixels = seed's anchor * stride)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def split_raw(raw: Tensor, num_anchors: int) -> Tensor:
    """``(B, A * (5 + C), H, W) -> (B, H, W, A, 5 + C)``, the seed's reshape of its NHWC map."""
    b, ch, h, w = raw.shape
    if ch % num_anchors:
        raise ValueError(f"map has {ch} channels, not a multiple of {num_anchors} anchors")
    return raw.view(b, num_anchors, ch // num_anchors, h, w).permute(0, 3, 4, 1, 2)


def decode(raw: Tensor, anchors: Tensor | Sequence[Sequence[float]], stride: int) -> Tensor:
    """Decode one scale. ``anchors``: ``(A, 2)`` widths and heights in input pixels."""
    anchors = torch.as_tensor(anchors, dtype=raw.dtype, device=raw.device)  # (A, 2)
    p = split_raw(raw, anchors.shape[0])  # (B, H, W, A, 5 + C)
    h, w = p.shape[1:3]
    ys, xs = torch.meshgrid(
        torch.arange(h, device=raw.device, dtype=raw.dtype),
        torch.arange(w, device=raw.device, dtype=raw.dtype),
        indexing="ij",
    )
    grid = torch.stack([xs, ys], dim=-1)[None, :, :, None, :]  # (1, H, W, 1, 2): (x, y)
    return decode_cells(p, grid, anchors, stride)  # anchors broadcast over (.., A, 2)


def decode_cells(t: Tensor, grid_xy: Tensor, anchor_wh: Tensor, stride: Tensor | int) -> Tensor:
    """The seed's formulas on raw rows ``t (..., 5 + C)``: ``(cx, cy, w, h)`` input pixels, sigmoid
    objectness, sigmoid class probabilities. ``grid_xy (..., 2)`` is each row's cell ``(x, y)``,
    ``anchor_wh (..., 2)`` its anchor in input pixels, ``stride`` a number or ``(..., 1)``; all broadcast
    against ``t``. ``decode`` passes whole maps, ``yolov3.infer.postprocess`` only the rows it keeps."""
    xy = (torch.sigmoid(t[..., 0:2]) + grid_xy) * stride
    wh = torch.exp(t[..., 2:4]) * anchor_wh
    return torch.cat([xy, wh, torch.sigmoid(t[..., 4:])], dim=-1)


def decode_all(
    raws: Sequence[Tensor], anchors: Sequence[Sequence[Sequence[float]]], strides: Sequence[int]
) -> Tensor:
    """Decode every scale and flatten: ``(B, N, 5 + C)`` with N = sum of H * W * A over scales
    (10,647 for YOLOv3 at 416), scales in the order given."""
    out = [decode(r, a, s).flatten(1, 3) for r, a, s in zip(raws, anchors, strides, strict=True)]
    return torch.cat(out, dim=1)
