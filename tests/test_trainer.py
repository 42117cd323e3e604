"""The trainer end to end on a tiny generated data set, and its fault handling.

Tiny model (width 0.125), 64 px inputs, a handful of steps. Independent references: TensorBoard's
own event reader, ``csv``, ``torch.load(weights_only=True)``, ``yolov3.modelfile.load_model``, hand
formulas, and a checkpoint written by the previous version (``tests/fixtures/legacy_v0``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import errno
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from yolov3.cli.train import register
from yolov3.config import DataConfig, ModelConfig, TrainConfig
from yolov3.darknet.weights import conv_units, save_darknet_weights
from yolov3.data.synth import SynthConfig, generate
from yolov3.engine import trainer as trainer_mod
from yolov3.engine.builders import load_initial_weights
from yolov3.engine.ema import ModelEMA
from yolov3.engine.logging import RunLogger
from yolov3.engine.options import OPTIONS, build_configs
from yolov3.errors import UserError
from yolov3.files import WriteError, next_run_dir
from yolov3.loss import YoloLoss
from yolov3.model import YOLOv3
from yolov3.modelfile import CheckpointError, load_model, read_checkpoint, write_torch

LEGACY = Path(__file__).parent / "fixtures" / "legacy_v0"

SEED_TAGS = {"lr", "loss/total_loss", "loss/giou_loss", "loss/conf_loss", "loss/prob_loss"}


def make_data(folder: Path, n: int = 10, size: int = 64, seed: int = 0) -> str:
    data_yaml, _ = generate(folder, SynthConfig(n=n, size=size, seed=seed, max_objects=3), progress=False)
    return str(data_yaml)


def configs(data: str, project: Path, **train) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    t = dict(epochs=2, batch=4, warmup_epochs=0.5, device="cpu", amp="off", project=str(project), name="run")
    t.update(train)
    return ModelConfig(width=0.125), DataConfig(path=data, img_size=64, workers=0), TrainConfig(**t)


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory) -> str:
    return make_data(tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def finished_run(data_yaml, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    metrics = trainer_mod.train(*configs(data_yaml, project, epochs=3, lr_init=2e-3, ema=True))
    return Path(metrics["run_dir"]), metrics


def test_run_folder_holds_everything(finished_run):
    run, metrics = finished_run
    for rel in ("config.yaml", "weights/last.pt", "weights/best.pt", "steps.csv", "results.csv", "train.log"):
        assert (run / rel).is_file(), rel
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert SEED_TAGS <= tags and "val/total_loss" in tags
    steps = list(csv.DictReader(open(run / "steps.csv")))
    epochs = list(csv.DictReader(open(run / "results.csv")))
    assert len(epochs) == 3 and "val/total_loss" in epochs[0]
    assert int(steps[-1]["step"]) == 6 and len(steps) == 6  # 8 train images / batch 4 x 3 epochs
    # warmup 0.5 epoch = 1 step: lr(1) = lr_init * (1 + cos 0) / 2 + ..., then cosine to lr_end
    assert float(steps[0]["lr"]) == pytest.approx(2e-3)
    assert float(steps[-1]["lr"]) == pytest.approx(1e-4)
    assert metrics["loss/total_loss"] == pytest.approx(float(epochs[-1]["loss/total_loss"]))


def test_loss_falls(finished_run):
    run, _ = finished_run
    epochs = list(csv.DictReader(open(run / "results.csv")))
    assert float(epochs[-1]["loss/total_loss"]) < float(epochs[0]["loss/total_loss"])


def test_checkpoint_contents_and_readers(finished_run):
    run, _ = finished_run
    ckpt = torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=True)
    for key in ("model", "meta", "optimizer", "ema", "step", "epoch", "rng", "config", "names"):
        assert key in ckpt, key
    assert ckpt["step"] == 6 and ckpt["epoch"] == 3 and ckpt["epoch_step"] == 0
    assert ckpt["meta"]["num_classes"] == 5 and "num_classes" not in ckpt["config"]["model"]
    model, meta = load_model(run / "weights" / "best.pt")  # the model-file reader: detection can use it
    assert list(meta.names) == ckpt["names"]
    assert model(torch.zeros(1, 3, 64, 64))[0].shape == (1, 30, 8, 8)
    # no temporary files left behind by the atomic writes
    assert not [p for p in (run / "weights").iterdir() if p.name.startswith(".")]


def test_empty_dataset_stops_before_training(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\nnames: [a, b]\n")
    with pytest.raises(UserError, match="no usable training image|no image"):
        trainer_mod.train(*configs(str(tmp_path / "data.yaml"), tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_non_finite_loss_skipped_then_stops_with_checkpoint(data_yaml, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = YoloLoss.forward

    def sometimes_nan(self, raws, labels, bboxes):
        out = real(self, raws, labels, bboxes)
        calls["n"] += 1
        if calls["n"] >= 2:  # the first batch trains, then every loss is NaN
            out = {k: v * float("nan") for k, v in out.items()}
        return out

    monkeypatch.setattr(YoloLoss, "forward", sometimes_nan)
    with pytest.raises(trainer_mod.TrainingStopped, match="3 consecutive non-finite"):
        trainer_mod.train(*configs(data_yaml, tmp_path, epochs=5, max_bad_steps=3))
    run = tmp_path / "run"
    log = (run / "train.log").read_text()
    assert "non-finite" in log and ".jpg" in log  # the batch's image paths are named
    ckpt = read_checkpoint(run / "weights" / "last.pt")
    assert ckpt["step"] == 1  # one good step; the skipped ones did not move the weights
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_ctrl_c_saves_last_and_resume_continues(data_yaml, tmp_path, monkeypatch):
    real = trainer_mod.Trainer.train_batch
    calls = {"n": 0}

    def interrupt_third(self, batch, i, n):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, batch, i, n)

    monkeypatch.setattr(trainer_mod.Trainer, "train_batch", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        trainer_mod.train(*configs(data_yaml, tmp_path))
    ckpt = read_checkpoint(tmp_path / "run" / "weights" / "last.pt")
    assert (ckpt["step"], ckpt["epoch"], ckpt["epoch_step"]) == (2, 1, 0)
    monkeypatch.setattr(trainer_mod.Trainer, "train_batch", real)
    metrics = trainer_mod.train(resume=tmp_path / "run")
    assert read_checkpoint(tmp_path / "run" / "weights" / "last.pt")["step"] == 4
    assert metrics["run_dir"] == str(tmp_path / "run")


def test_resume_with_other_model_or_classes_names_the_difference(finished_run, tmp_path):
    run, _ = finished_run
    other = make_data(tmp_path / "other", n=4)
    text = Path(other).read_text().replace("digit-3", "digit-7")
    Path(other).write_text(text)
    m, d, t = configs(other, tmp_path)
    with pytest.raises(CheckpointError, match="class names"):
        trainer_mod.train(None, d, None, resume=run)
    with pytest.raises(CheckpointError, match=r"model\.width: checkpoint 0\.125, now 0\.25"):
        trainer_mod.train(ModelConfig(width=0.25), None, None, resume=run)


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    write_torch({"model": {"w": torch.ones(3)}}, path)

    def disk_full(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(WriteError, match="No space left on device.*intact"):
        write_torch({"model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(read_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_weights_from_checkpoint_transfer_to_other_class_count(finished_run):
    run, _ = finished_run
    src = read_checkpoint(run / "weights" / "last.pt")["model"]
    model = YOLOv3(3, width=0.125)
    with pytest.raises(CheckpointError, match="use --transfer"):
        load_initial_weights(model, str(run / "weights" / "last.pt"), transfer=False)
    load_initial_weights(model, str(run / "weights" / "last.pt"), transfer=True)
    own = model.state_dict()
    assert torch.equal(own["backbone.stem.conv.weight"], src["backbone.stem.conv.weight"])
    assert torch.equal(own["out_l.0.conv.weight"], src["out_l.0.conv.weight"])
    assert own["out_l.1.weight"].shape[0] == 24 and src["out_l.1.weight"].shape[0] == 30


def test_ema_matches_hand_formula():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    ema = ModelEMA(model, decay=0.9, ramp=1.0)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1.0))
    assert torch.allclose(ema.module.weight, d * start + (1 - d) * (start + 1.0))


def test_cli_resume_layers_given_options_over_saved_config(finished_run):
    run, _ = finished_run
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--resume", str(run), "--epochs", "9"])
    options = {k: getattr(args, k) for k in OPTIONS}
    model_cfg, data_cfg, train_cfg = build_configs(options, args.config, args.resume)
    assert train_cfg.epochs == 9 and train_cfg.lr_init == 2e-3 and model_cfg.width == 0.125
    assert data_cfg.img_size == 64


def test_run_folder_increments_unless_exist_ok(tmp_path):
    assert next_run_dir(tmp_path, "exp") == tmp_path / "exp"
    assert next_run_dir(tmp_path, "exp") == tmp_path / "exp2"
    assert next_run_dir(tmp_path, "exp") == tmp_path / "exp3"
    assert next_run_dir(tmp_path, "exp3") == tmp_path / "exp4"  # a numbered name counts on
    assert next_run_dir(tmp_path, "exp", exist_ok=True) == tmp_path / "exp"
    assert (
        next_run_dir(tmp_path, "exp", create=False) == tmp_path / "exp5" and not (tmp_path / "exp5").exists()
    )


@pytest.mark.parametrize(
    "options",
    [
        dict(amp="bf16", channels_last=True, accumulate=2, clip_grad=10.0, optimizer="sgd", freeze=True),
        dict(amp="fp16", ema=True),
    ],
    ids=["bf16-channels_last-accumulate-clip-sgd-freeze", "fp16-scaler-ema"],
)
def test_training_options_run_and_stay_finite(data_yaml, tmp_path, options):
    metrics = trainer_mod.train(*configs(data_yaml, tmp_path, epochs=1, **options))
    ckpt = read_checkpoint(Path(metrics["run_dir"]) / "weights" / "last.pt")
    assert math.isfinite(metrics["loss/total_loss"]) and math.isfinite(metrics["val/total_loss"])
    assert ckpt["step"] == (1 if options.get("accumulate") == 2 else 2)
    assert (ckpt["scaler"] is not None) == (options["amp"] == "fp16")
    if ckpt["scaler"] is not None:  # fp16 overflows at the initial scale 2^16: the scaler backed off
        assert ckpt["scaler"]["scale"] < 2.0**16 and ckpt["ema"]["updates"] == 2
    if options.get("freeze"):  # the frozen backbone did not move, the head did
        torch.manual_seed(0)  # the trainer's --seed, before it builds the model
        init = YOLOv3(5, width=0.125).state_dict()
        assert torch.equal(ckpt["model"]["backbone.stem.conv.weight"], init["backbone.stem.conv.weight"])
        assert torch.equal(
            ckpt["model"]["backbone.stem.bn.running_mean"], init["backbone.stem.bn.running_mean"]
        )
        assert not torch.equal(ckpt["model"]["out_l.1.weight"], init["out_l.1.weight"])


def test_darknet_weights_full_truncated_and_transfer(tmp_path):
    """``--weights`` with Darknet files: the whole network, a backbone prefix (like
    darknet53.conv.74: the file stops after 52 convolutions), and 80-class weights into 5 classes."""
    torch.manual_seed(1)
    src = YOLOv3(5, width=0.125)
    full = tmp_path / "full.weights"
    save_darknet_weights(src, full)
    dst = YOLOv3(5, width=0.125)
    load_initial_weights(dst, str(full), transfer=False)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))

    units = conv_units(src)
    floats = sum(sum(u.sizes()) for u in units[:52])
    prefix = tmp_path / "backbone.conv.52"
    prefix.write_bytes(full.read_bytes()[: 20 + 4 * floats])  # 20-byte header (major 0, minor 2)
    torch.manual_seed(2)
    dst = YOLOv3(5, width=0.125)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    load_initial_weights(dst, str(prefix), transfer=False)
    dst_units = conv_units(dst)
    assert torch.equal(dst_units[51].conv.weight, units[51].conv.weight)
    assert torch.equal(dst_units[52].conv.weight, before[f"{dst_units[52].name}.weight"])

    coco = tmp_path / "coco80.weights"
    save_darknet_weights(YOLOv3(80, width=0.125), coco)
    dst = YOLOv3(5, width=0.125)
    with pytest.raises(UserError):
        load_initial_weights(dst, str(coco), transfer=False)
    load_initial_weights(dst, str(coco), transfer=True)
    assert dst.out_l[1].weight.shape[0] == 30


def test_keyword_options_map_to_config_sections(tmp_path):
    model_cfg, data_cfg, train_cfg = build_configs({"data": "d.yaml", "img_size": 96, "model": "yolov3-tiny",
                                                    "epochs": 3, "name": "x", "ema": None})  # fmt: skip
    assert (model_cfg.name, data_cfg.path, data_cfg.img_size) == ("yolov3-tiny", "d.yaml", 96)
    assert (train_cfg.epochs, train_cfg.name, train_cfg.ema) == (3, "x", False)
    with pytest.raises(UserError, match="unknown training option 'epoch' \\(did you mean 'epochs'\\?\\)"):
        trainer_mod.train(data="d.yaml", epoch=3)


def test_unwritable_log_file_is_a_clear_error(tmp_path):
    logger = RunLogger(next_run_dir(tmp_path, "run"))
    (tmp_path / "run" / "steps.csv").mkdir()  # a write there fails like an unwritable file would
    with pytest.raises(UserError, match=r"cannot write .*steps\.csv"):
        logger.step(1, {"lr": 0.1})
    logger.close()


def test_non_finite_gradient_skips_one_step_only(data_yaml, tmp_path, monkeypatch):
    real = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def inf_once(params, max_norm, *a, **k):
        calls["n"] += 1
        norm = real(params, max_norm, *a, **k)
        return torch.tensor(float("inf")) if calls["n"] == 1 else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", inf_once)
    metrics = trainer_mod.train(*configs(data_yaml, tmp_path, epochs=1))
    run = Path(metrics["run_dir"])
    assert "non-finite grad_norm=inf" in (run / "train.log").read_text()
    assert read_checkpoint(run / "weights" / "last.pt")["step"] == 1  # 2 batches, the first skipped


def test_a_run_of_the_previous_version_resumes(tmp_path):
    """``train_last.pt`` was written before ``model.num_classes`` / ``data.test_size`` stopped being
    settings: resuming drops them and trains on with the saved optimiser state."""
    data = make_data(tmp_path / "data", n=8)
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last.pt").write_bytes((LEGACY / "train_last.pt").read_bytes())
    metrics = trainer_mod.train(resume=run, data=data, epochs=2)
    ckpt = read_checkpoint(run / "weights" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["step"] == 4 and math.isfinite(metrics["loss/total_loss"])
    assert "test_size" not in ckpt["config"]["data"] and "resumed" in (run / "train.log").read_text()


def test_unreadable_training_images_are_reported(tmp_path):
    """Both kinds: a file whose header cannot be read (left out when the data set is read) and one whose
    header reads but whose pixels do not (found by a loader worker, replaced by the next image)."""
    data = make_data(tmp_path / "data", n=10)
    images = sorted((tmp_path / "data" / "images" / "train").glob("*.jpg"))
    images[0].write_bytes(b"not an image")
    jpeg = images[1].read_bytes()
    images[1].write_bytes(jpeg[: jpeg.find(b"\xff\xda")])  # its header, cut before the scan: no pixels
    m, d, t = configs(data, tmp_path, epochs=1)
    metrics = trainer_mod.train(m, dataclasses.replace(d, workers=1), t)  # found in a worker process
    log = (Path(metrics["run_dir"]) / "train.log").read_text()
    assert (
        "1 image(s) of the data set cannot be read and are left out (yolov3 data check lists them all): "
        in log
    )
    assert f"lists them all): {images[0]}: not a readable image" in log
    assert f"skipped unreadable training image {images[1]}" in log


def test_tile_training_validates_sliced_at_the_tile(tmp_path, monkeypatch):
    """``train --tile S`` scores its val split by sliced inference at S (whole letterboxed pictures
    of the size it trains for would score near 0): a picture of 128 px at tile 64 is cut into tiles."""
    data = make_data(tmp_path / "big", n=4, size=128)
    seen = []
    real = trainer_mod.validate.__globals__["map_evaluate"]

    def spy(model, samples, names, settings, *args, **kwargs):
        seen.append(settings)
        return real(model, samples, names, settings, *args, **kwargs)

    monkeypatch.setitem(trainer_mod.validate.__globals__, "map_evaluate", spy)
    model, data_cfg, train_cfg = configs(data, tmp_path, epochs=1)
    metrics = trainer_mod.train(model, dataclasses.replace(data_cfg, tile=64), train_cfg)
    assert seen and all(s.tile == 64 and s.img_size == 64 for s in seen)
    assert "val/map50" in metrics
    seen.clear()
    trainer_mod.train(*configs(data, tmp_path, epochs=1))  # without --tile: whole pictures
    assert seen and all(s.tile is None for s in seen)
