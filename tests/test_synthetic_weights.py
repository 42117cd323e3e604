"""``sparsify_head``: a random detector made to answer as a trained one (benchmarks' weights).

Reference: the decoder (``select_candidates``) counts the anchors over the threshold."""

from __future__ import annotations

import pytest
import torch

from yolov3.builder import build_model
from yolov3.config import ModelConfig
from yolov3.darknet.synthetic import randomize, sparsify_head
from yolov3.infer.postprocess import select_candidates


@pytest.mark.parametrize("name", ["yolov3", "yolov3-tiny"])
def test_about_per_image_anchors_pass_with_a_decided_class(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, width=0.125 if name == "yolov3" else 1.0), num_classes=7)
    images = torch.rand(3, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    randomize(model, images)
    with torch.no_grad():
        raws = model(images)
        anchors = sum(r.numel() for r in raws) // (5 + 7)
        before = select_candidates(raws, model.anchors, model.strides, 0.3)[0].numel()
        sparsify_head(model, images, per_image=10)
        _, _, conf, probs = select_candidates(model(images), model.anchors, model.strides, 0.3)
    assert before > anchors / 2  # left random: objectness about 0.5 nearly everywhere
    assert conf.numel() == 30
    assert float(probs.max(1).values.median()) > 0.9
