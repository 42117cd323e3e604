"""``yolov3 track`` and ``yolov3.track`` end to end: a synthetic video through the whole pipeline with an
oracle detector scored by ``motmetrics`` against the video's ground truth; the files (MOTChallenge,
JSONL, annotated video) agree with each other; Ctrl-C, a dying stream, a corrupt video and an
unopenable URL finish with the files complete and a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import yolov3
from yolov3.cli import main
from yolov3.data.synth_video import VideoSynthConfig, generate_video, read_mot
from yolov3.infer.detector import Detector
from yolov3.infer.results import Detections
from yolov3.infer.track.runner import run_track, track
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

    def predict_arrays(self, images, paths=None):
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
    gt = read_mot(video / "gt" / "gt.txt")
    results = list(track(video / "img1", Oracle(gt), out=tmp_path, save=None))
    assert [r.frame for r in results] == list(range(40))
    assert set(read_mot(tmp_path / "mot" / "img1.txt")[:, 0].astype(int)) <= set(range(1, 41))
    ids = {int(t) for r in results for t in r.track_ids}
    assert ids == set(range(1, len(ids) + 1)) and len(ids) <= 5


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
    from yolov3.infer.draw import class_colour
    from yolov3.infer.track.results import TrackedDetections

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
