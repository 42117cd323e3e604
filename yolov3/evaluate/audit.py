"""Label audit: which labels of a split are likely wrong and which boxes are likely missing, judged by
a model's predictions on it (``yolov3 data audit``; issue 24).

Per image, the confident predictions (score >= ``conf_threshold``) are matched one to one to the labels
they overlap at IoU >= ``match_iou``, best fit first (highest IoU), pairs of the same class before
pairs of different classes (``match_predictions``). Then

    missing      a confident prediction matched to nothing: score ``p * clip((pos_iou - o) /
                 (pos_iou - bg_iou))`` with ``o`` its best IoU with any label (a prediction overlapping
                 a label at ``pos_iou`` or more is a duplicate, not a missing box); fix: add it
    wrong_class  a label matched by a prediction of another class: ``p_other * (1 - p_own)``, ``p_own``
                 the best score of any prediction of the label's class at IoU >= ``pos_iou``; fix:
                 the predicted class
    bad_box      a label matched by a same-class prediction at IoU below ``good_iou``: ``p * clip(
                 (good_iou - iou) / (good_iou - pos_iou))`` (IoU <= ``pos_iou``: the model's score;
                 a detection there would not even count as correct); fix: the predicted box
    spurious     a label nothing confident matched: ``clip(1 - p_near / conf_threshold)``, ``p_near``
                 the best score of any prediction of any class (confident or not) overlapping it at
                 IoU > ``bg_iou``: a real object nearly always draws at least a weak prediction, a
                 box on background none; fix: delete it

Every score reads as "how likely this label (or absence of one) is wrong" in [0, 1], from the model's
own confidence and the overlap, so the kinds rank on one scale and 0.5 ("more likely wrong than
right") is the flag threshold. ``bg_iou`` / ``pos_iou`` are TIDE's background and positive IoUs (0.1,
0.5); ``good_iou`` (0.75), the spurious ramp and best-fit-first matching were chosen on seed 0 of
``benchmarks/bench_audit.py`` (the figures reported are seed 2's, a seed not looked at before).
Images rank by their worst record. Records scoring under ``min_score`` are not kept, so a clean image
gets none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolov3.boxes import box_convert
from yolov3.data.types import Sample
from yolov3.evaluate.voc import box_iou_np
from yolov3.files import atomic_writer
from yolov3.infer.results import Detections

KINDS = ("missing", "wrong_class", "bad_box", "spurious")
FIXES = {"missing": "add", "wrong_class": "relabel", "bad_box": "move", "spurious": "delete"}
FLAG_SCORE = 0.5  # a record at or above this is flagged: more likely wrong than right


@dataclass(frozen=True)
class AuditThresholds:
    """The audit's thresholds (module docstring): scores and IoUs in [0, 1]."""

    conf_threshold: float = 0.25
    bg_iou: float = 0.1
    match_iou: float = 0.25
    pos_iou: float = 0.5
    good_iou: float = 0.75
    min_score: float = 0.1


@dataclass
class LabelIssue:
    """One likely error. ``image``: index into the audited images (``path`` its file); ``label``: the
    index of the label in its image (-1 for ``missing``); ``box``: xyxy original-image pixels of the
    label (of the prediction for ``missing``), ``cls`` its class; ``fix``: ``{"action": add | relabel
    | move | delete, "box": xyxy, "cls": int}``, the label as the model would have it."""

    image: int
    kind: str
    score: float
    label: int
    box: list[float]
    cls: int
    fix: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _as_arrays(det: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = det.numpy()
    return (np.asarray(d.boxes, np.float64).reshape(-1, 4), np.asarray(d.scores, np.float64),
            np.asarray(d.class_ids, np.int64))  # fmt: skip


def _ramp(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    """1 at ``x <= lo``, 0 at ``x >= hi``, linear between."""
    return np.clip((hi - np.asarray(x, np.float64)) / (hi - lo), 0.0, 1.0)


def match_predictions(iou: np.ndarray, pcls: np.ndarray, gcls: np.ndarray, confident: np.ndarray,
                      t: AuditThresholds) -> np.ndarray:  # fmt: skip
    """``(P,)`` the label each prediction took (-1: none). ``iou``: ``(P, G)``; only ``confident``
    predictions take a label. Pairs are taken best fit first (highest IoU), same-class pairs before
    pairs of different classes, so each label is explained by the prediction that fits it best."""
    match = np.full(iou.shape[0], -1, np.int64)
    taken = np.zeros(iou.shape[1], bool)
    same = pcls[:, None] == gcls[None, :]
    for pairs in (same, ~same):
        ok = pairs & confident[:, None] & (iou >= t.match_iou)
        for flat in np.argsort(-np.where(ok, iou, -1.0), axis=None, kind="stable")[: int(ok.sum())]:
            i, j = divmod(int(flat), iou.shape[1])
            if match[i] < 0 and not taken[j]:
                match[i], taken[j] = j, True
    return match


def audit_image(det: Detections, boxes: np.ndarray, classes: np.ndarray, image: int = 0,
                t: AuditThresholds = AuditThresholds()) -> list[LabelIssue]:  # fmt: skip
    """The records of one image: ``det`` its predictions, ``boxes`` ``(G, 4)`` xyxy and ``classes``
    ``(G,)`` its labels, ``image`` its index (module docstring)."""
    pb, ps, pc = _as_arrays(det)
    order = np.argsort(-ps, kind="stable")
    pb, ps, pc = pb[order], ps[order], pc[order]
    gb, gc = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(classes, np.int64)
    iou = box_iou_np(pb, gb)  # (P, G)
    match = match_predictions(iou, pc, gc, ps >= t.conf_threshold, t)
    out: list[LabelIssue] = []

    def add(kind: str, score: float, label: int, fix_box: np.ndarray, fix_cls: int) -> None:
        if score >= t.min_score:
            box, cls = (gb[label], int(gc[label])) if label >= 0 else (fix_box, fix_cls)
            fix = {"action": FIXES[kind], "box": [round(float(v), 2) for v in fix_box], "cls": int(fix_cls)}
            out.append(LabelIssue(image, kind, round(float(score), 6), label,
                                  [round(float(v), 2) for v in box], cls, fix))  # fmt: skip

    for i in np.flatnonzero(ps >= t.conf_threshold):
        j = match[i]
        if j < 0:
            overlap = iou[i].max(initial=0.0)
            add("missing", ps[i] * _ramp(overlap, t.bg_iou, t.pos_iou), -1, pb[i], int(pc[i]))
        elif pc[i] != gc[j]:
            own = ps[(pc == gc[j]) & (iou[:, j] >= t.pos_iou)].max(initial=0.0)
            add("wrong_class", ps[i] * (1.0 - own), int(j), gb[j], int(pc[i]))
        elif iou[i, j] < t.good_iou:
            add("bad_box", ps[i] * _ramp(iou[i, j], t.pos_iou, t.good_iou), int(j), pb[i], int(gc[j]))
    for j in np.setdiff1d(np.arange(len(gb)), match[match >= 0]):
        near = ps[iou[:, j] > t.bg_iou].max(initial=0.0)
        add("spurious", float(_ramp(near, 0.0, t.conf_threshold)), int(j), gb[j], int(gc[j]))
    return sorted(out, key=lambda r: -r.score)


def audit_labels(detections: Sequence[Detections], truth: Sequence[tuple[np.ndarray, np.ndarray]],
                 paths: Sequence[str] | None = None,
                 thresholds: AuditThresholds = AuditThresholds()) -> list[LabelIssue]:  # fmt: skip
    """Every record of every image, worst image first (by its worst record), each image's records
    worst first. ``detections[i]``: the predictions on image ``i`` (original pixels, a low score
    threshold so that ``spurious`` sees weak ones too); ``truth[i]``: its ``(boxes, classes)``."""
    if len(detections) != len(truth):
        raise ValueError(f"{len(detections)} prediction sets for {len(truth)} images")
    per_image = []
    for i, (det, gt) in enumerate(zip(detections, truth)):
        records = audit_image(det, gt[0], gt[1], i, thresholds)
        for r in records:
            r.path = str(paths[i]) if paths is not None else ""
        per_image.append(records)
    ranked = sorted((r for r in per_image if r), key=lambda rs: -rs[0].score)
    return [r for rs in ranked for r in rs]


def image_scores(records: Sequence[LabelIssue], n_images: int) -> np.ndarray:
    """``(n_images,)`` each image's worst record score (0 without records): the ranking of images."""
    scores = np.zeros(n_images)
    for r in records:
        scores[r.image] = max(scores[r.image], r.score)
    return scores


def count_kinds(records: Sequence[LabelIssue], flag: float = FLAG_SCORE) -> dict[str, int]:
    """Flagged records (score >= ``flag``) per kind."""
    return {k: sum(1 for r in records if r.kind == k and r.score >= flag) for k in KINDS}


def write_issues(records: Sequence[LabelIssue], path: str | os.PathLike) -> Path:
    """``issues.jsonl``: one record a line (``LabelIssue.to_json``), in ranking order."""
    with atomic_writer(path) as f:
        for r in records:
            f.write((json.dumps(r.to_json()) + "\n").encode("utf-8"))
    return Path(path)


def proposals_coco(records: Sequence[LabelIssue], samples: Sequence[Sample], names: Sequence[str],
                   flag: float = FLAG_SCORE) -> dict[str, Any]:  # fmt: skip
    """The flagged records (score >= ``flag``) as a COCO annotation document a labelling tool can load:
    every audited image (``id`` its index + 1, ``file_name`` its path), the classes (``id`` index + 1)
    and one annotation per proposed fix: ``bbox`` (xywh) and ``category_id`` of the label as the model
    would have it, plus ``action`` (add | relabel | move | delete), ``kind``, ``score`` and ``label``
    (the index of the label in its image, -1 for an added box)."""
    images = [{"id": i + 1, "file_name": str(s.image), "width": int(s.width), "height": int(s.height)}
              for i, s in enumerate(samples)]  # fmt: skip
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
    annotations = []
    for r in (r for r in records if r.score >= flag):
        xywh = box_convert(np.asarray(r.fix["box"], np.float64).reshape(1, 4), "xyxy", "xywh")[0]
        annotations.append({"id": len(annotations) + 1, "image_id": r.image + 1,
                            "category_id": r.fix["cls"] + 1, "bbox": [round(float(v), 2) for v in xywh],
                            "area": round(float(xywh[2] * xywh[3]), 2), "iscrowd": 0,
                            "action": r.fix["action"], "kind": r.kind, "score": r.score, "label": r.label})
    return {"info": {"description": "yolov3 data audit: proposed label fixes"}, "images": images,
            "categories": categories, "annotations": annotations}  # fmt: skip
