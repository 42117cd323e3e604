"""Settings: every key of the config sections changes behaviour, one name per knob from YAML to the CLI,
misspelt keys named with the nearest valid one, and the inference settings validated once."""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import pytest
import yaml

from yolov3.cli.train import register
from yolov3.config import SECTIONS, ConfigError, DataConfig, InferConfig, ModelConfig, TrainConfig, from_dict
from yolov3.data.synth import SynthConfig, generate
from yolov3.distributed import DistInfo
from yolov3.engine import builders
from yolov3.engine.options import OPTIONS, build_configs


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("synth")
    return str(generate(folder, SynthConfig(n=6, size=64, seed=3, max_objects=4), progress=False)[0])


def first_batch(data_yaml: str, **data) -> dict:
    """The first training batch the trainer's own builders make for these data settings."""
    data_cfg = DataConfig(path=data_yaml, img_size=64, workers=0, augment=False, **data)
    train_cfg = TrainConfig(batch=6, device="cpu")
    spec = builders.load_spec(data_yaml)
    model = builders.build_train_model(ModelConfig(width=0.125), train_cfg, len(spec.names))
    run = builders.build_run_data(spec, data_cfg, train_cfg, model, DistInfo())
    return next(iter(run.train_loader))


def test_label_smoothing_reaches_the_encoded_targets(data_yaml):
    c = 5
    for d in (0.01, 0.1):
        labels = first_batch(data_yaml, label_smoothing=d)["labels"]
        positive = np.concatenate([lab[lab[..., 4] == 1].numpy() for lab in labels])
        assert len(positive)
        # one-hot * (1 - d) + d / C, by hand
        np.testing.assert_allclose(positive[:, 5:].max(1), 1 - d + d / c, rtol=1e-6)
        np.testing.assert_allclose(positive[:, 5:].min(1), d / c, rtol=1e-6)


def test_positive_iou_changes_which_anchors_are_positive(data_yaml):
    counts = {}
    for iou in (0.3, 0.5):
        labels = first_batch(data_yaml, positive_iou=iou)["labels"]
        counts[iou] = sum(int((lab[..., 4] == 1).sum()) for lab in labels)
    assert counts[0.5] < counts[0.3]  # a stricter test keeps fewer anchors (each box keeps its best)


def test_max_boxes_per_scale_sizes_the_box_lists(data_yaml):
    assert [tuple(b.shape[1:]) for b in first_batch(data_yaml, max_boxes_per_scale=7)["bboxes"]] == [
        (7, 4)
    ] * 3


def test_every_setting_has_one_name_from_yaml_to_the_command_line():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    train = next(a for a in parser._subparsers._group_actions[0].choices.values())
    dests = {a.dest for a in train._actions}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            name = next(k for k, v in OPTIONS.items() if v == (section, f.name))
            assert name in dests, f"{section}.{f.name} has no `yolov3 train` option"
            assert name == f.name or (section, f.name) in (("model", "name"), ("data", "path"))
    args = train.parse_args(
        ["--label-smoothing", "0.1", "--positive-iou", "0.5", "--img", "320", "--no-augment"]
    )
    options = {k: getattr(args, k) for k in OPTIONS}
    _, data, _ = build_configs(options)
    assert (data.label_smoothing, data.positive_iou, data.img_size, data.augment) == (0.1, 0.5, 320, False)


def test_misspelt_keys_and_sections_name_the_nearest(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'lr_int' \\(did you mean 'lr_init'\\?\\)"):
        from_dict(TrainConfig, {"lr_int": 0.1}, "run.yaml: train")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"trian": {"epochs": 3}}))
    with pytest.raises(ConfigError, match=f"{path}: unknown section 'trian' \\(did you mean 'train'\\?\\)"):
        build_configs({}, path)
    path.write_text(yaml.safe_dump({"data": {"positive_iuo": 0.4}}))
    with pytest.raises(
        ConfigError, match="data: unknown key 'positive_iuo' \\(did you mean 'positive_iou'\\?\\)"
    ):
        build_configs({}, path)
    path.write_text(yaml.safe_dump({"data": {"test_size": 608}}))
    with pytest.raises(
        ConfigError, match="'test_size' is no longer a setting: the test size is the inference"
    ):
        build_configs({}, path)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("conf_threshold", -1, "conf_threshold (--conf-threshold) = -1: expected a score in [0, 1]"),
        ("conf_threshold", 1.5, "expected a score in [0, 1]"),
        ("conf_threshold", math.nan, "expected a score in [0, 1]"),
        ("iou_threshold", 0.0, "iou_threshold (--iou-threshold) = 0.0: expected an IoU in (0, 1]"),
        ("iou_threshold", 1.2, "expected an IoU in (0, 1]"),
        ("max_det", 0, "max_det (--max-det) = 0: expected a positive whole number"),
        ("max_det", 2.5, "expected a positive whole number"),
        ("img_size", 100, "img_size (--img-size) = 100: expected a positive multiple of 32"),
        ("nms", "fast", "nms (--nms) = 'fast': expected one of greedy, soft, diou"),
        ("amp", "int4", "amp (--amp) = 'int4': expected one of auto, bf16, fp16, off"),
        ("classes", [-1], "classes (--classes) = [-1]: expected class indices >= 0"),
    ],
)
def test_inference_settings_are_validated_naming_the_option(field, value, words):
    with pytest.raises(ConfigError) as err:
        InferConfig(**{field: value})
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("time", -1.0, "time (--time) = -1.0: expected a number >= 0"),
        ("time", math.nan, "time (--time) = nan: expected a number >= 0"),
        ("patience", -2, "patience (--patience) = -2: expected a whole number >= 0"),
        ("patience", 1.5, "expected a whole number >= 0"),
        ("batch", 0, "batch (--batch) = 0: expected a whole number >= 1"),
        ("accumulate", 0, "accumulate (--accumulate) = 0: expected a whole number >= 1"),
        ("warmup_epochs", -0.5, "warmup_epochs (--warmup-epochs) = -0.5: expected a number >= 0"),
    ],
)
def test_training_counts_and_clock_are_validated_naming_the_option(field, value, words):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{field: value})
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("cls", "field", "value", "words"),
    [
        (ModelConfig, "name", "", "name (--model) = '': expected a model name or a path to a Darknet .cfg"),
        (ModelConfig, "width", 0.0, "width (--width) = 0.0: expected a channel multiplier > 0"),
        (ModelConfig, "width", math.nan, "width (--width) = nan: expected a channel multiplier > 0"),
        (ModelConfig, "anchors", [[[10, -13]]], "anchors (--anchors) = [[[10, -13]]]: expected per scale"),
        (ModelConfig, "anchors", [[10, 13]], "expected per scale, a list of [w, h] pairs"),
        (DataConfig, "img_size", 100, "img_size (--img-size) = 100: expected a positive multiple of 32"),
        (DataConfig, "workers", -1, "workers (--workers) = -1: expected a whole number >= 0"),
        (DataConfig, "max_boxes_per_scale", 0, "max_boxes_per_scale (--max-boxes-per-scale) = 0: expected a "
         "whole number >= 1"),
        (DataConfig, "label_smoothing", 1.0, "label_smoothing (--label-smoothing) = 1.0: expected a "
         "number in [0, 1)"),
        (DataConfig, "positive_iou", -0.1, "positive_iou (--positive-iou) = -0.1: expected an IoU in [0, 1)"),
    ],
)  # fmt: skip
def test_model_and_data_settings_are_validated_naming_the_option(cls, field, value, words):
    with pytest.raises(ConfigError) as err:
        cls(**{field: value})
    assert words in str(err.value)
    with pytest.raises(ConfigError, match=field):  # the same check when read from a YAML section
        from_dict(cls, {field: value}, "config.yaml: section")


def test_inference_settings_defaults_and_overrides():
    seed = InferConfig()
    assert (seed.img_size, seed.conf_threshold, seed.iou_threshold, seed.max_det, seed.nms) == (
        None,  # the model file's own size (resolved by the Detector)
        0.3,
        0.45,
        300,
        "greedy",
    )
    assert InferConfig.for_map().conf_threshold == 0.001 and InferConfig.for_map(img_size=416).img_size == 416
    assert seed.replace(conf_threshold=None, max_det=5) == dataclasses.replace(
        seed, max_det=5
    )  # None: not given
    with pytest.raises(ConfigError, match="unknown key 'conf' \\(did you mean 'conf_threshold'\\?\\)"):
        seed.replace(conf=0.5)
