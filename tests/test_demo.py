"""``yolov3 demo`` in its --quick mode (seconds): outputs, cache reuse, interruption, bad folders."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import yolov3.demo as demo
import yolov3.demo_data as demo_data
from yolov3.cli import main
from yolov3.data.synth import SynthConfig, draw_image, is_complete
from yolov3.errors import UserError


@pytest.fixture()
def folders(tmp_path):
    return tmp_path / "runs" / "demo", tmp_path / "cache"


def _quick(folders, **kw):
    out, cache = folders
    return demo.run_demo(out, cache, time_budget=60, device="cpu", quick=True, progress=False, **kw)


def test_quick_demo_writes_every_output_then_reuses_the_data(folders, capsys):
    out, cache = folders
    assert main(["demo", "--quick", "--device", "cpu", "--out", str(out), "--cache", str(cache)]) == 0
    text = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        0.0 <= metrics["map50"] <= 1.0
        and metrics["images"] == demo.synth_config(demo.recipes()["quick"]).split_sizes()[1]
    )
    assert set(metrics["per_class"]) == {"circle", "square", "triangle", "letter-X", "digit-3"}
    for name in ("pr_curve.png", "loss_curves.png", "detections.jpg"):
        img = cv2.imread(str(out / name))
        assert img is not None and img.std() > 1, name  # a real, non-blank picture
    assert len(list((out / "val_images").glob("*.jpg"))) >= 1
    assert (out / "train" / "weights" / "best.pt").is_file()
    assert "mAP@0.5" in text and "next:" in text and str(out / "detections.jpg") in text
    # A second run reuses the cached data set and starts training afresh (the first one finished).
    _quick(folders)
    assert "reused the cached set" in capsys.readouterr().out


def test_data_drawn_without_torch_is_reused_by_the_demo(folders, capsys):
    """What `make demo` does while torch installs: `python -m yolov3.demo_data` in a process where
    importing torch fails draws the set, and the demo then reuses it."""
    out, cache = folders
    code = (
        "import sys, runpy; sys.modules['torch'] = None; "  # any `import torch` now raises ImportError
        f"sys.argv = ['demo_data', '--recipe', 'quick', '--cache', {str(cache)!r}, '--quiet']; "
        "runpy.run_module('yolov3.demo_data', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("drew 10 images")
    assert is_complete(next(cache.iterdir()), demo.synth_config(demo.recipes()["quick"]))
    _quick(folders)
    assert "reused the cached set" in capsys.readouterr().out


def test_data_drawing_names_an_unwritable_cache(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert demo_data.main(["--recipe", "quick", "--cache", str(blocker / "cache"), "--quiet"]) == 2
    assert str(blocker / "cache") in capsys.readouterr().err


def test_interrupted_generation_is_redrawn_and_interrupted_training_restarts(folders, monkeypatch, capsys):
    out, cache = folders
    real_draw = demo_data.generate.__globals__["draw_image"]
    calls = {"n": 0}

    def flaky_draw(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_draw(*args, **kwargs)

    monkeypatch.setitem(demo_data.generate.__globals__, "draw_image", flaky_draw)
    with pytest.raises(KeyboardInterrupt):
        _quick(folders)
    scfg = demo.synth_config(demo.recipes()["quick"])
    folder = next(cache.iterdir())
    assert not is_complete(folder, scfg)
    monkeypatch.setitem(demo_data.generate.__globals__, "draw_image", real_draw)

    def interrupted_train(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "train", interrupted_train)
    with pytest.raises(KeyboardInterrupt):
        _quick(folders)
    assert is_complete(folder, scfg)  # the data set was finished before training began
    assert "again to resume" in capsys.readouterr().out
    monkeypatch.undo()
    metrics = _quick(folders)
    assert "reused the cached set" in capsys.readouterr().out
    assert metrics["epochs"] == 1


def test_an_unfinished_training_run_is_resumed(folders, capsys):
    out, _ = folders
    _quick(folders)
    (out / "metrics.json").unlink()  # as if stopped after training, before the evaluation finished
    assert demo._resumable(out, json.loads((out / demo.PLAN_FILE).read_text())) == out / "train"
    _quick(folders)
    assert "resuming the interrupted training" in capsys.readouterr().out
    assert (out / "metrics.json").is_file()


def test_unwritable_folders_are_named(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"demo output \(--out\) folder .*file/runs"):
        demo.run_demo(blocker / "runs", tmp_path / "cache", quick=True, progress=False)
    with pytest.raises(UserError, match=r"data cache \(--cache\) folder .*file/cache"):
        demo.run_demo(tmp_path / "runs", blocker / "cache", quick=True, progress=False)
    assert main(["demo", "--quick", "--out", str(blocker / "x"), "--cache", str(tmp_path / "c")]) == 2
    assert str(blocker / "x") in capsys.readouterr().err
    assert main(["demo", "--time-budget", "0"]) == 2


def test_the_training_yaml_is_the_train_split_without_val(tmp_path):
    cfg = SynthConfig(n=12, size=64, val_fraction=0.25)
    data_yaml, _ = demo_data.generate(tmp_path / "data", cfg, progress=False)
    spec = demo.load_dataset(demo.train_only_yaml(data_yaml, tmp_path))
    assert [Path(s.image).name for s in spec.train] == [f"train_{i:06d}.jpg" for i in range(9)]
    assert spec.val == []
    for i, s in enumerate(spec.train):  # the labels came along with the listed images
        np.testing.assert_allclose(s.boxes, draw_image(cfg, "train", i)[1], atol=1e-3)


def test_the_demo_trains_on_the_clock(folders, monkeypatch):
    """The time left before the deadline, less the evaluation's share, becomes the trainer's budget."""
    import time

    seen = {}

    def fake_train(model_cfg, data_cfg, train_cfg, **kw):  # noqa: ANN001, ANN202
        seen["minutes"], seen["epochs"] = train_cfg.time, train_cfg.epochs
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "fastest_threads", lambda *a: (0.01, 1))
    monkeypatch.setattr(demo, "train", fake_train)
    recipe = demo.recipes()["cpu"]
    monkeypatch.setattr(demo, "choose_recipe", lambda *a: demo.replace(recipe, n_images=24))
    out, cache = folders
    with pytest.raises(KeyboardInterrupt):
        demo.run_demo(out, cache, device="cpu", progress=False, deadline=time.time() + 300)
    n_val = demo.synth_config(demo.replace(recipe, n_images=24)).split_sizes()[1]
    expected = (300 - demo.EVAL_SECONDS - n_val * 0.01 / 2) / 60
    assert seen["epochs"] == recipe.train.epochs and expected - 0.5 < seen["minutes"] <= expected


def test_synth_anchors_cover_the_generated_sizes():
    cfg = SynthConfig(size=256, min_size=8, max_frac=0.5)
    anchors = demo.synth_anchors(cfg)
    assert [len(s) for s in anchors] == [3, 3, 3]
    flat = np.array([a for s in anchors for a in s])
    sides = np.sqrt(flat[:, 0] * flat[:, 1])
    assert np.all(np.diff(sides) > 0)  # larger anchors at coarser strides
    assert math.isclose(sides[0], 10, rel_tol=0.02) and math.isclose(sides[-1], 96, rel_tol=0.02)


def test_recipes_are_data_that_change_only_what_differs():
    import torch
    import yaml

    from yolov3.config import DataConfig, ModelConfig, TrainConfig

    recipes = demo.recipes()
    assert demo.choose_recipe(torch.device("cpu")) is recipes["cpu"]
    assert demo.choose_recipe(torch.device("cpu"), quick=True) is recipes["quick"]
    gpu = demo.choose_recipe(torch.device("cuda", 0))
    assert gpu.model == ModelConfig() and gpu.data.img_size == 416  # the full YOLOv3 at the seed's size
    cpu = recipes["cpu"]
    assert (cpu.model.name, cpu.data.img_size, cpu.train.batch) == ("yolov3-tiny", 192, 16)
    doc = yaml.safe_load((Path(demo.__file__).parent / "cfg" / "demo.yaml").read_text())
    defaults = {"model": ModelConfig(), "data": DataConfig(), "train": TrainConfig()}
    for name, recipe in doc["recipes"].items():  # a key set to its default would say nothing
        for section, values in recipe.items():
            if section in defaults:
                same = [k for k, v in values.items() if getattr(defaults[section], k) == v]
                assert not same, f"{name}.{section} repeats defaults {same}"


def test_prior_init_sets_output_biases_hand_computed(tmp_path):
    import torch

    from yolov3.config import ModelConfig

    anchors = demo.synth_anchors(SynthConfig(size=160), 2)
    path = demo.prior_init_checkpoint(ModelConfig("yolov3-tiny", anchors), 5, 160, tmp_path / "init.pt", 4.0)
    state = torch.load(path, weights_only=True)["model"]
    heads = {k: v.view(3, 10) for k, v in state.items() if k.endswith("conv.bias") and v.numel() == 30}
    assert len(heads) == 2
    # 160 px: stride 32 -> 5x5 cells x 3 anchors; stride 16 -> 10x10 x 3. p = 4 / slots.
    expected = sorted([math.log((4 / 75) / (1 - 4 / 75)), math.log((4 / 300) / (1 - 4 / 300))])
    got = sorted(float(v[0, 4]) for v in heads.values())
    np.testing.assert_allclose(got, expected, rtol=1e-5)  # -4.304, -2.876
    for v in heads.values():
        assert torch.allclose(v[:, 4], v[0, 4])
        np.testing.assert_allclose(v[:, 5:].numpy(), math.log(0.6 / 4.01), rtol=1e-5)
