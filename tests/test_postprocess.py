"""Post-processing against a literal NumPy transcription of the seed's ``postprocess_boxes`` + ``nms``.

The three seed functions below are copied in meaning line by line from the seed's code base
(core/utils.py). One line differs and is marked DEVIATION: the clip to ``w`` instead of ``w - 1``,
documented in ``yolov3/infer/postprocess.py``. The letterbox sizes used make the seed's float padding equal
to our integer padding; the size of that deviation elsewhere is tested on its own.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from yolov3.boxes import Letterbox
from yolov3.config import InferConfig
from yolov3.decode import decode_all
from yolov3.infer.postprocess import greedy_nms, select_candidates
from yolov3.infer.postprocess import postprocess as _postprocess


def postprocess(raws, anchors, strides, letterboxes=None, image_sizes=None, **settings):
    """``yolov3.infer.postprocess.postprocess`` with the settings as keywords (an ``InferConfig``)."""
    return _postprocess(raws, anchors, strides, letterboxes, image_sizes, InferConfig(**settings))


ANCHORS = [
    [(10, 13), (16, 30), (33, 23)],
    [(30, 61), (62, 45), (59, 119)],
    [(116, 90), (156, 198), (373, 326)],
]
STRIDES = [8, 16, 32]


# ---- the seed (literal) --------------------------------------------------------------------------
def seed_bboxes_iou(boxes1, boxes2):
    boxes1 = np.array(boxes1)
    boxes2 = np.array(boxes2)
    boxes1_area = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    boxes2_area = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    left_up = np.maximum(boxes1[..., :2], boxes2[..., :2])
    right_down = np.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter_section = np.maximum(right_down - left_up, 0.0)
    inter_area = inter_section[..., 0] * inter_section[..., 1]
    union_area = boxes1_area + boxes2_area - inter_area
    ious = np.maximum(1.0 * inter_area / union_area, np.finfo(np.float32).eps)
    return ious


def seed_nms(bboxes, iou_threshold, sigma=0.3, method="nms"):
    classes_in_img = list(set(bboxes[:, 5]))
    best_bboxes = []
    for cls in classes_in_img:
        cls_mask = bboxes[:, 5] == cls
        cls_bboxes = bboxes[cls_mask]
        while len(cls_bboxes) > 0:
            max_ind = np.argmax(cls_bboxes[:, 4])
            best_bbox = cls_bboxes[max_ind]
            best_bboxes.append(best_bbox)
            cls_bboxes = np.concatenate([cls_bboxes[:max_ind], cls_bboxes[max_ind + 1 :]])
            iou = seed_bboxes_iou(best_bbox[np.newaxis, :4], cls_bboxes[:, :4])
            weight = np.ones((len(iou),), dtype=np.float32)
            assert method in ["nms", "soft-nms"]
            if method == "nms":
                iou_mask = iou > iou_threshold
                weight[iou_mask] = 0.0
            if method == "soft-nms":
                weight = np.exp(-(1.0 * iou**2 / sigma))
            cls_bboxes[:, 4] = cls_bboxes[:, 4] * weight
            score_mask = cls_bboxes[:, 4] > 0.0
            cls_bboxes = cls_bboxes[score_mask]
    return best_bboxes


def seed_postprocess_boxes(pred_bbox, org_img_shape, input_size, score_threshold):
    valid_scale = [0, np.inf]
    pred_bbox = np.array(pred_bbox)
    pred_xywh = pred_bbox[:, 0:4]
    pred_conf = pred_bbox[:, 4]
    pred_prob = pred_bbox[:, 5:]
    # (1) (x, y, w, h) --> (xmin, ymin, xmax, ymax)
    pred_coor = np.concatenate(
        [pred_xywh[:, :2] - pred_xywh[:, 2:] * 0.5, pred_xywh[:, :2] + pred_xywh[:, 2:] * 0.5], axis=-1
    )
    # (2) (xmin, ymin, xmax, ymax) -> (xmin_org, ymin_org, xmax_org, ymax_org)
    org_h, org_w = org_img_shape
    resize_ratio = min(input_size / org_w, input_size / org_h)
    dw = (input_size - resize_ratio * org_w) / 2
    dh = (input_size - resize_ratio * org_h) / 2
    pred_coor[:, 0::2] = 1.0 * (pred_coor[:, 0::2] - dw) / resize_ratio
    pred_coor[:, 1::2] = 1.0 * (pred_coor[:, 1::2] - dh) / resize_ratio
    # (3) clip some boxes those are out of range
    pred_coor = np.concatenate(
        [np.maximum(pred_coor[:, :2], [0, 0]), np.minimum(pred_coor[:, 2:], [org_w, org_h])],  # DEVIATION
        axis=-1,
    )
    invalid_mask = np.logical_or((pred_coor[:, 0] > pred_coor[:, 2]), (pred_coor[:, 1] > pred_coor[:, 3]))
    pred_coor[invalid_mask] = 0
    # (4) discard some invalid boxes
    bboxes_scale = np.sqrt(np.multiply.reduce(pred_coor[:, 2:4] - pred_coor[:, 0:2], axis=-1))
    scale_mask = np.logical_and((valid_scale[0] < bboxes_scale), (bboxes_scale < valid_scale[1]))
    # (5) discard some boxes with low scores
    classes = np.argmax(pred_prob, axis=-1)
    scores = pred_conf * pred_prob[np.arange(len(pred_coor)), classes]
    score_mask = scores > score_threshold
    mask = np.logical_and(scale_mask, score_mask)
    coors, scores, classes = pred_coor[mask], scores[mask], classes[mask]
    return np.concatenate([coors, scores[:, np.newaxis], classes[:, np.newaxis]], axis=-1)


# ---- helpers -------------------------------------------------------------------------------------
def random_raws(seed: int, size: int = 160, num_classes: int = 3, batch: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3 * (5 + num_classes), size // s, size // s, generator=g) for s in STRIDES]


def seed_pipeline(raws, image_wh, input_size, conf, iou, method="nms", b=0):
    pred = decode_all([r[b : b + 1] for r in raws], ANCHORS, STRIDES)[0].double().numpy()
    w, h = image_wh
    bboxes = seed_postprocess_boxes(pred, (h, w), input_size, conf)
    kept = seed_nms(bboxes, iou, method=method)
    return np.array(kept).reshape(-1, 6)


def as_rows(det) -> np.ndarray:
    return np.concatenate(
        [
            det.boxes.double().numpy(),
            det.scores.double().numpy()[:, None],
            det.class_ids.double().numpy()[:, None],
        ],
        axis=1,
    )


def assert_same(ours: np.ndarray, ref: np.ndarray) -> None:
    """Same set of (box, score, class) rows, whatever the order."""
    key = lambda a: a[np.lexsort((a[:, 0], -a[:, 4], a[:, 5]))]  # noqa: E731
    assert ours.shape == ref.shape, f"{len(ours)} detections, the seed {len(ref)}"
    np.testing.assert_allclose(key(ours), key(ref), rtol=1e-5, atol=2e-3)


# ---- tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("image_wh", [(320, 240), (160, 160), (200, 400)])
def test_greedy_equals_seed(seed: int, image_wh: tuple[int, int]) -> None:
    raws = random_raws(seed)
    lb = Letterbox.fit(*image_wh, 160)
    dets = postprocess(
        raws, ANCHORS, STRIDES, [lb], [image_wh], conf_threshold=0.3, iou_threshold=0.45, max_det=10**4
    )
    ref = seed_pipeline(raws, image_wh, 160, 0.3, 0.45)
    assert len(ref) > 10  # the case exercises NMS
    assert_same(as_rows(dets[0]), ref)
    assert torch.all(dets[0].scores[:-1] >= dets[0].scores[1:])


@pytest.mark.parametrize("seed", [3, 4])
def test_soft_nms_equals_seed_above_threshold(seed: int) -> None:
    raws = random_raws(seed)
    image_wh = (320, 240)
    dets = postprocess(
        raws,
        ANCHORS,
        STRIDES,
        [Letterbox.fit(*image_wh, 160)],
        [image_wh],
        conf_threshold=0.3,
        nms="soft",
        max_det=10**4,
    )
    ref = seed_pipeline(raws, image_wh, 160, 0.3, 0.45, method="soft-nms")
    ref = ref[ref[:, 4] > 0.3]  # the seed keeps every score > 0; we drop those at or under the threshold
    assert_same(as_rows(dets[0]), ref)


def reference_diou_nms(rows: np.ndarray, thr: float) -> np.ndarray:
    """Per class: sort by score, keep a box unless its DIoU with a kept box exceeds ``thr``."""
    kept = []
    for c in np.unique(rows[:, 5]):
        cls = rows[rows[:, 5] == c]
        cls = cls[np.argsort(-cls[:, 4], kind="stable")]
        mine: list[np.ndarray] = []
        for r in cls:
            ok = True
            for k in mine:
                iou = seed_bboxes_iou(r[:4], k[:4])
                cx = (r[0] + r[2] - k[0] - k[2]) / 2
                cy = (r[1] + r[3] - k[1] - k[3]) / 2
                ex = max(r[2], k[2]) - min(r[0], k[0])
                ey = max(r[3], k[3]) - min(r[1], k[1])
                if iou - (cx * cx + cy * cy) / (ex * ex + ey * ey) > thr:
                    ok = False
                    break
            if ok:
                mine.append(r)
        kept += mine
    return np.array(kept).reshape(-1, 6)


def test_diou_nms_equals_reference() -> None:
    raws = random_raws(5)
    image_wh = (320, 240)
    dets = postprocess(
        raws, ANCHORS, STRIDES, [Letterbox.fit(*image_wh, 160)], [image_wh], nms="diou", max_det=10**4
    )
    pred = decode_all(raws, ANCHORS, STRIDES)[0].double().numpy()
    ref = reference_diou_nms(seed_postprocess_boxes(pred, image_wh[::-1], 160, 0.3), 0.45)
    greedy = postprocess(raws, ANCHORS, STRIDES, [Letterbox.fit(*image_wh, 160)], [image_wh])
    assert len(ref) > len(greedy[0])  # DIoU suppresses less than IoU: the case tells them apart
    assert_same(as_rows(dets[0]), ref)


def test_multi_label_equals_reference() -> None:
    raws = random_raws(6)
    image_wh = (160, 160)
    dets = postprocess(
        raws,
        ANCHORS,
        STRIDES,
        [Letterbox.fit(*image_wh, 160)],
        [image_wh],
        conf_threshold=0.2,
        multi_label=True,
        max_det=10**4,
    )
    pred = decode_all(raws, ANCHORS, STRIDES)[0].double().numpy()
    rows = []
    for c in range(3):  # one candidate per class: the seed's postprocess on a one-class view
        one = np.concatenate([pred[:, :5], pred[:, 5 + c : 6 + c]], axis=1)
        out = seed_postprocess_boxes(one, image_wh[::-1], 160, 0.2)
        out[:, 5] = c
        rows.append(out)
    ref = np.array(seed_nms(np.concatenate(rows), 0.45)).reshape(-1, 6)
    assert len(ref) > len(seed_pipeline(raws, image_wh, 160, 0.2, 0.45))
    assert_same(as_rows(dets[0]), ref)


def test_batch_equals_single_images_and_caps() -> None:
    raws = random_raws(7, batch=3)
    sizes = [(320, 240), (100, 300), (160, 160)]
    lbs = [Letterbox.fit(w, h, 160) for w, h in sizes]
    batched = postprocess(raws, ANCHORS, STRIDES, lbs, sizes, max_det=1000)
    for b in range(3):
        one = postprocess([r[b : b + 1] for r in raws], ANCHORS, STRIDES, [lbs[b]], [sizes[b]], max_det=1000)
        assert_same(as_rows(batched[b]), as_rows(one[0]))
    capped = postprocess(raws, ANCHORS, STRIDES, lbs, sizes, max_det=5)
    for full, cap in zip(batched, capped):
        assert len(cap) == 5
        torch.testing.assert_close(cap.scores, full.scores[:5])
    only = postprocess(raws, ANCHORS, STRIDES, lbs, sizes, classes=[1], max_det=1000)
    assert all(set(d.class_ids.tolist()) == {1} for d in only)
    assert sum(map(len, only)) == sum(int((d.class_ids == 1).sum()) for d in batched)


def test_nothing_passes_and_half_precision_maps() -> None:
    raws = random_raws(8)
    empty = postprocess(raws, ANCHORS, STRIDES, conf_threshold=1.0)
    assert len(empty[0]) == 0 and empty[0].boxes.shape == (0, 4)
    for nms in ("soft", "diou"):
        assert len(postprocess(raws, ANCHORS, STRIDES, conf_threshold=1.0, nms=nms)[0]) == 0
    half = postprocess([r.bfloat16() for r in raws], ANCHORS, STRIDES)
    assert half[0].boxes.dtype == torch.float32 and len(half[0]) > 0
    assert half[0].boxes.max() <= 160 and half[0].boxes.min() >= 0  # no letterbox: clipped to the input
    with pytest.raises(ValueError, match="nms"):
        postprocess(raws, ANCHORS, STRIDES, nms="fast")


def test_candidates_are_decode_all_rows() -> None:
    raws = random_raws(9, batch=2)
    pred = decode_all(raws, ANCHORS, STRIDES)  # (B, N, 5 + C)
    idx, boxes, conf, probs = select_candidates(raws, ANCHORS, STRIDES, 0.4)
    mask = pred[..., 4] > 0.4
    ref = pred[mask]  # rows in (batch, scale, ...) order; ours grouped by scale: compare as sets
    assert len(idx) == len(ref)
    ours = torch.cat([boxes, conf[:, None], probs, idx[:, None].float()], 1)
    xyxy = torch.cat([ref[:, :2] - ref[:, 2:4] / 2, ref[:, :2] + ref[:, 2:4] / 2], 1)
    theirs = torch.cat([xyxy, ref[:, 4:], torch.nonzero(mask)[:, :1].float()], 1)
    order = lambda t: t[torch.argsort(t[:, 4] * 1e3 + t[:, 0])]  # noqa: E731
    torch.testing.assert_close(order(ours), order(theirs), rtol=1e-5, atol=1e-4)


def test_letterbox_deviation_from_seed_is_at_most_half_an_input_pixel() -> None:
    """The seed's float padding vs the forward transform's integer padding: <= 0.5 px at the input."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        w, h = (int(v) for v in rng.integers(20, 2000, size=2))
        lb = Letterbox.fit(w, h, 544)
        box = torch.tensor([[100.0, 120.0, 300.0, 400.0]])
        ours = lb.boxes_to_original(box)[0].numpy()
        ratio = min(544 / w, 544 / h)
        dw, dh = (544 - ratio * w) / 2, (544 - ratio * h) / 2
        seed = (box[0].numpy() - np.array([dw, dh, dw, dh])) / ratio
        assert np.all(np.abs(ours - seed) * ratio <= 0.5 + 1e-9)


@pytest.mark.parametrize("n, groups", [(200, 7), (3000, 60), (1500, 2)])
def test_packed_greedy_nms_equals_torchvision_batched_nms(n: int, groups: int) -> None:
    """Packing groups into calls (and splitting big ones) keeps batched_nms' result exactly."""
    g = torch.Generator().manual_seed(n)
    xy = torch.rand(n, 2, generator=g) * 300
    boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 60], 1)
    scores = torch.rand(n, generator=g)
    idx = torch.randint(0, groups, (n,), generator=g)
    want = torchvision.ops.batched_nms(boxes, scores, idx, 0.45)
    got = greedy_nms(boxes, scores, idx, 0.45)
    assert sorted(got.tolist()) == sorted(want.tolist())  # same boxes (tied scores may swap places)
    assert torch.all(scores[got][:-1] >= scores[got][1:])
