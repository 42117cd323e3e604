"""Darknet cfg parsing, writing and building, against Darknet's own cfg files and a literal
transcription of Darknet's maxpool; bad input must raise UserError naming file, line and key."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from darknet_cfgs import MINI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolov3 import YOLOv3
from yolov3.darknet import DarknetModel, native_to_cfg, parse_cfg, parse_cfg_text, set_num_classes, write_cfg
from yolov3.darknet.build import MaxPoolLayer
from yolov3.darknet.cfg import Conv, MaxPool
from yolov3.errors import UserError

CFG_DIR = Path(__file__).resolve().parents[1] / "yolov3" / "cfg"


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_shipped_cfgs_are_darknets(darknet_dir):
    for name in ("yolov3", "yolov3-tiny", "yolov3-spp", "yolov3-voc"):
        assert (CFG_DIR / f"{name}.cfg").read_bytes() == (darknet_dir / "cfg" / f"{name}.cfg").read_bytes()
    for name in ("coco.names", "voc.names"):
        assert (CFG_DIR / name).read_bytes() == (darknet_dir / name).read_bytes()


@pytest.mark.parametrize(
    "name, params", [("yolov3", 61_949_149), ("yolov3-tiny", 8_852_366), ("yolov3-spp", 62_998_749)]
)
def test_parameter_counts_at_80_classes(name, params):
    assert n_params(DarknetModel(parse_cfg(CFG_DIR / f"{name}.cfg"))) == params


def test_outputs_by_increasing_stride_with_masked_anchors():
    tiny = DarknetModel(parse_cfg(CFG_DIR / "yolov3-tiny.cfg"), num_classes=3)
    assert tiny.strides == [16, 32]  # the cfg lists the stride-32 [yolo] (mask 3,4,5) first
    assert tiny.anchors == [[(10, 14), (23, 27), (37, 58)], [(81, 82), (135, 169), (344, 319)]]
    assert tiny.num_classes == 3
    with torch.inference_mode():
        outs = tiny.eval()(torch.zeros(1, 3, 96, 160))
    assert [tuple(o.shape) for o in outs] == [(1, 24, 6, 10), (1, 24, 3, 5)]


def test_class_override_changes_yolo_and_the_conv_before_it():
    cfg = parse_cfg(CFG_DIR / "yolov3.cfg")
    three = set_num_classes(cfg, 3)
    assert three.num_classes == 3 and cfg.num_classes == 80
    text = write_cfg(three)
    assert text.count("classes=3") == 3 and text.count("filters=24") == 3 and "filters=255" not in text
    # Only the three output convs change: (255 - 24) filters, each over 256/512/1024 inputs + bias.
    assert n_params(DarknetModel(cfg)) - n_params(DarknetModel(cfg, num_classes=3)) == 231 * (
        257 + 513 + 1025
    )


@pytest.mark.parametrize("name", ["yolov3", "yolov3-tiny", "yolov3-spp", "yolov3-voc"])
def test_write_cfg_round_trips(name):
    cfg = parse_cfg(CFG_DIR / f"{name}.cfg")
    again = parse_cfg_text(write_cfg(cfg))
    assert [(s.type, s.options) for s in again.sections] == [(s.type, s.options) for s in cfg.sections]
    assert again.layers == cfg.layers and again.shapes == cfg.shapes
    assert write_cfg(again) == write_cfg(cfg)


def test_native_network_written_as_cfg_is_darknets_yolov3_cfg():
    ours = native_to_cfg(YOLOv3(80), 608, 608)
    darknet = parse_cfg(CFG_DIR / "yolov3.cfg")
    assert ours.layers == darknet.layers  # every conv, shortcut, route (absolute 61, 36), upsample, yolo
    assert ours.shapes == darknet.shapes


def darknet_maxpool_reference(x: np.ndarray, size: int, stride: int, pad: int) -> np.ndarray:
    """Literal transcription of Darknet's forward_maxpool_layer (one channel plane)."""
    h, w = x.shape
    out_h, out_w = (h + pad - size) // stride + 1, (w + pad - size) // stride + 1
    offset = -(pad // 2)  # C: -l.pad / 2 with l.pad >= 0
    out = np.empty((out_h, out_w), np.float32)
    for i in range(out_h):
        for j in range(out_w):
            best = -np.finfo(np.float32).max
            for n in range(size):
                for m in range(size):
                    r, c = offset + i * stride + n, offset + j * stride + m
                    if 0 <= r < h and 0 <= c < w:
                        best = max(best, x[r, c])
            out[i, j] = best
    return out


@pytest.mark.parametrize("size, stride, hw", [(2, 1, (7, 6)), (2, 2, (8, 6)), (5, 1, (6, 7)), (3, 2, (9, 8))])
def test_maxpool_pads_like_darknet(size, stride, hw):
    x = torch.randn(1, 2, *hw) - 3.0  # all-negative inputs would expose zero padding
    ours = MaxPoolLayer(MaxPool(size, stride, (size - 1) // 2, size - 1 - (size - 1) // 2))(x)
    for c in range(2):
        ref = darknet_maxpool_reference(x[0, c].numpy(), size, stride, size - 1)
        np.testing.assert_array_equal(ours[0, c].numpy(), ref)


# --- bad input -----------------------------------------------------------------------------------


def test_mini_cfg_builds():
    model = DarknetModel(parse_cfg_text(MINI))
    assert model.strides == [1, 2]
    with torch.inference_mode():
        outs = model.eval()(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 21, 64, 64), (1, 21, 32, 32)]


def error_of(text: str) -> str:
    with pytest.raises(UserError) as info:
        parse_cfg_text(text, "mini.cfg")
    return str(info.value)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_unknown_section_names_file_and_line():
    text = MINI.replace("[upsample]", "[upsampel]")
    assert f"mini.cfg:{line_of(text, 'upsampel')}:" in error_of(text) and "[upsampel]" in error_of(text)


def test_missing_required_key_is_named():
    text = MINI.replace("filters=8\nsize=3\nstride=1", "filters=8\nstride=1", 1)
    msg = error_of(text)
    assert "'size'" in msg and re.match(r"mini\.cfg:\d+:", msg)


@pytest.mark.parametrize(
    "old, new, key",
    [("filters=8", "filters=eight", "filters"), ("classes=2", "classes=2.5", "classes"),
     ("activation=leaky", "activation=leakey", "activation"), ("layers = -1, 0", "layers = -1,x", "layers"),
     ("ignore_thresh = .7", "ignore_thresh = .7.", "ignore_thresh"), ("width=64", "width=", "width")],
)  # fmt: skip
def test_value_that_does_not_parse_names_file_line_and_key(old, new, key):
    text = MINI.replace(old, new, 1)
    msg = error_of(text)
    assert msg.startswith(f"mini.cfg:{line_of(text, new)}:") and key in msg


@pytest.mark.parametrize(
    "old, new, words",
    [("layers = -3", "layers = -30", "refers to layer"),
     ("layers = -1, 0", "layers = -1, 9", "refers to layer"),
     ("filters=21", "filters=20", "set filters=21"), ("mask = 0,1,2", "mask = 0,1,6", "mask index 6"),
     ("size=3\nstride=1", "size=3\ngroups=2\nstride=1", "groups=2 is not supported"),
     ("batch_normalize=1", "batch_normalise=1", "unknown key 'batch_normalise'"),
     ("layers = -1, 0", "layers = -1, 1", "cannot concatenate"),
     ("filters=8\nsize=3\nstride=1", "filters=16\nsize=3\nstride=1", "adds layer 2")],
)  # fmt: skip
def test_structural_errors(old, new, words):
    assert words in error_of(MINI.replace(old, new, 1))


def test_unknown_harmless_yolo_keys_in_one_warning():
    text = MINI.replace("random=1", "random=1\ncounters_per_class=3\nlabel_smooth_eps=0.1", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = parse_cfg_text(text, "mini.cfg")
    assert len(caught) == 1
    assert "counters_per_class" in str(caught[0].message) and "label_smooth_eps" in str(caught[0].message)
    assert "counters_per_class=3" in write_cfg(cfg)  # kept for the round trip


def test_missing_file_and_empty_text():
    with pytest.raises(UserError, match="cannot read"):
        parse_cfg("/nonexistent/x.cfg")
    with pytest.raises(UserError, match=r"\[net\]"):
        parse_cfg_text("", "empty.cfg")


MINI_LINES = MINI.splitlines()
junk = st.text(alphabet=st.sampled_from(list("[]=,#;-.0123456789 abcdefilnorstuvwxyz\t")), max_size=24)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.sampled_from(["drop", "replace", "insert", "value", "int"]), st.integers(0, 99), junk),
        min_size=1, max_size=4,
    )
)  # fmt: skip
def test_malformed_cfgs_raise_user_error_only(edits):
    lines = list(MINI_LINES)
    for op, at, text in edits:
        at = min(at, len(lines) - 1)
        if op == "drop":
            del lines[at]
        elif op == "replace":
            lines[at] = text
        elif op == "insert":
            lines.insert(at, text)
        elif op == "int" and "=" in lines[at]:  # a plausible number: exercises shape inference
            lines[at] = lines[at].split("=")[0] + "=" + str(len(text) - 4)
        elif "=" in lines[at]:
            lines[at] = lines[at].split("=")[0] + "=" + text
        if not lines:
            lines = [""]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cfg = parse_cfg_text("\n".join(lines), "fuzz.cfg")
        except UserError:
            return
        convs = [(layer, cfg.shapes[i - 1][0] if i else cfg.channels) for i, layer in enumerate(cfg.layers)
                 if isinstance(layer, Conv)]  # fmt: skip
        if sum(c.filters * c_in * c.size**2 for c, c_in in convs) > 10**6 or cfg.width * cfg.height > 10**5:
            return  # a valid cfg too big to build quickly
        try:
            model = DarknetModel(cfg)
        except UserError:
            return
    if cfg.width % model.size_multiple or cfg.height % model.size_multiple:
        return
    with torch.inference_mode():
        outs = model.eval()(torch.zeros(1, cfg.channels, cfg.height, cfg.width))
    assert len(outs) == len(model.strides)
