"""Tracking scores (``yolov3.evaluate.mot``) and ``yolov3 track --eval``.

References, none of them the module itself:
- CLEAR MOT (MOTA, MOTP, ID switches, FP, FN) and IDF1: ``motmetrics``, an independent implementation,
  fed the same ground-truth filter written out here frame by frame. motmetrics keeps an object's
  match from the last frame it was matched in, TrackEval (and so ``mot.py``) only from the previous
  frame; the two differ only when an object, unmatched for a while, comes back with two candidate
  boxes. The CLEAR comparisons use scenes where that cannot happen (objects in lanes of their own,
  false positives far away); a hand-made case pins the difference itself. IDF1 is compared on scenes
  with every kind of overlap.
- HOTA: a slow, literal transcription of the published formulas below (global alignment, each frame's
  matching found by trying every one-to-one matching, DetA, AssA and LocA per alpha, averaged over
  alpha = 0.05 .. 0.95), and tiny cases whose HOTA is derived on paper in the comments.
- ``trackeval`` (TrackEval's metric classes), when installed: it is not a dependency (every release
  on PyPI requires the GUI ``opencv-python``, which would replace the headless OpenCV), but
  ``pip install --no-deps trackeval`` makes that test run.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from yolov3.data.synth_video import VideoSynthConfig, generate_video, read_mot
from yolov3.errors import UserError
from yolov3.evaluate.mot import ALPHAS, Frames, MOTEvaluation, prepare, score_frames, score_sequence

if not hasattr(np, "asfarray"):  # motmetrics 1.4 calls it; NumPy 2 removed it
    setattr(np, "asfarray", lambda a, dtype=float: np.asarray(a, dtype=dtype))  # noqa: B010
mm = pytest.importorskip("motmetrics")

NAMES = ["circle", "square", "triangle", "letter-X", "digit-3"]
EPS = np.finfo(float).eps


# ---------------------------------------------------------------------------------------------------
# Independent helpers: IoU, the documented ground-truth filter, motmetrics
# ---------------------------------------------------------------------------------------------------


def iou(a, b) -> float:
    """IoU of two (x, y, w, h) boxes, by hand."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - iw * ih
    return iw * ih / union if union > 0 else 0.0


def filtered(gt: np.ndarray, hyp: np.ndarray, min_visibility: float):
    """The documented filter (``yolov3.evaluate.mot``) written out frame by frame: ``[(frame, expected
    gt rows, kept result rows)]``. A row is expected when its flag is not 0 and visibility >=
    min_visibility; a result box matched with an ignored row (one-to-one, IoU >= 0.5, largest total
    IoU) is dropped."""
    out = []
    for f in sorted(set(gt[:, 0].astype(int)) | set(hyp[:, 0].astype(int))):
        g, h = gt[gt[:, 0] == f], hyp[hyp[:, 0] == f]
        expected = (g[:, 6] != 0) & (g[:, 8] >= min_visibility)
        keep = np.ones(len(h), bool)
        if len(g) and len(h):
            score = np.array([[iou(x[2:6], y[2:6]) for y in h] for x in g])
            score[score < 0.5] = 0
            rows, cols = linear_sum_assignment(-score)
            for r, c in zip(rows, cols):
                if score[r, c] > 0 and not expected[r]:
                    keep[c] = False
        out.append((f, g[expected], h[keep]))
    return out


def motmetrics_scores(sequences, min_visibility: float) -> dict[str, float]:
    """motmetrics' overall MOTA, MOTP (as mean IoU), IDF1, switches, FP, FN over ``[(gt, hyp)]``."""
    accs = []
    for gt, hyp in sequences:
        acc = mm.MOTAccumulator(auto_id=False)
        for f, g, h in filtered(gt, hyp, min_visibility):
            acc.update(g[:, 1], h[:, 1], mm.distances.iou_matrix(g[:, 2:6], h[:, 2:6], max_iou=0.5), f)
        accs.append(acc)
    names = ["mota", "motp", "idf1", "num_switches", "num_false_positives", "num_misses"]
    s = mm.metrics.create().compute_many(accs, metrics=names, generate_overall=True).loc["OVERALL"]
    return {"MOTA": s["mota"], "MOTP": 1 - s["motp"], "IDF1": s["idf1"], "IDSW": s["num_switches"],
            "FP": s["num_false_positives"], "FN": s["num_misses"]}  # fmt: skip


def lane_scene(seed: int, frames: int = 60, objects: int = 5):
    """Objects in horizontal lanes of their own (no two overlap), tracked with misses, jitter, id
    switches and re-acquired ids, false positives far from every object, and low-visibility rows with
    and without a box on them. Ground truth rows: frame, id, x, y, w, h, flag, class, visibility."""
    rng = np.random.default_rng(seed)
    x, speed = rng.uniform(0, 100, objects), rng.uniform(-3, 3, objects)
    size = rng.uniform(30, 60, (objects, 2))
    ids, fresh = np.arange(1, objects + 1) * 10, 1000
    gt, hyp = [], []
    for f in range(1, frames + 1):
        x += speed
        for k in range(objects):
            if rng.random() < 0.05:
                continue  # not in the picture
            vis = 1.0 if rng.random() < 0.8 else rng.uniform(0, 0.6)
            flag = 0 if rng.random() < 0.03 else 1
            box = np.array([x[k], 100.0 * k, *size[k]])
            gt.append([f, k + 1, *box, flag, 1, vis])
            if rng.random() < 0.15:
                continue  # missed
            if rng.random() < 0.05:
                ids[k], fresh = fresh, fresh + 1  # an id switch
            moved = box + rng.normal(0, 0.12, 4) * np.r_[size[k], size[k]]
            hyp.append([f, ids[k], *moved, 0.9, -1, -1, -1])
        for _ in range(int(rng.integers(0, 3))):
            hyp.append([f, fresh, *rng.uniform(5000, 6000, 2), 40, 40, 0.4, -1, -1, -1])
            fresh += 1
    return np.array(gt), np.array(hyp)


def crowd_scene(seed: int, frames: int = 30, objects: int = 6):
    """Objects moving freely (crossing, overlapping), tracked with misses, jitter, switches, duplicates
    and false positives near them."""
    rng = np.random.default_rng(seed)
    pos, vel = rng.uniform(0, 150, (objects, 2)), rng.normal(0, 3, (objects, 2))
    size = rng.uniform(20, 50, (objects, 2))
    ids, fresh = np.arange(1, objects + 1) * 10, 1000
    gt, hyp = [], []
    for f in range(1, frames + 1):
        pos += vel
        for k in range(objects):
            if rng.random() < 0.1:
                continue
            box = np.r_[pos[k], size[k]]
            gt.append([f, k + 1, *box, 1, 1, rng.uniform(0, 1)])
            if rng.random() < 0.2:
                continue
            if rng.random() < 0.08:
                ids[k], fresh = fresh, fresh + 1
            scale = np.r_[size[k], size[k]]
            hyp.append([f, ids[k], *(box + rng.normal(0, 0.15, 4) * scale), 0.9, -1, -1, -1])
            if rng.random() < 0.05:  # a duplicate on the same object
                hyp.append([f, fresh, *(box + rng.normal(0, 0.1, 4) * scale), 0.5, -1, -1, -1])
                fresh += 1
        for _ in range(int(rng.integers(0, 2))):
            hyp.append([f, fresh, *rng.uniform(0, 150, 2), 30, 30, 0.5, -1, -1, -1])
            fresh += 1
    return np.array(gt), np.array(hyp)


# ---------------------------------------------------------------------------------------------------
# CLEAR MOT and IDF1 against motmetrics
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("min_visibility", [0.0, 0.3, 0.5])
@pytest.mark.parametrize("seed", range(4))
def test_clear_and_idf1_match_motmetrics(seed, min_visibility):
    gt, hyp = lane_scene(seed)
    ours = score_sequence(gt, hyp, min_visibility)
    ref = motmetrics_scores([(gt, hyp)], min_visibility)
    assert ours.idsw == ref["IDSW"] and ours.fp == ref["FP"] and ours.fn == ref["FN"]
    assert ours.mota == pytest.approx(ref["MOTA"], abs=1e-12)
    assert ours.motp == pytest.approx(ref["MOTP"], abs=1e-12)
    assert ours.idf1 == pytest.approx(ref["IDF1"], abs=1e-12)
    assert ours.idsw > 0 and ours.fp > 0 and ours.fn > 0  # the scene exercises every count


@pytest.mark.parametrize("seed", range(6))
def test_idf1_matches_motmetrics_in_crowds(seed):
    gt, hyp = crowd_scene(seed)
    ref = motmetrics_scores([(gt, hyp)], 0.3)
    assert score_sequence(gt, hyp, 0.3).idf1 == pytest.approx(ref["IDF1"], abs=1e-12)


def test_sequences_combine_as_motmetrics_overall():
    seqs = [lane_scene(7), lane_scene(8, frames=30, objects=3)]
    ev = MOTEvaluation({f"s{k}": score_sequence(gt, hyp, 0.3) for k, (gt, hyp) in enumerate(seqs)})
    ref = motmetrics_scores(seqs, 0.3)
    c = ev.combined
    assert (c.idsw, c.fp, c.fn) == (ref["IDSW"], ref["FP"], ref["FN"])
    assert c.mota == pytest.approx(ref["MOTA"]) and c.motp == pytest.approx(ref["MOTP"])
    assert c.idf1 == pytest.approx(ref["IDF1"])


def box_row(f, i, x, y=0.0, w=10.0, h=10.0, vis=1.0, flag=1):
    return [f, i, x, y, w, h, flag, 1, vis]


def test_match_continues_only_from_the_previous_frame():
    """Object 1 is matched with result 7 on frame 1, missed on frame 2 (result 7 is elsewhere), and on
    frame 3 both 7 and a better-placed 8 cover it. TrackEval (and ``mot.py``) keep a match only from
    the previous frame, so frame 3 takes the better box, 8: one switch. motmetrics keeps 7 from frame 1:
    no switch. On frame 2, 7 was a false positive either way."""
    gt = np.array([box_row(1, 1, 0), box_row(2, 1, 0), box_row(3, 1, 0)])
    hyp = np.array([box_row(1, 7, 0), box_row(2, 7, 100), box_row(3, 7, 3), box_row(3, 8, 1)])
    ours = score_sequence(gt, hyp)
    assert (ours.tp, ours.fn, ours.fp, ours.idsw) == (2, 1, 2, 1)
    assert ours.mota == pytest.approx((2 - 2 - 1) / 3)
    assert motmetrics_scores([(gt, hyp)], 0.3)["IDSW"] == 0


def test_a_previous_match_wins_over_a_better_box():
    """Both conventions keep last frame's pair at IoU >= 0.5 even when another box fits better."""
    gt = np.array([box_row(1, 1, 0), box_row(2, 1, 0)])
    hyp = np.array([box_row(1, 7, 0), box_row(2, 7, 3), box_row(2, 8, 0)])
    ours = score_sequence(gt, hyp)
    assert (ours.tp, ours.fp, ours.idsw) == (2, 1, 0)
    assert ours.motp == pytest.approx((1 + 70 / 130) / 2)  # IoU of a 10x10 box moved 3 px: 70 / 130
    assert motmetrics_scores([(gt, hyp)], 0.3)["IDSW"] == 0


# ---------------------------------------------------------------------------------------------------
# The ground-truth filter
# ---------------------------------------------------------------------------------------------------


def test_hidden_objects_are_neither_missed_nor_false_positives():
    """Frame 1: object 1 visible (found), 2 at visibility 0.1 (found), 3 fully hidden (not found), 4
    with flag 0 (found), and a box on nothing."""
    gt = np.array([box_row(1, 1, 0), box_row(1, 2, 50, vis=0.1), box_row(1, 3, 100, vis=0.0),
                   box_row(1, 4, 150, flag=0)])  # fmt: skip
    hyp = np.array([box_row(1, 7, 1), box_row(1, 8, 50), box_row(1, 9, 150), box_row(1, 10, 300)])
    s = score_sequence(gt, hyp, min_visibility=0.3)
    assert (s.tp, s.fp, s.fn, s.ignored, s.gt_dets) == (1, 1, 0, 2, 1)  # 8 and 9 on ignored rows
    assert s.mota == 0.0
    s = score_sequence(gt, hyp, min_visibility=0.0)  # every visibility expected; the flag still rules
    assert (s.tp, s.fp, s.fn, s.ignored, s.gt_dets) == (2, 1, 1, 1, 3)
    assert s.mota == pytest.approx((2 - 1) / 3)


def test_a_frame_giving_one_id_twice_is_refused():
    gt = np.array([box_row(1, 1, 0)])
    with pytest.raises(UserError, match="frame 1 gives id 7 twice"):
        score_sequence(gt, np.array([box_row(1, 7, 0), box_row(1, 7, 40)]), where="r.txt")


# ---------------------------------------------------------------------------------------------------
# HOTA: a literal transcription, and cases worked out by hand
# ---------------------------------------------------------------------------------------------------


def hota_reference(frames: list[tuple[list, list, np.ndarray]]) -> dict[str, list[float]]:
    """HOTA (Luiten et al. 2021, as TrackEval computes it), slowly. ``frames``: ``(gt ids, result
    ids, IoU matrix)`` per frame. Returns HOTA, DetA, AssA, LocA per alpha = 0.05 .. 0.95."""
    gt_count, hyp_count, overlap = {}, {}, {}
    for gids, hids, s in frames:
        for g in gids:
            gt_count[g] = gt_count.get(g, 0) + 1
        for h in hids:
            hyp_count[h] = hyp_count.get(h, 0) + 1
        for i, g in enumerate(gids):
            for j, h in enumerate(hids):
                union = sum(s[i, :]) + sum(s[:, j]) - s[i, j]  # the soft Jaccard of one detection pair
                if union > EPS:
                    overlap[g, h] = overlap.get((g, h), 0.0) + s[i, j] / union

    def align(g, h):  # A(g, h): soft co-occurrence over the union of the two tracks
        o = overlap.get((g, h), 0.0)
        return o / (gt_count[g] + hyp_count[h] - o)

    matches = []  # (g, h, IoU) of every frame's matching
    for gids, hids, s in frames:
        best, best_pairs = -1.0, []
        n = min(len(gids), len(hids))
        for rows in itertools.permutations(range(len(gids)), n):
            for cols in itertools.combinations(range(len(hids)), n):
                total = sum(align(gids[r], hids[c]) * s[r, c] for r, c in zip(rows, cols))
                if total > best:
                    best, best_pairs = total, list(zip(rows, cols))
        matches += [(gids[r], hids[c], s[r, c]) for r, c in best_pairs]
    n_gt, n_hyp = sum(len(f[0]) for f in frames), sum(len(f[1]) for f in frames)
    out = {"HOTA": [], "DetA": [], "AssA": [], "LocA": []}
    for alpha in [k / 20 for k in range(1, 20)]:
        tps = [(g, h, v) for g, h, v in matches if v >= alpha - EPS]
        tp = len(tps)
        det_a = tp / max(1, n_gt + n_hyp - tp)  # TP / (TP + FN + FP)
        tpa = {}
        for g, h, _ in tps:
            tpa[g, h] = tpa.get((g, h), 0) + 1
        ass_a = sum(tpa[g, h] / (gt_count[g] + hyp_count[h] - tpa[g, h]) for g, h, _ in tps) / max(1, tp)
        out["HOTA"].append(math.sqrt(det_a * ass_a))
        out["DetA"].append(det_a)
        out["AssA"].append(ass_a)
        out["LocA"].append(sum(v for *_, v in tps) / tp if tp else 1.0)
    return out


def reference_frames(gt: np.ndarray, hyp: np.ndarray, min_visibility: float):
    out = []
    for _, g, h in filtered(gt, hyp, min_visibility):
        s = np.array([[iou(x[2:6], y[2:6]) for y in h] for x in g]).reshape(len(g), len(h))
        out.append((g[:, 1].astype(int).tolist(), h[:, 1].astype(int).tolist(), s))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_hota_matches_the_literal_transcription(seed):
    gt, hyp = crowd_scene(seed, frames=25, objects=4)
    ours = score_sequence(gt, hyp, 0.3)
    ref = hota_reference(reference_frames(gt, hyp, 0.3))
    np.testing.assert_allclose(ours.hota_alpha, ref["HOTA"], atol=1e-12)
    np.testing.assert_allclose(ours.deta_alpha, ref["DetA"], atol=1e-12)
    np.testing.assert_allclose(ours.assa_alpha, ref["AssA"], atol=1e-12)
    np.testing.assert_allclose(ours.loca_alpha, ref["LocA"], atol=1e-12)
    assert ours.hota == pytest.approx(np.mean(ref["HOTA"]), abs=1e-12)
    assert 0.2 < ours.hota < 0.9  # neither trivial nor empty


def test_hota_combines_sequences_by_their_matches():
    """Combined: TP, FN and FP summed per alpha, AssA weighted by each sequence's TPs."""
    seqs = [crowd_scene(11, frames=20, objects=3), crowd_scene(12, frames=15, objects=4)]
    ev = MOTEvaluation({f"s{k}": score_sequence(gt, hyp, 0.3) for k, (gt, hyp) in enumerate(seqs)})
    refs = [hota_reference(reference_frames(gt, hyp, 0.3)) for gt, hyp in seqs]
    scores = list(ev.sequences.values())
    tp = [s.hota_tp for s in scores]
    ass = sum(np.array(r["AssA"]) * t for r, t in zip(refs, tp)) / np.maximum(1, sum(tp))
    det = sum(tp) / np.maximum(1, sum(s.hota_tp + s.hota_fn + s.hota_fp for s in scores))
    np.testing.assert_allclose(ev.combined.hota_alpha, np.sqrt(det * ass), atol=1e-12)
    for s, r in zip(scores, refs):
        np.testing.assert_allclose(s.deta_alpha, r["DetA"], atol=1e-12)


def test_perfect_tracking_scores_one():
    gt = np.array([box_row(f, i, 20 * i + f) for f in range(1, 6) for i in (1, 2)])
    s = score_sequence(gt, gt.copy())
    assert s.hota == s.deta == s.assa == s.loca == s.mota == s.motp == s.idf1 == 1.0
    assert s.idsw == s.fp == s.fn == 0


def test_hota_of_an_id_switch_by_hand():
    """One object over 4 frames, boxes exact, result id a on frames 1-2 and b on 3-4. Every alpha:
    DetA = 4 / 4 = 1; each TP's pair (object, a) or (object, b) has TPA 2, FNA 2, FPA 0, so AssA =
    2 / 4 = 1/2 and HOTA = sqrt(1/2). MOTA = 1 - 1/4 (one switch); IDF1 = 2 / (2 + (2 + 2) / 2) = 1/2."""
    gt = np.array([box_row(f, 1, 0) for f in range(1, 5)])
    hyp = np.array([box_row(f, 5 if f <= 2 else 6, 0) for f in range(1, 5)])
    s = score_sequence(gt, hyp)
    assert s.hota == pytest.approx(math.sqrt(0.5)) and s.deta == 1.0 and s.assa == pytest.approx(0.5)
    assert s.mota == pytest.approx(0.75) and s.idsw == 1 and s.idf1 == pytest.approx(0.5)


def test_hota_localisation_by_hand():
    """One object over 2 frames, the result box 6 wide where the object is 10: IoU 0.6. Alphas 0.05 ..
    0.60 (12 of 19): all TP, HOTA 1, LocA 0.6; alphas 0.65 .. 0.95 (7): no TP, HOTA 0, LocA 1 (TrackEval's
    value with no TP). HOTA = 12/19, LocA = (12 x 0.6 + 7) / 19. CLEAR matches at IoU 0.6 >= 0.5."""
    gt = np.array([box_row(f, 1, 0) for f in (1, 2)])
    hyp = np.array([box_row(f, 3, 0, w=6.0) for f in (1, 2)])
    s = score_sequence(gt, hyp)
    assert s.hota == pytest.approx(12 / 19) and s.deta == pytest.approx(12 / 19)
    assert s.loca == pytest.approx((12 * 0.6 + 7) / 19)
    assert s.mota == 1.0 and s.motp == pytest.approx(0.6)


def test_hota_matching_prefers_the_aligned_identity_by_hand():
    """TrackEval's own worked case (its issue #22): object 0 alone on frames 1-9, objects 0 and 1 on
    frame 10; result 0 exact on frames 1-9 and on frame 10 at IoU 0.49 with object 0, 0.51 with 1.
    Alignment: A(0, r) = 9.49 / (10 + 10 - 9.49), A(1, r) = 0.51 / (1 + 10 - 0.51), so frame 10 matches
    object 0 (IoU 0.49). Alphas <= 0.45 (9): TP 10, FN 1, FP 0, DetA 10/11, AssA 10 / (10 + 10 - 10) = 1.
    Alphas >= 0.50 (10): TP 9, FN 2, FP 1, DetA 9/12, AssA 9 / (10 + 10 - 9) = 9/11."""
    frames = [([0], [0], np.array([[1.0]]))] * 9 + [([0, 1], [0], np.array([[0.49], [0.51]]))]
    expected = (9 * math.sqrt(10 / 11) + 10 * math.sqrt(0.75 * 9 / 11)) / 19
    assert np.mean(hota_reference(frames)["HOTA"]) == pytest.approx(expected)  # the transcription agrees
    fr = Frames([np.array(g) for g, _, _ in frames], [np.array(h) for _, h, _ in frames],
                [s for *_, s in frames], num_gt_ids=2, num_hyp_ids=1)  # fmt: skip
    s = score_frames(fr)
    assert s.hota == pytest.approx(expected)
    assert s.deta == pytest.approx((9 * 10 / 11 + 10 * 9 / 12) / 19)
    assert s.assa == pytest.approx((9 * 1 + 10 * 9 / 11) / 19)
    assert ALPHAS[8] == pytest.approx(0.45) and s.hota_tp[8] == 10 and s.hota_tp[9] == 9


def test_against_trackeval_when_installed():
    te = pytest.importorskip("trackeval.metrics")
    for seed in range(5):
        gt, hyp = crowd_scene(seed)
        fr = prepare(gt, hyp, 0.3)
        data = {"num_timesteps": len(fr.gt_ids), "num_gt_ids": fr.num_gt_ids,
                "num_tracker_ids": fr.num_hyp_ids, "num_gt_dets": sum(map(len, fr.gt_ids)),
                "num_tracker_dets": sum(map(len, fr.hyp_ids)), "gt_ids": fr.gt_ids,
                "tracker_ids": fr.hyp_ids, "similarity_scores": fr.iou}  # fmt: skip
        s = score_frames(fr)
        h = te.HOTA().eval_sequence(data)
        c = te.CLEAR({"PRINT_CONFIG": False}).eval_sequence(data)
        i = te.Identity({"PRINT_CONFIG": False}).eval_sequence(data)
        np.testing.assert_allclose(s.hota_alpha, h["HOTA"], atol=1e-12)
        np.testing.assert_allclose(s.assa_alpha, h["AssA"], atol=1e-12)
        assert (s.mota, s.motp, s.idsw, s.idf1) == pytest.approx((c["MOTA"], c["MOTP"], c["IDSW"], i["IDF1"]))


# ---------------------------------------------------------------------------------------------------
# yolov3 track --eval
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    cfg = VideoSynthConfig(sequences=2, frames=20, size=128, objects=3, seed=3)
    out = tmp_path_factory.mktemp("moving")
    generate_video(out, cfg)
    return out


def path_oracle():
    from test_track_cli import PathOracle  # the ground truth of the frame each image path names

    return PathOracle()


def test_run_track_eval_scores_each_sequence_against_its_gt(root, tmp_path):
    from yolov3.apps.track.runner import run_track

    report = run_track(root, path_oracle(), tmp_path, progress=False, evaluate=True)
    written = json.loads((tmp_path / "mot_metrics.json").read_text())
    assert list(written["sequences"]) == ["seq-00", "seq-01"] and written["min_visibility"] == 0.3
    assert report.evaluation is not None and written == json.loads(json.dumps(report.evaluation.to_json()))
    seqs = [(read_mot(root / s / "gt" / "gt.txt"), read_mot(tmp_path / "mot" / f"{s}.txt"))
            for s in ("seq-00", "seq-01")]  # fmt: skip
    for (gt, hyp), name in zip(seqs, ("seq-00", "seq-01")):
        ref = motmetrics_scores([(gt, hyp)], 0.3)
        got = written["sequences"][name]
        assert got["MOTA"] == pytest.approx(ref["MOTA"]) and got["IDF1"] == pytest.approx(ref["IDF1"])
        assert (got["IDSW"], got["FP"], got["FN"]) == (ref["IDSW"], ref["FP"], ref["FN"])
        assert got["HOTA"] == pytest.approx(np.mean(hota_reference(reference_frames(gt, hyp, 0.3))["HOTA"]))
    ref = motmetrics_scores(seqs, 0.3)
    assert written["combined"]["MOTA"] == pytest.approx(ref["MOTA"]) and ref["MOTA"] > 0.8
    assert written["combined"]["IDF1"] == pytest.approx(ref["IDF1"]) and ref["IDF1"] > 0.8


def test_eval_of_a_run_that_missed_everything(root, tmp_path):
    """A detector that finds nothing: every expected object a miss, MOTA 0, HOTA 0."""
    from yolov3.apps.track.runner import evaluate_run

    (tmp_path / "mot").mkdir()
    (tmp_path / "mot" / "seq-00.txt").write_text("")  # seq-01: no file at all
    ev = evaluate_run(root, tmp_path)
    gt = read_mot(root / "seq-00" / "gt" / "gt.txt")
    assert ev.sequences["seq-00"].fn == int(((gt[:, 8] >= 0.3) & (gt[:, 6] != 0)).sum())
    assert ev.combined.mota == 0.0 and ev.combined.hota == 0.0 and ev.combined.tp == 0


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    import torch

    from yolov3.model import YOLOv3
    from yolov3.modelfile import ModelMeta, save_model

    torch.manual_seed(0)
    m = YOLOv3(len(NAMES), width=0.125)
    return save_model(tmp_path_factory.mktemp("w") / "m.safetensors", m, ModelMeta.of_model(m, NAMES, 64))


def test_cli_eval_prints_the_table_and_writes_the_json(root, weights, tmp_path, capsys):
    from yolov3.cli import main

    args = ["track", str(root), "--weights", str(weights), "--img", "64", "--amp", "off", "--out",
            str(tmp_path), "--eval", "--eval-min-visibility", "0.5", "--conf", "0.001",
            "--low-threshold", "0.001", "--high-threshold", "0.002", "--new-track-threshold", "0.002",
            "--max-det", "10", "--no-save"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "40 frames" in out and "HOTA" in out and "IDF1" in out and "combined" in out
    written = json.loads((tmp_path / "mot_metrics.json").read_text())
    assert written["min_visibility"] == 0.5 and set(written["sequences"]) == {"seq-00", "seq-01"}
    gt = read_mot(root / "seq-00" / "gt" / "gt.txt")
    assert written["sequences"]["seq-00"]["gt_dets"] == int((gt[:, 8] >= 0.5).sum())


def test_cli_eval_needs_sequences_with_gt(root, tmp_path, capsys):
    from yolov3.cli import main

    video = root / "videos" / "seq-00.mp4"
    assert main(["track", str(video), "--weights", "missing.pt", "--eval", "--out", str(tmp_path)]) == 2
    assert "--eval needs MOTChallenge sequences" in capsys.readouterr().err  # before the weights are read
    assert main(["track", str(root), "--weights", "missing.pt", "--eval", "--eval-min-visibility", "2"]) == 2
    assert "expected 0..1" in capsys.readouterr().err


def test_track_help_loads_no_torch():
    code = (
        "import sys\nfrom yolov3.cli import main\ntry:\n    main(['track', '--help'])\n"
        "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--eval" in done.stdout and "--eval-min-visibility" in done.stdout
