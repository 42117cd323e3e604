"""Literal NumPy transcriptions of the seed's target encoder, shared by the tests and benchmarks
(test_targets checks our encoder against it; test_loss builds seed-encoded labels with it)."""

from __future__ import annotations

import numpy as np

# The seed's settings as its code base writes them (docs/seed.md): anchors in stride units, one row per
# scale, and the strides. Literal here, so the tests do not take them from the code under test.
SEED_ANCHORS = np.array(
    [
        [[1.25, 1.625], [2.0, 3.75], [4.125, 2.875]],
        [[1.875, 3.8125], [3.875, 2.8125], [3.6875, 7.4375]],
        [[3.625, 2.8125], [4.875, 6.1875], [11.65625, 10.1875]],
    ]
)
SEED_STRIDES = (8, 16, 32)

# ----------------------------------------------------------------------------------------------
# The reference: the seed's Dataset.bbox_iou and Dataset.preprocess_true_boxes (docs/seed.md),
# line by line. Changes: `self.` attributes become arguments, np.float -> float (removed from NumPy),
# `bbox[4]` through int() (float arrays can't index), range(3) -> range(len(strides)) for -tiny,
# and the outputs cast to float32 at the end.
# ----------------------------------------------------------------------------------------------


def seed_bbox_iou(boxes1, boxes2):
    boxes1 = np.array(boxes1)
    boxes2 = np.array(boxes2)

    boxes1_area = boxes1[..., 2] * boxes1[..., 3]
    boxes2_area = boxes2[..., 2] * boxes2[..., 3]

    boxes1 = np.concatenate(
        [boxes1[..., :2] - boxes1[..., 2:] * 0.5, boxes1[..., :2] + boxes1[..., 2:] * 0.5], axis=-1
    )
    boxes2 = np.concatenate(
        [boxes2[..., :2] - boxes2[..., 2:] * 0.5, boxes2[..., :2] + boxes2[..., 2:] * 0.5], axis=-1
    )

    left_up = np.maximum(boxes1[..., :2], boxes2[..., :2])
    right_down = np.minimum(boxes1[..., 2:], boxes2[..., 2:])

    inter_section = np.maximum(right_down - left_up, 0.0)
    inter_area = inter_section[..., 0] * inter_section[..., 1]
    union_area = boxes1_area + boxes2_area - inter_area

    return inter_area / union_area


def seed_preprocess_true_boxes(
    bboxes, num_classes, train_input_size, anchors, strides, max_bbox_per_scale=150, as_float32=True
):
    strides = np.array(strides)
    train_output_sizes = train_input_size // strides
    anchor_per_scale = 3
    num_scales = len(strides)

    label = [
        np.zeros((train_output_sizes[i], train_output_sizes[i], anchor_per_scale, 5 + num_classes))
        for i in range(num_scales)
    ]
    bboxes_xywh = [np.zeros((max_bbox_per_scale, 4)) for _ in range(num_scales)]
    bbox_count = np.zeros((num_scales,))

    for bbox in bboxes:
        bbox_coor = bbox[:4]
        bbox_class_ind = int(bbox[4])

        onehot = np.zeros(num_classes, dtype=float)
        onehot[bbox_class_ind] = 1.0
        uniform_distribution = np.full(num_classes, 1.0 / num_classes)
        deta = 0.01
        smooth_onehot = onehot * (1 - deta) + deta * uniform_distribution

        bbox_xywh = np.concatenate(
            [(bbox_coor[2:] + bbox_coor[:2]) * 0.5, bbox_coor[2:] - bbox_coor[:2]], axis=-1
        )
        bbox_xywh_scaled = 1.0 * bbox_xywh[np.newaxis, :] / strides[:, np.newaxis]

        iou = []
        exist_positive = False
        for i in range(num_scales):
            anchors_xywh = np.zeros((anchor_per_scale, 4))
            anchors_xywh[:, 0:2] = np.floor(bbox_xywh_scaled[i, 0:2]).astype(np.int32) + 0.5
            anchors_xywh[:, 2:4] = anchors[i]

            iou_scale = seed_bbox_iou(bbox_xywh_scaled[i][np.newaxis, :], anchors_xywh)
            iou.append(iou_scale)
            iou_mask = iou_scale > 0.3

            if np.any(iou_mask):
                xind, yind = np.floor(bbox_xywh_scaled[i, 0:2]).astype(np.int32)

                label[i][yind, xind, iou_mask, :] = 0
                label[i][yind, xind, iou_mask, 0:4] = bbox_xywh
                label[i][yind, xind, iou_mask, 4:5] = 1.0
                label[i][yind, xind, iou_mask, 5:] = smooth_onehot

                bbox_ind = int(bbox_count[i] % max_bbox_per_scale)
                bboxes_xywh[i][bbox_ind, :4] = bbox_xywh
                bbox_count[i] += 1

                exist_positive = True

        if not exist_positive:
            best_anchor_ind = np.argmax(np.array(iou).reshape(-1), axis=-1)
            best_detect = int(best_anchor_ind / anchor_per_scale)
            best_anchor = int(best_anchor_ind % anchor_per_scale)
            xind, yind = np.floor(bbox_xywh_scaled[best_detect, 0:2]).astype(np.int32)

            label[best_detect][yind, xind, best_anchor, :] = 0
            label[best_detect][yind, xind, best_anchor, 0:4] = bbox_xywh
            label[best_detect][yind, xind, best_anchor, 4:5] = 1.0
            label[best_detect][yind, xind, best_anchor, 5:] = smooth_onehot

            bbox_ind = int(bbox_count[best_detect] % max_bbox_per_scale)
            bboxes_xywh[best_detect][bbox_ind, :4] = bbox_xywh
            bbox_count[best_detect] += 1
    if not as_float32:  # the seed's own float64 output (benchmarks/bench_targets.py times this)
        return label, bboxes_xywh
    return [x.astype(np.float32) for x in label], [x.astype(np.float32) for x in bboxes_xywh]
