"""TIDE error analysis (``yolov3.evaluate.errors``) against tidecv-light (TIDE's reference code with
NumPy as its only dependency) on COCO-format files, and one planted error of each kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from yolov3.boxes import box_convert
from yolov3.evaluate.error_report import analyze_errors, best_f1
from yolov3.evaluate.errors import (
    BKG,
    BOTH,
    CLS,
    COCO_THRESHOLDS,
    DUPE,
    IGNORED,
    LOC,
    MISS,
    TP,
    classify,
    delta_ap,
    fixed_map,
    map_range,
)
from yolov3.infer.results import Detections

NUM_CLASSES = 4


def _box(rng: np.random.Generator, size: float) -> list[float]:
    """A random xywh box of side about ``size`` inside a 640 x 480 image."""
    w, h = size * rng.uniform(0.7, 1.4), size * rng.uniform(0.7, 1.4)
    return [rng.uniform(0, 640 - w), rng.uniform(0, 480 - h), w, h]


def _shift(box: list[float], rng: np.random.Generator, frac: float) -> list[float]:
    x, y, w, h = box
    return [x + frac * w * rng.choice([-1, 1]), y + frac * h * rng.uniform(-0.3, 0.3), w, h]


def synthetic_coco(tmp: Path, seed: int = 0, images: int = 60) -> tuple[Path, Path]:
    """``gt.json`` (COCO ground truth) and ``results.json`` (COCO results) of a synthetic set: exact
    and jittered copies of the boxes, copies shifted off their box, class swaps, duplicates, boxes of
    the wrong class placed badly, background boxes and missed objects; distinct random scores."""
    rng = np.random.default_rng(seed)
    anns, dets = [], []
    for img in range(1, images + 1):
        for _ in range(int(rng.integers(0, 9)) if img % 10 else 0):
            box = _box(rng, float(rng.choice([20.0, 60.0, 150.0])))
            cat = int(rng.integers(1, NUM_CLASSES + 1))
            anns.append({"id": len(anns) + 1, "image_id": img, "category_id": cat, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
            for _ in range(int(rng.choice([0, 1, 1, 1, 2, 3]))):
                r, pcat, pbox = rng.uniform(), cat, _shift(box, rng, rng.uniform(0, 0.1))
                if r < 0.15:
                    pbox = _shift(box, rng, rng.uniform(0.35, 0.7))  # localisation
                elif r < 0.3:
                    pcat = int(rng.integers(1, NUM_CLASSES + 1))  # class swap (sometimes the same class)
                elif r < 0.4:
                    pcat, pbox = pcat % NUM_CLASSES + 1, _shift(box, rng, 0.5)  # both
                dets.append({"image_id": img, "category_id": pcat, "bbox": pbox})
        for _ in range(int(rng.integers(0, 3))):
            dets.append({"image_id": img, "category_id": int(rng.integers(1, NUM_CLASSES + 1)),
                         "bbox": _box(rng, 40.0)})  # fmt: skip
    for d, s in zip(dets, rng.permutation(len(dets)) / len(dets) * 0.98 + 0.01):
        d["score"] = float(s)
    ims = [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in range(1, images + 1)]
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, NUM_CLASSES + 1)]
    gt = {"images": ims, "annotations": anns, "categories": cats}
    (tmp / "gt.json").write_text(json.dumps(gt))
    (tmp / "results.json").write_text(json.dumps(dets))
    return tmp / "gt.json", tmp / "results.json"


def ours_from_files(gt_file: Path, res_file: Path) -> tuple[list[Detections], list[tuple]]:
    """The files read into ``classify``'s inputs: xyxy boxes, class = category id - 1."""
    gt, res = json.loads(gt_file.read_text()), json.loads(res_file.read_text())
    ids = [im["id"] for im in gt["images"]]
    dets, gts = [], []
    for i in ids:
        rs, ans = [r for r in res if r["image_id"] == i], [a for a in gt["annotations"] if a["image_id"] == i]
        db = box_convert(np.array([r["bbox"] for r in rs], np.float64).reshape(-1, 4), "xywh", "xyxy")
        classes = np.array([r["category_id"] - 1 for r in rs], np.int64)
        dets.append(Detections(db, np.array([r["score"] for r in rs]), classes))
        gb = box_convert(np.array([a["bbox"] for a in ans], np.float64).reshape(-1, 4), "xywh", "xyxy")
        gts.append((gb, np.array([a["category_id"] - 1 for a in ans], np.int64), np.zeros(len(ans), bool)))
    return dets, gts


def tidecv_run(gt_file: Path, res_file: Path):  # noqa: ANN201
    """tidecv-light on the same files. Its box IoU reads ``bbox`` as x1, y1, x2, y2 (its own COCO
    reader was removed), so boxes are handed over converted."""
    tidecv = pytest.importorskip("tidecv")
    gdata, pdata = tidecv_data(tidecv, gt_file, res_file)
    tide = tidecv.TIDE()
    run = tide.evaluate(gdata, pdata, mode=tidecv.TIDE.BOX)
    return tidecv, tide, run


def tidecv_data(tidecv, gt_file: Path, res_file: Path) -> tuple:  # noqa: ANN001
    """The files as tidecv ``Data`` (ground truth, results), boxes x1, y1, x2, y2."""
    gt, res = json.loads(gt_file.read_text()), json.loads(res_file.read_text())
    gdata, pdata = tidecv.Data("gt"), tidecv.Data("results")
    for a in gt["annotations"]:
        box = box_convert(np.array(a["bbox"]), "xywh", "xyxy").tolist()
        gdata.add_ground_truth(a["image_id"], a["category_id"], box)
    for r in res:
        pdata.add_detection(r["image_id"], r["category_id"], r["score"],
                            box_convert(np.array(r["bbox"]), "xywh", "xyxy").tolist())  # fmt: skip
    return gdata, pdata


TIDE_NAMES = {"Cls": "cls", "Loc": "loc", "Both": "both", "Dupe": "dupe", "Bkg": "bkg", "Miss": "miss"}
KIND_OF = {"cls": CLS, "loc": LOC, "both": BOTH, "dupe": DUPE, "bkg": BKG}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_tidecv(tmp_path: Path, seed: int) -> None:
    gt_file, res_file = synthetic_coco(tmp_path, seed)
    dets, gts = ours_from_files(gt_file, res_file)
    table = classify(dets, gts, NUM_CLASSES)
    tidecv, tide, run = tidecv_run(gt_file, res_file)
    theirs = {TIDE_NAMES[t.short_name]: len(v) for t, v in run.error_dict.items()}
    ours = {name: int(np.sum(table.det_kind == k)) for name, k in KIND_OF.items()}
    ours["miss"] = int(np.sum(table.gt_kind == MISS))
    assert ours == theirs
    assert min(theirs.values()) > 0  # every kind is exercised
    assert fixed_map(table) == pytest.approx(run.ap, abs=1e-9)
    dap = delta_ap(table)
    main = tide.get_main_errors()["results"]
    for short, name in TIDE_NAMES.items():
        assert dap[name] == pytest.approx(main[short], abs=1e-9), name
    special = tide.get_special_errors()["results"]
    assert dap["false_pos"] == pytest.approx(special["FalsePos"], abs=1e-9)
    assert dap["false_neg"] == pytest.approx(special["FalseNeg"], abs=1e-9)


def planted() -> tuple[Detections, tuple]:
    """One image, one error of each kind placed by hand, plus a true positive."""
    gb = np.array([[0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100], [0, 200, 100, 300],
                   [200, 200, 300, 300]], np.float64)  # fmt: skip
    gc = np.array([0, 1, 2, 0, 3])
    rows = [
        ([0, 0, 100, 100], 0.9, 0),  # TP on box 0
        ([0, 0, 100, 98], 0.8, 0),  # dupe of box 0
        ([200, 0, 300, 100], 0.7, 0),  # cls: box 1 is class 1
        ([440, 0, 540, 100], 0.6, 2),  # loc: IoU 60 / 140 = 0.43 with box 2
        ([260, 230, 360, 330], 0.5, 0),  # both: IoU ~0.24 with box 4 of class 3
        ([600, 400, 650, 450], 0.4, 1),  # bkg
    ]  # box 3 is missed
    d = Detections(np.array([r[0] for r in rows], np.float64), np.array([r[1] for r in rows]),
                   np.array([r[2] for r in rows]))  # fmt: skip
    return d, (gb, gc, np.zeros(5, bool))


def test_each_kind_planted() -> None:
    d, g = planted()
    table = classify([d], [g], 4)
    assert table.det_kind.tolist() == [TP, DUPE, CLS, LOC, BOTH, BKG]
    assert table.det_target.tolist() == [0, -1, 1, 2, -1, -1]
    assert table.gt_kind.tolist() == [TP, -2, -2, MISS, MISS]


def test_planted_summary() -> None:
    d, g = planted()
    summary = analyze_errors([d, Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))],
                             [g, (np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, bool))],
                             ["a", "b", "c", "d"]).summary  # fmt: skip
    one = {"tp": 1, "cls": 1, "loc": 1, "both": 1, "dupe": 1, "bkg": 1, "miss": 2}
    assert summary["counts"] == one
    # every box is 100 x 100 (large: over 96²); the bkg detection, 50 x 50, is sized by itself (medium)
    none = dict.fromkeys(one, 0)
    by_size = summary["by_size"]
    assert by_size["large"] == {**one, "bkg": 0} and by_size["medium"] == {**none, "bkg": 1}
    assert by_size["small"] == none
    assert summary["by_crowd"]["2-5"] == one and summary["by_crowd"]["0"] == none
    a = summary["per_class"]["a"]  # tp, dupe, cls (a on b's box), both; box 3 (class a) missed
    assert (a["tp"], a["dupe"], a["cls"], a["both"], a["miss"], a["instances"]) == (1, 1, 1, 1, 1, 2)
    assert (a["precision"], a["recall"], a["conf"]) == (1.0, 0.5, 0.9)
    assert summary["per_class"]["d"]["miss"] == 1 and summary["images"] == 2


def test_best_f1_against_threshold_sweep() -> None:
    rng = np.random.default_rng(3)
    scores = rng.choice([0.1, 0.2, 0.3, 0.5, 0.7, 0.9], 40)  # ties: a threshold keeps all of them
    tp = rng.uniform(size=40) < scores
    npos = int(tp.sum()) + 5
    best = max(((2 * p * r / (p + r) if p + r else 0.0), c, p, r) for c in np.unique(scores)
               for p, r in [(tp[scores >= c].mean(), tp[scores >= c].sum() / npos)])  # fmt: skip
    got = best_f1(scores, tp, npos)
    assert got["f1"] == pytest.approx(best[0]) and got["conf"] == best[1]
    assert (got["precision"], got["recall"]) == pytest.approx(best[2:])


def test_ignored_boxes_leave_their_detections_out() -> None:
    """A detection on an ignored (difficult / crowd) box of its class is neither a true positive nor an
    error, and the box is not a miss; one of another class there is background."""
    gb = np.array([[0, 0, 100, 100], [200, 0, 300, 100]], np.float64)
    d = Detections(np.array([[2, 0, 100, 100], [0, 0, 100, 100], [200, 0, 300, 100]], np.float64),
                   np.array([0.9, 0.8, 0.7]), np.array([0, 1, 1]))  # fmt: skip
    table = classify([d], [(gb, np.array([0, 1]), np.array([True, False]))], 2)
    assert table.det_kind.tolist() == [IGNORED, BKG, TP] and table.gt_kind.tolist() == [TP]
    # class 1: its FP (0.8) before its TP (0.7), AP 50; class 0 holds only the ignored one: not averaged
    assert fixed_map(table) == pytest.approx(50.0)


def test_map_range_matches_tidecv_evaluate_range(tmp_path: Path) -> None:
    gt_file, res_file = synthetic_coco(tmp_path, 4)
    dets, gts = ours_from_files(gt_file, res_file)
    tidecv, tide, _ = tidecv_run(gt_file, res_file)
    gdata, pdata = tidecv_data(tidecv, gt_file, res_file)
    tide.evaluate_range(gdata, pdata, thresholds=list(COCO_THRESHOLDS), name="range")
    theirs = np.mean([run.ap for run in tide.run_thresholds["range"]])
    assert map_range(dets, gts, NUM_CLASSES) == pytest.approx(theirs, abs=1e-9)
    summary = analyze_errors(dets, gts, ["a", "b", "c", "d"], iou_range=True).summary
    assert summary["map50_95"] == pytest.approx(theirs, abs=1e-6)
