"""``yolov3.infer.video.VideoWriter``: what it writes decodes back, by OpenCV's FFmpeg reader (not
the PyAV that wrote it), to the frames given: their count, size, rate and pixels; the stream is H.264
in 4:2:0 with its index before the frames (read from the file's own atoms); odd sizes are padded;
errors name the file. And ``yolov3 detect`` on a clip writes such a file.

Whether a browser plays it is ``tests/test_video_browser.py``.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from yolov3.cli import main
from yolov3.errors import UserError
from yolov3.infer.video import VideoWriter
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model


def frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """BGR frames each unlike the next: a white square moving right over a colour gradient."""
    w, h = size
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    base[..., 2] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
    out = []
    for k in range(count):
        im = base.copy()
        x = 4 + 6 * k
        im[h // 4 : h // 4 + 16, x : x + 16] = 255
        out.append(im)
    return out


def read_back(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps, decoded = cap.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, im = cap.read()
        if not ok:
            break
        decoded.append(im)
    cap.release()
    return decoded, fps


def top_level_atoms(path: Path) -> list[str]:
    """The MP4 file's top-level box types, in file order (ISO/IEC 14496-12: size, type, ...)."""
    data, names, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        names.append(kind.decode("latin-1"))
        if size < 8:
            break
        at += size
    return names


def test_frames_decode_back_with_their_count_size_rate_and_pixels(tmp_path):
    written = frames(15, (96, 64))
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, 12.5, (96, 64)) as video:
        for im in written:
            video.write(im)
    decoded, fps = read_back(path)
    assert len(decoded) == 15 and fps == pytest.approx(12.5)
    assert decoded[0].shape == (64, 96, 3)
    for k, (a, b) in enumerate(zip(written, decoded)):
        diff = np.abs(a.astype(int) - b.astype(int)).mean()
        assert diff < 6, (k, diff)  # lossy, but this frame and no other (the square moves 6 px a frame)
        if k:
            assert diff < np.abs(written[k - 1].astype(int) - b.astype(int)).mean()
    with av.open(str(path)) as f:
        stream = f.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
    atoms = top_level_atoms(path)
    assert atoms.index("moov") < atoms.index("mdat"), atoms  # faststart: the index first


def test_ntsc_rate_is_kept_exactly(tmp_path):
    path = tmp_path / "ntsc.mp4"
    with VideoWriter(path, 30000 / 1001, (32, 32)) as video:
        for im in frames(3, (32, 32)):
            video.write(im)
    with av.open(str(path)) as f:
        assert f.streams.video[0].average_rate == Fraction(30000, 1001)
    assert read_back(path)[1] == pytest.approx(30000 / 1001, rel=1e-6)


def test_odd_sizes_are_padded_by_repeating_the_edge(tmp_path):
    path = tmp_path / "odd.mp4"
    written = frames(4, (65, 49))
    with VideoWriter(path, 10, (65, 49)) as video:
        assert video.size == (66, 50)
        for im in written:
            video.write(im)
    decoded, _ = read_back(path)
    assert len(decoded) == 4 and decoded[0].shape == (50, 66, 3)
    assert np.abs(decoded[2][:49, :65].astype(int) - written[2].astype(int)).mean() < 6
    assert np.abs(decoded[2][:, 65].astype(int) - decoded[2][:, 64].astype(int)).mean() < 6  # edge repeated


def test_errors_name_the_file(tmp_path):
    missing = tmp_path / "no-such-folder" / "clip.mp4"
    with pytest.raises(UserError, match="no-such-folder/clip.mp4"):
        VideoWriter(missing, 10, (32, 32))
    path = tmp_path / "clip.mp4"
    video = VideoWriter(path, 10, (32, 32))
    with pytest.raises(UserError, match=r"clip\.mp4: frame 0 is \(24, 32, 3\).*32x32"):
        video.write(np.zeros((24, 32, 3), np.uint8))
    video.close()
    video.close()  # a second close does nothing
    with pytest.raises(UserError, match="clip.mp4"):
        VideoWriter(tmp_path / "clip.mp4", 0, (32, 32))


def test_detect_writes_an_h264_video_of_every_frame(tmp_path):
    torch.manual_seed(0)
    model = YOLOv3(3, width=0.125)
    weights = save_model(tmp_path / "m.pt", model, ModelMeta.of_model(model, ["a", "b", "c"], 64))
    source = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 8, (96, 64))
    for im in frames(9, (96, 64)):
        writer.write(im)
    writer.release()
    out = tmp_path / "out"
    assert main(["detect", str(source), "--weights", str(weights), "--out", str(out), "--img", "64",
                 "--amp", "off", "-q"]) == 0  # fmt: skip
    decoded, fps = read_back(out / "clip.mp4")
    assert len(decoded) == 9 and decoded[0].shape == (64, 96, 3) and fps == pytest.approx(8)
    with av.open(str(out / "clip.mp4")) as f:
        assert f.streams.video[0].codec_context.name == "h264"
