"""The vectorised target encoder against a slow, literal transcription of the seed's loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seed_reference import SEED_ANCHORS, SEED_STRIDES, seed_preprocess_true_boxes  # tests/ is on sys.path

from yolov3.config import COCO_ANCHORS, STRIDES
from yolov3.data import targets
from yolov3.data.targets import TargetEncoder, encode_targets, preprocess_true_boxes


def test_the_seeds_anchors_are_the_defaults():
    """The one anchor table (input pixels) is the seed's stride-unit table times the strides."""
    assert STRIDES == SEED_STRIDES
    np.testing.assert_array_equal(
        np.array(COCO_ANCHORS), SEED_ANCHORS * np.array(SEED_STRIDES)[:, None, None]
    )
    np.testing.assert_array_equal(targets.SEED_ANCHORS, SEED_ANCHORS)


# ----------------------------------------------------------------------------------------------
# Random images with the awkward cases mixed in.
# ----------------------------------------------------------------------------------------------


def random_boxes(rng: np.random.Generator, size: int, num_classes: int) -> np.ndarray:
    """``(N, 5)`` boxes inside ``[0, size)`` of one kind drawn at random; centres stay < size."""
    kind = int(rng.integers(0, 100))
    kind = kind if kind == 5 else (kind % 10 if kind % 10 != 5 else 6)  # the ring case: 1 image in 100
    n = int(rng.integers(0, 17))
    if kind == 0:  # 1-2 px boxes
        x1 = rng.integers(0, size - 2, n)
        y1 = rng.integers(0, size - 2, n)
        wh = rng.integers(1, 3, (2, n))
        xyxy = np.stack([x1, y1, x1 + wh[0], y1 + wh[1]], 1)
    elif kind == 1:  # whole image and near-whole
        xyxy = np.array([[0, 0, size, size], [1, 0, size - 1, size], [0, 0, size - 1, size - 1]])[
            : max(1, n % 4)
        ]
    elif kind == 2:  # centres exactly on cell borders of some stride
        s = rng.choice([8, 16, 32], n)
        cx = s * rng.integers(1, size // 32, n)
        cy = s * rng.integers(1, size // 32, n)
        half = rng.integers(1, size // 4, (2, n))
        xyxy = np.stack([cx - half[0], cy - half[1], cx + half[0], cy + half[1]], 1).clip(0, size)
        xyxy[:, 2:] = np.maximum(xyxy[:, 2:], xyxy[:, :2] + 1)
        xyxy = np.minimum(xyxy, [size - 2, size - 2, size, size])
    elif kind == 3:  # touching the edges
        w = rng.integers(2, size // 2, n)
        h = rng.integers(2, size // 2, n)
        right = rng.random(n) < 0.5
        x1 = np.where(right, size - w, 0)
        y1 = np.where(rng.random(n) < 0.5, size - h, 0)
        xyxy = np.stack([x1, y1, x1 + w, y1 + h], 1)
    elif kind == 4:  # many boxes in one cell (same centre, varied sizes, duplicates)
        c = rng.integers(40, size - 40, 2)
        half = rng.integers(1, 40, (n, 2))
        if n:
            half[: n // 2] = half[0]
        xyxy = np.concatenate([c - half, c + half], 1)
    elif kind == 5:  # more than 150 boxes of small size: the ring wraps
        n = int(rng.integers(151, 320))
        x1 = rng.uniform(0, size - 12, n)
        y1 = rng.uniform(0, size - 12, n)
        wh = rng.uniform(1, 12, (2, n))
        xyxy = np.stack([x1, y1, x1 + wh[0], y1 + wh[1]], 1)
    else:  # ordinary: log-uniform sizes, float coordinates
        wh = np.exp(rng.uniform(0, np.log(size), (n, 2)))
        c = rng.uniform(0, size, (n, 2))
        xyxy = np.concatenate([np.clip(c - wh / 2, 0, size), np.clip(c + wh / 2, 0, size)], 1)
        xyxy[:, 2:] = np.maximum(xyxy[:, 2:], xyxy[:, :2])
        if kind >= 8:
            xyxy = np.round(xyxy)
    cls = rng.integers(0, num_classes, (len(xyxy), 1))
    dtype = rng.choice([np.int64, np.float32, np.float64])
    out = np.concatenate([xyxy, cls], 1).astype(dtype)
    cx, cy = (out[:, 0] + out[:, 2]) * 0.5, (out[:, 1] + out[:, 3]) * 0.5
    return out[(cx < size) & (cy < size)]  # the seed crashes on a centre at the far edge


def assert_same(ours, ref, where):
    labels, boxlists = ours
    ref_labels, ref_boxlists = ref
    assert len(labels) == len(ref_labels)
    for i, (a, b) in enumerate(zip(labels, ref_labels)):
        assert a.dtype == np.float32 and a.shape == b.shape, where
        assert np.array_equal(a, b), f"{where}: label scale {i} differs at {np.argwhere(a != b)[:3]}"
    for i, (a, b) in enumerate(zip(boxlists, ref_boxlists)):
        assert a.dtype == np.float32 and a.shape == b.shape, where
        assert np.array_equal(a, b), f"{where}: bbox list scale {i} differs"


def test_equals_seed_loop_on_5000_random_images():
    rng = np.random.default_rng(20260401)
    anchors_px = SEED_ANCHORS * np.array(SEED_STRIDES)[:, None, None]
    for k in range(5000):
        size = int(rng.choice([96, 128, 160, 224, 320, 416])) if k % 50 else 416
        num_classes = int(rng.choice([1, 2, 3, 7, 20])) if k % 50 else 80
        boxes = random_boxes(rng, size, num_classes)
        ref = seed_preprocess_true_boxes(boxes, num_classes, size, SEED_ANCHORS, SEED_STRIDES)
        if k % 2:
            out = preprocess_true_boxes(boxes, num_classes, size)
            ours = (list(out[:3]), list(out[3:]))
        else:
            ours = encode_targets(boxes, num_classes, size, anchors_px, SEED_STRIDES)
        assert_same(ours, ref, f"image {k} (size {size}, C {num_classes}, boxes {boxes.tolist()[:4]}...)")


def test_equals_seed_loop_for_tiny_two_scales():
    """YOLOv3-tiny: strides 16, 32, anchors from its cfg (mask 0,1,2 and 3,4,5)."""
    anchors_px = np.array([[[10, 14], [23, 27], [37, 58]], [[81, 82], [135, 169], [344, 319]]], float)
    strides = (16, 32)
    anchors_su = anchors_px / np.array(strides)[:, None, None]
    rng = np.random.default_rng(7)
    for k in range(300):
        size = int(rng.choice([128, 224, 416]))
        boxes = random_boxes(rng, size, 4)
        ref = seed_preprocess_true_boxes(boxes, 4, size, anchors_su, strides)
        ours = encode_targets(boxes, 4, size, anchors_px, strides)
        assert_same(ours, ref, f"tiny image {k}")


def test_batch_encoding_equals_seed_loop_per_image():
    """encode_batch: each image's slice equals the seed's loop on that image (ring, empty images too)."""
    rng = np.random.default_rng(11)
    anchors_px = SEED_ANCHORS * np.array(SEED_STRIDES)[:, None, None]
    for k in range(60):
        size, num_classes = int(rng.choice([128, 224, 416])), int(rng.choice([1, 4, 80]))
        enc = TargetEncoder.create(num_classes, size, anchors_px, SEED_STRIDES)
        batch = [
            random_boxes(rng, size, num_classes).astype(np.float32) for _ in range(int(rng.integers(1, 6)))
        ]
        batch[int(rng.integers(len(batch)))] = np.zeros((0, 5), np.float32)  # a negative image
        if k % 10 == 0:  # two images over the 150 ring
            batch[0] = np.concatenate([batch[0], random_boxes_ring(rng, size, num_classes)])
            batch.append(random_boxes_ring(rng, size, num_classes))
        labels, lists = enc.encode_batch(batch)
        assert [lab.shape for lab in labels] == [
            (len(batch), size // s, size // s, 3, 5 + num_classes) for s in SEED_STRIDES
        ]
        assert all(lab.flags.c_contiguous for lab in labels)
        for b, boxes in enumerate(batch):
            ref = seed_preprocess_true_boxes(boxes, num_classes, size, SEED_ANCHORS, SEED_STRIDES)
            assert_same(([lab[b] for lab in labels], [lst[b] for lst in lists]), ref, f"batch {k} image {b}")


def random_boxes_ring(rng, size, num_classes):
    n = int(rng.integers(151, 260))
    x1, y1 = rng.uniform(0, size - 12, n), rng.uniform(0, size - 12, n)
    wh = rng.uniform(1, 12, (2, n))
    cls = rng.integers(0, num_classes, n)
    return np.stack([x1, y1, x1 + wh[0], y1 + wh[1], cls], 1).astype(np.float32)


def test_encoder_with_size_matches_function():
    enc = TargetEncoder.create(
        3, 416, SEED_ANCHORS * np.array([[[8]], [[16]], [[32]]]), SEED_STRIDES
    ).with_size(320)
    boxes = np.array([[10, 20, 200, 220, 2], [0, 0, 5, 5, 1]], np.float32)
    labels, lists = enc.encode(boxes)
    assert enc.grid_sizes() == [40, 20, 10]
    ref = seed_preprocess_true_boxes(boxes, 3, 320, SEED_ANCHORS, SEED_STRIDES)
    assert_same((labels, lists), ref, "with_size")


def test_hand_case_whole_image_box():
    """A 416 box centred at (208, 208): hand-computed IoUs pick only the largest anchor, stride 32."""
    label_s, label_m, label_l, sb, mb, lb = preprocess_true_boxes(np.array([[0, 0, 416, 416, 2]]), 4)
    assert label_s[..., 4].sum() == 0 and label_m[..., 4].sum() == 0
    # stride 32: box 13x13 vs anchor 11.65625x10.1875 inside it: IoU = 118.75 / 169 = 0.70 > 0.3
    assert label_l[6, 6, 2, 4] == 1.0 and label_l[..., 4].sum() == 1.0
    np.testing.assert_array_equal(label_l[6, 6, 2, :4], [208, 208, 416, 416])
    np.testing.assert_allclose(label_l[6, 6, 2, 5:], [0.0025, 0.0025, 0.9925, 0.0025], rtol=1e-6)
    np.testing.assert_array_equal(lb[0], [208, 208, 416, 416])
    assert not sb.any() and not mb.any() and not lb[1:].any()


def test_empty_image_gives_all_zero_targets():
    out = preprocess_true_boxes(np.zeros((0, 5)), 3, 320)
    assert [o.shape for o in out] == [(40, 40, 3, 8), (20, 20, 3, 8), (10, 10, 3, 8)] + [(150, 4)] * 3
    assert all(not o.any() for o in out)


def test_centre_on_far_edge_is_clamped_to_last_cell():
    """Documented deviation: the seed indexes out of range (IndexError) here; we use cell S - 1."""
    box = np.array([[414, 100, 416, 140, 0], [100, 416, 100, 416, 0]], np.float32)  # 2nd: centre at 416
    with pytest.raises(IndexError):
        seed_preprocess_true_boxes(box[1:], 1, 416, SEED_ANCHORS, SEED_STRIDES)
    labels, boxlists = encode_targets(
        box, 1, 416, SEED_ANCHORS * np.array([[[8]], [[16]], [[32]]]), SEED_STRIDES
    )
    pos = [np.argwhere(lab[..., 4] == 1.0) for lab in labels]
    rows = [lab[tuple(p)] for lab, ps in zip(labels, pos) for p in ps]
    assert any(np.array_equal(r[:4], [100, 416, 0, 0]) for r in rows)
    for lab, ps in zip(labels, pos):
        for y, x, _ in ps:
            if lab[y, x, _, 1] == 416:
                assert y == lab.shape[0] - 1  # last row of cells
    # the first box (ordinary, centre 415 < 416) is untouched by the clamp: equal to the seed
    ref = seed_preprocess_true_boxes(box[:1], 1, 416, SEED_ANCHORS, SEED_STRIDES)
    assert_same(
        encode_targets(box[:1], 1, 416, SEED_ANCHORS * np.array([[[8]], [[16]], [[32]]]), SEED_STRIDES),
        ref,
        "edge",
    )


def test_bad_class_and_shape_are_errors():
    with pytest.raises(ValueError, match=r"boxes\[1\]: class 5"):
        preprocess_true_boxes(np.array([[0, 0, 10, 10, 0], [0, 0, 10, 10, 5]]), 5)
    with pytest.raises(ValueError, match=r"class -1"):
        preprocess_true_boxes(np.array([[0, 0, 10, 10, -1]]), 5)
    with pytest.raises(ValueError, match=r"class 1.5"):
        preprocess_true_boxes(np.array([[0, 0, 10, 10, 1.5]]), 5)
    with pytest.raises(ValueError, match=r"shape \(N, 5\)"):
        preprocess_true_boxes(np.zeros((3, 4)), 5)
    with pytest.raises(ValueError, match="must match"):
        encode_targets(np.zeros((0, 5)), 2, 416, SEED_ANCHORS[:2], SEED_STRIDES)


# ----------------------------------------------------------------------------------------------
# Invariants (hypothesis)
# ----------------------------------------------------------------------------------------------

box_st = st.tuples(
    st.floats(0, 319), st.floats(0, 319), st.floats(0.5, 320), st.floats(0.5, 320), st.integers(0, 4)
).map(lambda t: (t[0], t[1], min(320.0, t[0] + t[2]), min(320.0, t[1] + t[3]), t[4]))


@settings(max_examples=150, deadline=None)
@given(st.lists(box_st, max_size=40))
def test_encoder_invariants(box_list):
    boxes = np.array(box_list, np.float32).reshape(-1, 5)
    boxes = boxes[((boxes[:, 0] + boxes[:, 2]) * 0.5 < 320) & ((boxes[:, 1] + boxes[:, 3]) * 0.5 < 320)]
    out = preprocess_true_boxes(boxes, 5, 320)
    labels, lists = out[:3], out[3:]
    xywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:4]) * 0.5, boxes[:, 2:4] - boxes[:, :2]], 1)
    written = set()
    for lab, stride, blist in zip(labels, SEED_STRIDES, lists):
        obj = lab[..., 4]
        assert set(np.unique(obj)) <= {0.0, 1.0}
        cells = np.argwhere(obj == 1.0)
        for y, x, a in cells:
            row = lab[y, x, a]
            # the slot holds one of the boxes, whose centre lies in this cell, and a smoothed one-hot
            match = np.flatnonzero((xywh == row[:4]).all(1))
            assert len(match) and any(int(boxes[m, 4]) == int(np.argmax(row[5:])) for m in match)
            assert (np.floor(row[:2] / stride) == [x, y]).all()
            np.testing.assert_allclose(row[5:].sum(), 1.0, rtol=1e-6)
            written.update(match.tolist())
        assert not lab[obj == 0].any()  # nothing but positives is written
        # the ring holds min(count, 150) boxes, each a real box
        nz = blist[(blist != 0).any(1)]
        assert len(nz) <= 150
        for r in nz:
            assert (xywh == r).all(1).any()
    # every box is positive somewhere unless a later box took its slot (the seed's overwrite)
    if len(boxes):
        assert len(boxes) - 1 in written
