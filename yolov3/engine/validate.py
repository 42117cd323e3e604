"""Validation during training: the seed's loss on the val split, and mAP from the evaluator.

Returned keys: ``val/total_loss``, ``val/giou_loss``, ``val/conf_loss``, ``val/prob_loss`` and, from
``yolov3.evaluate.evaluator.evaluate``, ``val/map50`` and ``val/map50_95``.
"""

from __future__ import annotations

import torch
from torch import nn

from yolov3.config import InferConfig
from yolov3.device import autocast
from yolov3.engine.builders import RunData, to_device_batch
from yolov3.engine.logging import SEED_LOSS_NAMES
from yolov3.evaluate.evaluator import evaluate as map_evaluate
from yolov3.loss import YoloLoss


@torch.no_grad()
def validation_loss(
    model: nn.Module, data: RunData, criterion: YoloLoss, device: torch.device, amp_dtype, channels_last: bool
) -> dict[str, float]:
    """Mean of each loss term over the val loader (eval mode: BN running statistics)."""
    was_training = model.training
    model.eval()
    sums, n = {}, 0
    for batch in data.val_loader:
        images, labels, bboxes = to_device_batch(batch, device, channels_last)
        with autocast(device, amp_dtype):
            raws = model(images)
        terms = criterion(raws, labels, bboxes)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
    model.train(was_training)
    return {"val/" + SEED_LOSS_NAMES[k].split("/", 1)[1]: v / max(n, 1) for k, v in sums.items()}


def validate(
    model: nn.Module,
    data: RunData,
    criterion: YoloLoss,
    device: torch.device,
    amp_dtype,
    settings: InferConfig,
    channels_last: bool = False,
) -> dict[str, float]:
    """Validation loss, plus mAP@0.5 and mAP@0.5:0.95 (VOC all-point) with ``settings`` (the trainer
    passes ``InferConfig.for_map`` at the training input size)."""
    if data.val_loader is None:
        return {}
    out = validation_loss(model, data, criterion, device, amp_dtype, channels_last)
    was_training = model.training
    batch = data.val_loader.batch_size or 1
    ev = map_evaluate(model, data.val_samples, data.names, settings, device, batch, coco=False, workers=0)
    result = ev.summary
    model.train(was_training)
    for key in ("map50", "map50_95"):
        if result.get(key) is not None:  # None: no labelled box in the val split
            out[f"val/{key}"] = float(result[key])
    return out


def fitness(metrics: dict[str, float]) -> float:
    """Higher is better: 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95 when measured, else minus the val loss,
    else minus the training loss."""
    if "val/map50_95" in metrics:
        return 0.1 * metrics["val/map50"] + 0.9 * metrics["val/map50_95"]
    if "val/total_loss" in metrics:
        return -metrics["val/total_loss"]
    return -metrics.get("loss/total_loss", float("inf"))
