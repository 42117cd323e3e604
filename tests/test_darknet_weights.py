"""Darknet .weights: the layout on a hand-built file, byte-identical round trips, the official file
sizes, native <-> cfg interchange, backbone prefixes, class transfer, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from darknet_cfgs import TWO_CONVS, TWO_CONVS_FLOATS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolov3 import YOLOv3
from yolov3.darknet import DarknetModel, native_to_cfg, parse_cfg, parse_cfg_text
from yolov3.darknet.weights import WeightsHeader, conv_units, load_darknet_weights, save_darknet_weights
from yolov3.errors import UserError

CFG_DIR = Path(__file__).resolve().parents[1] / "yolov3" / "cfg"


def write_reference(path: Path, floats: np.ndarray, major=0, minor=2, revision=0, seen=7) -> bytes:
    """Darknet's save_weights header, literally: three int32, then size_t (64-bit) or int32 seen."""
    seen_type = "<u8" if major * 10 + minor >= 2 else "<i4"
    raw = np.array([major, minor, revision], "<i4").tobytes() + np.array([seen], seen_type).tobytes()
    raw += floats.astype("<f4").tobytes()
    path.write_bytes(raw)
    return raw


def n_floats(model: torch.nn.Module) -> int:
    return sum(sum(u.sizes()) for u in conv_units(model))


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_layout_on_a_hand_built_file(tmp_path):
    model = DarknetModel(parse_cfg_text(TWO_CONVS))
    # conv 1 (BN): beta 2, gamma 2, mean 2, var 2, kernel 2x3x3x3; conv 2: bias 12, kernel 12x2x1x1
    floats = np.arange(8 + 54 + 12 + 24, dtype=np.float32)
    write_reference(tmp_path / "a.weights", floats)
    report = load_darknet_weights(model, tmp_path / "a.weights")
    assert report.header == WeightsHeader(0, 2, 0, 7) and report.loaded == 2
    c1, c2 = model.layers[0], model.layers[1]
    assert c1.bn.bias.tolist() == [0, 1] and c1.bn.weight.tolist() == [2, 3]
    assert c1.bn.running_mean.tolist() == [4, 5] and c1.bn.running_var.tolist() == [6, 7]
    assert c1.conv.weight[1, 2, 0].tolist() == [8 + 27 + 18 + 0, 8 + 27 + 18 + 1, 8 + 27 + 18 + 2]
    assert c2.conv.bias.tolist() == list(range(62, 74))
    assert c2.conv.weight[11, 1, 0, 0].item() == 74 + 11 * 2 + 1


@pytest.mark.parametrize("major, minor, seen", [(0, 2, 2**40 + 3), (0, 1, 12345), (1, 0, 5)])
def test_load_then_save_is_byte_identical(tmp_path, major, minor, seen):
    model = YOLOv3(3, width=0.125)
    floats = np.random.default_rng(0).standard_normal(n_floats(model)).astype(np.float32)
    raw = write_reference(tmp_path / "in.weights", floats, major, minor, 4, seen)
    report = load_darknet_weights(model, tmp_path / "in.weights")
    save_darknet_weights(model, tmp_path / "out.weights", report.header)
    assert (tmp_path / "out.weights").read_bytes() == raw
    cfg_built = DarknetModel(native_to_cfg(model))
    load_darknet_weights(cfg_built, tmp_path / "in.weights")
    save_darknet_weights(cfg_built, tmp_path / "out2.weights", report.header)
    assert (tmp_path / "out2.weights").read_bytes() == raw


@pytest.mark.parametrize("name, size", [("yolov3", 248_007_048), ("yolov3-tiny", 35_434_956)])
def test_file_size_matches_the_official_weights(name, size):
    # Sizes of Darknet's published yolov3.weights and yolov3-tiny.weights.
    assert 20 + 4 * n_floats(DarknetModel(parse_cfg(CFG_DIR / f"{name}.cfg"))) == size


def test_native_size_matches_official_yolov3_weights():
    assert 20 + 4 * n_floats(YOLOv3(80)) == 248_007_048


def test_native_and_cfg_built_are_interchangeable(tmp_path):
    from yolov3.darknet.synthetic import randomize

    native = randomize(YOLOv3(4, width=0.125), torch.rand(2, 3, 64, 64))
    save_darknet_weights(native, tmp_path / "n.weights")
    built = DarknetModel(native_to_cfg(native))
    load_darknet_weights(built, tmp_path / "n.weights")
    x = torch.rand(1, 3, 96, 64)
    with torch.inference_mode():
        for a, b in zip(native(x), built.eval()(x), strict=True):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert built.anchors == native.anchors and built.strides == native.strides


def test_backbone_prefix_loads_the_first_52_convolutions(tmp_path):
    full = YOLOv3(80, width=0.125)
    floats = np.random.default_rng(1).standard_normal(n_floats(full)).astype(np.float32)
    backbone = sum(sum(u.sizes()) for u in conv_units(full)[:52])  # darknet53.conv.74
    write_reference(tmp_path / "darknet53.conv.74", floats[:backbone])
    model = YOLOv3(3, width=0.125)
    head_before = {k: v for k, v in state(model).items() if not k.startswith("backbone")}
    with pytest.raises(UserError, match="mode='prefix'"):
        load_darknet_weights(model, tmp_path / "darknet53.conv.74")
    report = load_darknet_weights(model, tmp_path / "darknet53.conv.74", mode="prefix")
    assert report.loaded == 52
    assert model.backbone.stem.bn.bias[0].item() == floats[0]
    assert model.backbone.stage5[-1].conv2.conv.weight.flatten()[-1].item() == floats[backbone - 1]
    for k, v in head_before.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_coco_file_into_a_c_class_model_needs_transfer(tmp_path):
    coco = YOLOv3(80, width=0.125)
    floats = np.random.default_rng(2).standard_normal(n_floats(coco)).astype(np.float32)
    write_reference(tmp_path / "coco.weights", floats)
    load_darknet_weights(coco, tmp_path / "coco.weights")
    model = YOLOv3(3, width=0.125)
    before = state(model)
    with pytest.raises(UserError) as info:
        load_darknet_weights(model, tmp_path / "coco.weights")
    msg = str(info.value)
    assert "80 classes" in msg and "mode='transfer'" in msg and "out_l.1" in msg
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # untouched
    report = load_darknet_weights(model, tmp_path / "coco.weights", mode="transfer")
    assert report.skipped == ["out_l.1", "out_m.1", "out_s.1"] and report.loaded == 72
    for k, v in model.state_dict().items():
        if k.split(".")[0] in ("out_l", "out_m", "out_s") and ".1." in k:
            assert torch.equal(v, before[k]), k
        else:
            assert torch.equal(v, coco.state_dict()[k]), k


@pytest.mark.parametrize("extra", [-1, -4, -300, 1, 7])
def test_wrong_size_names_sizes_and_first_layer_and_loads_nothing(tmp_path, extra):
    model = YOLOv3(3, width=0.125)
    n = n_floats(model)
    write_reference(tmp_path / "w.weights", np.ones(n + extra, np.float32))
    before = state(model)
    with pytest.raises(UserError) as info:
        load_darknet_weights(model, tmp_path / "w.weights")
    msg = str(info.value)
    assert f"{n + extra} floats" in msg and f"needs {n}" in msg
    assert ("out_s.1" in msg) if extra < 0 else ("left after the last convolution out_s.1" in msg)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_bytes_not_a_whole_number_of_floats(tmp_path):
    model = YOLOv3(3, width=0.125)
    (tmp_path / "w.weights").write_bytes(
        write_reference(tmp_path / "w.weights", np.ones(10, np.float32)) + b"x"
    )
    with pytest.raises(UserError, match="whole number of float32"):
        load_darknet_weights(model, tmp_path / "w.weights")


@pytest.fixture(scope="module")
def small_model_and_file(tmp_path_factory):
    model = DarknetModel(parse_cfg_text(TWO_CONVS))
    path = tmp_path_factory.mktemp("w") / "good.weights"
    raw = write_reference(path, np.arange(n_floats(model), dtype=np.float32))
    return model, raw


HEADER_BYTES = 20  # version 0.2: three int32 and a 64-bit seen


def truncation_error(size: int, mode: str) -> str | None:
    """What loading the first ``size`` bytes of a whole TWO_CONVS file must say (None: it loads)."""
    if size < 16:
        return f"{size} bytes is too short for a Darknet weights header"
    if size < HEADER_BYTES:
        return f"{size} bytes is too short for a version 0.2 header"
    if (size - HEADER_BYTES) % 4:
        return f"{size - HEADER_BYTES} bytes after the 20-byte header is not a whole number of float32"
    n = (size - HEADER_BYTES) // 4
    if mode == "prefix" and n == TWO_CONVS_FLOATS[0]:
        return None  # ends exactly after convolution 0: a backbone file, which prefix mode takes
    return f"{n} floats after the header; this model (2 convolutions) needs {sum(TWO_CONVS_FLOATS)}"


@pytest.mark.parametrize("mode", ["exact", "prefix", "transfer"])
def test_every_truncation_is_an_error_naming_the_file_and_what_is_short(tmp_path, small_model_and_file, mode):
    """Each cut of a whole file, byte by byte: a ``UserError`` naming the file and what is missing (the
    header, a whole float, or floats a named convolution needs), and the model left as it was."""
    model, good = small_model_and_file
    assert len(good) == HEADER_BYTES + 4 * sum(TWO_CONVS_FLOATS)
    path = tmp_path / "cut.weights"
    for size in range(len(good)):
        path.write_bytes(good[:size])
        before = state(model)
        expected = truncation_error(size, mode)
        if expected is None:
            load_darknet_weights(model, path, mode=mode)
            continue
        with pytest.raises(UserError) as info:
            load_darknet_weights(model, path, mode=mode)
        msg = str(info.value)
        assert msg.startswith(f"{path}: ") and expected in msg, (size, msg)
        n = (size - HEADER_BYTES) // 4
        if size >= HEADER_BYTES and not (size - HEADER_BYTES) % 4:
            k, at = (0, 0) if n < TWO_CONVS_FLOATS[0] else (1, TWO_CONVS_FLOATS[0])  # the one cut short
            assert f"; convolution #{k} " in msg, msg
            assert f"needs {TWO_CONVS_FLOATS[k]} floats at float {at}, only {n - at} remain" in msg, msg
            if mode == "transfer":
                assert "transfer needs a full network file" in msg
        assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items()), size


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_weights_raise_user_error_naming_the_file(tmp_path, small_model_and_file, data):
    """Random bytes, a whole file with bytes added, or a random header: loads, or a ``UserError`` whose
    message starts with the file's path (never another exception)."""
    model, good = small_model_and_file
    kind = data.draw(st.sampled_from(["random", "extend", "header"]))
    if kind == "random":
        raw = data.draw(st.binary(max_size=600))
    elif kind == "extend":
        raw = good + data.draw(st.binary(min_size=1, max_size=64))
    else:
        raw = data.draw(st.binary(min_size=12, max_size=12)) + good[12:]
    path = tmp_path / "bad.weights"
    path.write_bytes(raw)
    mode = data.draw(st.sampled_from(["exact", "prefix", "transfer"]))
    try:
        load_darknet_weights(model, path, mode=mode)
    except UserError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
