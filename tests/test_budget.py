"""Training on a clock and early stopping, driven by a fake clock (no sleeping): the schedule reaches
its end value at the deadline, the run stops there with its checkpoints written, a resumed run
continues the same budget, and ``--patience`` stops a run that no longer improves. References: the
seed's schedule formula by hand, the trainer's own CSV / log files read back, ``torch.load``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from yolov3.config import DataConfig, ModelConfig, TrainConfig
from yolov3.data.synth import SynthConfig, generate
from yolov3.engine import trainer as trainer_mod
from yolov3.engine.budget import Budget, Patience

STEP_SECONDS = 10.0


class FakeClock:
    """Monotonic seconds that move only when a training batch runs (``STEP_SECONDS`` each)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("synth")
    return str(generate(folder, SynthConfig(n=10, size=64, seed=1, max_objects=3), progress=False)[0])


def run(data_yaml: str, project: Path, monkeypatch, clock: FakeClock, resume: Path | None = None,
        stop_after: int | None = None, **train) -> trainer_mod.Trainer:  # fmt: skip
    t = dict(epochs=1000, batch=4, warmup_epochs=1.0, device="cpu", amp="off", project=str(project),
             name="run", lr_init=1e-3, lr_end=1e-5)  # fmt: skip
    t.update(train)
    real = trainer_mod.Trainer.train_batch
    calls = {"n": 0}

    def timed_batch(self, *a, **k):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if stop_after is not None and calls["n"] > stop_after:
            raise KeyboardInterrupt
        clock.now += STEP_SECONDS
        return real(self, *a, **k)

    monkeypatch.setattr(trainer_mod.Trainer, "train_batch", timed_batch)
    cfgs = (ModelConfig(width=0.125), DataConfig(path=data_yaml, img_size=64, workers=0), TrainConfig(**t))
    trainer = trainer_mod.Trainer(*cfgs, resume=resume, clock=clock) if not resume else \
        trainer_mod.Trainer(None, None, None, resume=resume, clock=clock)  # fmt: skip
    try:
        trainer.fit()
    finally:
        monkeypatch.undo()
    return trainer


def lrs(run_dir: Path) -> list[float]:
    with open(run_dir / "steps.csv", newline="") as f:
        return [float(r["lr"]) for r in csv.DictReader(f)]


def test_the_schedule_ends_at_the_deadline_with_checkpoints_written(data_yaml, tmp_path, monkeypatch):
    clock = FakeClock()
    trainer = run(data_yaml, tmp_path, monkeypatch, clock, time=5.0)  # 300 s of 10 s steps
    run_dir = trainer.run_dir
    assert trainer.stop_reason == "time" and trainer.state.epoch < 1000
    used = trainer.budget.used()
    assert used <= 300.0 and used >= 300.0 - 3 * STEP_SECONDS - trainer.budget.reserve(0.0)
    got = lrs(run_dir)
    warmup = trainer.warmup_steps  # 2 steps: one epoch of 8 training images at batch 4
    assert got[:warmup] == pytest.approx([(s + 1) / warmup * 1e-3 for s in range(warmup)])
    assert got[-1] == pytest.approx(1e-5, rel=1e-9)  # the last step ran at the end value
    assert all(a >= b for a, b in zip(got[warmup:], got[warmup + 1 :]))  # annealing, never back up
    ckpt = torch.load(run_dir / "weights" / "last.pt", weights_only=True)
    assert ckpt["step"] == len(got) and ckpt["time_used"] == pytest.approx(used)
    assert (run_dir / "weights" / "best.pt").is_file()
    log = (run_dir / "train.log").read_text()
    assert f"stopped at the time budget ({used / 60:.1f} of 5 min)" in log
    assert log.rstrip().splitlines()[-2].count("val/map50 ") == 1  # the last epoch line: validated last


def test_a_resumed_run_continues_the_same_budget(data_yaml, tmp_path, monkeypatch):
    whole = run(data_yaml, tmp_path / "a", monkeypatch, FakeClock(), time=3.0)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after 7 batches: last.pt holds 70 s used
        run(data_yaml, tmp_path / "b", monkeypatch, FakeClock(), stop_after=7, time=3.0)
    first = tmp_path / "b" / "run"
    assert torch.load(first / "weights" / "last.pt", weights_only=True)["time_used"] == pytest.approx(70.0)
    resumed = run(data_yaml, tmp_path / "b", monkeypatch, FakeClock(), resume=first)
    assert resumed.stop_reason == "time" and resumed.budget.used() <= 180.0
    assert resumed.state.step == whole.state.step  # the same number of steps as without the interruption
    assert lrs(first)[-1] == pytest.approx(1e-5, rel=1e-9)


def test_patience_stops_a_run_that_no_longer_improves(data_yaml, tmp_path):
    # lr 0 and frozen batch-norm statistics: the model, and so its mAP, never changes
    train = TrainConfig(epochs=6, batch=4, lr_init=0.0, lr_end=0.0, device="cpu", amp="off", freeze_bn=True,
                        patience=2, project=str(tmp_path), name="p")  # fmt: skip
    data = DataConfig(path=data_yaml, img_size=64, workers=0)
    metrics = trainer_mod.train(ModelConfig(width=0.125), data, train)
    run_dir = Path(metrics["run_dir"])
    with open(run_dir / "results.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    assert metrics["stopped"] == "patience" and len(epochs) == 3  # the first, then two without progress
    log = (run_dir / "train.log").read_text()
    assert "no better val mAP@0.5 in 2 validations (patience 2); best" in log and "at epoch 1" in log
    assert (run_dir / "weights" / "best.pt").is_file()


def test_budget_and_patience_by_hand():
    clock = FakeClock()
    b = Budget(100.0, used=20.0, clock=clock)
    assert b.used() == 20.0 and not b.must_stop(10.0)
    clock.now += 60.0
    # reserve = 1.25 x the validation estimate (nothing measured yet): 80 + 1.25 * 16 reaches 100
    assert b.used() == 80.0 and b.must_stop(16.0) and not b.must_stop(15.9)
    assert not Budget(0.0, clock=clock).must_stop(1e9)  # no budget: never
    p = Patience(2)
    assert [p.update(v, e) for e, v in enumerate([0.5, 0.6, 0.6, 0.55], 1)] == [False, False, False, True]
    assert (p.best, p.best_epoch) == (0.6, 2) and not Patience(0).update(0.1, 1)
    assert math.isclose(b.progress(0.0), 0.0)  # before warmup ends
