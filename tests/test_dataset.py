"""DetectionDataset: each item against an independent pipeline (OpenCV read + the seed's letterbox
and target loop from test_letterbox / test_targets), caching, determinism and bad images."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from seed_reference import SEED_ANCHORS, SEED_STRIDES, seed_preprocess_true_boxes
from test_letterbox import seed_image_preporcess

from yolov3.config import ConfigError, DataConfig
from yolov3.data.dataset import DetectionDataset, SkippedImageWarning
from yolov3.data.images import ImageError
from yolov3.data.types import Sample
from yolov3.errors import UserError

C = 3


def write_images(folder: Path, sizes, seed=0, suffix=".png") -> list[Sample]:
    """Random-pixel images (PNG: lossless, so the reference decodes the same pixels) with boxes."""
    rng = np.random.default_rng(seed)
    samples = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"im{i}{suffix}"
        cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        n = int(rng.integers(0, 5))
        x1, y1 = rng.uniform(0, w - 10, n), rng.uniform(0, h - 10, n)
        boxes = np.stack([x1, y1, x1 + rng.uniform(4, w - x1), y1 + rng.uniform(4, h - y1)], 1).astype(
            np.float32
        )
        crowd = np.zeros(n, bool)
        crowd[:1] = i % 2 == 1  # a crowd box on odd images: kept out of targets
        samples.append(Sample(str(path), boxes, rng.integers(0, C, n), iscrowd=crowd, width=w, height=h))
    return samples


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[Sample]:
    return write_images(
        tmp_path_factory.mktemp("ds"), [(120, 160), (160, 120), (96, 96), (75, 200), (130, 131)]
    )


def test_item_equals_independent_pipeline(samples):
    ds = DetectionDataset(samples, C, img_size=128)
    for i, s in enumerate(samples):
        item = ds[i]
        rgb = cv2.cvtColor(cv2.imread(s.image), cv2.COLOR_BGR2RGB)
        keep = ~s.iscrowd
        gt = np.concatenate([s.boxes[keep], s.classes[keep, None]], 1).astype(np.float32)
        ref_img, ref_boxes = seed_image_preporcess(rgb, [128, 128], gt)
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 128, 128)
        np.testing.assert_array_equal(item["image"].permute(1, 2, 0).numpy(), ref_img.astype(np.float32))
        np.testing.assert_allclose(item["boxes"].numpy(), ref_boxes, rtol=1e-6, atol=1e-4)
        labels, lists = seed_preprocess_true_boxes(item["boxes"].numpy(), C, 128, SEED_ANCHORS, SEED_STRIDES)
        for ours, ref in zip(item["labels"] + item["bboxes"], labels + lists):
            np.testing.assert_array_equal(ours.numpy(), ref)
        assert item["path"] == s.image and item["orig_size"] == (s.height, s.width)
        back = item["letterbox"].boxes_to_original(item["boxes"][:, :4].double()).numpy()
        np.testing.assert_allclose(back, s.boxes[keep], atol=1e-3)


def test_cache_gives_the_same_items(samples):
    plain = DetectionDataset(samples, C, img_size=128)
    cached = DetectionDataset(samples, C, img_size=128, cache=True)
    for i in range(len(samples)):
        a, b = plain[i], cached[i]
        torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
        torch.testing.assert_close(a["boxes"], b["boxes"], rtol=1e-6, atol=1e-4)
        assert a["orig_size"] == b["orig_size"]
        assert a["letterbox"].scale == pytest.approx(b["letterbox"].scale)


def test_augmented_items_are_deterministic_and_valid(samples):
    ds = DetectionDataset(samples, C, img_size=128, augment=True, hsv=True, seed=5)
    again = DetectionDataset(samples, C, img_size=128, augment=True, hsv=True, seed=5)
    changed = 0
    for i in range(len(samples)):
        for epoch in range(4):
            a, b = ds[(i, 128, epoch)], again[(i, 128, epoch)]
            torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
            torch.testing.assert_close(a["boxes"], b["boxes"], rtol=0, atol=0)
            boxes = a["boxes"].numpy()
            assert (boxes[:, :4] >= 0).all() and (boxes[:, :4] <= 128).all()
            assert len(boxes) == int((~samples[i].iscrowd).sum())  # the seed's ops never lose a box
            changed += not torch.equal(a["image"], ds[(i, 128, epoch + 1)]["image"])
    assert changed > 10  # epochs differ


def test_mosaic_and_multiscale_key(samples):
    ds = DetectionDataset(samples, C, img_size=128, augment=True, mosaic=True, seed=1)
    item = ds[(2, 96)]
    assert item["image"].shape == (3, 96, 96)
    assert [t.shape[:3] for t in item["labels"]] == [(12, 12, 3), (6, 6, 3), (3, 3, 3)]
    assert (item["boxes"][:, :4] >= 0).all() and (item["boxes"][:, :4] <= 96).all()


def test_negative_image_has_zero_targets(tmp_path):
    s = write_images(tmp_path, [(64, 64)])[0]
    s.boxes, s.classes, s.iscrowd = np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)
    item = DetectionDataset([s], C, img_size=64, augment=True)[0]
    assert item["boxes"].shape == (0, 5)
    assert all(not t.any() for t in item["labels"] + item["bboxes"])


def test_missing_and_corrupt_images_are_skipped_with_a_warning(tmp_path):
    good = write_images(tmp_path, [(64, 64), (64, 80)])
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not a jpeg")
    bad = [Sample(str(tmp_path / "missing.jpg")), Sample(str(corrupt))]
    ds = DetectionDataset([good[0], *bad, good[1]], C, img_size=64)
    with pytest.warns(SkippedImageWarning) as record:
        item = ds[1]
        item2 = ds[2]
    assert item["path"] == good[1].image and item2["path"] == good[1].image  # the next readable one
    messages = " ".join(str(w.message) for w in record)
    assert "missing.jpg" in messages and "corrupt.jpg" in messages
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[1]  # each path is reported once
    with pytest.raises(ImageError, match="missing.jpg"):
        DetectionDataset(bad, C, img_size=64, strict=True)[0]
    with pytest.raises(UserError, match="could not be read"), pytest.warns(SkippedImageWarning):
        DetectionDataset(bad, C, img_size=64)[0]
    with pytest.warns(SkippedImageWarning) as record:
        cached = DetectionDataset([good[0], *bad], C, img_size=64, cache=True)
    assert len(record) == 2 and "missing.jpg" in str(record[0].message)
    assert cached[1]["path"] == good[0].image  # wraps around to the first readable image


def test_bad_settings():
    with pytest.raises(UserError, match="multiple of the largest stride"):
        DetectionDataset([], C, img_size=100)


def test_tile_items_are_windows_with_boxes_cut_as_written_out(tmp_path):
    """``tile``: each item is a tile-sized window of the picture (found again from its pixels: red is
    x, green is y), its boxes those at least ``min_visible`` inside, clipped and moved to the window."""
    h, w, t = 200, 250, 64
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx, yy, np.zeros_like(xx)], axis=2).astype(np.uint8)
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), rgb[..., ::-1].copy())
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, [w - 30, h - 30], (40, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(8, 30, (40, 2))], axis=1).astype(np.float32)
    classes = rng.integers(0, C, 40)
    ds = DetectionDataset([Sample(str(path), boxes, classes, width=w, height=h)], C, img_size=t, tile=t,
                          min_visible=0.6, strides=(8, 16, 32))  # fmt: skip
    origins = set()
    for epoch in range(12):
        item = ds[(0, t, epoch)]
        pixels = (item["image"].numpy() * 255).round().astype(int)
        x0, y0 = int(pixels[0, 0, 0]), int(pixels[1, 0, 0])
        origins.add((x0, y0))
        assert pixels.shape == (3, t, t) and pixels[0, 0, -1] == x0 + t - 1 and pixels[1, -1, 0] == y0 + t - 1
        want = []
        for (x1, y1, x2, y2), c in zip(boxes.tolist(), classes.tolist()):
            cx1, cy1, cx2, cy2 = max(x1, x0), max(y1, y0), min(x2, x0 + t), min(y2, y0 + t)
            if cx2 > cx1 and cy2 > cy1 and (cx2 - cx1) * (cy2 - cy1) >= 0.6 * (x2 - x1) * (y2 - y1) - 1e-6:
                want.append([cx1 - x0, cy1 - y0, cx2 - x0, cy2 - y0, c])
        np.testing.assert_allclose(item["boxes"].numpy(), np.array(want).reshape(-1, 5), atol=1e-4)
    assert len(origins) > 8  # random positions
    with pytest.raises(UserError, match="tile with cache"):
        DetectionDataset([Sample(str(path), boxes, classes)], C, img_size=t, tile=t, cache=True)
    for bad in ({"tile": 100}, {"tile": 64, "cache": True}, {"min_visible": 0.0}):
        with pytest.raises(ConfigError, match="tile|min_visible"):
            DataConfig(**bad)
