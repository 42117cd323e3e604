"""The lr schedule against the seed's expression copied literally, and the optimiser groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolov3.config import TrainConfig
from yolov3.engine.schedule import build_optimizer, lr_at, param_groups, schedule_steps
from yolov3.model import YOLOv3


def seed_lr(global_steps, warmup_steps, total_steps, LR_INIT, LR_END):  # noqa: N803 (the seed's names)
    if global_steps < warmup_steps:
        lr = global_steps / warmup_steps * LR_INIT
    else:
        lr = LR_END + 0.5 * (LR_INIT - LR_END) * (
            1 + np.cos((global_steps - warmup_steps) / (total_steps - warmup_steps) * np.pi)
        )
    return lr


@pytest.mark.parametrize(("warmup", "total"), [(20, 200), (1, 7), (0, 50), (37, 38)])
def test_matches_seed_formula_every_step(warmup, total):
    for step in range(1, total + 1):
        ours = lr_at(step, 1e-3, 1e-6, warmup, total)
        assert ours == pytest.approx(seed_lr(step, warmup, total, 1e-3, 1e-6), rel=1e-12, abs=1e-18)


def test_shape_of_the_curve():
    assert lr_at(10, 1e-3, 1e-4, 20, 100) == pytest.approx(0.5e-3)
    assert lr_at(20, 1e-3, 1e-4, 20, 100) == pytest.approx(1e-3)  # top of the warmup
    assert lr_at(60, 1e-3, 1e-4, 20, 100) == pytest.approx(0.55e-3)  # half way down the cosine
    assert lr_at(100, 1e-3, 1e-4, 20, 100) == pytest.approx(1e-4)
    assert lr_at(150, 1e-3, 1e-4, 20, 100) == pytest.approx(1e-4)  # stays at the end, no climb back


def test_schedule_steps_from_epochs():
    cfg = TrainConfig(epochs=20, warmup_epochs=2)
    assert schedule_steps(cfg, 50) == (100, 1000)


def test_sgd_no_decay_on_bn_and_biases():
    model = YOLOv3(3, width=0.125)
    decay, no_decay = param_groups(model, 5e-4)
    n_conv_w = sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    n_bn = sum(1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    n_bias = sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None)
    assert len(decay["params"]) == n_conv_w and all(p.ndim == 4 for p in decay["params"])
    assert len(no_decay["params"]) == 2 * n_bn + n_bias and no_decay["weight_decay"] == 0.0
    opt = build_optimizer(model, TrainConfig(optimizer="sgd"))
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_adam_default_and_bad_name():
    model = YOLOv3(3, width=0.125)
    assert isinstance(build_optimizer(model, TrainConfig()), torch.optim.Adam)
    with pytest.raises(Exception, match="expected adam or sgd"):
        build_optimizer(model, TrainConfig(optimizer="rmsprop"))
