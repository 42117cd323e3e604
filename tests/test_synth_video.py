"""``yolov3 data synth --video`` (``yolov3/data/synth_video.py``): the MOTChallenge files agree with the
pictures (objects are where gt.txt says, and nowhere else), the motion is bounded, occlusions and
crossings happen, and the same seed gives the same bytes."""

from __future__ import annotations

import configparser

import cv2
import numpy as np
import pytest

from yolov3.cli import main
from yolov3.data.synth_video import VideoSynthConfig, generate_video, read_mot
from yolov3.errors import UserError

CFG = VideoSynthConfig(sequences=2, frames=60, size=192, objects=6, seed=3)


@pytest.fixture(scope="module")
def seqs(tmp_path_factory):
    return generate_video(tmp_path_factory.mktemp("video"), CFG)


def test_ground_truth_lines_follow_motchallenge(seqs):
    for seq in seqs:
        gt = read_mot(seq / "gt" / "gt.txt")
        assert gt.shape[1] == 9
        assert gt[:, 0].min() == 1 and gt[:, 0].max() == CFG.frames
        assert set(gt[:, 1].astype(int)) <= set(range(1, CFG.objects + 1))
        assert (gt[:, 6] == 1).all() and set(gt[:, 7].astype(int)) <= {1, 2, 3, 4, 5}
        assert (gt[:, 2:4] >= 0).all() and (gt[:, 2:4] + gt[:, 4:6] <= CFG.size).all()
        assert ((gt[:, 8] >= 0) & (gt[:, 8] <= 1)).all()
        for f in range(1, CFG.frames + 1):  # one line per object per frame
            ids = gt[gt[:, 0] == f, 1]
            assert len(ids) == len(set(ids))
        info = configparser.ConfigParser()
        info.read(seq / "seqinfo.ini")
        assert int(info["Sequence"]["seqLength"]) == CFG.frames == len(list((seq / "img1").glob("*.jpg")))


def test_objects_are_where_the_ground_truth_says(seqs):
    """Between two frames, pixels outside every box of both frames change by noise only; the
    boxes of moving objects change more."""
    seq = seqs[0]
    gt = read_mot(seq / "gt" / "gt.txt")
    for f in (10, 40):
        a = cv2.imread(str(seq / "img1" / f"{f:06d}.jpg")).astype(np.float32)
        b = cv2.imread(str(seq / "img1" / f"{f + 1:06d}.jpg")).astype(np.float32)
        diff = np.abs(a - b).mean(axis=2)
        inside = np.zeros(diff.shape, bool)
        for x, y, w, h in gt[np.isin(gt[:, 0], [f, f + 1]), 2:6].astype(int):
            inside[y : y + h, x : x + w] = True
        assert diff[~inside].mean() < 8  # JPEG and pixel noise
        assert diff[inside].mean() > 2 * diff[~inside].mean()


def test_motion_is_bounded_and_objects_cross_and_hide(seqs):
    gt = np.concatenate([read_mot(s / "gt" / "gt.txt") for s in seqs])
    for seq in seqs:
        g = read_mot(seq / "gt" / "gt.txt")
        for tid in np.unique(g[:, 1]):
            t = g[g[:, 1] == tid]
            assert (np.diff(t[:, 0]) == 1).all()  # present on consecutive frames
            step = np.hypot(*np.diff(t[:, 2:4], axis=0).T)
            assert step.max() <= CFG.max_speed + 1.5
    assert (gt[:, 8] < 0.5).any()  # some object is mostly hidden at some point
    assert (gt[:, 8] == 1).mean() > 0.5  # most of the time objects are in plain view


def test_same_seed_same_bytes_and_video_written(tmp_path, seqs):
    again = generate_video(tmp_path, VideoSynthConfig(sequences=1, frames=60, size=192, objects=6, seed=3))
    assert (again[0] / "gt" / "gt.txt").read_bytes() == (seqs[0] / "gt" / "gt.txt").read_bytes()
    cap = cv2.VideoCapture(str(tmp_path / "videos" / "seq-00.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 60


def test_cli_and_bad_input(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["data", "synth", "--video", "--out", str(out), "--sequences", "1", "--frames", "5",
                 "--size", "96", "--objects", "2"]) == 0  # fmt: skip
    assert len(read_mot(out / "seq-00" / "gt" / "gt.txt")) > 0
    assert main(["data", "synth", "--video", "--out", str(out), "--frames", "1"]) == 2
    assert "frames 1" in capsys.readouterr().err
    bad = tmp_path / "gt.txt"
    bad.write_text("1,1,0,0,10,10,1,1,1\n2,1,zero,0,10,10,1,1,1\n")
    with pytest.raises(UserError, match=r"gt.txt:2"):
        read_mot(bad)
