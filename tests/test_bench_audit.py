"""benchmarks/bench_audit.py's planting and scoring, without a model: the planted errors are what its
docstring says (counts, IoU of the moved boxes, added boxes on background, label indices that still
point at the right boxes after deletions), and records that name exactly the planted errors score
precision and recall 1 while a record of the wrong kind counts for no kind."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from yolov3.data.types import Sample
from yolov3.evaluate.audit import KINDS, LabelIssue
from yolov3.evaluate.voc import box_iou_np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_audit.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_audit_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def samples(n: int = 60) -> list[Sample]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        xy = rng.uniform(0, 120, (4, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(15, 40, (4, 2))], 1).astype(np.float32)
        out.append(Sample(f"{i}.jpg", boxes, rng.integers(0, 3, 4), width=192, height=192))
    return out


def test_planted_errors_are_as_documented(bench) -> None:
    data = samples()
    truth, planted = bench.plant(data, 3, 0.05, seed=0)
    n = round(0.05 * 240)
    assert {k: sum(p["kind"] == k for p in planted) for k in KINDS} == dict.fromkeys(KINDS, n)
    assert sum(len(b) for b, _ in truth) == 240 - n + n  # n deleted, n added
    for p in planted:
        boxes, classes = truth[p["image"]]
        original = data[p["image"]]
        if p["kind"] == "missing":
            assert p["label"] == -1 and box_iou_np(p["box"], boxes).max(initial=0) < 1
        else:
            np.testing.assert_allclose(boxes[p["label"]], p["box"])
        if p["kind"] == "bad_box":
            assert 0.3 <= box_iou_np(p["box"], original.boxes).max() <= 0.6
        if p["kind"] == "spurious":
            others = np.delete(boxes, p["label"], 0)
            assert box_iou_np(p["box"], others).max(initial=0) == 0
            assert 0 <= p["box"][0] and p["box"][2] <= 192 and p["box"][3] <= 192


def test_exact_records_score_one_and_wrong_kinds_none(bench) -> None:
    _, planted = bench.plant(samples(), 3, 0.05, seed=0)
    records = [LabelIssue(p["image"], p["kind"], 0.9, p["label"], list(p["box"]), 0,
                          {"action": "x", "box": list(p["box"]), "cls": 0}) for p in planted]  # fmt: skip
    got = bench.score_ours(records, planted)
    assert got["box_precision"] == 1 and got["recall_per_kind"] == dict.fromkeys(KINDS, 1.0)
    relabelled = [LabelIssue(r.image, "spurious" if r.kind == "bad_box" else r.kind, r.score, r.label, r.box,
                             r.cls, r.fix) for r in records]  # fmt: skip
    assert bench.score_ours(relabelled, planted)["recall_per_kind"]["bad_box"] == 0
    low = [LabelIssue(r.image, r.kind, 0.4, r.label, r.box, r.cls, r.fix) for r in records]
    assert bench.score_ours(low, planted)["box_recall_any_kind"] == 0  # not flagged
