"""VOC AP: hand-computed toy cases and a literal transcription of py-faster-rcnn's ``voc_eval``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from yolov3.evaluate.curves import confidence_curves, confusion_matrix
from yolov3.evaluate.voc import box_iou_np, class_curves, match_all, match_image, mean_ap, voc_ap
from yolov3.infer.results import Detections


def det(*rows):
    """rows of (x1, y1, x2, y2, score, class) -> Detections."""
    a = np.array(rows, np.float64).reshape(-1, 6)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int64))


def arrays(d: Detections) -> tuple:
    return d.boxes, d.scores, d.class_ids


def gt(*rows, difficult=()):
    """rows of (x1, y1, x2, y2, class) -> (boxes, classes, difficult)."""
    a = np.array(rows, np.float64).reshape(-1, 5)
    d = np.zeros(len(a), bool)
    d[list(difficult)] = True
    return a[:, :4], a[:, 4].astype(np.int64), d


def test_voc_ap_hand_computed() -> None:
    # TP, FP, TP over 2 boxes: envelope 1 up to recall 0.5, then 2/3 up to 1 -> 0.5 + 0.5 * 2/3
    assert voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 1 / 3)
    assert voc_ap([0.5, 1.0], [1.0, 0.5]) == pytest.approx(0.75)
    # VOC2007 11-point: precision 1 at recall 0..0.5 (6 points), 0.5 at 0.6..1 (5 points)
    assert voc_ap([0.5, 1.0], [1.0, 0.5], use_07_metric=True) == pytest.approx(8.5 / 11)
    assert voc_ap([], []) == 0.0
    assert voc_ap([1.0], [1.0]) == 1.0


def test_duplicate_is_fp_and_difficult_is_ignored() -> None:
    dets = det((0, 0, 10, 10, 0.9, 0), (1, 0, 10, 10, 0.8, 0), (50, 50, 60, 60, 0.7, 0))
    gts = gt((0, 0, 10, 10, 0), (50, 50, 60, 61, 0), difficult=[1])
    tp, ignored = match_image(*arrays(dets), *gts)
    assert tp[:, 0].tolist() == [True, False, False]
    assert ignored[:, 0].tolist() == [False, False, True]
    curves = class_curves(match_all([dets], [gts], 1))
    assert curves[0].npos == 1
    assert curves[0].precision.tolist() == [1.0, 0.5]  # the ignored one is not a point of the curve
    assert curves[0].ap[0] == pytest.approx(1.0)


def test_no_fallback_to_next_best_box_and_strict_threshold() -> None:
    # det 2's best box is the one det 1 took: a FP under VOC rules, though box 2 overlaps it > 0.5
    dets = det((0, 0, 10, 10, 0.9, 0), (0.5, 0, 10.5, 10, 0.8, 0))  # IoU 0.905 with box 1, 0.6 with box 2
    gts = gt((0, 0, 10, 10, 0), (3, 0, 13, 10, 0))
    tp, _ = match_image(*arrays(dets), *gts)
    assert tp[:, 0].tolist() == [True, False]
    # IoU exactly 0.5 is not a match (VOC: ovmax > 0.5)
    tp, _ = match_image(*arrays(det((0, 0, 10, 5, 0.9, 0))), *gt((0, 0, 10, 10, 0)))
    assert not tp.any()
    tp, _ = match_image(*arrays(det((0, 0, 10, 5.01, 0.9, 0))), *gt((0, 0, 10, 10, 0)))
    assert tp.all()


def test_wrong_class_and_class_without_boxes() -> None:
    dets = [det((0, 0, 10, 10, 0.9, 1), (0, 0, 10, 10, 0.5, 0))]
    gts = [gt((0, 0, 10, 10, 0))]
    curves = class_curves(match_all(dets, gts, 3))
    assert curves[0].ap[0] == pytest.approx(1.0)  # class 0: one TP at the second score
    assert np.isnan(curves[1].ap[0]) and np.isnan(curves[2].ap[0])  # no boxes of classes 1, 2
    assert mean_ap(curves) == pytest.approx(1.0)  # the mean is over classes with boxes
    m = confusion_matrix(dets, gts, 3, conf_threshold=0.3)
    # one-to-one by IoU: the class-1 detection (first in IoU order, ties by order) takes the box
    assert m[1, 0] == 1 and m[0, 3] == 1 and m.sum() == 2


def test_multiple_thresholds_and_confidence_curves() -> None:
    dets = [det((0, 0, 10, 10, 0.9, 0), (20, 0, 30, 8, 0.6, 0))]  # IoU 1.0 and 0.8 with their boxes
    gts = [gt((0, 0, 10, 10, 0), (20, 0, 30, 10, 0))]
    curves = class_curves(match_all(dets, gts, 1, iou_thresholds=(0.5, 0.75, 0.85)))
    np.testing.assert_allclose(curves[0].ap, [1.0, 1.0, 0.5])
    cc = confidence_curves(curves, points=11)
    assert cc.recall[0, 5].item() == 1.0 and cc.recall[0, 7].item() == 0.5 and cc.recall[0, 10].item() == 0.0
    best_conf, p, r, f1 = cc.best()
    assert (p, r, f1) == (1.0, 1.0, 1.0) and best_conf <= 0.6


# ---- py-faster-rcnn voc_eval, literal in structure (IoU without +1: boxes are continuous) ----------
def ref_voc_ap(rec, prec):
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def ref_voc_eval(dets, gts, classname, ovthresh=0.5):
    class_recs = {}
    npos = 0
    for img, (boxes, classes, difficult) in enumerate(gts):
        R = classes == classname
        bbox = boxes[R]
        diff = difficult[R]
        det_flags = [False] * len(bbox)
        npos = npos + sum(~diff)
        class_recs[img] = {"bbox": bbox, "difficult": diff, "det": det_flags}
    image_ids, confidence, BB = [], [], []
    for img, (boxes, scores, classes) in enumerate(map(arrays, dets)):
        for b, s, c in zip(boxes, scores, classes):
            if c == classname:
                image_ids.append(img)
                confidence.append(s)
                BB.append(b)
    confidence = np.array(confidence)
    BB = np.array(BB).reshape(-1, 4)
    sorted_ind = np.argsort(-confidence, kind="stable")
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin, 0.0)
            ih = np.maximum(iymax - iymin, 0.0)
            inters = iw * ih
            uni = (
                (bb[2] - bb[0]) * (bb[3] - bb[1])
                + (BBGT[:, 2] - BBGT[:, 0]) * (BBGT[:, 3] - BBGT[:, 1])
                - inters
            )
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return ref_voc_ap(rec, prec)


def random_set(rng, n_images=40, nc=4):
    dets, gts = [], []
    for _ in range(n_images):
        g = int(rng.integers(0, 6))
        xy = rng.uniform(0, 200, (g, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (g, 2))], 1)
        gts.append((boxes, rng.integers(0, nc, g), rng.random(g) < 0.15))
        # detections: jittered copies of the boxes (some twice, some with the wrong class) and noise
        src = boxes[rng.integers(0, g, 2 * g)] if g else np.zeros((0, 4))
        jit = src + rng.normal(0, 6, src.shape)
        noise = rng.uniform(0, 200, (3, 2))
        noise = np.concatenate([noise, noise + rng.uniform(10, 80, (3, 2))], 1)
        b = np.concatenate([jit, noise])
        cls = np.concatenate([gts[-1][1][rng.integers(0, g, 2 * g)] if g else [], rng.integers(0, nc, 3)])
        cls = np.where(rng.random(len(cls)) < 0.1, rng.integers(0, nc, len(cls)), cls).astype(np.int64)
        dets.append(Detections(b, rng.random(len(b)), cls))
    return dets, gts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_literal_voc_eval(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dets, gts = random_set(rng)
    curves = class_curves(match_all(dets, gts, 4, iou_thresholds=(0.5, 0.7)))
    for c in range(4):
        assert curves[c].ap[0] == pytest.approx(ref_voc_eval(dets, gts, c, 0.5), abs=1e-12)
        assert curves[c].ap[1] == pytest.approx(ref_voc_eval(dets, gts, c, 0.7), abs=1e-12)
    rec, prec = np.sort(rng.random(30)), rng.random(30)
    assert voc_ap(rec, prec) == pytest.approx(ref_voc_ap(rec, prec), abs=1e-12)


def test_box_iou_equals_torchvision() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.uniform(0, 50, (7, 4)), rng.uniform(0, 50, (5, 4))
    a[:, 2:] += a[:, :2]
    b[:, 2:] += b[:, :2]
    want = torchvision.ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(box_iou_np(a, b), want, rtol=1e-12)
    assert box_iou_np(a, np.zeros((0, 4))).shape == (7, 0)
