"""``yolov3.boxes.box_convert`` against torchvision.ops.box_convert (the independent reference), on
NumPy and torch, and the normalised YOLO form against the label-line formulas written out by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torchvision

from yolov3.boxes import BOX_FORMATS, box_area, box_convert


def random_boxes(n: int = 200, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """The same ``n`` boxes in each format, built by hand from corners."""
    g = torch.Generator().manual_seed(0)
    p1 = torch.rand(n, 2, generator=g, dtype=torch.float64) * 600 - 50
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 300
    xyxy = torch.cat([p1, p1 + wh], 1)
    return {"xyxy": xyxy.to(dtype), "xywh": torch.cat([p1, wh], 1).to(dtype),
            "cxcywh": torch.cat([p1 + wh / 2, wh], 1).to(dtype)}  # fmt: skip


@pytest.mark.parametrize("in_fmt,out_fmt", list(itertools.product(BOX_FORMATS, repeat=2)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torchvision_to_the_bit(in_fmt: str, out_fmt: str, dtype: torch.dtype) -> None:
    boxes = random_boxes(dtype=dtype)[in_fmt]
    want = torchvision.ops.box_convert(boxes, in_fmt, out_fmt)
    got = box_convert(boxes, in_fmt, out_fmt)
    assert got.dtype == dtype and torch.equal(got, want)
    got_np = box_convert(boxes.numpy(), in_fmt, out_fmt)
    assert isinstance(got_np, np.ndarray) and got_np.dtype == boxes.numpy().dtype
    np.testing.assert_array_equal(got_np, want.numpy())


def test_round_trips_and_leading_dimensions() -> None:
    ref = random_boxes()
    for fmt in BOX_FORMATS:
        torch.testing.assert_close(box_convert(ref["xyxy"], "xyxy", fmt), ref[fmt], rtol=0, atol=1e-9)
        torch.testing.assert_close(box_convert(ref[fmt], fmt, "xyxy"), ref["xyxy"], rtol=0, atol=1e-9)
    batched = box_convert(ref["cxcywh"].reshape(2, 5, 20, 4), "cxcywh", "xyxy")
    assert torch.equal(batched.reshape(-1, 4), box_convert(ref["cxcywh"], "cxcywh", "xyxy"))


def test_same_format_copies_and_input_untouched() -> None:
    boxes = random_boxes()["xyxy"]
    before = boxes.clone()
    out = box_convert(boxes, "xyxy", "xyxy")
    out += 1
    assert torch.equal(boxes, before)
    arr = boxes.numpy().copy()
    box_convert(arr, "xyxy", "cxcywh")
    np.testing.assert_array_equal(arr, before.numpy())


def test_normalised_yolo_matches_the_label_line_formulas() -> None:
    """``cxcywhn``: what a YOLO label line holds, ``((x1 + x2) / 2 / w, (y1 + y2) / 2 / h,
    (x2 - x1) / w, (y2 - y1) / h)``; back: ``((cx - bw / 2) * w, ...)``, each to the bit."""
    w, h = 640, 427
    xyxy = random_boxes()["xyxy"].numpy()
    x1, y1, x2, y2 = xyxy.T
    want = np.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], 1)
    norm = box_convert(xyxy, "xyxy", "cxcywhn", size=(w, h))
    np.testing.assert_array_equal(norm, want)
    cx, cy, bw, bh = norm.T
    back = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)
    np.testing.assert_array_equal(box_convert(norm, "cxcywhn", "xyxy", size=(w, h)), back)
    f32 = box_convert(xyxy.astype(np.float32), "xyxy", "cxcywhn", size=(w, h))
    assert f32.dtype == np.float32  # an int size must not widen float32 boxes
    t = box_convert(torch.from_numpy(xyxy), "xyxy", "xywhn", size=(w, h))
    np.testing.assert_allclose(t.numpy(), box_convert(xyxy, "xyxy", "xywh") / [w, h, w, h], rtol=1e-15)


def test_area_matches_torchvision() -> None:
    boxes = random_boxes()["xyxy"]
    assert torch.equal(box_area(boxes), torchvision.ops.box_area(boxes))
    np.testing.assert_array_equal(box_area(boxes.numpy()), torchvision.ops.box_area(boxes).numpy())


def test_errors_name_the_format() -> None:
    boxes = torch.zeros(1, 4)
    with pytest.raises(ValueError, match="'xyah'"):
        box_convert(boxes, "xyah", "xyxy")
    with pytest.raises(ValueError, match="image size"):
        box_convert(boxes, "xyxy", "cxcywhn")


def test_traces_to_torch_ops() -> None:
    """The ONNX export head traces it: a trace must replay on other values."""
    traced = torch.jit.trace(lambda b: box_convert(b, "cxcywh", "xyxy"), torch.rand(3, 4))
    boxes = random_boxes(dtype=torch.float32)["cxcywh"]
    assert torch.equal(traced(boxes), torchvision.ops.box_convert(boxes, "cxcywh", "xyxy"))
