"""The seed's loss (``compute_loss``; ``docs/seed.md``, "Loss"), as a criterion separate from the model.

Per scale, with ``pred = decode(raw)`` and the seed's encoded targets:

    giou_loss = respond * (2 - w_gt * h_gt / input_size^2) * (1 - GIoU(pred_xywh, label_xywh))
    ignore    = max IoU(pred_xywh, any of the scale's listed GT boxes) >= ignore_iou
    conf_loss = (respond - conf)^2 * (respond + (1 - respond) * !ignore) * BCE(raw_conf, respond)
    prob_loss = respond * BCE(raw_classes, smoothed one-hot)

each summed over (H, W, A, .) per image, averaged over the batch, summed over the scales.

Where the seed divides 0 by 0 or overflows, this one does not, without changing ordinary values:
- everything runs in float32 (float64 stays float64) with autocast off, whatever the model ran in;
- ``t_w, t_h`` are clamped at ``WH_LOGIT_MAX`` before ``exp`` (``exp(30)`` times an anchor is far
  beyond any image; the seed's ``exp`` gives ``inf`` and then ``inf - inf``);
- IoU / GIoU get ``BOX_EPS`` on their denominators, so two empty boxes (zero-padded GT rows, zero
  width labels, collapsed predictions) give 0 instead of NaN; on boxes of a pixel or more the change
  is below 1e-9 relative;
- zero-padded rows of the 150-box lists are masked out of the ignore test explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yolov3.boxes import box_giou_xywh, box_iou_xywh
from yolov3.decode import decode

WH_LOGIT_MAX = 30.0
BOX_EPS = 1e-9
LOSS_TERMS = ("giou", "conf", "prob")


def _clamp_wh_logits(raw: Tensor, num_anchors: int) -> Tensor:
    """``(B, A * (5 + C), H, W)`` with channels ``t_w, t_h`` of every anchor clamped at WH_LOGIT_MAX."""
    b, ch, h, w = raw.shape
    r = raw.view(b, num_anchors, ch // num_anchors, h, w)
    r = torch.cat([r[:, :, :2], r[:, :, 2:4].clamp(max=WH_LOGIT_MAX), r[:, :, 4:]], dim=2)
    return r.view(b, ch, h, w)


@torch.no_grad()
def ignore_mask(pred_xywh: Tensor, gt_xywh: Tensor, threshold: float) -> Tensor:
    """``(B, H, W, A)`` bool: the prediction overlaps some listed GT box with IoU >= ``threshold``.

    ``pred_xywh``: ``(B, H, W, A, 4)``; ``gt_xywh``: ``(B, M, 4)`` (cx, cy, w, h) input pixels, rows
    of zeros are padding. Only the first ``k`` columns (the last non-empty row over the batch) are
    compared: padding contributes IoU 0 in the seed too, so the result is the same.
    """
    valid = gt_xywh.abs().sum(-1) > 0  # (B, M)
    if not bool(valid.any()):
        return torch.zeros(pred_xywh.shape[:-1], dtype=torch.bool, device=pred_xywh.device)
    k = int(valid.nonzero()[:, 1].max()) + 1
    gt, valid = gt_xywh[:, :k], valid[:, :k]
    iou = box_iou_xywh(pred_xywh.unsqueeze(-2), gt[:, None, None, None], eps=BOX_EPS)  # (B,H,W,A,k)
    iou = iou.masked_fill(~valid[:, None, None, None], 0.0)
    return iou.amax(dim=-1) >= threshold


def scale_loss(
    raw: Tensor, label: Tensor, gt_xywh: Tensor, anchors: Tensor, stride: int, ignore_iou: float
) -> dict[str, Tensor]:
    """The seed's ``compute_loss`` for one scale: giou, conf and prob terms, each a scalar.

    ``raw``: ``(B, A * (5 + C), H, W)`` logits as the model returns them; ``label``: ``(B, H, W, A,
    5 + C)`` (cx, cy, w, h input px, respond, smoothed one-hot); ``gt_xywh``: ``(B, M, 4)``;
    ``anchors``: ``(A, 2)`` input pixels. The input size is ``stride * H`` (by ``stride * W``).
    """
    num_anchors = anchors.shape[0]
    b, _, h, w = raw.shape
    logits = raw.view(b, num_anchors, -1, h, w).permute(0, 3, 4, 1, 2)  # (B, H, W, A, 5 + C)
    box_raw = _clamp_wh_logits(raw.view(b, num_anchors, -1, h, w)[:, :, :5].reshape(b, -1, h, w), num_anchors)
    pred = decode(box_raw, anchors, stride)  # (B, H, W, A, 5): decoded box and conf only
    pred_xywh, pred_conf = pred[..., 0:4], pred[..., 4:5]
    respond = label[..., 4:5]

    # Background anchors: every anchor counts, so these terms are computed densely.
    background = ~ignore_mask(pred_xywh, gt_xywh, ignore_iou)
    respond_bgd = (1.0 - respond) * background.unsqueeze(-1).to(respond.dtype)
    conf_focal = (respond - pred_conf) ** 2
    conf_bce = F.binary_cross_entropy_with_logits(logits[..., 4:5], respond, reduction="none")
    conf_loss = conf_focal * (respond + respond_bgd) * conf_bce

    # GIoU and class terms are multiplied by ``respond``: only the responsible anchors (a few per
    # box) contribute, so they are gathered first. Same sum as the seed's dense product.
    pos = respond[..., 0] != 0  # (B, H, W, A)
    r = respond[pos]  # (P, 1)
    label_pos, pred_pos, logits_pos = label[pos], pred_xywh[pos], logits[pos]  # (P, .)
    giou = box_giou_xywh(pred_pos, label_pos[:, 0:4], eps=BOX_EPS).unsqueeze(-1)  # (P, 1)
    input_area = float(stride * h) * float(stride * w)
    bbox_loss_scale = 2.0 - label_pos[:, 2:3] * label_pos[:, 3:4] / input_area
    giou_loss = r * bbox_loss_scale * (1.0 - giou)
    prob_loss = r * F.binary_cross_entropy_with_logits(logits_pos[:, 5:], label_pos[:, 5:], reduction="none")
    # per-image sums averaged over the batch == total sum / B
    return {"giou": giou_loss.sum() / b, "conf": conf_loss.sum() / b, "prob": prob_loss.sum() / b}


class YoloLoss(nn.Module):
    """The seed's three-scale loss: ``forward(raws, labels, bboxes) -> {giou, conf, prob, total}``.

    ``raws``: the model's maps, ordered as ``strides`` (8, 16, 32), ``(B, A * (5 + C), H_i, W_i)``;
    ``labels``: per scale ``(B, H_i, W_i, A, 5 + C)``; ``bboxes``: per scale ``(B, M, 4)`` (cx, cy,
    w, h) input pixels, zero rows are padding (M = 150 in the seed). Each term is a scalar, summed per
    image, averaged over the batch, summed over scales; ``total`` is their sum (the seed's weights,
    all 1). Computed in float32 (float64 inputs stay float64) with autocast disabled.
    """

    def __init__(
        self,
        anchors: Sequence[Sequence[Sequence[float]]],
        strides: Sequence[int],
        num_classes: int,
        ignore_iou: float = 0.5,
    ) -> None:
        super().__init__()
        if len(anchors) != len(strides):
            raise ValueError(f"{len(anchors)} anchor rows for {len(strides)} strides")
        self.anchors = [torch.as_tensor(a, dtype=torch.float64) for a in anchors]  # (A, 2) each
        self.strides = [int(s) for s in strides]
        self.num_classes = num_classes
        self.ignore_iou = ignore_iou

    def forward(
        self, raws: Sequence[Tensor], labels: Sequence[Tensor], bboxes: Sequence[Tensor]
    ) -> dict[str, Tensor]:
        if not (len(raws) == len(labels) == len(bboxes) == len(self.strides)):
            raise ValueError(
                f"expected {len(self.strides)} scales, got {len(raws)} maps, {len(labels)} labels, "
                f"{len(bboxes)} box lists"
            )
        dtype = torch.promote_types(raws[0].dtype, torch.float32)
        terms = dict.fromkeys(LOSS_TERMS, 0.0)
        with torch.autocast(raws[0].device.type, enabled=False):
            for raw, label, boxes, anchors, stride in zip(raws, labels, bboxes, self.anchors, self.strides):
                self._check(raw, label, anchors)
                one = scale_loss(
                    raw.to(dtype),
                    label.to(device=raw.device, dtype=dtype),
                    boxes.to(device=raw.device, dtype=dtype),
                    anchors.to(device=raw.device, dtype=dtype),
                    stride,
                    self.ignore_iou,
                )
                for k in LOSS_TERMS:
                    terms[k] = terms[k] + one[k]
        terms["total"] = terms["giou"] + terms["conf"] + terms["prob"]
        return terms

    def _check(self, raw: Tensor, label: Tensor, anchors: Tensor) -> None:
        b, ch, h, w = raw.shape
        a, c = anchors.shape[0], self.num_classes
        if ch != a * (5 + c) or tuple(label.shape) != (b, h, w, a, 5 + c):
            raise ValueError(
                f"map {tuple(raw.shape)} / label {tuple(label.shape)} do not match {a} anchors and "
                f"{c} classes: expected (B, {a * (5 + c)}, H, W) and (B, H, W, {a}, {5 + c})"
            )
