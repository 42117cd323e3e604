"""COCO metrics: our path (COCO file -> Samples -> evaluator) equals pycocotools run on the file itself."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolov3.data.formats.coco import read_coco
from yolov3.data.formats.common import LoadReport
from yolov3.errors import UserError
from yolov3.evaluate.coco import STAT_NAMES
from yolov3.evaluate.evaluator import check_labelled, evaluate_detections
from yolov3.infer.results import Detections

CAT_IDS = [1, 3, 7]  # sparse, as COCO's
NAMES = ["cat", "dog", "kite"]


def make_coco(rng: np.random.Generator, n_images: int = 12, segment_area: bool = False) -> dict:
    images, anns = [], []
    for i in range(n_images):
        w, h = int(rng.integers(200, 640)), int(rng.integers(200, 640))
        image_id = 1000 + 7 * i
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 7))):
            bw = float(rng.choice([8, 20, 40, 70, 120]) + rng.integers(0, 16))  # small, medium and large
            bh = float(rng.choice([8, 20, 40, 70, 120]) + rng.integers(0, 16))
            x, y = float(rng.integers(0, w - bw)), float(rng.integers(0, h - bh))
            area = bw * bh * (0.6 if segment_area else 1.0)  # an object's segment covers part of its box
            cat, crowd = int(rng.choice(CAT_IDS)), int(rng.random() < 0.1)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                         "bbox": [x, y, bw, bh], "area": area, "iscrowd": crowd})  # fmt: skip
    return {"images": images, "annotations": anns,
            "categories": [{"id": c, "name": n} for c, n in zip(CAT_IDS, NAMES)]}  # fmt: skip


def random_detections(rng, samples):
    dets = []
    for s in samples:
        src = s.boxes.astype(np.float64)
        jit = src + rng.normal(0, 3, src.shape)
        noise_xy = rng.uniform(0, 150, (4, 2))
        noise = np.concatenate([noise_xy, noise_xy + rng.uniform(5, 90, (4, 2))], 1)
        boxes = np.concatenate([jit, jit[: len(jit) // 2] + 2.0, noise])
        cls = np.concatenate([s.classes, s.classes[: len(jit) // 2], rng.integers(0, 3, 4)])
        cls = np.where(rng.random(len(cls)) < 0.15, rng.integers(0, 3, len(cls)), cls).astype(np.int64)
        dets.append(Detections(boxes, rng.random(len(boxes)), cls))
    return dets


def pycocotools_stats(json_path, samples, dets) -> dict[str, float]:
    """The official tool on the file, with a results list made here from the same detections."""
    results = []
    for s, d in zip(samples, dets):
        boxes, scores, classes = d.boxes, d.scores, d.class_ids
        for b, sc, c in zip(boxes, scores, classes):
            results.append({"image_id": s.image_id, "category_id": CAT_IDS[c],
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": sc})  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(json_path))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(STAT_NAMES, ev.stats))


@pytest.mark.parametrize("seed, backend", [(0, "faster"), (1, "faster"), (0, "pycocotools")])
def test_equals_pycocotools_on_the_file(tmp_path, seed: int, backend: str) -> None:
    rng = np.random.default_rng(seed)
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(make_coco(rng)))
    samples, names, ids = read_coco(path, tmp_path, LoadReport(), check_files=False)
    assert ids == CAT_IDS and names == NAMES
    dets = random_detections(rng, samples)
    ours = evaluate_detections(dets, samples, names, category_ids=ids, coco_backend=backend).summary["coco"]
    theirs = pycocotools_stats(path, samples, dets)
    assert 0.05 < theirs["AP"] < 0.95 and theirs["APs"] >= 0 and theirs["APl"] >= 0  # a case with content
    for k in STAT_NAMES:
        assert ours[k] == pytest.approx(theirs[k], abs=2e-6), k


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_official_annotation_file_gives_official_size_ranges(tmp_path, backend: str) -> None:
    """With segment areas (smaller than boxes), only the file itself gives COCO's APs / APm / APl."""
    rng = np.random.default_rng(5)
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(make_coco(rng, 20, segment_area=True)))
    samples, names, ids = read_coco(path, tmp_path, LoadReport(), check_files=False)
    dets = random_detections(rng, samples)
    ours = evaluate_detections(dets, samples, names, coco_gt=path, category_ids=ids, coco_backend=backend)
    ours = ours.summary["coco"]
    theirs = pycocotools_stats(path, samples, dets)
    for k in STAT_NAMES:
        assert ours[k] == pytest.approx(theirs[k], abs=2e-6), k


def test_no_detections_and_no_labels(tmp_path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(make_coco(rng)))
    samples, names, ids = read_coco(path, tmp_path, LoadReport(), check_files=False)
    empty = [Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))] * len(samples)
    summary = evaluate_detections(empty, samples, names, category_ids=ids).summary
    assert summary["coco"]["AP"] == 0.0 and summary["map50"] == 0.0 and summary["detections"] == 0
    for s in samples:
        s.boxes, s.classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    with pytest.raises(UserError, match="no labels"):
        check_labelled(samples)
