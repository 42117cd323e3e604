"""``yolov3.model.conv``: the im2col weight gradient against PyTorch's own convolution gradient in
float64 (the reference), when the bf16 path is taken and when it is not; and the max-pool's skipped
padding against the padded pool it replaces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import yolov3.model.conv as conv_module
from yolov3.darknet.build import MaxPoolLayer
from yolov3.darknet.cfg import MaxPool
from yolov3.model.conv import Conv2d, weight_grad_product

CASES = [  # (c_in, c_out, kernel, stride, padding, (H, W))
    (8, 16, 3, 1, 1, (6, 6)),
    (8, 16, 1, 1, 0, (6, 7)),
    (4, 6, 3, 2, 1, (9, 8)),
    (5, 3, (3, 1), (1, 2), (1, 0), (7, 10)),
    (3, 4, 5, 1, 2, (6, 6)),
]


@pytest.mark.parametrize("c_in,c_out,kernel,stride,padding,hw", CASES)
@pytest.mark.parametrize("channels_last", [True, False])
def test_weight_grad_product_equals_autograd(c_in, c_out, kernel, stride, padding, hw, channels_last):
    g = torch.Generator().manual_seed(0)
    k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    s = stride if isinstance(stride, tuple) else (stride, stride)
    p = padding if isinstance(padding, tuple) else (padding, padding)
    x = torch.randn(2, c_in, *hw, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(c_out, c_in, *k, generator=g, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(x, w, None, s, p)
    grad_out = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (expected,) = torch.autograd.grad(y, w, grad_out)
    got = weight_grad_product(x, grad_out, k, s, p)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def _grads(conv: torch.nn.Conv2d, x: torch.Tensor, grad_out: torch.Tensor, amp: bool):
    x = x.clone().requires_grad_()
    conv.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        y = conv(x)
    y.float().backward(grad_out)
    return y.detach().float(), x.grad.float(), conv.weight.grad, conv.bias.grad


@pytest.mark.parametrize("product_faster", [True, False])
def test_bf16_training_gradients_match_float64(monkeypatch, product_faster):
    """In bf16 autocast the layer takes the custom path (which weight gradient it uses is forced here);
    its output and all three gradients agree with float64 autograd to bf16 precision."""
    monkeypatch.setattr(conv_module, "_PRODUCT_FASTER", _Always(product_faster))
    torch.manual_seed(0)
    conv = Conv2d(32, 24, 3, 1, 1, bias=True).to(memory_format=torch.channels_last)
    x = torch.randn(4, 32, 6, 6).contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(4, 24, 6, 6)
    calls = []
    real = conv_module.weight_grad_product
    monkeypatch.setattr(conv_module, "weight_grad_product", lambda *a: calls.append(1) or real(*a))
    y, gx, gw, gb = _grads(conv, x, grad_out, amp=True)
    assert calls == ([1] if product_faster else [])  # the path was taken, and the forced choice used

    ref = torch.nn.Conv2d(32, 24, 3, 1, 1, bias=True).double()
    ref.load_state_dict(conv.state_dict())
    xr = x.double().requires_grad_()
    yr = ref(xr)
    yr.backward(grad_out.double())
    for got, want in ((y, yr), (gx, xr.grad), (gw, ref.weight.grad), (gb, ref.bias.grad)):
        scale = want.abs().max().item()
        assert (got.double() - want).abs().max().item() < 0.03 * scale
    assert gw.dtype == torch.float32 and gw.shape == conv.weight.shape  # as the optimiser expects


class _Always(dict):
    """A choice table that answers ``value`` for every shape."""

    def __init__(self, value: bool) -> None:
        super().__init__()
        self.value = value

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key) -> bool:
        return self.value


def test_plain_path_outside_bf16_training(monkeypatch):
    """float32, no-grad, tracing and deterministic mode use nn.Conv2d's own forward."""
    used = []
    monkeypatch.setattr(conv_module._Bf16Conv, "apply", lambda *a: used.append(1))
    conv = Conv2d(8, 8, 3, 1, 1)
    x = torch.randn(2, 8, 6, 6)
    conv(x)  # float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        conv(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.jit.trace(conv, (x,), check_trace=False)
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            conv(x)
    finally:
        torch.use_deterministic_algorithms(prev)
    assert used == []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv(x)
    assert used == [1]  # and the path is there to be taken


def test_large_maps_keep_onednn(monkeypatch):
    used = []
    monkeypatch.setattr(conv_module._Bf16Conv, "apply", lambda *a: used.append(1))
    conv = Conv2d(4, 4, 3, 1, 1)
    side = int(conv_module.MAX_PIXELS**0.5) + 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv(torch.randn(1, 4, side, side))
    assert used == []


POOLS = [(2, 2, (12, 12)), (2, 2, (13, 12)), (2, 1, (6, 6)), (3, 2, (10, 9)), (3, 2, (9, 9))]


@pytest.mark.parametrize("size,stride,hw", POOLS)
def test_maxpool_skips_only_unused_padding(size, stride, hw):
    """Darknet's pool (-inf padding, ``size - 1`` in all) computed with the padding always applied is
    the reference; the layer, which leaves out padding no window reaches, must equal it."""
    pad = size - 1
    layer = MaxPoolLayer(MaxPool(size, stride, pad // 2, pad - pad // 2))
    x = torch.randn(2, 3, *hw)
    expected = F.max_pool2d(F.pad(x, layer.pad, value=float("-inf")), size, stride)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
    assert layer._pad_unused(hw) == (size == 2 and stride == 2 and hw[0] % 2 == 0 and hw[1] % 2 == 0)
