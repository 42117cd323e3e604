"""``yolov3.engine.step``: the one training step, against the obvious hand-written one (forward, the
seed's loss, backward, Adam), and its parts as the trainer calls them (clipping, EMA, state)."""

from __future__ import annotations

import copy
import math

import torch

from yolov3.builder import build_model
from yolov3.config import ModelConfig, TrainConfig
from yolov3.engine.ema import ModelEMA
from yolov3.engine.step import build_step
from yolov3.loss import YoloLoss


def _model_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(width=0.125), 3).train()
    labels = [torch.zeros(2, 64 // s, 64 // s, 3, 8) for s in model.strides]
    for lab in labels:  # one object per scale, so every loss term has a gradient
        lab[:, 0, 0, 0, :4] = torch.tensor([10.0, 10.0, 20.0, 20.0])
        lab[:, 0, 0, 0, 4] = 1.0
        lab[:, 0, 0, 0, 5] = 1.0
    bboxes = [torch.zeros(2, 150, 4) for _ in model.strides]
    batch = {"images": torch.rand(2, 3, 64, 64), "labels": labels, "bboxes": bboxes}
    return model, batch


def test_step_matches_the_hand_written_step():
    model, batch = _model_and_batch()
    reference = copy.deepcopy(model)
    cfg = TrainConfig(amp="off", lr_init=1e-3)
    step = build_step(model, cfg, torch.device("cpu"))
    opt = torch.optim.Adam(reference.parameters(), lr=1e-3, eps=1e-7)  # the seed's (Keras') epsilon
    crit = YoloLoss(reference.anchors, reference.strides, reference.num_classes, cfg.ignore_iou)
    for _ in range(2):
        terms = step(batch)
        loss = crit(reference(batch["images"]), batch["labels"], batch["bboxes"])["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        assert math.isclose(terms["total"], float(loss.detach()), rel_tol=1e-6)
    # fused Adam (``build_optimizer``) rounds apart from the loop by ~1e-6 where a gradient is near zero;
    # a step of lr 1e-3 left out or doubled moves weights by ~1e-3
    for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_apply_clips_steps_the_ema_and_refuses_a_non_finite_norm():
    model, batch = _model_and_batch()
    ema = ModelEMA(model)
    step = build_step(model, TrainConfig(amp="off", clip_grad=1e-3), torch.device("cpu"), ema=ema)
    step.backward(step.loss(batch["images"], batch["labels"], batch["bboxes"]))
    stepped, norm = step.apply()
    assert stepped and float(norm) > 1e-3 and ema.updates == 1
    clipped = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).norm()
    assert float(clipped) <= 1e-3 * 1.01  # the gradients were scaled down to the limit
    step.optimizer.zero_grad(set_to_none=True)
    next(p for p in model.parameters()).grad = torch.full_like(next(p for p in model.parameters()), math.nan)
    before = copy.deepcopy(model.state_dict())
    stepped, norm = step.apply()
    assert not stepped and not math.isfinite(float(norm)) and ema.updates == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_state_round_trips_into_a_fresh_step():
    model, batch = _model_and_batch()
    cfg = TrainConfig(amp="off")
    step = build_step(model, cfg, torch.device("cpu"), ema=ModelEMA(model))
    step(batch)
    saved = step.state_dict()
    fresh_model, _ = _model_and_batch()
    fresh = build_step(fresh_model, cfg, torch.device("cpu"), ema=ModelEMA(fresh_model))
    fresh.load_state_dict(saved)
    assert fresh.ema.updates == 1 and saved["scaler"] is None
    assert fresh.optimizer.state_dict()["state"].keys() == step.optimizer.state_dict()["state"].keys()
