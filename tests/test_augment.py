"""Augmentations: the seed's flip / crop / translate, HSV jitter and mosaic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yolov3.data.augment import (
    hsv_jitter,
    mosaic,
    random_crop,
    random_horizontal_flip,
    random_translate,
    seed_augment,
)


class SeedRandom:
    """The seed's ``random`` module driven by a NumPy generator, with the same draws as ours."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def random(self):
        return self.rng.random()

    def uniform(self, a, b):
        return a + (b - a) * self.rng.random()


# The seed code base's Dataset.random_horizontal_flip / random_translate, transcribed (`random` as above).
def seed_random_horizontal_flip(random, image, bboxes):
    if random.random() < 0.5:
        _, w, _ = image.shape
        image = image[:, ::-1, :]
        bboxes[:, [0, 2]] = w - bboxes[:, [2, 0]]
    return image, bboxes


def seed_random_translate(random, image, bboxes):
    if random.random() < 0.5:
        h, w, _ = image.shape
        max_bbox = np.concatenate([np.min(bboxes[:, 0:2], axis=0), np.max(bboxes[:, 2:4], axis=0)], axis=-1)

        max_l_trans = max_bbox[0]
        max_u_trans = max_bbox[1]
        max_r_trans = w - max_bbox[2]
        max_d_trans = h - max_bbox[3]

        tx = random.uniform(-(max_l_trans - 1), (max_r_trans - 1))
        ty = random.uniform(-(max_u_trans - 1), (max_d_trans - 1))

        M = np.array([[1, 0, tx], [0, 1, ty]])
        image = cv2.warpAffine(image, M, (w, h))

        bboxes[:, [0, 2]] = bboxes[:, [0, 2]] + tx
        bboxes[:, [1, 3]] = bboxes[:, [1, 3]] + ty
    return image, bboxes


def make_case(rng, n=None):
    h, w = int(rng.integers(40, 200)), int(rng.integers(40, 200))
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    n = int(rng.integers(1, 6)) if n is None else n
    x1 = rng.uniform(0, w - 3, n)
    y1 = rng.uniform(0, h - 3, n)
    x2 = np.minimum(w, x1 + rng.uniform(2, w, n))
    y2 = np.minimum(h, y1 + rng.uniform(2, h, n))
    boxes = np.stack([x1, y1, x2, y2, rng.integers(0, 9, n)], 1).astype(np.float32)
    return image, boxes


def test_flip_equals_seed():
    for seed in range(40):
        image, boxes = make_case(np.random.default_rng(seed))
        ours_img, ours_boxes = random_horizontal_flip(image, boxes, np.random.default_rng(seed + 1000))
        ref_img, ref_boxes = seed_random_horizontal_flip(SeedRandom(seed + 1000), image, boxes.copy())
        np.testing.assert_array_equal(ours_img, ref_img)
        np.testing.assert_array_equal(ours_boxes, ref_boxes)


def test_translate_equals_seed_up_to_clipping():
    flipped = 0
    for seed in range(40):
        image, boxes = make_case(np.random.default_rng(seed))
        ours_img, ours_boxes = random_translate(image, boxes, np.random.default_rng(seed + 2000))
        ref_img, ref_boxes = seed_random_translate(SeedRandom(seed + 2000), image, boxes.copy())
        np.testing.assert_array_equal(ours_img, ref_img)
        h, w = image.shape[:2]
        np.testing.assert_allclose(ours_boxes, np.clip(ref_boxes, 0, [w, h, w, h, 99]), atol=1e-4)
        flipped += not np.array_equal(ours_img, image)
    assert 5 < flipped < 35  # p = 0.5


def test_crop_keeps_every_box_whole_and_is_a_window():
    cropped, lefts = 0, []
    for seed in range(200):
        image, boxes = make_case(np.random.default_rng(seed))
        out_img, out_boxes = random_crop(image, boxes, np.random.default_rng(seed))
        h, w = out_img.shape[:2]
        left, top = boxes[0, 0] - out_boxes[0, 0], boxes[0, 1] - out_boxes[0, 1]
        assert left == int(left) and top == int(top)
        left, top = int(left), int(top)
        np.testing.assert_array_equal(out_img, image[top : top + h, left : left + w])
        np.testing.assert_array_equal(out_boxes[:, [0, 2]], boxes[:, [0, 2]] - left)
        np.testing.assert_array_equal(out_boxes[:, 4], boxes[:, 4])
        assert (out_boxes[:, :2] >= 0).all() and (out_boxes[:, 2] <= w).all() and (out_boxes[:, 3] <= h).all()
        if out_img.shape != image.shape:
            cropped += 1
            lefts.append(left / max(1.0, float(boxes[:, 0].min())))
    assert 70 < cropped < 130
    assert np.mean(lefts) == pytest.approx(0.5, abs=0.12)  # left edge ~ uniform between 0 and the boxes


def test_no_boxes_and_inputs_untouched_and_deterministic():
    rng = np.random.default_rng(5)
    image, boxes = make_case(rng)
    empty = np.zeros((0, 5), np.float32)
    for fn in (random_crop, random_translate):
        out, b = fn(image, empty, np.random.default_rng(0), p=1.0)
        assert out is image and b.shape == (0, 5)
    before_img, before_boxes = image.copy(), boxes.copy()
    a = seed_augment(image, boxes, np.random.default_rng(42))
    b = seed_augment(image, boxes, np.random.default_rng(42))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(image, before_img)
    np.testing.assert_array_equal(boxes, before_boxes)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_seed_augment_invariants(seed):
    rng = np.random.default_rng(seed)
    image, boxes = make_case(rng)
    out, out_boxes = seed_augment(image, boxes, rng)
    h, w = out.shape[:2]
    assert out.dtype == np.uint8 and out.ndim == 3 and out_boxes.shape == boxes.shape
    assert (out_boxes[:, [0, 2]] >= 0).all() and (out_boxes[:, [0, 2]] <= w).all()
    assert (out_boxes[:, [1, 3]] >= 0).all() and (out_boxes[:, [1, 3]] <= h).all()
    # sizes kept (translate may clip the seed's last pixel)
    sizes, out_sizes = boxes[:, 2:4] - boxes[:, :2], out_boxes[:, 2:4] - out_boxes[:, :2]
    assert (out_sizes <= sizes + 1e-3).all() and (out_sizes >= sizes - 1.001).all()
    np.testing.assert_array_equal(np.sort(out_boxes[:, 4]), np.sort(boxes[:, 4]))


def test_hsv_value_gain_on_grey_by_hand():
    grey = np.full((4, 4, 3), 100, np.uint8)
    out = hsv_jitter(grey, np.random.default_rng(3), hgain=0.5, sgain=0.5, vgain=0.4)
    gain = 1 + np.random.default_rng(3).uniform(-1, 1, 3)[2] * 0.4
    assert (out == out[0, 0, 0]).all()  # grey stays grey: saturation 0 times any gain is 0
    assert out[0, 0, 0] == int(np.clip(np.float32(100) * np.float32(gain), 0, 255))
    colour = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        hsv_jitter(colour, np.random.default_rng(9)), hsv_jitter(colour, np.random.default_rng(9))
    )


def test_mosaic_places_each_image_with_its_box():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    images = [np.full((60 + 10 * k, 80, 3), c, np.uint8) for k, c in enumerate(colours)]
    boxes = [np.array([[0, 0, 80, 60 + 10 * k, k]], np.float32) for k in range(4)]
    for seed in range(10):
        canvas, out = mosaic(images, boxes, np.random.default_rng(seed), size=64)
        assert canvas.shape == (128, 128, 3) and out.shape[1] == 5
        for x1, y1, x2, y2, k in out:
            region = canvas[int(np.ceil(y1)) : int(y2), int(np.ceil(x1)) : int(x2)]
            assert region.size and (region == colours[int(k)]).all()
            assert x2 - x1 >= 2 and y2 - y1 >= 2 and x1 >= 0 and y2 <= 128
    with pytest.raises(ValueError, match="4 images"):
        mosaic(images[:3], boxes[:3], np.random.default_rng(0), 64)
