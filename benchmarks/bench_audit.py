"""``yolov3 data audit`` against cleanlab on planted label errors (issue 24).

The demo data set's val split (the demo model never saw it) gets known errors planted with a fixed
seed, about ``--rate`` (3 %) of its boxes each kind: boxes deleted (missing), classes swapped to
another class (wrong_class), boxes shifted and / or scaled to an IoU of 0.3-0.6 with the true box
(bad_box), and boxes of a random class and a label-like size added where no box is (spurious). The
demo model predicts once on the images (score threshold 0.001, as ``val``); then, on the SAME
predictions and planted labels, in the same run:

- ours: ``yolov3.evaluate.audit.audit_labels``; images ranked by their worst record, a record flagged
  at score >= 0.5;
- cleanlab: ``cleanlab.object_detection.rank.get_label_quality_scores`` (images ranked by 1 - score)
  and ``cleanlab.object_detection.filter.find_label_issues`` (the flagged images).

Reported: image-level average precision of each ranking (positive: an image with a planted error;
``sklearn.metrics.average_precision_score``), precision / recall of the flagged images (both tools),
and for ours box level: recall per kind (a planted error is found when a flagged record of its kind
is on it: the same label, or for a deleted box a proposal at IoU >= 0.5 with it), any-kind recall and
the precision of the flagged records (a record is right when it is on a planted error). Targets: AP
>= cleanlab's + 0.15; recall >= 0.8 per kind at precision >= 0.6. The thresholds were fixed before
the first run and revised once on seed 0 (module docstring of ``yolov3.evaluate.audit``); the
default ``--seed`` 2 was not looked at before the figures in ``docs/benchmarks.md`` (0 and 1 were).

    .venv/bin/python benchmarks/bench_audit.py [--seed 2] [--rate 0.03]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

from yolov3.boxes import box_convert
from yolov3.config import InferConfig
from yolov3.data.dataset_config import load_dataset
from yolov3.evaluate.audit import FLAG_SCORE, KINDS, audit_labels, image_scores
from yolov3.evaluate.evaluator import run_detector
from yolov3.evaluate.voc import box_iou_np
from yolov3.infer.detector import Detector

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "runs/demo/train/weights/best.pt"
DATA = ROOT / ".cache/yolov3-demo/synth-192px-7200-seed0/data.yaml"


def _moved(box: np.ndarray, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """``box`` shifted and / or scaled inside the image, drawn until its IoU with ``box`` is 0.3-0.6."""
    c = box_convert(box.reshape(1, 4).astype(np.float64), "xyxy", "cxcywh")[0]
    for _ in range(1000):
        shift = rng.uniform(-0.45, 0.45, 2) * c[2:] * rng.integers(0, 2)
        scale = np.exp(rng.uniform(-0.6, 0.6, 2)) if rng.random() < 0.6 else np.ones(2)
        new = box_convert(np.concatenate([c[:2] + shift, c[2:] * scale])[None], "cxcywh", "xyxy")[0]
        new = np.clip(new, 0, [size[0], size[1], size[0], size[1]])
        if 0.3 <= box_iou_np(new, box)[0, 0] <= 0.6:
            return new
    raise RuntimeError(f"could not move box {box}")


def _background_box(boxes: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
                    sides: np.ndarray) -> np.ndarray | None:  # fmt: skip
    """A box of a label-like size (``sides``: ``(N, 2)`` widths and heights) overlapping no box."""
    for _ in range(200):
        wh = sides[rng.integers(len(sides))]
        if wh[0] >= size[0] or wh[1] >= size[1]:
            continue
        xy = rng.uniform(0, 1, 2) * (np.asarray(size) - wh)
        new = box_convert(np.concatenate([xy, wh])[None], "xywh", "xyxy")[0]
        if not len(boxes) or box_iou_np(new, boxes).max() == 0:
            return new
    return None


def plant(samples: list, nc: int, rate: float, seed: int) -> tuple[list, list[dict]]:
    """``(truth, planted)``: per image ``(boxes, classes)`` with errors planted, and one dict per
    planted error ``{image, kind, label (index in the planted labels, -1 when deleted), box}``."""
    rng = np.random.default_rng(seed)
    boxes = [np.asarray(s.boxes, np.float64).reshape(-1, 4) for s in samples]
    classes = [np.asarray(s.classes, np.int64).copy() for s in samples]
    every = [(i, j) for i, b in enumerate(boxes) for j in range(len(b))]
    n = round(rate * len(every))
    pick = rng.permutation(len(every))[: 3 * n]
    deleted, swapped, moved = (pick[k * n : (k + 1) * n] for k in range(3))
    planted = []
    sizes = [(s.width, s.height) for s in samples]
    for k in swapped:
        i, j = every[k]
        classes[i][j] = (classes[i][j] + rng.integers(1, nc)) % nc
        planted.append({"image": i, "kind": "wrong_class", "label": j, "box": boxes[i][j].copy()})
    for k in moved:
        i, j = every[k]
        boxes[i][j] = _moved(boxes[i][j], rng, sizes[i])
        planted.append({"image": i, "kind": "bad_box", "label": j, "box": boxes[i][j].copy()})
    drop = {i: set() for i in range(len(samples))}
    for k in deleted:
        i, j = every[k]
        drop[i].add(j)
        planted.append({"image": i, "kind": "missing", "label": -1, "box": boxes[i][j].copy()})
    sides = np.concatenate([box_convert(b, "xyxy", "xywh")[:, 2:] for b in boxes if len(b)])
    added = 0
    while added < n:
        i = int(rng.integers(len(samples)))
        new = _background_box(boxes[i], rng, sizes[i], sides)
        if new is None:
            continue
        boxes[i] = np.concatenate([boxes[i], new[None]])
        classes[i] = np.concatenate([classes[i], [rng.integers(nc)]])
        planted.append({"image": i, "kind": "spurious", "label": len(boxes[i]) - 1, "box": new})
        added += 1
    for i, js in drop.items():  # re-index the labels that stay
        keep = [j for j in range(len(boxes[i])) if j not in js]
        index = {j: k for k, j in enumerate(keep)}
        for p in planted:
            if p["image"] == i and p["label"] >= 0:
                p["label"] = index[p["label"]]
        boxes[i], classes[i] = boxes[i][keep], classes[i][keep]
    return list(zip(boxes, classes)), planted


def _hits(record, p: dict) -> bool:
    """Whether ``record`` (a ``LabelIssue``) is on planted error ``p`` (any kind)."""
    if record.image != p["image"]:
        return False
    if record.label >= 0:
        return record.label == p["label"]
    return p["label"] < 0 and box_iou_np(np.asarray(record.fix["box"]), p["box"])[0, 0] >= 0.5


def score_ours(records: list, planted: list[dict]) -> dict:
    """Box-level precision of the flagged records, recall per kind (right kind) and any kind."""
    flagged = [r for r in records if r.score >= FLAG_SCORE]
    right = sum(any(_hits(r, p) for p in planted) for r in flagged)
    found = [[r.kind for r in flagged if _hits(r, p)] for p in planted]
    recall = {k: round(float(np.mean([p["kind"] in f for p, f in zip(planted, found) if p["kind"] == k])), 3)
              for k in KINDS}  # fmt: skip
    return {"box_precision": round(right / max(1, len(flagged)), 3), "flagged_records": len(flagged),
            "recall_per_kind": recall,
            "box_recall_any_kind": round(float(np.mean([bool(f) for f in found])), 3)}  # fmt: skip


def cleanlab_inputs(dets: list, truth: list, nc: int) -> tuple[list[dict], list[list[np.ndarray]]]:
    """cleanlab's ``labels`` (``{'bboxes', 'labels'}`` per image) and ``predictions`` (per image, per
    class, ``(M, 5)`` ``[x1, y1, x2, y2, score]``)."""
    labels = [{"bboxes": b.astype(np.float32), "labels": c} for b, c in truth]
    preds = []
    for d in dets:
        d = d.numpy()
        rows = np.concatenate([np.asarray(d.boxes, np.float32).reshape(-1, 4),
                               np.asarray(d.scores, np.float32)[:, None]], 1)  # fmt: skip
        preds.append([rows[np.asarray(d.class_ids) == k] for k in range(nc)])
    return labels, preds


def image_metrics(positive: np.ndarray, ranking: np.ndarray, flagged: np.ndarray) -> dict:
    """Image-level AP of ``ranking`` (higher: worse), precision and recall of ``flagged``."""
    tp = int((flagged & positive).sum())
    return {"image_ap": round(float(average_precision_score(positive, ranking)), 3),
            "image_precision": round(tp / max(1, int(flagged.sum())), 3),
            "image_recall": round(tp / max(1, int(positive.sum())), 3), "flagged_images": int(flagged.sum())}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--rate", type=float, default=0.03, help="fraction of boxes planted per kind")
    p.add_argument("--weights", default=str(WEIGHTS))
    p.add_argument("--data", default=str(DATA))
    a = p.parse_args(argv)
    spec = load_dataset(a.data)
    samples, nc = spec.val, len(spec.names)
    det = Detector.load(a.weights, settings=InferConfig.for_map())
    det.warmup()
    dets, kept, _ = run_detector(det, samples, workers=2)
    samples = [samples[i] for i in kept]
    truth, planted = plant(samples, nc, a.rate, a.seed)
    positive = np.zeros(len(samples), bool)
    positive[[q["image"] for q in planted]] = True
    t = time.perf_counter()
    records = audit_labels(dets, truth, [s.image for s in samples])
    ours_s = time.perf_counter() - t
    scores = image_scores(records, len(samples))
    ours = {**image_metrics(positive, scores, scores >= FLAG_SCORE), **score_ours(records, planted)}
    from cleanlab.object_detection.filter import find_label_issues
    from cleanlab.object_detection.rank import get_label_quality_scores

    labels, preds = cleanlab_inputs(dets, truth, nc)
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        quality = get_label_quality_scores(labels, preds, verbose=False)
        issues = find_label_issues(labels, preds)
    clean_s = time.perf_counter() - t
    theirs = image_metrics(positive, 1.0 - quality, np.asarray(issues, bool))
    where = (f"demo model on the demo val split, {len(samples)} images, {len(planted)} errors planted "
             f"({a.rate:.0%} of boxes per kind, seed {a.seed}) in {int(positive.sum())} images")  # fmt: skip
    report(ours, theirs, where, ours_s, clean_s)


def report(ours: dict, theirs: dict, where: str, ours_s: float, clean_s: float) -> None:
    """JSON lines for ``run_all.py``: the AP gain over cleanlab, the box-level precision and the
    recall per kind (each with its target), then both tools' image-level figures (no target)."""
    rows = [{"what": "label audit: image-level AP of the ranking, minus cleanlab's",
             "ours": round(ours["image_ap"] - theirs["image_ap"], 3), "anchor": theirs["image_ap"],
             "unit": "AP", "target": ">= 0.15", "note": f"ours {ours['image_ap']}; {where}"},
            {"what": "label audit: precision of the flagged records (score >= 0.5), box level",
             "ours": ours["box_precision"], "unit": "", "target": ">= 0.6",
             "note": f"{ours['flagged_records']} records flagged; any-kind recall "
                     f"{ours['box_recall_any_kind']}"}]  # fmt: skip
    rows += [{"what": f"label audit: recall of planted {k} (right kind, flagged), box level", "ours": v,
              "unit": "", "target": ">= 0.8", "note": where} for k, v in ours["recall_per_kind"].items()]
    for name, m, sec in (("ours", ours, ours_s), ("cleanlab", theirs, clean_s)):
        rows.append({"what": f"label audit, {name}: precision of the flagged images",
                     "ours": m["image_precision"],
                     "unit": "", "note": f"recall {m['image_recall']}, {m['flagged_images']} images flagged, "
                     f"image AP {m['image_ap']}, {sec:.2f} s to score"})  # fmt: skip
    for row in rows:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
