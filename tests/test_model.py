"""The native network: parameter count (Darknet's yolov3.cfg), shapes, and the seed's decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolov3 import COCO_ANCHORS, STRIDES, YOLOv3, decode, decode_all

SEED_ANCHORS_STRIDE_UNITS = np.array(
    [[1.25, 1.625], [2.0, 3.75], [4.125, 2.875],
     [1.875, 3.8125], [3.875, 2.8125], [3.6875, 7.4375],
     [3.625, 2.8125], [4.875, 6.1875], [11.65625, 10.1875]]
).reshape(3, 3, 2)  # fmt: skip


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_parameter_count_matches_darknet_yolov3_cfg():
    assert n_params(YOLOv3(80)) == 61_949_149


def test_parameter_count_scales_with_classes():
    # Only the three output convs depend on C: each has 3 * (5 + C) filters over 256/512/1024 inputs.
    diff = n_params(YOLOv3(80)) - n_params(YOLOv3(20))
    assert diff == 3 * 60 * ((256 + 1) + (512 + 1) + (1024 + 1))


def test_seventy_five_convolutions_in_darknet_order():
    convs = [m for m in YOLOv3(80).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 75
    assert [c.bias is not None for c in convs].count(True) == 3
    # Darknet's yolov3.cfg: layer 81 (conv #59) is the first output conv, #67 and #75 the others.
    assert [i for i, c in enumerate(convs) if c.bias is not None] == [58, 66, 74]


@pytest.mark.parametrize("size", [320, 416, 608])
def test_output_shapes(size):
    model = YOLOv3(num_classes=3, width=0.125).eval()
    with torch.inference_mode():
        outs = model(torch.zeros(2, 3, size, size))
    assert [tuple(o.shape) for o in outs] == [(2, 24, size // s, size // s) for s in STRIDES]


@pytest.mark.slow
def test_full_size_output_shapes_416():
    with torch.inference_mode():
        outs = YOLOv3(80).eval()(torch.zeros(1, 3, 416, 416))
    assert [tuple(o.shape) for o in outs] == [(1, 255, 52, 52), (1, 255, 26, 26), (1, 255, 13, 13)]


def test_rejects_size_not_multiple_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        YOLOv3(3, width=0.125)(torch.zeros(1, 3, 100, 96))


def seed_decode_numpy(conv_nhwc: np.ndarray, i: int, num_class: int) -> np.ndarray:
    """Literal transcription of the seed's ``decode`` (TF ops -> NumPy), NHWC input."""
    strides = np.array([8, 16, 32])
    batch_size, output_size = conv_nhwc.shape[0], conv_nhwc.shape[1]
    conv_output = np.reshape(conv_nhwc, (batch_size, output_size, output_size, 3, 5 + num_class))
    conv_raw_dxdy = conv_output[:, :, :, :, 0:2]
    conv_raw_dwdh = conv_output[:, :, :, :, 2:4]
    conv_raw_conf = conv_output[:, :, :, :, 4:5]
    conv_raw_prob = conv_output[:, :, :, :, 5:]
    y = np.tile(np.arange(output_size, dtype=np.int32)[:, np.newaxis], [1, output_size])
    x = np.tile(np.arange(output_size, dtype=np.int32)[np.newaxis, :], [output_size, 1])
    xy_grid = np.concatenate([x[:, :, np.newaxis], y[:, :, np.newaxis]], axis=-1)
    xy_grid = np.tile(xy_grid[np.newaxis, :, :, np.newaxis, :], [batch_size, 1, 1, 3, 1]).astype(np.float64)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    pred_xy = (sigmoid(conv_raw_dxdy) + xy_grid) * strides[i]
    pred_wh = (np.exp(conv_raw_dwdh) * SEED_ANCHORS_STRIDE_UNITS[i]) * strides[i]
    pred_xywh = np.concatenate([pred_xy, pred_wh], axis=-1)
    return np.concatenate([pred_xywh, sigmoid(conv_raw_conf), sigmoid(conv_raw_prob)], axis=-1)


@pytest.mark.parametrize("scale", [0, 1, 2])
def test_decode_equals_seed_transcription(scale):
    torch.manual_seed(scale)
    c, s = 7, [40, 20, 10][scale]
    raw = torch.randn(2, 3 * (5 + c), s, s, dtype=torch.float64) * 2
    ours = decode(raw, COCO_ANCHORS[scale], STRIDES[scale]).numpy()
    nhwc = raw.permute(0, 2, 3, 1).numpy()  # the seed's TF maps are channels-last
    np.testing.assert_allclose(ours, seed_decode_numpy(nhwc, scale, c), rtol=1e-12, atol=1e-12)


def test_decode_all_flattens_in_scale_order():
    model = YOLOv3(num_classes=2, width=0.125).eval()
    with torch.inference_mode():
        raws = model(torch.rand(1, 3, 416, 416))
        flat = decode_all(raws, model.anchors, model.strides)
    assert flat.shape == (1, 10_647, 7)
    last = decode(raws[2], model.anchors[2], 32).flatten(1, 3)
    torch.testing.assert_close(flat[:, -13 * 13 * 3 :], last)


def test_package_import_is_light_and_decode_stays_the_function():
    """``import yolov3`` imports no torch (``make demo`` draws data before torch is installed), and
    ``yolov3.decode`` is the function even after the module of that name was loaded by another one."""
    import subprocess
    import sys

    code = (
        "import sys, yolov3; assert 'torch' not in sys.modules, 'torch imported'; "
        "import yolov3.loss; from yolov3.decode import decode as f; from yolov3 import decode; "
        "assert decode is f and yolov3.decode is f"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
