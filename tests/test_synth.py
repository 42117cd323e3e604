"""The synthetic data set: determinism, label geometry (checked independently), formats, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov3.cli import main
from yolov3.data.dataset_config import load_dataset
from yolov3.data.synth import (
    CLASS_NAMES,
    FORMAT_VERSION,
    MARKER,
    SynthConfig,
    _background,
    _shape_mask,
    draw_image,
    generate,
    is_complete,
)
from yolov3.errors import UserError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _iou(a, b) -> float:
    """Literal IoU of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return ix * iy / (area_a + area_b - ix * iy)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    cfg = SynthConfig(n=6, seed=3, size=96)
    generate(tmp_path / "a", cfg, coco=True, progress=False)
    generate(tmp_path / "b", cfg, coco=True, progress=False)
    generate(tmp_path / "c", SynthConfig(n=6, seed=4, size=96), progress=False)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 6 + 6 + 1 + 2 + 1  # images, labels, data.yaml, two COCO files, marker
    assert a == b
    images = [k for k in a if k.startswith("images/")]
    assert all(a[k] != c[k] for k in images)
    # One image depends only on (seed, split, index): drawing it alone gives the same pixels.
    img, _, _ = draw_image(cfg, "val", 0)
    on_disk = cv2.cvtColor(cv2.imread(str(tmp_path / "a/images/val/val_000000.jpg")), cv2.COLOR_BGR2RGB)
    other, _, _ = draw_image(cfg, "val", 1)
    assert np.abs(on_disk.astype(int) - img).mean() < 10  # JPEG (quality 92) smooths the pixel noise
    assert np.abs(on_disk.astype(int) - other).mean() > 20


def test_boxes_respect_size_overlap_and_image_rules():
    cfg = SynthConfig(n=1, seed=0, size=160, min_size=8, max_frac=0.5, max_iou=0.3, max_cover=0.4)
    seen = np.zeros(len(CLASS_NAMES), int)
    sides = []
    for i in range(40):
        img, boxes, classes = draw_image(cfg, "train", i)
        assert img.shape == (160, 160, 3) and img.dtype == np.uint8
        assert boxes.dtype == np.float32 and classes.dtype == np.int64 and len(boxes) == len(classes)
        assert len(boxes) <= cfg.max_objects
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 160).all()
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        assert (w >= 8).all() and (h >= 8).all() and (w <= 80).all() and (h <= 80).all()
        for k in range(len(boxes)):
            for j in range(k + 1, len(boxes)):  # box j is drawn after (over) box k
                assert _iou(boxes[j], boxes[k]) <= 0.3 + 1e-6
            # All the boxes drawn over box k together hide at most 40% of it (pixel raster).
            canvas = np.zeros((160, 160), bool)
            for j in range(k + 1, len(boxes)):
                x1, y1, x2, y2 = boxes[j].astype(int)
                canvas[y1:y2, x1:x2] = True
            x1, y1, x2, y2 = boxes[k].astype(int)
            assert canvas[y1:y2, x1:x2].mean() <= 0.4 + 1e-6
        np.add.at(seen, classes, 1)
        sides += np.sqrt(w * h).tolist()
    assert (seen > 10).all(), seen  # every class appears
    assert min(sides) < 14 and max(sides) > 60  # small and large objects both occur


@pytest.mark.parametrize("name", CLASS_NAMES)
@pytest.mark.parametrize("wh", [(9, 9), (24, 13), (40, 70)])
def test_silhouette_is_tight_in_its_box(name, wh):
    """The label box is the tight box of the silhouette: ink reaches each of the four edges."""
    w, h = wh
    mask = _shape_mask(name, w, h, np.random.default_rng(1))
    assert mask.shape == (h, w)
    ink = mask > 0.25
    for edge in (ink[0], ink[-1], ink[:, 0], ink[:, -1]):
        assert edge.any()
    assert 0.15 < mask.mean() < 1.0 + 1e-6  # something drawn, not a blank box


def test_objects_are_visible_where_labelled():
    """Inside each label the image departs from the bare background (drawn first, from the same
    generator) far more than it does outside every label, where only blur and noise change it."""
    cfg = SynthConfig(n=1, seed=5, size=192, max_objects=4, min_size=20)
    for index in range(6):
        img, boxes, _ = draw_image(cfg, "train", index)
        bg = _background(np.random.default_rng([cfg.seed, 0, index, FORMAT_VERSION]), cfg.size)
        diff = np.abs(img.astype(np.float32) - bg).mean(axis=2)
        outside = np.ones(diff.shape, bool)
        for x1, y1, x2, y2 in boxes.astype(int):
            outside[y1:y2, x1:x2] = False
        for x1, y1, x2, y2 in boxes.astype(int):
            # the glyphs fill only part of their box: look at the box's most changed tenth
            assert np.percentile(diff[y1:y2, x1:x2], 90) > diff[outside].mean() + 20


def test_labels_read_back_through_the_yolo_and_coco_readers(tmp_path):
    cfg = SynthConfig(n=10, seed=1, size=128, val_fraction=0.3)
    data_yaml, val = generate(tmp_path, cfg, coco=True, progress=False)
    spec = load_dataset(data_yaml)
    assert spec.names == list(CLASS_NAMES)
    assert (len(spec.train), len(spec.val)) == cfg.split_sizes() == (7, 3)
    for i, s in enumerate(sorted(spec.val, key=lambda s: s.image)):
        _, boxes, classes = draw_image(cfg, "val", i)
        np.testing.assert_allclose(s.boxes, boxes, atol=1e-3)
        np.testing.assert_array_equal(s.classes, classes)
        np.testing.assert_array_equal(val[i].boxes, boxes)
    coco = json.loads((tmp_path / "annotations/instances_val.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(CLASS_NAMES)
    first = [a for a in coco["annotations"] if a["image_id"] == coco["images"][0]["id"]]
    _, boxes, classes = draw_image(cfg, "val", 0)
    assert [a["category_id"] - 1 for a in first] == classes.tolist()
    x, y, w, h = first[0]["bbox"]
    np.testing.assert_allclose([x, y, x + w, y + h], boxes[0], atol=1e-3)


def test_completion_marker_detects_partial_and_other_settings(tmp_path):
    cfg = SynthConfig(n=4, seed=0, size=64)
    assert not is_complete(tmp_path, cfg)
    generate(tmp_path, cfg, progress=False)
    assert is_complete(tmp_path, cfg)
    assert not is_complete(tmp_path, SynthConfig(n=5, seed=0, size=64))
    (tmp_path / MARKER).write_text("{truncated")
    assert not is_complete(tmp_path, cfg)
    # A re-run replaces a half-written set (stale files from a larger run disappear).
    generate(tmp_path, SynthConfig(n=8, seed=0, size=64), progress=False)
    generate(tmp_path, cfg, progress=False)
    assert len(list((tmp_path / "images/train").iterdir())) == cfg.split_sizes()[0]


def test_cli_writes_a_dataset_and_names_an_unwritable_folder(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--n", "5", "--size", "64", "--seed", "2"]) == 0
    assert (out / "data.yaml").is_file() and (out / MARKER).is_file()
    assert "next: yolov3 data check" in capsys.readouterr().out
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["data", "synth", "--out", str(blocker / "sub"), "--n", "2", "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the data set folder" in err and str(blocker / "sub") in err
    assert main(["data", "synth", "--out", str(out), "--n", "0"]) == 2
    with pytest.raises(UserError, match="a-file"):
        generate(blocker, SynthConfig(n=1, size=64), progress=False)


def test_parallel_generation_writes_the_same_bytes(tmp_path):
    cfg = SynthConfig(n=80, seed=7, size=48)  # 64 train images: enough for the worker pool
    generate(tmp_path / "one", cfg, progress=False, workers=1)
    generate(tmp_path / "two", cfg, progress=False, workers=2)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert len(one) == 80 * 2 + 2 and one == two
