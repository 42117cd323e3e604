"""``yolov3.boxes.box_convert`` against torchvision.ops.box_convert (the independent reference), on
NumPy and torch, and the normalised YOLO form against the label-line formulas written out by hand."""

from __future__ import annotations

import io
import itertools
import re
import tokenize
from pathlib import Path

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


# --- "box_convert is the one place a box changes format", as far as a grep can tell -----------------

PACKAGE = Path(__file__).resolve().parents[1] / "yolov3"

# The arithmetic of a format change, in the spellings the package used before box_convert: a corner
# minus a corner, corner plus size, centre minus half a size, a size halved.
TELLTALES = {
    "corner difference": r"\[(?:(?:\.\.\.|:), ?)?[23]\] ?- ?[\w.]+\[(?:(?:\.\.\.|:), ?)?[01]\]",
    "corner slices": r"\[[^\[\]]*:2\] ?[-+] ?[\w.]+\[[^\[\]]*(?<!\d)2:4?\]"
    r"|\[[^\[\]]*(?<!\d)2:4?\] ?[-+] ?[\w.]+\[[^\[\]]*:2\]",
    "named corners": r"\b[xy]2 ?- ?[xy]1\b|\b[xy]1 ?\+ ?[xy]2\b|\b[xy]1? ?\+ ?[wh]\b",
    "centre and half": r"\bc[xy] ?[-+] ?\w+ ?(?:/ ?2\b|\* ?0\.5)",
    "half a size": r"\b(?:wh|w|h|bw|bh|half)(?:\[[^\]]*\])? ?(?:/ ?2\b|\* ?0\.5)"
    r"|\[(?:\.\.\.|:), ?2:4?\] ?(?:/ ?2\b|\* ?0\.5)|\bhalf(?:_\w+)? = ",
}

# What legitimately remains: (file, the line's code stripped, why). Integer pixel extents of image
# arrays (slicing a canvas, sizing a mask) are image geometry, not a box changing format.
ALLOWED = {
    ("data/augment.py", "cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), "
                        "min(x1 + w, 2 * s), min(y1 + h, 2 * s)"):
        "mosaic: the canvas window an image is pasted into (integer slice bounds)",
    ("data/synth.py", "hidden = np.zeros((y2 - y1, x2 - x1), bool)"):
        "synthetic data: a pixel mask the size of an integer box",
    ("data/synth.py", "alpha = _shape_mask(CLASS_NAMES[cls], x2 - x1, y2 - y1, rng)[..., None]"):
        "synthetic data: the object's mask, drawn at the box's pixel size",
    ("data/synth.py", "ramp = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.2), "
                      "x2 - x1, dtype=np.float32)"):
        "synthetic data: shading across the object's pixel columns",
    ("data/synth_video.py", "region = img[y1 : y1 + h, x1 : x1 + w]"):
        "synthetic video: the frame region under a moving object (slice)",
    ("data/synth_video.py", "img[y1 : y1 + h, x1 : x1 + w] = region * (1 - m.alpha) + m.fill * m.alpha"):
        "synthetic video: pasting the object (slice)",
    ("data/synth_video.py", "owner[y1 : y1 + h, x1 : x1 + w][m.alpha[..., 0] > 0.5] = k"):
        "synthetic video: which object owns each pixel (slice)",
}


def _code_lines(path: Path) -> dict[int, str]:
    """Line number -> source with comments and plain (non-f) strings blanked: docstrings may speak of
    ``x + w``; f-strings stay, since writers used to convert inside them."""
    lines = path.read_text().splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        plain_string = tok.type == tokenize.STRING and "f" not in tok.string.split(tok.string[-1])[0].lower()
        if tok.type != tokenize.COMMENT and not plain_string:
            continue
        (r1, c1), (r2, c2) = tok.start, tok.end
        for r in range(r1, r2 + 1):
            a, b = (c1 if r == r1 else 0), (c2 if r == r2 else len(lines[r - 1]))
            lines[r - 1] = lines[r - 1][:a] + " " * (b - a) + lines[r - 1][b:]
    return {n: line for n, line in enumerate(lines, 1)}


def box_arithmetic_outside_boxes_py() -> list[str]:
    """Every line of the package, boxes.py aside, that does a format change's arithmetic and is not
    in ``ALLOWED``: ``file:line: [kind] code``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "boxes.py":
            continue
        for n, code in _code_lines(path).items():
            kinds = [k for k, pattern in TELLTALES.items() if re.search(pattern, code)]
            if kinds and (rel, code.strip()) not in ALLOWED:
                found.append(f"yolov3/{rel}:{n}: [{', '.join(kinds)}] {code.strip()}")
    return found


def test_no_box_conversion_outside_boxes_py() -> None:
    """Run ``python tests/test_boxes.py`` to list the matches (none) and the allowed lines."""
    assert box_arithmetic_outside_boxes_py() == []


def test_the_telltales_catch_the_old_spellings() -> None:
    """The patterns match each conversion as it was written before box_convert (so an empty scan means
    something), and the allow-list names only lines that still exist."""
    old = [
        "xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).tolist()",
        "area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])",
        "half_wh = torch.exp(sel[:, 2:4]) * meta[:, 3:5] * 0.5",
        "xy, half_wh = sel[:, 0:2], sel[:, 2:4] * 0.5",
        "xyxy = torch.cat([cxcywh[..., :2] - cxcywh[..., 2:] / 2, cxcywh[..., :2] + cxcywh[..., 2:] / 2])",
        "return np.concatenate([(xyxy[:, :2] + xyxy[:, 2:4]) / 2, xyxy[:, 2:4] - xyxy[:, :2]], axis=1)",
        "half = np.abs(cxcywh[:, 2:4]) / 2",
        'f"{self.frame + 1},{int(t)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{s:.4f},-1,-1,-1"',
        "vals = [(x1 + x2) / 2 / r.width, (y1 + y2) / 2 / r.height, (x2 - x1) / r.width]",
        "boxes = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], 1)",
        "return image_id, [x, y, x + w, y + h], index_of[cat], bool(ann.get('iscrowd', 0))",
        "anchor_half=wh * 0.5,",
        "half = scaled[..., 2:] * 0.5",
        "rb = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])",
        "side = np.sqrt((s.boxes[:, 2] - s.boxes[:, 0]) * (s.boxes[:, 3] - s.boxes[:, 1]))",
        "area_a = (a[2] - a[0]) * (a[3] - a[1])",
    ]
    for line in old:
        assert any(re.search(p, line) for p in TELLTALES.values()), line
    code = {(p.relative_to(PACKAGE).as_posix(), c.strip()) for p in PACKAGE.rglob("*.py")
            for c in _code_lines(p).values()}  # fmt: skip
    assert set(ALLOWED) <= code, set(ALLOWED) - code
    for _, line in ALLOWED:
        assert any(re.search(p, line) for p in TELLTALES.values()), f"allowed but matches nothing: {line}"


if __name__ == "__main__":
    for hit in box_arithmetic_outside_boxes_py():
        print(hit)
    for (rel, code), why in ALLOWED.items():
        print(f"allowed: yolov3/{rel}: {code}\n    ({why})")
