"""YoloLoss against a literal NumPy transcription of the seed's bbox_iou, bbox_giou, decode and
compute_loss (``docs/seed.md``, "Loss"), plus the cases where the seed gives NaN / inf and we must not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from seed_reference import seed_bbox_iou, seed_preprocess_true_boxes

from yolov3.loss import YoloLoss
from yolov3.model import YOLOv3

STRIDES = np.array([8, 16, 32])
ANCHORS_PX = (
    np.array(
        [
            [[10, 13], [16, 30], [33, 23]],
            [[30, 61], [62, 45], [59, 119]],
            [[116, 90], [156, 198], [373, 326]],
        ],
        dtype=np.float64,
    )
    / 3.0
)  # smaller anchors so that a 128 px input has overlaps worth ignoring
IOU_LOSS_THRESH = 0.5


# ---------------------------------------------------------------- the seed, transcribed to NumPy
def seed_bbox_giou(boxes1, boxes2):
    boxes1 = np.concatenate(
        [boxes1[..., :2] - boxes1[..., 2:] * 0.5, boxes1[..., :2] + boxes1[..., 2:] * 0.5], -1
    )
    boxes2 = np.concatenate(
        [boxes2[..., :2] - boxes2[..., 2:] * 0.5, boxes2[..., :2] + boxes2[..., 2:] * 0.5], -1
    )
    boxes1 = np.concatenate(
        [np.minimum(boxes1[..., :2], boxes1[..., 2:]), np.maximum(boxes1[..., :2], boxes1[..., 2:])], -1
    )
    boxes2 = np.concatenate(
        [np.minimum(boxes2[..., :2], boxes2[..., 2:]), np.maximum(boxes2[..., :2], boxes2[..., 2:])], -1
    )
    boxes1_area = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    boxes2_area = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    left_up = np.maximum(boxes1[..., :2], boxes2[..., :2])
    right_down = np.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter_section = np.maximum(right_down - left_up, 0.0)
    inter_area = inter_section[..., 0] * inter_section[..., 1]
    union_area = boxes1_area + boxes2_area - inter_area
    iou = inter_area / union_area
    enclose_left_up = np.minimum(boxes1[..., :2], boxes2[..., :2])
    enclose_right_down = np.maximum(boxes1[..., 2:], boxes2[..., 2:])
    enclose = np.maximum(enclose_right_down - enclose_left_up, 0.0)
    enclose_area = enclose[..., 0] * enclose[..., 1]
    return iou - 1.0 * (enclose_area - union_area) / enclose_area


def seed_sigmoid_ce(labels, logits):  # tf.nn.sigmoid_cross_entropy_with_logits, its stable form
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def seed_decode(conv_nhwc, i, num_class):
    batch_size, output_size = conv_nhwc.shape[0], conv_nhwc.shape[1]
    conv_output = conv_nhwc.reshape(batch_size, output_size, output_size, 3, 5 + num_class)
    conv_raw_dxdy, conv_raw_dwdh = conv_output[..., 0:2], conv_output[..., 2:4]
    conv_raw_conf, conv_raw_prob = conv_output[..., 4:5], conv_output[..., 5:]
    y = np.tile(np.arange(output_size)[:, None], [1, output_size])
    x = np.tile(np.arange(output_size)[None, :], [output_size, 1])
    xy_grid = np.concatenate([x[:, :, None], y[:, :, None]], axis=-1)
    xy_grid = np.tile(xy_grid[None, :, :, None, :], [batch_size, 1, 1, 3, 1]).astype(np.float64)
    anchors = ANCHORS_PX[i] / STRIDES[i]  # the seed's ANCHORS are in stride units
    pred_xy = (sigmoid(conv_raw_dxdy) + xy_grid) * STRIDES[i]
    pred_wh = (np.exp(conv_raw_dwdh) * anchors) * STRIDES[i]
    return np.concatenate([pred_xy, pred_wh, sigmoid(conv_raw_conf), sigmoid(conv_raw_prob)], -1)


def seed_compute_loss(pred, conv, label, bboxes, i, num_class):
    batch_size, output_size = conv.shape[0], conv.shape[1]
    input_size = STRIDES[i] * output_size
    conv = conv.reshape(batch_size, output_size, output_size, 3, 5 + num_class)
    conv_raw_conf, conv_raw_prob = conv[..., 4:5], conv[..., 5:]
    pred_xywh, pred_conf = pred[..., 0:4], pred[..., 4:5]
    label_xywh, respond_bbox, label_prob = label[..., 0:4], label[..., 4:5], label[..., 5:]
    giou = np.expand_dims(seed_bbox_giou(pred_xywh, label_xywh), axis=-1)
    input_size = float(input_size)
    bbox_loss_scale = 2.0 - 1.0 * label_xywh[..., 2:3] * label_xywh[..., 3:4] / (input_size**2)
    giou_loss = respond_bbox * bbox_loss_scale * (1 - giou)
    iou = seed_bbox_iou(
        pred_xywh[:, :, :, :, np.newaxis, :], bboxes[:, np.newaxis, np.newaxis, np.newaxis, :, :]
    )
    max_iou = np.expand_dims(np.max(iou, axis=-1), axis=-1)
    respond_bgd = (1.0 - respond_bbox) * (max_iou < IOU_LOSS_THRESH).astype(np.float64)
    conf_focal = np.power(respond_bbox - pred_conf, 2)
    conf_loss = conf_focal * (
        respond_bbox * seed_sigmoid_ce(respond_bbox, conv_raw_conf)
        + respond_bgd * seed_sigmoid_ce(respond_bbox, conv_raw_conf)
    )
    prob_loss = respond_bbox * seed_sigmoid_ce(label_prob, conv_raw_prob)
    giou_loss = np.mean(np.sum(giou_loss, axis=(1, 2, 3, 4)))
    conf_loss = np.mean(np.sum(conf_loss, axis=(1, 2, 3, 4)))
    prob_loss = np.mean(np.sum(prob_loss, axis=(1, 2, 3, 4)))
    return giou_loss, conf_loss, prob_loss, int(((1.0 - respond_bbox) * (max_iou >= IOU_LOSS_THRESH)).sum())


# ---------------------------------------------------------------- helpers
def make_batch(rng, input_size=128, num_classes=3, boxes_per_image=(6, 0, 3)):
    """Seed-encoded labels for random boxes; image 1 is empty. Returns per-scale stacked arrays."""
    labels, bboxes = [[], [], []], [[], [], []]
    for n in boxes_per_image:
        wh = rng.uniform(6, min(70, input_size // 2), size=(n, 2))
        c = rng.uniform(wh / 2, input_size - wh / 2)
        rows = np.concatenate([c - wh / 2, c + wh / 2, rng.integers(0, num_classes, (n, 1))], 1)
        anchors = ANCHORS_PX / STRIDES[:, None, None]  # the seed's anchors are in stride units
        lab, bb = seed_preprocess_true_boxes(
            rows, num_classes, input_size, anchors, STRIDES, as_float32=False
        )
        for i in range(3):
            labels[i].append(lab[i])
            bboxes[i].append(bb[i])
    return [np.stack(x) for x in labels], [np.stack(x) for x in bboxes]


def make_raws(rng, labels, num_classes, scale=1.5, bboxes=None):
    """Random raw maps (NCHW, channel a*(5+C)+k). With ``bboxes``, every anchor of each listed GT
    box's cell predicts that box plus noise, so background anchors there meet the ignore rule."""
    raws = []
    for i, lab in enumerate(labels):
        b, s = lab.shape[0], lab.shape[1]
        raw = rng.normal(0.0, scale, size=(b, 3 * (5 + num_classes), s, s))
        for n, box in ((j, box) for j in range(b) for box in (bboxes[i][j] if bboxes else []) if box.any()):
            cell = np.floor(box[:2] / STRIDES[i]).astype(int)
            frac = np.clip(box[:2] / STRIDES[i] - cell, 0.05, 0.95)
            for a in range(3):
                ch = a * (5 + num_classes)
                raw[n, ch : ch + 2, cell[1], cell[0]] = np.log(frac / (1 - frac))
                tw = np.log(box[2:4] / ANCHORS_PX[i][a]) + rng.normal(0, 0.1, 2)
                raw[n, ch + 2 : ch + 4, cell[1], cell[0]] = tw
        raws.append(raw)
    return raws


def seed_total(raws, labels, bboxes, num_classes):
    out, ignored = np.zeros(3), 0
    for i, (raw, lab, bb) in enumerate(zip(raws, labels, bboxes)):
        conv = raw.transpose(0, 2, 3, 1)  # NCHW -> the seed's NHWC
        pred = seed_decode(conv, i, num_classes)
        *terms, n_ignored = seed_compute_loss(pred, conv, lab, bb, i, num_classes)
        out += terms
        ignored += n_ignored
    return out, ignored


def run_ours(raws, labels, bboxes, num_classes, dtype=torch.float64):
    crit = YoloLoss(ANCHORS_PX.tolist(), STRIDES.tolist(), num_classes, ignore_iou=IOU_LOSS_THRESH)
    t = [torch.as_tensor(r, dtype=dtype).requires_grad_(True) for r in raws]
    out = crit(t, [torch.as_tensor(x) for x in labels], [torch.as_tensor(x) for x in bboxes])
    return out, t


def assert_all_finite(out, raws):
    for k, v in out.items():
        assert torch.isfinite(v).all(), f"{k} = {v}"
    out["total"].backward()
    for r in raws:
        assert r.grad is not None and torch.isfinite(r.grad).all()


# ---------------------------------------------------------------- parity with the seed
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_seed_compute_loss_float64(seed):
    rng = np.random.default_rng(seed)
    num_classes = 3
    labels, bboxes = make_batch(rng, num_classes=num_classes)
    raws = make_raws(rng, labels, num_classes, bboxes=bboxes)
    ref, ignored = seed_total(raws, labels, bboxes, num_classes)
    assert ignored > 0, "test data must exercise the ignore rule"
    out, _ = run_ours(raws, labels, bboxes, num_classes)
    got = np.array([out["giou"].item(), out["conf"].item(), out["prob"].item()])
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert out["total"].item() == pytest.approx(ref.sum(), rel=1e-5)


def test_ignore_rule_changes_the_conf_term():
    """A background anchor whose box sits exactly on a listed GT box is not penalised; once the GT
    list is emptied it is. Guards against a mask that never fires (or always fires)."""
    rng = np.random.default_rng(5)
    labels, bboxes = make_batch(rng, boxes_per_image=(4,))
    raws = make_raws(rng, labels, 3, bboxes=bboxes)
    with_gt, _ = run_ours(raws, labels, bboxes, 3)
    no_list, _ = run_ours(raws, labels, [np.zeros_like(b) for b in bboxes], 3)
    ref_with, _ = seed_total(raws, labels, bboxes, 3)
    assert with_gt["conf"].item() < no_list["conf"].item()
    assert with_gt["conf"].item() == pytest.approx(ref_with[1], rel=1e-5)


def test_float32_close_to_seed():
    rng = np.random.default_rng(7)
    labels, bboxes = make_batch(rng)
    raws = make_raws(rng, labels, 3)
    ref, _ = seed_total(raws, labels, bboxes, 3)
    out, _ = run_ours(raws, labels, bboxes, 3, dtype=torch.float32)
    assert out["total"].dtype == torch.float32
    assert out["total"].item() == pytest.approx(ref.sum(), rel=1e-4)


def test_known_single_box_by_hand():
    """One GT box, the responsible prediction placed on it exactly: GIoU term 0, class term the BCE
    of the smoothed one-hot against the logits, computed here by hand."""
    num_classes = 2
    labels, bboxes = make_batch(np.random.default_rng(0), num_classes=num_classes, boxes_per_image=(0,))
    i, y, x, a = 2, 1, 2, 0  # stride 32 cell (x=2, y=1), anchor 0
    anchor = ANCHORS_PX[i][a]
    box = np.array([2.5 * 32, 1.5 * 32, anchor[0] * 2.0, anchor[1] * 0.5])
    labels[i][0, y, x, a, :4] = box
    labels[i][0, y, x, a, 4] = 1.0
    labels[i][0, y, x, a, 5:] = [0.995, 0.005]
    bboxes[i][0, 0] = box
    raws = [np.full((1, 3 * (5 + num_classes), s, s), -30.0) for s in (16, 8, 4)]  # confident background
    for k in range(3):
        raws[k][:, [a2 * 7 + 2 for a2 in range(3)] + [a2 * 7 + 3 for a2 in range(3)]] = 0.0
    ch = a * (5 + num_classes)
    raws[i][0, ch + 0, y, x] = 0.0  # sigmoid 0.5 -> centre of the cell
    raws[i][0, ch + 1, y, x] = 0.0
    raws[i][0, ch + 2, y, x] = np.log(2.0)
    raws[i][0, ch + 3, y, x] = np.log(0.5)
    raws[i][0, ch + 4, y, x] = 0.0  # conf 0.5
    raws[i][0, ch + 5, y, x] = 1.0
    raws[i][0, ch + 6, y, x] = -1.0
    out, _ = run_ours(raws, labels, bboxes, num_classes)
    assert out["giou"].item() == pytest.approx(0.0, abs=1e-9)
    expected_prob = seed_sigmoid_ce(np.array([0.995, 0.005]), np.array([1.0, -1.0])).sum()
    assert out["prob"].item() == pytest.approx(expected_prob, rel=1e-9)
    # responsible conf: (1 - 0.5)^2 * log(2); background anchors at -30 contribute ~1e-26 each
    assert out["conf"].item() == pytest.approx(0.25 * np.log(2.0), rel=1e-9)


# ---------------------------------------------------------------- never NaN, never inf
def test_empty_batch_is_finite_and_zero_for_giou_prob():
    labels, bboxes = make_batch(np.random.default_rng(0), boxes_per_image=(0, 0))
    raws = make_raws(np.random.default_rng(1), labels, 3)
    out, t = run_ours(raws, labels, bboxes, 3, dtype=torch.float32)
    assert out["giou"].item() == 0.0 and out["prob"].item() == 0.0 and out["conf"].item() > 0
    assert_all_finite(out, t)


def test_degenerate_gt_boxes_finite_where_seed_is_nan():
    """A zero-width, zero-height GT box against a prediction collapsed to a point: the seed's IoU
    is 0/0 (NaN); ours is finite with finite gradients."""
    rng = np.random.default_rng(3)
    labels, bboxes = make_batch(rng, boxes_per_image=(2,))
    raws = make_raws(rng, labels, 3)
    i = 0
    y, x, a = 3, 4, 1
    labels[i][0, y, x, a, :] = 0
    labels[i][0, y, x, a, :4] = [4.5 * 8, 3.5 * 8, 0.0, 0.0]
    labels[i][0, y, x, a, 4] = 1.0
    labels[i][0, y, x, a, 5] = 1.0
    bboxes[i][0, 5] = [4.5 * 8, 3.5 * 8, 0.0, 0.0]
    ch = a * 8
    raws[i][0, ch + 2 : ch + 4, y, x] = -200.0  # exp underflows to 0: a point prediction
    raws[i][0, ch : ch + 2, y, x] = 0.0  # at the cell centre, on the GT point
    with np.errstate(all="ignore"):
        ref, _ = seed_total(raws, labels, bboxes, 3)
    assert not np.isfinite(ref).all(), "the seed should fail here (else this test proves nothing)"
    for dtype in (torch.float64, torch.float32):
        out, t = run_ours(raws, labels, bboxes, 3, dtype=dtype)
        assert_all_finite(out, t)


def test_wh_logit_overflow_and_underflow_finite():
    rng = np.random.default_rng(4)
    labels, bboxes = make_batch(rng)
    raws = make_raws(rng, labels, 3)
    for r in raws:
        r[:, 2::8] = 200.0  # t_w: exp overflows float32 and float64
        r[:, 3::8] = -200.0  # t_h: exp underflows to 0 (zero-area predictions vs zero-padded rows)
    with np.errstate(all="ignore"):
        ref, _ = seed_total(raws, labels, bboxes, 3)
    assert not np.isfinite(ref).all()
    for dtype in (torch.float64, torch.float32):
        out, t = run_ours(raws, labels, bboxes, 3, dtype=dtype)
        assert_all_finite(out, t)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_raws_extreme_values_finite(half):
    rng = np.random.default_rng(6)
    labels, bboxes = make_batch(rng)
    raws = make_raws(rng, labels, 3, scale=1e4)  # logits near the top of the float16 range
    out, t = run_ours(raws, labels, bboxes, 3, dtype=half)
    assert out["total"].dtype == torch.float32
    assert_all_finite(out, t)


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16])
def test_model_under_cpu_autocast_loss_and_grads_finite(amp):
    torch.manual_seed(0)
    model = YOLOv3(3, width=0.125)
    labels, bboxes = make_batch(np.random.default_rng(8), input_size=96, boxes_per_image=(3, 0))
    crit = YoloLoss(ANCHORS_PX.tolist(), STRIDES.tolist(), 3)
    x = torch.rand(2, 3, 96, 96)
    with torch.autocast("cpu", dtype=amp):
        raws = model(x)
        out = crit(raws, [torch.as_tensor(v) for v in labels], [torch.as_tensor(v) for v in bboxes])
    assert out["total"].dtype == torch.float32 and torch.isfinite(out["total"])
    out["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bad_shapes_are_named():
    crit = YoloLoss(ANCHORS_PX.tolist(), STRIDES.tolist(), 3)
    raws = [torch.zeros(1, 24, s, s) for s in (8, 4, 2)]
    labels = [torch.zeros(1, s, s, 3, 9) for s in (8, 4, 2)]  # 4 classes' worth
    with pytest.raises(ValueError, match="3 classes"):
        crit(raws, labels, [torch.zeros(1, 150, 4)] * 3)
    with pytest.raises(ValueError, match="expected 3 scales"):
        crit(raws[:2], labels, [torch.zeros(1, 150, 4)] * 3)
