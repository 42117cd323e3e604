"""Model files: the typed meta, native checkpoints (safetensors, torch.save), Darknet weights + cfg +
names, ``yolov3 convert``, and files written by earlier versions (``tests/fixtures/legacy_v0``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from darknet_cfgs import SMALL_TINY

from yolov3 import YOLOv3
from yolov3.builder import build_model
from yolov3.cli import main as cli_main
from yolov3.config import ModelConfig
from yolov3.darknet import DarknetModel, parse_cfg_text, write_cfg
from yolov3.darknet.synthetic import randomize
from yolov3.darknet.weights import save_darknet_weights
from yolov3.errors import UserError
from yolov3.export.darknet import export_darknet
from yolov3.files import WriteError, atomic_writer
from yolov3.model.fuse import fuse_conv_bn
from yolov3.modelfile import FORMAT_VERSION, ModelMeta, load_model, save_model

LEGACY = Path(__file__).parent / "fixtures" / "legacy_v0"


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


def test_meta_is_plain_json_and_round_trips(native, cfg_built):
    meta = ModelMeta.of_model(native, ["a", "b", "c"], 320)
    d = meta.to_dict()
    assert json.loads(json.dumps(d)) == d and d["version"] == FORMAT_VERSION and d["num_classes"] == 3
    assert d["strides"] == [8, 16, 32] and d["anchors"][0] == [[10, 13], [16, 30], [33, 23]]
    assert meta.cfg is None and meta.width == 0.125 and meta.arch == "yolov3"
    assert ModelMeta.from_json(meta.to_json()) == meta
    meta2 = ModelMeta.of_model(cfg_built, None, 64)
    assert list(meta2.names) == ["class0", "class1", "class2", "class3"] and meta2.strides == (4, 8)
    assert "classes=4" in meta2.cfg
    with pytest.raises(UserError, match="2 class names"):
        ModelMeta.of_model(native, ["a", "b"], 320)


def test_meta_errors_name_the_file_and_field():
    good = ModelMeta.of_model(YOLOv3(2, width=1 / 32), None, 64).to_dict()
    cases = [({"names": [], "num_classes": 0}, "no class names"),
             ({"strides": [8, 16]}, "3 anchor rows for 2"),
             ({"num_classes": 5}, "2 class names for num_classes=5")]  # fmt: skip
    for change, words in cases:
        with pytest.raises(UserError, match=words) as err:
            ModelMeta.from_dict({**good, **change}, "m.onnx")
        assert "m.onnx" in str(err.value)
    with pytest.raises(UserError, match=r"m.onnx: model metadata lacks \['anchors'\]"):
        ModelMeta.from_dict({k: v for k, v in good.items() if k != "anchors"}, "m.onnx")
    with pytest.raises(UserError, match="not valid JSON"):
        ModelMeta.from_json("{", "m.onnx")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize("which", ["native", "cfg_built"])
def test_save_load_round_trip(tmp_path, request, suffix, which):
    model = request.getfixturevalue(which)
    meta = ModelMeta.of_model(model, [f"n{i}" for i in range(model.num_classes)], 64)
    save_model(tmp_path / f"m{suffix}", model, meta)
    loaded, meta2 = load_model(tmp_path / f"m{suffix}")
    assert meta2 == meta and type(loaded) is type(model)
    assert_same_outputs(model, loaded)
    rebuilt = meta.build()  # the embedded cfg / native spec alone rebuilds the architecture
    assert [v.shape for v in rebuilt.state_dict().values()] == [v.shape for v in model.state_dict().values()]


def test_trainer_style_checkpoint_with_optimiser_state(tmp_path, native):
    opt = torch.optim.SGD(native.parameters(), lr=1e-4, momentum=0.9)
    native(torch.rand(2, 3, 64, 64))[0].mean().backward()
    opt.step()
    native.eval()
    meta = ModelMeta.of_model(native, None, 64).to_dict()
    ckpt = {"model": native.state_dict(), "meta": meta, "optimizer": opt.state_dict(), "step": 3,
            "rng": torch.get_rng_state()}  # fmt: skip
    torch.save(ckpt, tmp_path / "last.pt")
    loaded, meta = load_model(tmp_path / "last.pt", names=["x", "y", "z"])
    assert meta.names == ("x", "y", "z")
    assert_same_outputs(native, loaded)


def test_darknet_weights_with_cfg_and_names(tmp_path, cfg_built):
    (tmp_path / "m.cfg").write_text(write_cfg(cfg_built.cfg))
    save_darknet_weights(cfg_built, tmp_path / "m.weights")
    model, meta = load_model(tmp_path / "m.weights", cfg=tmp_path / "m.cfg")
    assert meta.names == ("class0", "class1", "class2", "class3") and meta.img_size == 64
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
    assert meta.names == ("a", "b", "c", "d")
    assert cli_main(["convert", str(tmp_path / "m.safetensors"), str(tmp_path / "back")]) == 0
    stem = Path(meta.arch).stem
    back = tmp_path / "back"
    assert (back / f"{stem}.weights").read_bytes() == (tmp_path / "m.weights").read_bytes()
    assert (back / f"{stem}.names").read_text() == "a\nb\nc\nd\n"
    assert parse_cfg_text((back / f"{stem}.cfg").read_text()).layers == cfg_built.cfg.layers
    assert cli_main(["convert", str(tmp_path / "nope.weights"), str(tmp_path / "x.pt")]) == 2
    assert "no such weights file" in capsys.readouterr().err


def test_export_native_as_darknet_then_load_as_cfg_built(tmp_path, native):
    paths = export_darknet(native, ModelMeta.of_model(native, None, 96), tmp_path)
    model, meta = load_model(paths["weights"], cfg=paths["cfg"], names=paths["names"])
    assert isinstance(model, DarknetModel) and meta.img_size == 96
    assert_same_outputs(native, model)
    with pytest.raises(UserError, match="fused"):
        export_darknet(fuse_conv_bn(native), ModelMeta.of_model(native, None, 96), tmp_path)


def test_build_model_names_and_paths(tmp_path):
    tiny = build_model(ModelConfig(name="yolov3-tiny"), num_classes=3)
    assert tiny.strides == [16, 32] and tiny.num_classes == 3
    (tmp_path / "s.cfg").write_text(SMALL_TINY)
    small = build_model(ModelConfig(name=str(tmp_path / "s.cfg"), anchors=[[[1, 2]] * 3, [[3, 4]] * 3]), 2)
    assert small.anchors == [[(1, 2)] * 3, [(3, 4)] * 3]
    with pytest.raises(UserError, match="expected yolov3"):
        build_model(ModelConfig(name="yolov4"))
    with pytest.raises(UserError, match="no such file"):
        build_model(ModelConfig(name=str(tmp_path / "missing.cfg")))


def test_bad_checkpoints(tmp_path, native):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 50)
    (tmp_path / "bad.pt").write_bytes(b"not a pickle")
    torch.save({"model": native.state_dict()}, tmp_path / "nometa.pt")
    meta = ModelMeta.of_model(native, None, 64)
    save_model(tmp_path / "ok.pt", native, meta.replace(names=[f"c{i}" for i in range(5)]))
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
    blocker = tmp_path / "file"
    blocker.write_text("")
    with (
        pytest.raises(WriteError, match=r"file/sub: a file is in the way"),
        atomic_writer(blocker / "sub" / "m"),
    ):
        pass


# ---------------------------------------------------------------------------------------------------
# Files written by the code before the typed meta (commit 18eef0c): tests/fixtures/legacy_v0/README.md


def _legacy_outputs(prefix: str) -> tuple[torch.Tensor, list[np.ndarray]]:
    data = np.load(LEGACY / "outputs.npz")
    keys = sorted((k for k in data.files if k.startswith(prefix)), key=lambda k: int(k.rsplit("_", 1)[1]))
    return torch.from_numpy(data["x"]), [data[k] for k in keys]


@pytest.mark.parametrize("name", ["native.safetensors", "native.pt", "darknet_cfg.safetensors"])
def test_files_written_before_the_typed_meta_still_load(name):
    model, meta = load_model(LEGACY / name)
    x, want = _legacy_outputs("tiny" if name.startswith("darknet") else "native")
    for got, ref in zip(outputs(model, x), want, strict=True):  # the outputs the old code computed
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)
    if name.startswith("native"):
        assert meta.names == ("cat", "dog") and meta.arch == "yolov3" and meta.width == 1 / 32
        state = torch.load(LEGACY / "native.pt", weights_only=True)["model"]  # torch's own reader
        for k, v in model.state_dict().items():
            torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    else:
        assert meta.names == ("a", "b") and meta.arch == "small-tiny.cfg" and meta.strides == (4, 8)
    assert meta.version == FORMAT_VERSION  # read as the current version


def test_training_checkpoint_written_before_the_typed_meta_loads_for_detection():
    model, meta = load_model(LEGACY / "train_last.pt")
    assert meta.num_classes == 5 and meta.img_size == 64 and isinstance(model, YOLOv3)
