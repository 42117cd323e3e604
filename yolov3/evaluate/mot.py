"""Tracking scores against MOTChallenge ground truth: CLEAR MOT (MOTA, MOTP, ID switches; Bernardin &
Stiefelhagen 2008), identity (IDF1; Ristani et al. 2016) and HOTA (Luiten et al., IJCV 2021), computed
as TrackEval, the MOTChallenge's own scorer, computes them.

Inputs are MOTChallenge text files (``yolov3.data.synth_video.read_mot`` reads them): ground truth
``frame, id, x, y, w, h, flag, class, visibility`` (what ``yolov3 data synth --video`` writes) and
results ``frame, id, x, y, w, h, score, ...`` (what ``yolov3 track`` writes); boxes are the top-left
corner and size in pixels, frame numbers and ids are integers.

Which ground truth counts (``prepare``, in ``yolov3.evaluate.mot_frames``): a row is *expected* when its
flag (7th value) is not 0 and its visibility (9th; 1 when absent) is at least ``min_visibility``
(default 0.3: an object mostly hidden is not asked of a detector). The other rows are *ignored*, the way
TrackEval treats MOTChallenge's distractor classes: in each frame the result boxes are matched
one-to-one with every ground-truth box (IoU >= 0.5, largest total IoU); a result box matched with an
ignored row is left out of the scoring, and an ignored row is never a miss. Classes are not compared
(results files carry none).

Per sequence, then combined over sequences as TrackEval combines them (counts summed; MOTP, AssA and
LocA weighted by their matches):

- CLEAR: in each frame, ground truth and results are matched at IoU >= 0.5, the pairs of the previous
  frame kept first, then the largest total IoU. TP, FN, FP; IDSW counts a ground-truth object matched
  with another id than the one it was last matched with. MOTA = 1 - (FN + FP + IDSW) / GT; MOTP =
  mean IoU of the matches (higher is better).
- Identity: the one-to-one map between ground-truth and result ids with the most frames in which the
  two overlap at IoU >= 0.5 (IDTP); IDF1 = IDTP / (IDTP + (IDFP + IDFN) / 2).
- HOTA: ids are first aligned globally (soft overlap counts over the sequence); each frame is matched
  once, maximising alignment x IoU; then for each localisation threshold alpha = 0.05, 0.10 .. 0.95,
  the matches with IoU >= alpha are the TPs: DetA = TP / (TP + FN + FP), AssA = the mean over TPs of
  the Jaccard index of their (ground-truth id, result id) pair's TPs, HOTA = sqrt(DetA AssA), LocA =
  mean IoU of the TPs. The reported DetA, AssA, LocA and HOTA are means over alpha. (The paper matches
  anew per alpha; TrackEval, and so this module, match once; they can differ when an IoU lies near
  a threshold.)

Scores are fractions (0.783, not 78.3). This module reads files and arrays only: it knows nothing of
the tracker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from yolov3.data.synth_video import read_mot
from yolov3.errors import UserError
from yolov3.evaluate.mot_frames import EPS, MATCH_IOU, MIN_VISIBILITY, Frames, box_iou_xywh, prepare
from yolov3.files import atomic_writer

ALPHAS = np.arange(0.05, 0.99, 0.05)  # HOTA's localisation thresholds, TrackEval's very array (19)


def clear_counts(fr: Frames, threshold: float = MATCH_IOU) -> dict[str, float]:
    """CLEAR MOT counts: ``TP``, ``FN``, ``FP``, ``IDSW`` and ``MOTP_sum`` (IoU summed over matches)."""
    last = np.full(fr.num_gt_ids, -1)  # the result id each object was last matched with, ever
    previous = np.full(fr.num_gt_ids, -1)  # ... on the last frame with both ground truth and results
    tp = fn = fp = idsw = 0
    motp_sum = 0.0
    for g, h, iou in zip(fr.gt_ids, fr.hyp_ids, fr.iou):
        if not len(g) or not len(h):
            fn, fp = fn + len(g), fp + len(h)  # TrackEval keeps `previous` across such a frame
            continue
        score = 1000.0 * (h[None, :] == previous[g][:, None]) + iou  # continuing a match comes first
        score[iou < threshold - EPS] = 0
        r, c = linear_sum_assignment(-score)
        ok = score[r, c] > EPS
        r, c = r[ok], c[ok]
        before = last[g[r]]
        idsw += int(np.sum((before >= 0) & (before != h[c])))
        last[g[r]] = h[c]
        previous[:] = -1
        previous[g[r]] = h[c]
        tp, fn, fp = tp + len(r), fn + len(g) - len(r), fp + len(h) - len(r)
        motp_sum += float(iou[r, c].sum())
    return {"TP": tp, "FN": fn, "FP": fp, "IDSW": idsw, "MOTP_sum": motp_sum}


def identity_counts(fr: Frames, threshold: float = MATCH_IOU) -> dict[str, int]:
    """Identity counts: ``IDTP`` (frames where the globally matched ids overlap), ``IDFN``, ``IDFP``."""
    together = np.zeros((fr.num_gt_ids, fr.num_hyp_ids))
    gt_n, hyp_n = np.zeros(fr.num_gt_ids), np.zeros(fr.num_hyp_ids)
    for g, h, iou in zip(fr.gt_ids, fr.hyp_ids, fr.iou):
        rows, cols = np.nonzero(iou >= threshold)
        together[g[rows], h[cols]] += 1  # each pair at most once a frame: ids are unique per frame
        gt_n[g] += 1
        hyp_n[h] += 1
    idtp = 0
    if together.size:
        r, c = linear_sum_assignment(-together)
        idtp = int(round(together[r, c].sum()))
    return {"IDTP": idtp, "IDFN": int(gt_n.sum()) - idtp, "IDFP": int(hyp_n.sum()) - idtp}


def hota_counts(fr: Frames) -> dict[str, np.ndarray]:
    """HOTA's sums per alpha (``ALPHAS``): ``HOTA_TP``, ``HOTA_FN``, ``HOTA_FP``, ``AssA_sum`` (AssA
    times TP) and ``LocA_sum`` (IoU summed over TPs), each ``(19,)``."""
    n = len(ALPHAS)
    gt_n, hyp_n = np.zeros(fr.num_gt_ids), np.zeros(fr.num_hyp_ids)
    overlap = np.zeros((fr.num_gt_ids, fr.num_hyp_ids))  # soft co-occurrence of each id pair
    for g, h, iou in zip(fr.gt_ids, fr.hyp_ids, fr.iou):
        denom = iou.sum(0)[None, :] + iou.sum(1)[:, None] - iou
        overlap[np.ix_(g, h)] += np.where(denom > EPS, iou / np.where(denom > EPS, denom, 1), 0.0)
        gt_n[g] += 1
        hyp_n[h] += 1
    alignment = overlap / np.maximum(gt_n[:, None] + hyp_n[None, :] - overlap, EPS)
    tp, fn, fp, loc = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    pairs_g, pairs_h, pairs_iou = [], [], []
    for g, h, iou in zip(fr.gt_ids, fr.hyp_ids, fr.iou):
        if not len(g) or not len(h):
            fn, fp = fn + len(g), fp + len(h)
            continue
        r, c = linear_sum_assignment(-(alignment[np.ix_(g, h)] * iou))
        hit = iou[r, c][None, :] >= ALPHAS[:, None] - EPS  # (alphas, matches)
        tp += hit.sum(1)
        fn += len(g) - hit.sum(1)
        fp += len(h) - hit.sum(1)
        loc += (hit * iou[r, c][None, :]).sum(1)
        pairs_g.append(g[r])
        pairs_h.append(h[c])
        pairs_iou.append(iou[r, c])
    ass = np.zeros(n)
    if pairs_g:
        pg, ph, piou = np.concatenate(pairs_g), np.concatenate(pairs_h), np.concatenate(pairs_iou)
        for a, alpha in enumerate(ALPHAS):
            keep = piou >= alpha - EPS
            pair, count = np.unique(pg[keep] * fr.num_hyp_ids + ph[keep], return_counts=True)
            union = gt_n[pair // fr.num_hyp_ids] + hyp_n[pair % fr.num_hyp_ids] - count
            ass[a] = float(np.sum(count * count / np.maximum(1, union)))
    return {"HOTA_TP": tp, "HOTA_FN": fn, "HOTA_FP": fp, "AssA_sum": ass, "LocA_sum": loc}


def _zeros() -> np.ndarray:
    return np.zeros(len(ALPHAS))


@dataclass
class MOTScores:
    """The counts of one sequence, or of several summed, and the scores they give (properties,
    fractions). ``gt_dets`` / ``hyp_dets``: expected ground-truth boxes and scored result boxes;
    ``ignored``: result boxes left out on ignored ground truth. The ``hota_*`` arrays are per alpha."""

    frames: int = 0
    gt_dets: int = 0
    gt_ids: int = 0
    hyp_dets: int = 0
    hyp_ids: int = 0
    ignored: int = 0
    tp: int = 0
    fn: int = 0
    fp: int = 0
    idsw: int = 0
    motp_sum: float = 0.0
    idtp: int = 0
    idfn: int = 0
    idfp: int = 0
    hota_tp: np.ndarray = field(default_factory=_zeros)
    hota_fn: np.ndarray = field(default_factory=_zeros)
    hota_fp: np.ndarray = field(default_factory=_zeros)
    hota_ass: np.ndarray = field(default_factory=_zeros)  # AssA x TP per alpha
    hota_loc: np.ndarray = field(default_factory=_zeros)  # IoU summed over TPs per alpha

    def __add__(self, other: MOTScores) -> MOTScores:
        return MOTScores(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def mota(self) -> float:
        return (self.tp - self.fp - self.idsw) / max(1, self.tp + self.fn)

    @property
    def motp(self) -> float:
        return self.motp_sum / max(1, self.tp)

    @property
    def idf1(self) -> float:
        return self.idtp / max(1.0, self.idtp + 0.5 * self.idfp + 0.5 * self.idfn)

    @property
    def idp(self) -> float:
        return self.idtp / max(1, self.idtp + self.idfp)

    @property
    def idr(self) -> float:
        return self.idtp / max(1, self.idtp + self.idfn)

    @property
    def deta_alpha(self) -> np.ndarray:
        return self.hota_tp / np.maximum(1, self.hota_tp + self.hota_fn + self.hota_fp)

    @property
    def assa_alpha(self) -> np.ndarray:
        return self.hota_ass / np.maximum(1, self.hota_tp)

    @property
    def hota_alpha(self) -> np.ndarray:
        """HOTA at each alpha of ``ALPHAS``."""
        return np.sqrt(self.deta_alpha * self.assa_alpha)

    @property
    def loca_alpha(self) -> np.ndarray:
        return np.maximum(1e-10, self.hota_loc) / np.maximum(1e-10, self.hota_tp)  # 1 with no TP

    @property
    def hota(self) -> float:
        return float(self.hota_alpha.mean())

    @property
    def deta(self) -> float:
        return float(self.deta_alpha.mean())

    @property
    def assa(self) -> float:
        return float(self.assa_alpha.mean())

    @property
    def loca(self) -> float:
        return float(self.loca_alpha.mean())

    def summary(self) -> dict[str, float | int]:
        """The scores and counts by their usual names (``HOTA``, ``MOTA``, ``IDF1``, ``IDSW``...)."""
        return {
            "HOTA": self.hota, "DetA": self.deta, "AssA": self.assa, "LocA": self.loca,
            "MOTA": self.mota, "MOTP": self.motp, "IDF1": self.idf1, "IDP": self.idp, "IDR": self.idr,
            "IDSW": self.idsw, "TP": self.tp, "FP": self.fp, "FN": self.fn, "IDTP": self.idtp,
            "IDFP": self.idfp, "IDFN": self.idfn, "frames": self.frames, "gt_dets": self.gt_dets,
            "gt_ids": self.gt_ids, "hyp_dets": self.hyp_dets, "hyp_ids": self.hyp_ids,
            "ignored": self.ignored,
        }  # fmt: skip


def score_frames(fr: Frames) -> MOTScores:
    """Every count of one prepared sequence."""
    c, i, h = clear_counts(fr), identity_counts(fr), hota_counts(fr)
    return MOTScores(
        frames=len(fr.gt_ids),
        gt_dets=int(sum(len(g) for g in fr.gt_ids)),
        gt_ids=fr.num_gt_ids,
        hyp_dets=int(sum(len(x) for x in fr.hyp_ids)),
        hyp_ids=fr.num_hyp_ids,
        ignored=fr.ignored,
        tp=c["TP"], fn=c["FN"], fp=c["FP"], idsw=c["IDSW"], motp_sum=c["MOTP_sum"],
        idtp=i["IDTP"], idfn=i["IDFN"], idfp=i["IDFP"],
        hota_tp=h["HOTA_TP"], hota_fn=h["HOTA_FN"], hota_fp=h["HOTA_FP"],
        hota_ass=h["AssA_sum"], hota_loc=h["LocA_sum"],
    )  # fmt: skip


def score_sequence(
    gt: np.ndarray, hyp: np.ndarray, min_visibility: float = MIN_VISIBILITY, where: str = "results"
) -> MOTScores:
    """Ground truth and results rows of one sequence (module docstring) -> ``MOTScores``."""
    return score_frames(prepare(gt, hyp, min_visibility, where))


@dataclass
class MOTEvaluation:
    """Scores per sequence (in order) and combined, with the ground-truth filter used."""

    sequences: dict[str, MOTScores]
    min_visibility: float = MIN_VISIBILITY

    @property
    def combined(self) -> MOTScores:
        return sum(self.sequences.values(), MOTScores())

    def to_json(self) -> dict[str, Any]:
        return {
            "min_visibility": self.min_visibility,
            "match_iou": MATCH_IOU,
            "hota_alphas": [round(float(a), 2) for a in ALPHAS],
            "sequences": {name: s.summary() for name, s in self.sequences.items()},
            "combined": self.combined.summary(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        with atomic_writer(path) as f:
            f.write((json.dumps(self.to_json(), indent=1) + "\n").encode())
        return Path(path)

    def table(self) -> str:
        """A text table: one row per sequence and ``combined``."""
        cols = ["HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "FP", "FN", "frames", "gt_ids"]
        rows = [(name, s.summary()) for name, s in self.sequences.items()]
        if len(rows) > 1:
            rows.append(("combined", self.combined.summary()))
        width = max([8] + [len(name) for name, _ in rows])
        lines = [f"{'sequence':<{width}}" + "".join(f"{c:>8}" for c in cols)]
        for name, s in rows:
            cells = (f"{s[c]:>8.3f}" if isinstance(s[c], float) else f"{s[c]:>8d}" for c in cols)
            lines.append(f"{name:<{width}}" + "".join(cells))
        return "\n".join(lines)


def evaluate_files(
    sequences: Iterable[tuple[str, str | os.PathLike, str | os.PathLike | None]],
    min_visibility: float = MIN_VISIBILITY,
) -> MOTEvaluation:
    """Score ``(name, ground-truth file, results file)`` triples; a results file that is None or
    missing counts as a sequence in which nothing was tracked."""
    out = {}
    for name, gt_path, hyp_path in sequences:
        gt = read_mot(gt_path)
        if gt.shape[1] < 6:
            raise UserError(f"{gt_path}: {gt.shape[1]} values a line; expected frame, id, x, y, w, h, ...")
        has_results = hyp_path is not None and Path(hyp_path).is_file()
        hyp = read_mot(hyp_path) if has_results else np.zeros((0, 6))
        out[name] = score_sequence(gt, hyp, min_visibility, str(hyp_path))
    return MOTEvaluation(out, min_visibility)


__all__ = [
    "ALPHAS", "MATCH_IOU", "MIN_VISIBILITY", "Frames", "MOTEvaluation", "MOTScores", "box_iou_xywh",
    "clear_counts", "evaluate_files", "hota_counts", "identity_counts", "prepare", "score_frames",
    "score_sequence",
]  # fmt: skip
