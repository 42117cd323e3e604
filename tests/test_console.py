"""What commands print besides results: progress as plain lines in logs (no redraws), -q, `yolov3 info`.

The log check runs the real command with its output going to files, as `make demo > log` does; a
redraw is a carriage return (what tqdm writes to move back over its bar)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from yolov3.cli import main
from yolov3.console import Progress
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model


def test_progress_in_a_log_is_plain_lines_every_interval(capsys, monkeypatch) -> None:
    clock = iter(range(0, 1000, 4))  # each call 4 s later
    monkeypatch.setattr("yolov3.console.time.monotonic", lambda: float(next(clock)))
    bar = Progress(10, "val", "img", interval=10.0)
    for _ in range(10):
        bar.update()
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert 2 <= len(lines) <= 5 and lines[-1].startswith("val: 10/10 img (100%)")
    assert len(set(lines)) == len(lines)  # the closing line is not a repeat of the last timed one


def test_quiet_shows_no_progress_or_per_image_lines(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    m = YOLOv3(2, width=0.125)
    weights = save_model(tmp_path / "m.safetensors", m, ModelMeta.of_model(m, ["a", "b"], 64))
    cv2.imwrite(str(tmp_path / "x.jpg"), np.full((40, 60, 3), 90, np.uint8))
    args = ["detect", str(tmp_path / "x.jpg"), "--weights", str(weights), "--no-save"]
    assert main([*args, "--out", str(tmp_path / "loud")]) == 0
    loud = capsys.readouterr()
    assert "1/1 " in loud.out  # the per-image line
    assert main([*args, "--out", str(tmp_path / "quiet"), "-q"]) == 0
    quiet = capsys.readouterr()
    assert "1/1 " not in quiet.out and quiet.err == "" and "1 processed" in quiet.out
    assert main([*args, "--out", str(tmp_path / "again")]) == 0  # -q held for that command only
    assert "1/1 " in capsys.readouterr().out


@pytest.mark.slow
def test_a_training_log_holds_no_progress_bar_redraws(tmp_path) -> None:
    data = tmp_path / "s"
    assert main(["data", "synth", "--out", str(data), "--n", "16", "--size", "64", "-q"]) == 0
    cmd = [sys.executable, "-m", "yolov3", "train", "--data", str(data / "data.yaml"), "--model",
           "yolov3-tiny", "--img-size", "64", "--epochs", "2", "--batch", "4", "--workers", "0", "--project",
           str(tmp_path / "r")]  # fmt: skip
    with open(tmp_path / "log", "wb") as log:
        assert subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=600).returncode == 0
    text = (tmp_path / "log").read_bytes()
    assert b"\r" not in text and b"epoch 2/2" in text


def test_info_lists_runtimes_and_describes_a_model(tmp_path, capsys) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "ONNX Runtime" in out and "OpenCV DNN" in out and "native bf16" in out and "serve" in out
    torch.manual_seed(0)
    m = YOLOv3(2, width=0.125)
    weights = save_model(tmp_path / "m.pt", m, ModelMeta.of_model(m, ["cat", "dog"], 160))
    assert main(["info", str(weights)]) == 0
    text = capsys.readouterr().out
    assert "checkpoint" in text and "160x160" in text and "classes    2: cat, dog" in text
    assert f"{sum(p.numel() for p in m.parameters()):,}" in text
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--nms", "--conf", "0.4",
                 "--out", str(tmp_path / "m.onnx")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["info", str(tmp_path / "m.onnx")]) == 0
    text = capsys.readouterr().out
    assert "160x160 (fixed in the file)" in text and "after in-graph NMS" in text and "score > 0.4" in text
    assert main(["info", str(tmp_path / "absent.pt")]) == 2
