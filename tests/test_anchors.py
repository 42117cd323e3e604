"""Anchors: k-means with 1 - IoU recovers known size clusters; letterbox scaling; the written config."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from yolov3.anchors import box_sizes, fit_anchors, kmeans_anchors, mean_best_iou, size_iou
from yolov3.cli import main
from yolov3.config import ModelConfig, from_dict
from yolov3.data.types import Sample
from yolov3.errors import UserError

sys.path.insert(0, str(Path(__file__).parent))
from test_val_cli import make_dataset  # noqa: E402  (the same tiny YOLO data set)


def test_size_iou_hand_computed() -> None:
    iou = size_iou(np.array([[10.0, 10.0], [10.0, 20.0]]), np.array([[20.0, 10.0], [10.0, 10.0]]))
    np.testing.assert_allclose(iou, [[0.5, 1.0], [1 / 3, 0.5]])
    assert mean_best_iou(np.array([[10.0, 10.0], [10.0, 20.0]]), [[20.0, 10.0]]) == pytest.approx(
        (0.5 + 1 / 3) / 2
    )


def test_kmeans_recovers_size_clusters() -> None:
    rng = np.random.default_rng(0)
    true = np.array([[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198],
                     [373, 326]], np.float64)  # fmt: skip
    sizes = np.concatenate([c * rng.uniform(0.97, 1.03, (300, 2)) for c in true])
    got = kmeans_anchors(sizes, 9, seed=1)
    np.testing.assert_allclose(got, true, rtol=0.03)
    assert mean_best_iou(sizes, got) > 0.93
    # areas ascending; the fit is deterministic for a seed
    assert np.all(np.diff(got[:, 0] * got[:, 1]) > 0)
    np.testing.assert_array_equal(got, kmeans_anchors(sizes, 9, seed=1))


def test_boxes_scaled_by_the_letterbox_and_crowds_left_out() -> None:
    s = Sample("a.jpg", np.array([[10, 10, 60, 30], [0, 0, 5, 5]], np.float32), np.array([0, 1]),
               iscrowd=np.array([False, True]), width=200, height=100)  # fmt: skip
    np.testing.assert_allclose(box_sizes([s], 400), [[100.0, 40.0]])  # scale min(400/200, 400/100) = 2
    with pytest.raises(UserError, match="no boxes"):
        fit_anchors([Sample("b.jpg", width=10, height=10)])
    with pytest.raises(UserError, match="multiple"):
        fit_anchors([s], n=8)
    with pytest.raises(UserError, match="image size unknown"):
        box_sizes([Sample("c.jpg", np.ones((1, 4), np.float32) * [0, 0, 2, 2], np.array([0]))], 416)


def test_cli_writes_a_config_the_trainer_reads(tmp_path, capsys) -> None:
    data = make_dataset(tmp_path / "ds", n=6)
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"model": {"width": 0.5}, "train": {"epochs": 3}}))
    out = tmp_path / "anchors.yaml"
    assert main(["anchors", "--data", str(data), "--n", "9", "--img", "416", "--config", str(base),
                 "--out", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "mean best IoU" in text and "Darknet cfg: anchors = " in text
    doc = yaml.safe_load(out.read_text())
    assert doc["train"] == {"epochs": 3} and doc["model"]["width"] == 0.5
    cfg = from_dict(ModelConfig, doc["model"])
    assert np.array(cfg.anchors).shape == (3, 3, 2)
    areas = np.prod(np.array(cfg.anchors).reshape(-1, 2), axis=1)
    assert np.all(np.diff(areas) >= 0)
    assert main(["anchors", "--data", str(data), "--n", "8"]) == 2


def test_anchors_are_laid_out_for_the_model_they_are_for(tmp_path, capsys) -> None:
    """`--n 6` once wrote three rows of two, which YOLOv3-tiny (two outputs of three) cannot train with;
    the model now decides the layout, and the written config builds that model."""
    from yolov3.builder import build_model

    data = make_dataset(tmp_path / "ds", n=6)
    out = tmp_path / "tiny.yaml"
    assert main(["anchors", "--data", str(data), "--model", "yolov3-tiny", "--out", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())["model"]
    assert doc["name"] == "yolov3-tiny" and np.array(doc["anchors"]).shape == (2, 3, 2)
    model = build_model(from_dict(ModelConfig, doc), num_classes=3)  # the trainer's builder accepts them
    np.testing.assert_allclose(np.array(model.anchors), np.array(doc["anchors"]), rtol=1e-5)
    capsys.readouterr()
    assert main(["anchors", "--data", str(data), "--n", "6", "--out", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert "yolov3 takes 9 anchors, 3 on each of its 3 output scales" in err and "--model" in err
    assert main(["anchors", "--data", str(data), "--model", "yolov3-tiny", "--n", "9"]) == 2
    assert not (tmp_path / "x.yaml").exists()
