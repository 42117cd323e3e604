"""BatchNorm folding and inference preparation: same outputs as the eval-mode original."""

from __future__ import annotations

import torch
from torch import nn

from yolov3 import YOLOv3
from yolov3.darknet import DarknetModel, native_to_cfg
from yolov3.darknet.synthetic import randomize
from yolov3.model.fuse import fuse_conv_bn, prepare_for_inference


def test_fuse_native_and_cfg_built_models():
    native = randomize(YOLOv3(3, width=0.125), torch.rand(2, 3, 64, 64))
    built = DarknetModel(native_to_cfg(native))
    built.load_state_dict(dict(zip(built.state_dict(), native.state_dict().values(), strict=True)))
    x = torch.rand(2, 3, 96, 64)
    for model in (native, built):
        fused = fuse_conv_bn(model)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
        assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 72  # original untouched
        assert fused.anchors == model.anchors and fused.strides == model.strides
        with torch.inference_mode():
            for a, b in zip(model.eval()(x), fused(x), strict=True):
                torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)


def test_prepare_for_inference():
    model = randomize(YOLOv3(3, width=0.125), torch.rand(2, 3, 64, 64))
    prepared = prepare_for_inference(model, "cpu")
    assert not prepared.training and not any(p.requires_grad for p in prepared.parameters())
    conv = next(m for m in prepared.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        ref = model.eval()(x)
        out = prepared(x.to(memory_format=torch.channels_last))
    for a, b in zip(ref, out, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)
    assert prepare_for_inference(model, "cpu", torch.bfloat16).out_s[1].weight.dtype == torch.bfloat16
