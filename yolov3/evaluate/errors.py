"""TIDE error analysis: every false positive and false negative given one cause, and the mAP each
cause costs (Bolya et al., "TIDE: A General Toolbox for Identifying Object Detection Errors", ECCV
2020; the rules of its reference code, ``tidecv`` ``quantify.py``).

Per image, detections in decreasing score order (the first ``max_dets``) are matched greedily: each
takes the highest-IoU unused ground-truth box of its class when that IoU >= ``pos_threshold`` (0.5),
as COCO does. Each unmatched detection then gets the first cause that applies, in TIDE's order:

    loc    its best same-class IoU (used boxes included) is in [bg_threshold, pos_threshold]
    cls    IoU >= pos_threshold with a box of another class
    dupe   IoU >= pos_threshold with a box of its class that another detection already took
    bkg    IoU <= bg_threshold (0.1) with every box (or the image has none)
    both   anything else (wrong class and poorly placed)

A ground-truth box nobody matched is ``miss`` unless a ``cls`` / ``loc`` detection points at it.

The cost of a cause is TIDE's oracle: fix only that cause, recompute mAP, ``dAP = max(fixed - base,
0)``. Fixing ``cls`` / ``loc`` turns, per unused box, the highest-scoring ``cls`` / ``loc``
detection pointing at it into a true positive (of the box's class) if it is of the fixed cause, and
drops the other detections of that cause pointing at the box (and those pointing at a used box);
fixing ``dupe`` / ``bkg`` / ``both`` drops those detections; fixing ``miss`` drops the missed boxes
from the ground truth. mAP here is TIDE's: COCO's 101-point AP per class (precision envelope read at
recall 0, 0.01, ..., 1 by ``searchsorted``), times 100, averaged over every class with a box or a
detection. The special ``false_pos`` (every true positive scored above every false one) and
``false_neg`` (every unmatched box dropped) are reported as TIDE does.

Ignored boxes (difficult / crowd) are not TIDE's ignore regions: an unmatched detection whose best
same-class IoU with an ignored box is >= ``pos_threshold`` is left out of the AP and of the errors (as
``yolov3.evaluate.voc`` ignores it). Ties in score are broken by the order detections are pushed,
which is where TIDE's own dAPs can move by a hair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from yolov3.boxes import box_convert
from yolov3.evaluate.voc import box_iou_np
from yolov3.infer.results import Detections

# Detection kinds (``ErrorTable.det_kind``); a missed box is ``MISS`` in ``ErrorTable.gt_kind``.
TP, CLS, LOC, BOTH, DUPE, BKG, MISS, IGNORED = 0, 1, 2, 3, 4, 5, 6, -1
KINDS = {"cls": CLS, "loc": LOC, "both": BOTH, "dupe": DUPE, "bkg": BKG, "miss": MISS}
RECALL_POINTS = np.arange(101) / 100  # i / 100 as TIDE writes it (equal to COCO's linspace here)


@dataclass
class ErrorTable:
    """Every detection and ground-truth box of an evaluation with its TIDE kind.

    Detections ``(M,)``: ``det_image``, ``det_class``, ``det_score``, ``det_area`` (pixels²),
    ``det_kind`` (``TP`` ... ``BKG`` or ``IGNORED``), ``det_target`` (the index into the ground-truth
    arrays of the box a ``cls`` / ``loc`` detection points at, a ``TP``'s matched box, else -1).
    Ground truth ``(G,)`` (ignored boxes left out): ``gt_image``, ``gt_class``, ``gt_area``,
    ``gt_kind`` (``TP`` matched, ``MISS``, or -2: unmatched but pointed at by a ``cls`` / ``loc``).
    ``det_box`` ``(M, 4)`` and ``gt_box`` ``(G, 4)``: xyxy, original-image pixels (for drawing).
    """

    det_image: np.ndarray
    det_class: np.ndarray
    det_score: np.ndarray
    det_area: np.ndarray
    det_kind: np.ndarray
    det_target: np.ndarray
    gt_image: np.ndarray
    gt_class: np.ndarray
    gt_area: np.ndarray
    gt_kind: np.ndarray
    num_classes: int
    det_box: np.ndarray
    gt_box: np.ndarray


def _greedy_match(cls_iou: np.ndarray, pos: float) -> np.ndarray:
    """``(D, G)`` same-class IoU (0 across classes), rows in decreasing score -> ``(D,)`` matched box
    or -1: each row takes its best unused box when that IoU >= ``pos`` (TIDE / COCO greedy)."""
    match = np.full(len(cls_iou), -1, np.int64)
    if not cls_iou.size:
        return match
    buf = cls_iou.copy()
    for i in np.flatnonzero(cls_iou.max(1) >= pos):  # only these can match: the rest stay -1
        j = int(buf[i].argmax())
        if buf[i, j] >= pos:
            match[i] = j
            buf[:, j] = 0.0
    return match


def classify_image(
    det_boxes: np.ndarray, det_classes: np.ndarray, gt_boxes: np.ndarray, gt_classes: np.ndarray,
    pos: float = 0.5, bg: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One image, detections already in decreasing score order: ``(det_kind (D,), det_target (D,),
    gt_matched (G,) bool)`` by the rules of the module docstring (no ignored boxes here)."""
    d, g = len(det_boxes), len(gt_boxes)
    kind, target = np.full(d, BKG, np.int64), np.full(d, -1, np.int64)
    if not g or not d:
        return kind, target, np.zeros(g, bool)
    iou = box_iou_np(det_boxes, gt_boxes)
    same = det_classes[:, None] == gt_classes[None, :]
    cls_iou, other_iou = np.where(same, iou, 0.0), np.where(same, 0.0, iou)
    match = _greedy_match(cls_iou, pos)
    used = np.zeros(g, bool)
    used[match[match >= 0]] = True
    rows = np.arange(d)
    loc_j, cls_j = cls_iou.argmax(1), other_iou.argmax(1)
    loc_v, cls_v = cls_iou[rows, loc_j], other_iou[rows, cls_j]
    dupe_v = (cls_iou * used[None, :]).max(1)
    # the first test that holds wins, as in TIDE's if / continue chain; BOTH is the fall-through
    tests = [(bg <= loc_v) & (loc_v <= pos), cls_v >= pos, dupe_v >= pos, iou.max(1) <= bg]
    kinds = [LOC, CLS, DUPE, BKG]
    kind[:] = np.select(tests, kinds, BOTH)
    target[kind == LOC], target[kind == CLS] = loc_j[kind == LOC], cls_j[kind == CLS]
    kind[match >= 0], target[match >= 0] = TP, match[match >= 0]
    return kind, target, used


def _ignored(det_boxes: np.ndarray, det_classes: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
             pos: float) -> np.ndarray:  # fmt: skip
    """``(D,)`` bool: detections with IoU >= ``pos`` with an ignored box of their class."""
    if not len(boxes) or not len(det_boxes):
        return np.zeros(len(det_boxes), bool)
    iou = box_iou_np(det_boxes, boxes) * (det_classes[:, None] == classes[None, :])
    return iou.max(1) >= pos


def _areas(boxes: np.ndarray) -> np.ndarray:
    """Areas with an inverted side counted as 0 (not as a negative or positive product)."""
    sizes = np.clip(box_convert(boxes, "xyxy", "xywh")[:, 2:], 0, None)
    return sizes[:, 0] * sizes[:, 1]


def classify(
    detections: Sequence[Detections],
    ground_truth: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
    pos_threshold: float = 0.5,
    bg_threshold: float = 0.1,
    max_dets: int = 100,
) -> ErrorTable:
    """The TIDE kind of every detection and box. ``detections[i]``: original-image pixels, xyxy;
    ``ground_truth[i]``: ``(boxes (G, 4) xyxy, classes (G,), ignore (G,) bool)`` as
    ``yolov3.evaluate.evaluator.ground_truth_of`` returns them."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} images of detections for {len(ground_truth)} of ground truth")
    dets: list[list[np.ndarray]] = []
    gts: list[list[np.ndarray]] = []
    g_offset = 0
    for i, (d, (gb, gc, gi)) in enumerate(zip(detections, ground_truth)):
        db, ds, dc = (np.asarray(a) for a in (d.boxes, d.scores, d.class_ids))
        order = np.argsort(-np.asarray(ds, np.float64), kind="stable")[:max_dets]
        db, ds, dc = np.asarray(db, np.float64).reshape(-1, 4)[order], ds[order], dc[order].astype(np.int64)
        gb, gc, gi = np.asarray(gb, np.float64).reshape(-1, 4), np.asarray(gc, np.int64), np.asarray(gi, bool)
        kind, target, used = classify_image(db, dc, gb[~gi], gc[~gi], pos_threshold, bg_threshold)
        ignored = (kind != TP) & _ignored(db, dc, gb[gi], gc[gi], pos_threshold)
        kind[ignored], target[ignored] = IGNORED, -1
        pointed = np.zeros(len(used), bool)
        pointed[target[(kind == CLS) | (kind == LOC)]] = True
        gt_kind = np.where(used, TP, np.where(pointed, -2, MISS))
        target = np.where(target >= 0, target + g_offset, -1)
        dets.append([np.full(len(ds), i), dc, np.asarray(ds, np.float64), _areas(db), kind, target, db])
        gts.append([np.full(len(used), i), gc[~gi], _areas(gb[~gi]), gt_kind, gb[~gi]])
        g_offset += len(used)
    dcols = [np.concatenate([p[k] for p in dets]) if dets else np.zeros(0) for k in range(7)]
    gcols = [np.concatenate([p[k] for p in gts]) if gts else np.zeros(0) for k in range(5)]
    dbox, gbox = (c.reshape(-1, 4) for c in (dcols.pop(), gcols.pop()))
    return ErrorTable(*dcols, *gcols, num_classes=num_classes, det_box=dbox, gt_box=gbox)  # type: ignore[arg-type]


def tide_ap(scores: np.ndarray, tp: np.ndarray, npos: int) -> float:
    """TIDE's AP of one class (``ap.py``, ``APDataObject.get_ap``): points in decreasing score
    (stable), precision envelope, read at recall i / 100 with ``searchsorted(side='left')`` (0 past
    the curve's end), averaged, times 100; 0 without ground truth."""
    if npos <= 0 or not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    ctp = np.cumsum(tp[order])
    precision = ctp / np.arange(1, len(ctp) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope: no dips
    idx = np.searchsorted(ctp / npos, RECALL_POINTS, side="left")
    y = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(y.mean() * 100)


def tide_map(classes: np.ndarray, scores: np.ndarray, tp: np.ndarray, npos: np.ndarray) -> float:
    """TIDE's mAP: the mean ``tide_ap`` over classes with a box or a detection (0 when none)."""
    order = np.argsort(classes, kind="stable")  # each class one slice, push order kept inside it
    bounds = np.searchsorted(classes[order], np.arange(len(npos) + 1))
    aps = []
    for c in range(len(npos)):
        rows = order[bounds[c] : bounds[c + 1]]
        if npos[c] > 0 or rows.size:
            aps.append(tide_ap(scores[rows], tp[rows], int(npos[c])))
    return float(np.mean(aps)) if aps else 0.0


def _best_pointing(table: ErrorTable) -> np.ndarray:
    """``(M,)`` bool: the ``cls`` / ``loc`` detections an oracle may turn into true positives - per
    unused box, the highest-scoring one pointing at it (the first on ties: TIDE's ``BestGTMatch``)."""
    k, t = table.det_kind, table.det_target
    cand = np.flatnonzero(((k == CLS) | (k == LOC)) & (t >= 0))
    cand = cand[table.gt_kind[t[cand]] != TP]
    best = np.zeros(len(k), bool)
    if cand.size:
        order = cand[np.lexsort((cand, -table.det_score[cand], t[cand]))]
        _, first = np.unique(t[order], return_index=True)
        best[order[first]] = True
    return best


def fixed_map(table: ErrorTable, fix: int | None = None) -> float:
    """TIDE's mAP with the errors of kind ``fix`` corrected by the oracle (module docstring); the
    base mAP with ``fix=None``."""
    kind, cls, score = table.det_kind, table.det_class.copy(), table.det_score
    tp, keep = kind == TP, kind != IGNORED
    gt_cls = table.gt_class
    npos = np.bincount(gt_cls, minlength=table.num_classes)[: table.num_classes].astype(np.int64)
    if fix in (CLS, LOC):
        chosen, best = kind == fix, _best_pointing(table)
        fixed = chosen & best
        tp = tp | fixed
        cls[fixed] = gt_cls[table.det_target[fixed]]
        keep &= ~(chosen & ~best)
    elif fix == MISS:
        npos -= np.bincount(gt_cls[table.gt_kind == MISS], minlength=table.num_classes)[: table.num_classes]
    elif fix is not None:
        keep &= kind != fix
    return tide_map(cls[keep], score[keep], tp[keep], npos)


def special_maps(table: ErrorTable) -> dict[str, float]:
    """TIDE's special oracles: ``false_pos`` (every true positive scored 1, every false one 0) and
    ``false_neg`` (every unmatched box dropped from the ground truth), as mAPs."""
    keep = table.det_kind != IGNORED
    cls, tp = table.det_class[keep], table.det_kind[keep] == TP
    npos = np.bincount(table.gt_class, minlength=table.num_classes)[: table.num_classes]
    missed = np.bincount(table.gt_class[table.gt_kind != TP], minlength=table.num_classes)
    return {
        "false_pos": tide_map(cls, tp.astype(np.float64), tp, npos),
        "false_neg": tide_map(cls, table.det_score[keep], tp, npos - missed[: table.num_classes]),
    }


def delta_ap(table: ErrorTable) -> dict[str, float]:
    """``{kind: dAP}`` for the six main kinds and the two special ones (TIDE's ``max(fixed - base, 0)``
    for the main kinds, ``fixed - base`` for the special ones), in mAP points (0..100)."""
    base = fixed_map(table)
    out = {name: max(fixed_map(table, k) - base, 0.0) for name, k in KINDS.items()}
    out.update({name: m - base for name, m in special_maps(table).items()})
    return out


COCO_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))  # 0.50 .. 0.95, TIDE's COCO_THRESHOLDS


def map_range(
    detections: Sequence[Detections],
    ground_truth: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
    thresholds: Sequence[float] = COCO_THRESHOLDS,
    max_dets: int = 100,
) -> float:
    """TIDE's mAP averaged over IoU ``thresholds`` (its ``evaluate_range``: one matching per threshold;
    the errors are those of one threshold only). Costs one ``classify`` per threshold."""
    maps = [fixed_map(classify(detections, ground_truth, num_classes, t, min(0.1, t), max_dets))
            for t in thresholds]  # fmt: skip
    return float(np.mean(maps))
