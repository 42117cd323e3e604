"""Letterbox (image and boxes) against a literal transcription of the seed's ``image_preporcess``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from yolov3.boxes import Letterbox
from yolov3.data.transforms import image_to_tensor, letterbox_image, letterbox_uint8


def seed_image_preporcess(image, target_size, gt_boxes=None):
    """``docs/seed.md``, "Letterbox", as the seed's code base writes it (utils.image_preporcess).

    One change: boxes are kept float (the seed's int annotation arrays truncate after scaling).
    """
    ih, iw = target_size
    h, w, _ = image.shape

    scale = min(iw / w, ih / h)
    nw, nh = int(scale * w), int(scale * h)
    image_resized = cv2.resize(image, (nw, nh))

    image_paded = np.full(shape=[ih, iw, 3], fill_value=128.0)
    dw, dh = (iw - nw) // 2, (ih - nh) // 2
    image_paded[dh : nh + dh, dw : nw + dw, :] = image_resized
    image_paded = image_paded / 255.0

    if gt_boxes is None:
        return image_paded
    gt_boxes = np.array(gt_boxes, dtype=np.float64)
    gt_boxes[:, [0, 2]] = gt_boxes[:, [0, 2]] * scale + dw
    gt_boxes[:, [1, 3]] = gt_boxes[:, [1, 3]] * scale + dh
    return image_paded, gt_boxes


SIZES = [(480, 640), (640, 480), (416, 416), (1, 1), (3, 1000), (1000, 3), (97, 131), (833, 1250), (300, 200)]


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("target", [(416, 416), (320, 320), (256, 608)])
def test_image_equals_seed(hw, target):
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    ih, iw = target
    ours, lb = letterbox_image(image, iw, ih)
    if min(lb.scale * hw[0], lb.scale * hw[1]) < 1:  # documented deviation: the seed resizes to 0 px
        with pytest.raises(cv2.error):
            seed_image_preporcess(image, [ih, iw])
        assert min(lb.new_w, lb.new_h) == 1 and ours.shape == (ih, iw, 3)
        return
    ref = seed_image_preporcess(image, [ih, iw])
    assert ours.dtype == np.float32 and ours.shape == (ih, iw, 3)
    np.testing.assert_array_equal(ours, ref.astype(np.float32))
    canvas, lb2 = letterbox_uint8(image, iw, ih)
    assert lb2 == lb and canvas.dtype == np.uint8
    np.testing.assert_array_equal(image_to_tensor(canvas).permute(1, 2, 0).numpy(), ours)


@pytest.mark.parametrize("hw", SIZES)
def test_boxes_equal_seed_and_invert(hw):
    h, w = hw
    rng = np.random.default_rng(h + 3 * w)
    xy = rng.uniform(0, [w, h], (20, 2))
    wh = rng.uniform(0, [w, h], (20, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [w, h]), rng.integers(0, 5, (20, 1))], 1).astype(
        np.float32
    )
    for iw, ih in [(416, 416), (608, 256)]:
        lb = Letterbox.fit(w, h, iw, ih)
        if min(lb.scale * w, lb.scale * h) < 1:
            continue  # the seed crashes there (see test_image_equals_seed)
        _, ref = seed_image_preporcess(np.zeros((h, w, 3), np.uint8), [ih, iw], boxes)
        ours = lb.boxes_to_input(boxes)
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(ours[:, 4], boxes[:, 4])  # extra columns ride along
        back = lb.boxes_to_original(torch.from_numpy(ours[:, :4]).double()).numpy()
        np.testing.assert_allclose(back, boxes[:, :4], rtol=1e-5, atol=1e-3)


def test_hand_case_640x480_to_416():
    """scale 0.65, new 416x312, pad (0, 52); a box (100, 50, 300, 250) -> (65, 84.5, 195, 214.5)."""
    lb = Letterbox.fit(640, 480, 416)
    assert (lb.scale, lb.new_w, lb.new_h, lb.pad_x, lb.pad_y) == (0.65, 416, 312, 0, 52)
    np.testing.assert_allclose(
        lb.boxes_to_input(np.array([[100, 50, 300, 250]], np.float32)), [[65, 84.5, 195, 214.5]]
    )
    canvas, _ = letterbox_uint8(np.zeros((480, 640, 3), np.uint8), 416)
    assert (canvas[:52] == 128).all() and (canvas[52:364] == 0).all() and (canvas[364:] == 128).all()
