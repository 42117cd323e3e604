"""The label audit (``yolov3.evaluate.audit``): one error of each kind planted by hand is found with its
kind, its score is the docstring's formula written out here, a clean image gets no record, and swapped
classes among clean images are exactly what is flagged."""

from __future__ import annotations

import numpy as np
import pytest

from yolov3.evaluate.audit import AuditThresholds, audit_image, audit_labels, image_scores
from yolov3.infer.results import Detections


def dets(*rows: tuple) -> Detections:
    """Detections from ``(x1, y1, x2, y2, score, class)`` rows."""
    a = np.asarray(rows, np.float64).reshape(-1, 6)
    return Detections(a[:, :4].astype(np.float32), a[:, 4].astype(np.float32), a[:, 5].astype(np.int64))


def labels(*rows: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes, classes)`` from ``(x1, y1, x2, y2, class)`` rows."""
    a = np.asarray(rows, np.float64).reshape(-1, 5)
    return a[:, :4].astype(np.float32), a[:, 4].astype(np.int64)


# image 0: a right label, a missing box, a wrong class, a bad box and a spurious label
GOOD, MISSING, SWAPPED, TRUE_BOX, BAD, SPURIOUS = (
    (10, 10, 40, 40), (100, 10, 130, 40), (10, 100, 40, 130), (100, 100, 130, 130), (110, 100, 140, 130),
    (200, 200, 220, 220))  # fmt: skip
PLANTED = (dets((*GOOD, 0.9, 0), (*MISSING, 0.8, 1), (*SWAPPED, 0.85, 3), (*TRUE_BOX, 0.95, 0),
                (*SPURIOUS[:2], 300, 300, 0.02, 2)),  # a weak, large box barely touching the spurious label
           labels((*GOOD, 0), (*SWAPPED, 2), (*BAD, 0), (*SPURIOUS, 4)))  # fmt: skip
CLEAN = (dets((*GOOD, 0.9, 0), (*TRUE_BOX, 0.7, 3)), labels((*GOOD, 0), (*TRUE_BOX, 3)))


def test_each_planted_kind_is_found_with_the_docstring_score() -> None:
    t = AuditThresholds()
    records = {r.kind: r for r in audit_image(PLANTED[0], *PLANTED[1], image=0)}
    assert set(records) == {"missing", "wrong_class", "bad_box", "spurious"}
    m = records["missing"]
    assert m.label == -1 and m.cls == 1 and m.box == list(MISSING) and m.score == pytest.approx(0.8)
    assert m.fix == {"action": "add", "box": list(MISSING), "cls": 1}
    w = records["wrong_class"]  # no prediction of class 2 there: p_other * (1 - 0)
    assert w.label == 1 and w.cls == 2 and w.fix["cls"] == 3 and w.score == pytest.approx(0.85, abs=1e-6)
    b = records["bad_box"]  # IoU of the label with the prediction: 20 x 30 over 2 x 900 - 600
    iou = 600 / 1200
    want = 0.95 * min(1.0, max(0.0, (t.good_iou - iou) / (t.good_iou - t.pos_iou)))
    assert b.label == 2 and b.score == pytest.approx(want, abs=1e-6) and b.fix["box"] == list(TRUE_BOX)
    s = records["spurious"]  # the weak box overlaps it at 400 / 10000 <= bg_iou: nothing near
    assert s.label == 3 and s.score == 1.0 and s.fix["action"] == "delete"


def test_a_weak_prediction_near_a_label_lowers_its_spurious_score() -> None:
    t = AuditThresholds()
    got = audit_image(dets((*SPURIOUS, 0.1, 1)), *labels((*SPURIOUS, 4)))
    assert [r.kind for r in got] == ["spurious"]
    assert got[0].score == pytest.approx(1 - 0.1 / t.conf_threshold, abs=1e-6)
    assert audit_image(dets((*SPURIOUS, 0.3, 4)), *labels((*SPURIOUS, 4))) == []  # confident, right class


def test_clean_image_has_no_record_and_images_rank_by_worst() -> None:
    assert audit_image(CLEAN[0], *CLEAN[1]) == []
    records = audit_labels([CLEAN[0], PLANTED[0]], [CLEAN[1], PLANTED[1]], ["clean.jpg", "bad.jpg"])
    assert {r.image for r in records} == {1} and all(r.path == "bad.jpg" for r in records)
    assert [r.score for r in records] == sorted((r.score for r in records), reverse=True)
    np.testing.assert_allclose(image_scores(records, 2), [0.0, 1.0])


def test_swapped_classes_among_clean_images_are_exactly_the_flagged_ones() -> None:
    """Eight images of three boxes, the model sure of each box's class (0.9, the others 0.05), every
    other image with one class swapped: those images, and only those, are flagged. (cleanlab is not
    compared here: on so few images its label quality scores are all ~1; the comparison is
    ``benchmarks/bench_audit.py``'s.)"""
    rng = np.random.default_rng(0)
    images, truth, bad = [], [], []
    for i in range(8):
        xy = rng.uniform(0, 150, (3, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(25, 45, (3, 2))], 1)
        cls = rng.integers(0, 3, 3)
        images.append(dets(*[(*b, 0.9 if k == c else 0.05, k) for b, c in zip(boxes, cls) for k in range(3)]))
        lab = labels(*[(*b, c) for b, c in zip(boxes, cls)])
        if i % 2:
            lab[1][0] = (lab[1][0] + 1) % 3
            bad.append(i)
        truth.append(lab)
    records = audit_labels(images, truth)
    assert set(np.flatnonzero(image_scores(records, len(images)) >= 0.5)) == set(bad)
    assert {r.kind for r in records if r.score >= 0.5} == {"wrong_class"}


def test_each_label_is_explained_by_the_prediction_that_fits_it_best() -> None:
    """An unlabelled object beside a labelled one of its class: the stronger prediction on the
    unlabelled object overlaps the label a little (IoU 0.33), the label's own prediction fits it. The
    label is fine and the other object is missing (taking predictions by score instead would call the
    label a bad box and lose the missing one)."""
    label, unlabelled = (10, 10, 40, 40), (25, 10, 55, 40)  # IoU 450 / 1350
    got = audit_image(dets((*unlabelled, 0.95, 0), (*label, 0.9, 0)), *labels((*label, 0)))
    assert [(r.kind, r.label, r.box) for r in got] == [("missing", -1, list(unlabelled))]
    t = AuditThresholds()
    assert got[0].score == pytest.approx(0.95 * (t.pos_iou - 1 / 3) / (t.pos_iou - t.bg_iou), abs=1e-6)
