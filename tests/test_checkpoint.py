"""Native checkpoints (safetensors, torch.save), Darknet weights + cfg + names, ``yolov3 convert``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from yolov3 import YOLOv3
from yolov3.checkpoint import export_darknet, load_model, model_from_meta, model_meta, save_model
from yolov3.cli import main as cli_main
from yolov3.config import ModelConfig
from yolov3.darknet import DarknetModel, parse_cfg_text, write_cfg
from yolov3.darknet.synthetic import randomize
from yolov3.darknet.weights import atomic_writer, save_darknet_weights
from yolov3.errors import UserError
from yolov3.model.factory import build_model
from yolov3.model.fuse import fuse_conv_bn

# yolov3-tiny's layout at a fraction of its channels: fast, and uses maxpool/route/upsample.
SMALL_TINY = """[net]
width=64
height=64
channels=3
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[maxpool]
size=2
stride=1
[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear
[yolo]
mask=3,4,5
anchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319
classes=2
num=6
[route]
layers=-4
[upsample]
stride=2
[route]
layers=-1,2
[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear
[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319
classes=2
num=6
"""


def outputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.inference_mode():
        return model.eval()(x)


def assert_same_outputs(a: torch.nn.Module, b: torch.nn.Module, size: int = 64) -> None:
    x = torch.rand(1, 3, size, size)
    for p, q in zip(outputs(a, x), outputs(b, x), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.fixture
def native():
    return randomize(YOLOv3(3, width=0.125), torch.rand(2, 3, 64, 64))


@pytest.fixture
def cfg_built():
    return randomize(DarknetModel(parse_cfg_text(SMALL_TINY), num_classes=4), torch.rand(2, 3, 64, 64))


def test_meta_is_plain_json(native, cfg_built):
    meta = model_meta(native, ["a", "b", "c"], 320, ModelConfig(num_classes=3, width=0.125))
    assert json.loads(json.dumps(meta)) == meta
    assert meta["strides"] == [8, 16, 32] and meta["anchors"][0] == [[10, 13], [16, 30], [33, 23]]
    assert meta["model"]["cfg"] is None and meta["model"]["width"] == 0.125
    meta2 = model_meta(cfg_built, None, 64)
    assert meta2["names"] == ["class0", "class1", "class2", "class3"] and meta2["strides"] == [4, 8]
    assert "classes=4" in meta2["model"]["cfg"]
    with pytest.raises(UserError, match="2 class names"):
        model_meta(native, ["a", "b"], 320)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize("which", ["native", "cfg_built"])
def test_save_load_round_trip(tmp_path, request, suffix, which):
    model = request.getfixturevalue(which)
    meta = model_meta(model, [f"n{i}" for i in range(model.num_classes)], 64)
    save_model(tmp_path / f"m{suffix}", model, meta)
    loaded, meta2 = load_model(tmp_path / f"m{suffix}")
    assert meta2 == meta and type(loaded) is type(model)
    assert_same_outputs(model, loaded)
    rebuilt = model_from_meta(meta)  # the embedded cfg / native spec alone rebuilds the architecture
    assert [v.shape for v in rebuilt.state_dict().values()] == [v.shape for v in model.state_dict().values()]


def test_trainer_style_checkpoint_with_optimiser_state(tmp_path, native):
    opt = torch.optim.SGD(native.parameters(), lr=1e-4, momentum=0.9)
    native(torch.rand(2, 3, 64, 64))[0].mean().backward()
    opt.step()
    native.eval()
    ckpt = {"model": native.state_dict(), "meta": model_meta(native, None, 64), "optimizer": opt.state_dict(),
            "step": 3, "rng": torch.get_rng_state()}  # fmt: skip
    torch.save(ckpt, tmp_path / "last.pt")
    loaded, meta = load_model(tmp_path / "last.pt", names=["x", "y", "z"])
    assert meta["names"] == ["x", "y", "z"]
    assert_same_outputs(native, loaded)


def test_darknet_weights_with_cfg_and_names(tmp_path, cfg_built):
    (tmp_path / "m.cfg").write_text(write_cfg(cfg_built.cfg))
    save_darknet_weights(cfg_built, tmp_path / "m.weights")
    model, meta = load_model(tmp_path / "m.weights", cfg=tmp_path / "m.cfg")
    assert meta["names"] == ["class0", "class1", "class2", "class3"] and meta["img_size"] == 64
    assert_same_outputs(cfg_built, model)
    (tmp_path / "m.names").write_text("a\nb\nc\n")
    with pytest.raises(UserError, match="3 class names but .* has 4 classes"):
        load_model(tmp_path / "m.weights", cfg=tmp_path / "m.cfg", names=tmp_path / "m.names")
    with pytest.raises(UserError, match="need their cfg"):
        load_model(tmp_path / "m.weights")


def test_convert_cli_round_trip(tmp_path, cfg_built, capsys):
    (tmp_path / "m.cfg").write_text(write_cfg(cfg_built.cfg))
    (tmp_path / "m.names").write_text("a\nb\nc\nd\n")
    save_darknet_weights(cfg_built, tmp_path / "m.weights")
    argv = ["convert", str(tmp_path / "m.weights"), str(tmp_path / "m.safetensors"), "--cfg",
            str(tmp_path / "m.cfg"), "--names", str(tmp_path / "m.names")]  # fmt: skip
    assert cli_main(argv) == 0
    model, meta = load_model(tmp_path / "m.safetensors")
    assert meta["names"] == ["a", "b", "c", "d"]
    assert cli_main(["convert", str(tmp_path / "m.safetensors"), str(tmp_path / "back")]) == 0
    stem = Path(meta["model"]["name"]).stem
    back = tmp_path / "back"
    assert (back / f"{stem}.weights").read_bytes() == (tmp_path / "m.weights").read_bytes()
    assert (back / f"{stem}.names").read_text() == "a\nb\nc\nd\n"
    assert parse_cfg_text((back / f"{stem}.cfg").read_text()).layers == cfg_built.cfg.layers
    assert cli_main(["convert", str(tmp_path / "nope.weights"), str(tmp_path / "x.pt")]) == 2
    assert "no such weights file" in capsys.readouterr().err


def test_export_native_as_darknet_then_load_as_cfg_built(tmp_path, native):
    paths = export_darknet(native, model_meta(native, None, 96), tmp_path)
    model, meta = load_model(paths["weights"], cfg=paths["cfg"], names=paths["names"])
    assert isinstance(model, DarknetModel) and meta["img_size"] == 96
    assert_same_outputs(native, model)
    with pytest.raises(UserError, match="fused"):
        export_darknet(fuse_conv_bn(native), model_meta(native, None, 96), tmp_path)


def test_build_model_names_and_paths(tmp_path):
    tiny = build_model(ModelConfig(name="yolov3-tiny", num_classes=3))
    assert tiny.strides == [16, 32] and tiny.num_classes == 3
    (tmp_path / "s.cfg").write_text(SMALL_TINY)
    small = build_model(
        ModelConfig(name=str(tmp_path / "s.cfg"), num_classes=2, anchors=[[[1, 2]] * 3, [[3, 4]] * 3])
    )
    assert small.anchors == [[(1, 2)] * 3, [(3, 4)] * 3]
    with pytest.raises(UserError, match="expected yolov3"):
        build_model(ModelConfig(name="yolov4"))
    with pytest.raises(UserError, match="no such file"):
        build_model(ModelConfig(name=str(tmp_path / "missing.cfg")))


def test_bad_checkpoints(tmp_path, native):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 50)
    (tmp_path / "bad.pt").write_bytes(b"not a pickle")
    torch.save({"model": native.state_dict()}, tmp_path / "nometa.pt")
    meta = model_meta(native, None, 64)
    save_model(tmp_path / "ok.pt", native, {**meta, "model": {**meta["model"], "num_classes": 5}})
    for name, words in [("bad.safetensors", "not a yolov3 safetensors"), ("bad.pt", "cannot read"),
                        ("nometa.pt", "'meta'"), ("ok.pt", "do not fit"), ("x.onnx", "no such")]:  # fmt: skip
        with pytest.raises(UserError, match=words):
            load_model(tmp_path / name)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "m.weights"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(np.zeros(10).tobytes())
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
