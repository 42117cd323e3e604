"""``yolov3 track`` and ``yolov3.track`` end to end: a synthetic video through the whole pipeline with an
oracle detector scored by ``motmetrics`` against the video's ground truth; the files (MOTChallenge,
JSONL, annotated video) agree with each other; Ctrl-C, a dying stream, a corrupt video and an
unopenable URL finish with the files complete and a clear message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import yolov3
from yolov3.apps.track.bytetrack import ByteTracker, pairwise_iou
from yolov3.apps.track.runner import TrackReport, run_track, track
from yolov3.cli import main
from yolov3.data.synth_video import VideoSynthConfig, generate_video, read_mot
from yolov3.infer.detector import Detector
from yolov3.infer.results import Detections
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

if not hasattr(np, "asfarray"):  # motmetrics 1.4 calls it; NumPy 2 removed it
    setattr(np, "asfarray", lambda a, dtype=float: np.asarray(a, dtype=dtype))  # noqa: B010
mm = pytest.importorskip("motmetrics")

NAMES = ["circle", "square", "triangle", "letter-X", "digit-3"]


class Oracle(Detector):
    """A detector that returns the ground truth boxes (visibility >= 0.3) of frame after frame, and
    raises ``interrupt_at`` (as Ctrl-C would) on that frame."""

    def __init__(self, gt: np.ndarray, interrupt_at: int | None = None) -> None:
        self.gt, self.names, self.n, self.interrupt_at = gt[gt[:, 8] >= 0.3], NAMES, 0, interrupt_at

    def predict_arrays(self, images, paths=None, settings=None):
        if self.n == self.interrupt_at:
            raise KeyboardInterrupt
        self.n += 1
        g = self.gt[self.gt[:, 0] == self.n]
        boxes = np.c_[g[:, 2:4], g[:, 2:4] + g[:, 4:6]].astype(np.float32)
        h, w = images[0].shape[:2]
        scores, classes = np.full(len(g), 0.9, np.float32), (g[:, 7] - 1).astype(np.int64)
        return [Detections(boxes, scores, classes, self.names, paths[0], w, h, images[0], {})]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    cfg = VideoSynthConfig(sequences=1, frames=40, size=160, objects=4, seed=5)
    return generate_video(tmp_path_factory.mktemp("synth"), cfg)[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    m = YOLOv3(len(NAMES), width=0.125)
    return save_model(tmp_path_factory.mktemp("w") / "m.safetensors", m, ModelMeta.of_model(m, NAMES, 64))


def frames_in(path: Path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    return n


def test_whole_pipeline_on_synthetic_video_scored_by_motmetrics(video, tmp_path):
    gt = read_mot(video / "gt" / "gt.txt")
    mp4 = video.parent / "videos" / "seq-00.mp4"
    results = list(yolov3.track(mp4, Oracle(gt), out=tmp_path))
    assert [r.frame for r in results] == list(range(40))
    assert results[-1].image is not None and results[-1].plot().shape == (160, 160, 3)  # kept for the caller
    hyp = read_mot(tmp_path / "mot" / "seq-00.txt")
    assert hyp.shape[1] == 10 and (hyp[:, 7:] == -1).all() and hyp[:, 0].min() >= 1
    acc = mm.MOTAccumulator(auto_id=False)
    visible = gt[gt[:, 8] >= 0.3]
    for f in range(1, 41):
        g, h = visible[visible[:, 0] == f], hyp[hyp[:, 0] == f]
        acc.update(g[:, 1], h[:, 1], mm.distances.iou_matrix(g[:, 2:6], h[:, 2:6], max_iou=0.5), f)
    s = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"])
    assert s["mota"].iloc[0] >= 0.9 and s["idf1"].iloc[0] >= 0.9 and s["num_switches"].iloc[0] == 0
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    from_json = sorted((r["frame"] + 1, d["track_id"]) for r in records for d in r["detections"])
    assert from_json == sorted((int(f), int(t)) for f, t in hyp[:, :2])
    assert frames_in(tmp_path / "seq-00.mp4") == 40


def test_image_folder_is_one_sequence(video, tmp_path):
    """A plain folder of images (not the MOTChallenge layout): one sequence named after the folder,
    frames numbered in name order, annotated images straight into the output folder."""
    gt = read_mot(video / "gt" / "gt.txt")
    frames = tmp_path / "my frames"
    shutil.copytree(video / "img1", frames)
    results = list(track(frames, Oracle(gt), out=tmp_path / "o"))
    assert [r.frame for r in results] == list(range(40))
    assert set(read_mot(tmp_path / "o" / "mot" / "my_frames.txt")[:, 0].astype(int)) <= set(range(1, 41))
    ids = {int(t) for r in results for t in r.track_ids}
    assert ids == set(range(1, len(ids) + 1)) and len(ids) <= 5
    assert (tmp_path / "o" / "000001.jpg").is_file() and (tmp_path / "o" / "000040.jpg").is_file()


# ---------------------------------------------------------------------------------------------------
# MOTChallenge sequences (what `yolov3 data synth --video` writes): one tracker and one name each
# ---------------------------------------------------------------------------------------------------


class PathOracle(Detector):
    """The ground truth (visibility >= 0.3) of the frame an image's path names (``<seq>/img1/000007.jpg``:
    frame 7 of ``<seq>/gt/gt.txt``); nothing for any other picture (a video's frames)."""

    def __init__(self) -> None:
        self.names, self.gt, self.paths = NAMES, {}, []

    def predict_arrays(self, images, paths=None, settings=None):
        p = Path(paths[0])
        self.paths.append(p)
        seq = p.parent.parent
        g = np.zeros((0, 9))
        if p.stem.isdigit() and (seq / "gt" / "gt.txt").is_file():
            gt = self.gt.setdefault(seq, read_mot(seq / "gt" / "gt.txt"))
            g = gt[(gt[:, 0] == int(p.stem)) & (gt[:, 8] >= 0.3)]
        boxes = np.c_[g[:, 2:4], g[:, 2:4] + g[:, 4:6]].astype(np.float32)
        h, w = images[0].shape[:2]
        scores, classes = np.full(len(g), 0.9, np.float32), (g[:, 7] - 1).astype(np.int64)
        return [Detections(boxes, scores, classes, self.names, paths[0], w, h, images[0], {})]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    cfg = VideoSynthConfig(sequences=2, frames=12, size=128, objects=3, seed=3)
    out = tmp_path_factory.mktemp("moving")
    generate_video(out, cfg)
    return out


def test_a_root_tracks_each_sequence_on_its_own(root, tmp_path, capsys):
    oracle = PathOracle()
    results = list(track(root, oracle, out=tmp_path))
    assert all(p.parent.name == "img1" for p in oracle.paths)  # videos/*.mp4 not tracked again
    assert "2 other image / video files" in capsys.readouterr().err  # and the user is told
    assert [r.sequence for r in results] == ["seq-00"] * 12 + ["seq-01"] * 12
    assert [r.frame for r in results] == list(range(12)) * 2
    assert sorted(p.name for p in (tmp_path / "mot").iterdir()) == ["seq-00.txt", "seq-01.txt"]
    for seq in ("seq-00", "seq-01"):  # a tracker each: ids from 1, one per object seen
        ids = {int(t) for r in results if r.sequence == seq for t in r.track_ids}
        assert min(ids) == 1 and len(ids) <= 3
        hyp, gt = read_mot(tmp_path / "mot" / f"{seq}.txt"), read_mot(root / seq / "gt" / "gt.txt")
        assert set(hyp[:, 0].astype(int)) <= set(gt[:, 0].astype(int))
        drawn = sorted(p.name for p in (tmp_path / seq).iterdir())
        assert drawn == [f"{k:06d}.jpg" for k in range(1, 13)]  # annotated frames apart per sequence
    first = [cv2.imread(str(tmp_path / s / "000001.jpg")) for s in ("seq-00", "seq-01")]
    assert np.abs(first[0].astype(int) - first[1].astype(int)).mean() > 5  # not one over the other
    assert not list(tmp_path.glob("*.jpg")) and not list(tmp_path.glob("*.mp4"))
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["sequence"], r["frame"]) for r in records] == [(r.sequence, r.frame) for r in results]
    assert len({r["image_id"] for r in records}) == 24  # 000001.jpg of each sequence: two images


def test_each_sequence_tracks_at_its_seqinfo_frame_rate(root, tmp_path, monkeypatch):
    from yolov3.apps.track import runner

    made = []

    class Recording(ByteTracker):
        def __init__(self, settings, frame_rate=30.0):
            made.append(frame_rate)
            super().__init__(settings, frame_rate)

    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    info = copy / "seq-01" / "seqinfo.ini"
    info.write_text(info.read_text().replace("frameRate=30", "frameRate=120"))
    monkeypatch.setitem(runner.TRACKER_CLASSES, "bytetrack", Recording)
    list(track(copy, PathOracle()))
    assert made == [30.0, 120.0]


@pytest.mark.parametrize("where", ["seq-01", "seq-01/img1", "seq-01/img1/"])
def test_one_sequence_or_its_images_is_named_after_the_sequence(root, tmp_path, where):
    results = list(track(str(root / where), PathOracle(), out=tmp_path))
    assert [p.name for p in (tmp_path / "mot").iterdir()] == ["seq-01.txt"]  # was img1.txt for .../img1
    assert (tmp_path / "seq-01" / "000012.jpg").is_file()
    assert {r.sequence for r in results} == {"seq-01"} and len(results) == 12


def test_videos_named_alike_in_a_plain_folder_keep_their_own_files(root, tmp_path):
    """clip.mp4 and clip.mov in one folder are two sequences, clip and clip_2: each has its own MOT
    file and its own annotated video (both once went to clip.mp4, the second overwriting the first)."""
    videos = sorted((root / "videos").glob("*.mp4"))
    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(videos[0], folder / "clip.mp4")
    shutil.copy(videos[1], folder / "clip.mov")
    results = list(track(folder, PathOracle(), out=tmp_path / "o"))
    assert len(results) == 24
    out = tmp_path / "o"
    assert sorted(p.name for p in out.glob("*.mp4")) == ["clip.mp4", "clip_2.mp4"]
    assert frames_in(out / "clip.mp4") == 12 and frames_in(out / "clip_2.mp4") == 12
    assert sorted(p.name for p in (out / "mot").glob("*.txt")) == ["clip.txt", "clip_2.txt"]


def test_frames_are_numbered_by_their_file_names(root, tmp_path):
    """A missing frame and an unreadable one: the frames after them keep the numbers gt.txt gives."""
    seq = tmp_path / "seq-00"
    shutil.copytree(root / "seq-00", seq)
    (seq / "img1" / "000003.jpg").unlink()
    (seq / "img1" / "000005.jpg").write_bytes(b"not a jpeg")
    report = TrackReport()
    results = list(track(seq, PathOracle(), out=tmp_path / "o", report=report))
    assert report.skipped == 1
    assert [r.frame for r in results] == [0, 1, 3] + list(range(5, 12))
    hyp, gt = read_mot(tmp_path / "o" / "mot" / "seq-00.txt"), read_mot(seq / "gt" / "gt.txt")
    for row in hyp:  # every box lies on the ground truth of its own frame
        g = gt[(gt[:, 0] == row[0]) & (gt[:, 8] >= 0.3)]
        assert pairwise_iou(xyxy(g), xyxy(row[None])).max() > 0.7


def xyxy(rows: np.ndarray) -> np.ndarray:
    """MOTChallenge rows -> ``(N, 4)`` corners."""
    return np.c_[rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]]


def test_ctrl_c_finalises_the_files(video, tmp_path):
    gt = read_mot(video / "gt" / "gt.txt")
    report = run_track(
        video.parent / "videos" / "seq-00.mp4", Oracle(gt, interrupt_at=7), tmp_path, progress=False
    )
    assert report.interrupted and report.frames == 7
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 7
    assert frames_in(tmp_path / "seq-00.mp4") == 7
    assert read_mot(tmp_path / "mot" / "seq-00.txt")[:, 0].max() == 7
    json.loads((tmp_path / "coco_results.json").read_text())


def test_dying_stream_finalises_and_reports(video, tmp_path):
    from test_stream import Closed, SimCamera

    gt = read_mot(video / "gt" / "gt.txt")
    opened = []

    def capture(spec):
        opened.append(spec)
        return SimCamera(100, frames=12) if len(opened) <= 2 else Closed()

    report = run_track("rtsp://cam/live", Oracle(gt), tmp_path, progress=False, stream_buffer=True, retries=1,
                       capture=capture)  # fmt: skip
    assert report.frames == 24  # 12 frames, a reconnect, 12 more, then the reconnect that fails
    assert report.error and "rtsp://cam/live" in report.error
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 24
    assert frames_in(tmp_path / "stream-cam_live.mp4") == 24
    assert len(read_mot(tmp_path / "mot" / "stream-cam_live.txt")) > 0


def test_cli_with_a_model(video, weights, tmp_path, capsys):
    mp4 = video.parent / "videos" / "seq-00.mp4"
    args = ["track", str(mp4), "--weights", str(weights), "--img", "64", "--amp", "off",
            "--out", str(tmp_path), "--conf", "0.001", "--low-threshold", "0.001",
            "--high-threshold", "0.002", "--new-track-threshold", "0.002", "--track-buffer", "5",
            "--max-det", "20"]  # fmt: skip
    assert main(args) == 0
    assert "40 frames" in capsys.readouterr().out
    assert frames_in(tmp_path / "seq-00.mp4") == 40
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(40))
    mot = (tmp_path / "mot" / "seq-00.txt").read_text().splitlines()
    assert 0 < len(mot) == sum(len(r["detections"]) for r in records)


def test_bad_sources(tmp_path, weights, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00not a video" * 100)
    assert (
        main(["track", str(corrupt), "--weights", str(weights), "--img", "64", "--out", str(tmp_path / "o")])
        == 1
    )
    out = capsys.readouterr()
    assert "corrupt.mp4" in out.out and "cannot open video" in out.out
    assert "nothing could be read" in out.err
    assert (
        main(["track", "http://127.0.0.1:9/live.mjpg", "--weights", "missing.pt", "--open-timeout", "2"]) == 2
    )
    assert "http://127.0.0.1:9/live.mjpg: cannot open this stream" in capsys.readouterr().err


def test_plot_draws_each_trail_in_its_track_colour():
    from yolov3.apps.track.results import TrackedDetections
    from yolov3.infer.draw import class_colour

    image = np.zeros((100, 120, 3), np.uint8)
    r = TrackedDetections(np.array([[70, 40, 110, 90]], np.float32), np.array([0.9], np.float32),
                          np.array([1]), NAMES, "x", 120, 100, image, track_ids=np.array([7]),
                          trails={7: [(10.0, 20.0), (60.0, 20.0)]})  # fmt: skip
    drawn = r.plot(line_width=2)
    assert tuple(drawn[20, 35]) == class_colour(7)  # on the trail
    assert tuple(drawn[60, 35]) == (0, 0, 0)  # off it
    assert r.to_json()["detections"][0]["track_id"] == 7 and r.mot_lines() == [
        "1,7,70.00,40.00,40.00,50.00,0.9000,-1,-1,-1"
    ]
