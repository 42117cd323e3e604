"""ByteTrack (``yolov3/apps/track``): the Kalman filter against the textbook equations, the matching
against brute force, each lifecycle rule on hand-made scenes, and the tracker fed noisy ground truth of
the synthetic sequences scored by ``motmetrics`` (an independent CLEAR-MOT / IDF1 implementation)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from yolov3.apps.track import kalman
from yolov3.apps.track.bytetrack import ByteTracker, match, pairwise_iou
from yolov3.config import ConfigError, TrackConfig
from yolov3.data.synth_video import VideoSynthConfig, generate_video, read_mot

if not hasattr(np, "asfarray"):  # motmetrics 1.4 calls it; NumPy 2 removed it
    setattr(np, "asfarray", lambda a, dtype=float: np.asarray(a, dtype=dtype))  # noqa: B010
mm = pytest.importorskip("motmetrics")


# ---------------------------------------------------------------------------------------------------
# Kalman filter: vectorised code vs one track at a time with explicit inverses
# ---------------------------------------------------------------------------------------------------


def textbook(mean, cov, z):
    """Predict then update one track: x = F x, P = F P F' + Q; K = P H' (H P H' + R)^-1."""
    F = np.eye(8)
    F[:4, 4:] = np.eye(4)
    H = np.eye(4, 8)
    w, h = mean[2], mean[3]
    Q = np.diag(np.r_[np.array([w, h, w, h]) / 20, np.array([w, h, w, h]) / 160] ** 2)
    x, P = F @ mean, F @ cov @ F.T + Q
    R = np.diag((np.array([x[2], x[3], x[2], x[3]]) / 20) ** 2)
    S = H @ P @ H.T + R
    K = P @ H.T @ np.linalg.inv(S)
    return x + K @ (z - H @ x), (np.eye(8) - K @ H) @ P


def test_kalman_matches_textbook_equations():
    rng = np.random.default_rng(0)
    boxes = np.c_[rng.uniform(50, 300, (5, 2)), rng.uniform(10, 80, (5, 2))]
    mean, cov = kalman.initiate(boxes)
    mean[:, 4:] = rng.normal(0, 2, (5, 4))
    z = boxes + rng.normal(0, 3, boxes.shape)
    got_mean, got_cov = kalman.update(*kalman.predict(mean, cov), z)
    for k in range(5):
        ref_mean, ref_cov = textbook(mean[k], cov[k], z[k])
        np.testing.assert_allclose(got_mean[k], ref_mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got_cov[k], ref_cov, rtol=1e-7, atol=1e-9)


def test_kalman_learns_a_constant_velocity():
    mean, cov = kalman.initiate(np.array([[100.0, 100.0, 20.0, 20.0]]))
    for t in range(1, 30):
        mean, cov = kalman.update(
            *kalman.predict(mean, cov), np.array([[100.0 + 3 * t, 100.0 - 2 * t, 20, 20]])
        )
    np.testing.assert_allclose(mean[0, 4:6], [3, -2], atol=0.05)


# ---------------------------------------------------------------------------------------------------
# Matching: scipy's assignment vs all matchings enumerated
# ---------------------------------------------------------------------------------------------------


def brute_force(iou: np.ndarray, min_iou: float) -> tuple[int, float]:
    """(most pairs, then largest total IoU) over every one-to-one matching of allowed pairs."""
    n, m = iou.shape
    best = (0, 0.0)
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                vals = [iou[r, c] for r, c in zip(rows, cols)]
                if all(v >= min_iou for v in vals):
                    best = max(best, (k, float(sum(vals))))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_match_is_optimal(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    tracks = np.c_[rng.uniform(0, 60, (n, 2)), np.zeros((n, 2))]
    tracks[:, 2:] = tracks[:, :2] + rng.uniform(20, 40, (n, 2))
    dets = tracks[rng.integers(0, n, m)] + rng.normal(0, 8, (m, 4))
    pairs, un_t, un_d = match(tracks, dets, 0.3)
    iou = pairwise_iou(tracks, dets)
    count, total = brute_force(iou, 0.3)
    assert len(pairs) == count
    assert sum(iou[t, d] for t, d in pairs) == pytest.approx(total)
    assert sorted(un_t + [t for t, _ in pairs]) == list(range(n))
    assert sorted(un_d + [d for _, d in pairs]) == list(range(m))


def test_pairwise_iou_against_a_hand_computed_case():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    np.testing.assert_allclose(pairwise_iou(a, b), [[25 / 175, 0, 1]])


# ---------------------------------------------------------------------------------------------------
# Lifecycle rules on hand-made scenes
# ---------------------------------------------------------------------------------------------------


def box(x, y, s=20.0):
    return [x, y, x + s, y + s]


def run(tracker, frames):
    """frames: list of (boxes, scores, classes) -> list of {track id: box} per frame."""
    out = []
    for boxes, scores, *cls in frames:
        r = tracker.update(np.array(boxes, float).reshape(-1, 4), np.array(scores, float), *(cls or [None]))
        out.append({int(t): b for t, b in zip(r.track_ids, r.boxes)})
    return out


def test_low_score_boxes_rescue_a_track_only_in_the_second_stage():
    frames = [([box(10 + 2 * t, 50)], [0.9 if t < 5 or t >= 10 else 0.3]) for t in range(15)]
    with_low = run(ByteTracker(), frames)
    assert all(list(f) == [1] for f in with_low)  # one id throughout, seen on the low-score frames too
    without = run(ByteTracker(TrackConfig(low_threshold=0.4)), frames)
    assert [len(f) for f in without[5:10]] == [0] * 5
    assert list(without[10]) == [1]  # the lost track is found again by its predicted position


def test_track_buffer_decides_when_a_lost_track_is_dropped():
    frames = [([box(100, 100)], [0.9])] * 5 + [([], [])] * 20 + [([box(100, 100)], [0.9])] * 3
    kept = run(ByteTracker(TrackConfig(track_buffer=30)), frames)
    dropped = run(ByteTracker(TrackConfig(track_buffer=10)), frames)
    assert list(kept[-1]) == [1]
    assert list(dropped[-1]) == [2]
    # frame rate scales the buffer: 10 frames at 30 fps are 40 frames at 120 fps
    assert list(run(ByteTracker(TrackConfig(track_buffer=10), frame_rate=120), frames)[-1]) == [1]


def test_new_tracks_are_confirmed_on_their_second_frame_and_one_frame_blips_never_show():
    frames = [([box(10, 10)], [0.9])] * 3
    frames += [([box(10, 10), box(200, 200)], [0.9, 0.9])]  # a blip: never seen again
    frames += [([box(10, 10), box(100, 10)], [0.9, 0.9])] * 3  # a newcomer
    out = run(ByteTracker(), frames)
    assert [sorted(f) for f in out] == [[1], [1], [1], [1], [1], [1, 3], [1, 3]]
    weak = run(ByteTracker(), [([box(10, 10)], [0.9])] + [([box(10, 10), box(100, 10)], [0.9, 0.55])] * 3)
    assert [sorted(f) for f in weak] == [[1]] * 4  # under new_track_threshold: never starts a track


def test_class_aware_matching():
    frames = [([box(10, 10)], [0.9], [0])] * 3 + [([box(10, 10)], [0.9], [1])] * 3
    assert [list(f) for f in run(ByteTracker(), frames)] == [[1]] * 6
    aware = run(ByteTracker(TrackConfig(class_aware=True)), frames)
    assert [list(f) for f in aware] == [[1], [1], [1], [], [2], [2]]


def test_crossing_objects_keep_their_ids():
    frames = [([box(10 + 4 * t, 100), box(210 - 4 * t, 104)], [0.9, 0.9]) for t in range(50)]
    out = run(ByteTracker(), frames)
    assert all(sorted(f) == [1, 2] for f in out)
    assert out[-1][1][0] > out[-1][2][0]  # id 1 started on the left and ended on the right


def test_bad_settings_name_the_setting():
    with pytest.raises(ConfigError, match="low_threshold"):
        TrackConfig(low_threshold=0.9, high_threshold=0.5)
    with pytest.raises(ConfigError, match="match_iou"):
        TrackConfig(match_iou=0)
    with pytest.raises(ConfigError, match="track_buffr"):
        TrackConfig().replace(track_buffr=3)


# ---------------------------------------------------------------------------------------------------
# The done criterion: noisy ground truth on the synthetic sequences, scored by motmetrics
# ---------------------------------------------------------------------------------------------------

MIN_VISIBILITY = 0.3  # objects hidden more than this are not expected of a detector, nor of the tracker


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    cfg = VideoSynthConfig(sequences=3, frames=120, size=320, objects=6, seed=1)
    return [read_mot(s / "gt" / "gt.txt") for s in generate_video(tmp_path_factory.mktemp("video"), cfg)]


def noisy_detections(gt: np.ndarray, rng: np.random.Generator, drop: float, jitter: float):
    """Each visible ground-truth box kept with probability 1 - drop, every coordinate moved by up to
    ``jitter`` of the box's size, scored U(0.6, 1)."""
    d = gt[rng.random(len(gt)) >= drop]
    xyxy = np.c_[d[:, 2], d[:, 3], d[:, 2] + d[:, 4], d[:, 3] + d[:, 5]]
    size = np.c_[d[:, 4], d[:, 5], d[:, 4], d[:, 5]]
    return xyxy + rng.uniform(-jitter, jitter, xyxy.shape) * size, rng.uniform(0.6, 1.0, len(d)), d[:, 7]


def score(sequences, drop: float, jitter: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    accs = []
    for gt in sequences:
        gt = gt[gt[:, 8] >= MIN_VISIBILITY]
        tracker, acc = ByteTracker(), mm.MOTAccumulator(auto_id=False)
        for f in range(1, int(gt[:, 0].max()) + 1):
            g = gt[gt[:, 0] == f]
            r = tracker.update(*noisy_detections(g, rng, drop, jitter))
            hyp = np.c_[r.boxes[:, :2], r.boxes[:, 2:] - r.boxes[:, :2]]
            acc.update(
                g[:, 1].astype(int), r.track_ids, mm.distances.iou_matrix(g[:, 2:6], hyp, max_iou=0.5), f
            )
        accs.append(acc)
    summary = mm.metrics.create().compute_many(accs, metrics=["mota", "idf1"], generate_overall=True)
    return summary.loc["OVERALL"].to_dict()


def test_tracker_on_noisy_ground_truth_reaches_mota_and_idf1(sequences):
    result = score(sequences, drop=0.10, jitter=0.05)
    assert result["mota"] >= 0.85, result
    assert result["idf1"] >= 0.85, result


def test_the_scorer_can_fail(sequences):
    """The same scoring with most boxes dropped must fall below the bar: the test above can fail."""
    result = score(sequences, drop=0.6, jitter=0.05)
    assert result["mota"] < 0.85


def test_every_tracker_name_has_a_tracker():
    from yolov3.apps.track.runner import TRACKER_CLASSES
    from yolov3.config import TRACKERS

    assert set(TRACKERS) == set(TRACKER_CLASSES)
    with pytest.raises(ConfigError, match="tracker"):
        TrackConfig(tracker="botsort")
