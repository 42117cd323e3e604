"""``Conv2d``: ``nn.Conv2d`` with a faster weight gradient for bf16 training on a CPU.

oneDNN's bf16 weight-gradient kernel is slow on small feature maps with many channels: on YOLOv3-tiny's
6 x 6 stride-32 layers at 192 px it takes 3-4x the forward pass (2-core Xeon, AMX). There the weight
gradient is better computed as one matrix product, the output gradient times the unfolded input
(im2col), which the CPU's bf16 matrix units run at full speed. Which of the two is faster depends on
the CPU and the shape, so each shape is timed once, at its first backward, and the faster one kept,
as cuDNN's benchmark mode does. Both give the same gradient up to float rounding.

The product is used only where it can win and nothing else is affected: training (gradients on) in
bf16 autocast on a CPU, stride and padding as Darknet's (no dilation, no groups), output maps of at
most ``MAX_PIXELS`` pixels per batch; never while tracing, scripting or compiling, nor when PyTorch's
deterministic algorithms are on (``--deterministic``), which keep oneDNN's kernel throughout.
Parameters, ``state_dict`` names and every other use are those of ``nn.Conv2d``.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_PIXELS = 16384  # output pixels per batch (N * H_out * W_out) beyond which oneDNN is always kept
MAX_COLUMN_BYTES = 256 * 2**20  # the unfolded input's size limit, in bytes

# (input shape, weight shape, stride, padding) -> the matrix product is the faster weight gradient
_PRODUCT_FASTER: dict[tuple, bool] = {}


class Conv2d(nn.Conv2d):
    """``nn.Conv2d``; in bf16 CPU training, the weight gradient of small maps as described above."""

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if _product_applies(self, x, weight):
            return _Bf16Conv.apply(x, weight, bias, self.stride, self.padding)
        return super()._conv_forward(x, weight, bias)


def _product_applies(conv: nn.Conv2d, x: Tensor, weight: Tensor) -> bool:
    if not (weight.requires_grad and torch.is_grad_enabled() and x.device.type == "cpu"):
        return False
    if not (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16):
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    if torch.are_deterministic_algorithms_enabled():
        return False
    plain = conv.groups == 1 and conv.dilation == (1, 1) and conv.padding_mode == "zeros"
    if not plain or isinstance(conv.padding, str) or x.dim() != 4:
        return False
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    ho, wo = (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1
    pixels = x.shape[0] * ho * wo
    return pixels <= MAX_PIXELS and pixels * kh * kw * x.shape[1] * 2 <= MAX_COLUMN_BYTES


def unfold_nhwc(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                out_size: tuple[int, int]) -> Tensor:  # fmt: skip
    """im2col: ``(N, C, H, W) -> (N * H_out * W_out, kh * kw * C)``, column ``(i * kw + j) * C + c``
    holding input channel ``c`` at kernel offset ``(i, j)`` (zero padding as the convolution's)."""
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = kernel, stride, padding, out_size
    xh = x.permute(0, 2, 3, 1)  # (N, H, W, C): a view when x is channels-last
    if ph or pw:
        xh = F.pad(xh, (0, 0, pw, pw, ph, ph))
    taps = [xh[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
            for i in range(kh) for j in range(kw)]  # fmt: skip
    return torch.cat(taps, dim=-1).reshape(-1, kh * kw * x.shape[1])


def weight_grad_product(x: Tensor, grad_out: Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                        padding: tuple[int, int]) -> Tensor:  # fmt: skip
    """The convolution's weight gradient ``(C_out, C, kh, kw)`` as ``grad_out^T @ im2col(x)``."""
    cols = unfold_nhwc(x, kernel, stride, padding, grad_out.shape[-2:])  # (N*Ho*Wo, kh*kw*C)
    g = grad_out.permute(0, 2, 3, 1).reshape(-1, grad_out.shape[1])  # (N*Ho*Wo, C_out)
    return (g.t() @ cols).view(-1, kernel[0], kernel[1], x.shape[1]).permute(0, 3, 1, 2)


def _seconds(fn) -> float:
    """The second of two timed calls (the first creates oneDNN's primitives)."""
    fn()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class _Bf16Conv(torch.autograd.Function):
    """The convolution in bf16 (inputs cast as autocast would); the backward gives oneDNN the input
    and bias gradients and the weight gradient to whichever of oneDNN and the product is faster."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.bfloat16)
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple, padding: tuple) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        kernel, stride, padding = tuple(weight.shape[-2:]), ctx.stride, ctx.padding
        key = (tuple(x.shape), tuple(weight.shape), stride, padding)

        def onednn(mask: list[bool]) -> tuple:
            bias_sizes = [weight.shape[0]] if ctx.has_bias else None
            return torch.ops.aten.convolution_backward(
                grad_out, x, weight, bias_sizes, list(stride), list(padding), [1, 1], False, [0, 0], 1, mask
            )

        def product() -> Tensor:
            return weight_grad_product(x, grad_out, kernel, stride, padding)

        if need_w and key not in _PRODUCT_FASTER:
            _PRODUCT_FASTER[key] = _seconds(product) < _seconds(lambda: onednn([False, True, False]))
        use_product = need_w and _PRODUCT_FASTER[key]
        mask = [need_x, need_w and not use_product, need_b and ctx.has_bias]
        grad_x, grad_w, grad_b = onednn(mask) if any(mask) else (None, None, None)
        if use_product:
            grad_w = product()
        return grad_x, grad_w, grad_b, None, None
