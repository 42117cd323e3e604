"""How an export proves itself before it reports success (``yolov3.export.exporter``): numeric
parity of the written file with PyTorch (``max_rel_error``, ``compare_outputs``) and, for in-graph NMS,
detection matching (``match_detections``). A file's interface is read by
``yolov3.infer.backends.onnxfile.inspect_onnx``."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from yolov3.errors import UserError


class ExportCheckError(UserError):
    """The written file does not reproduce PyTorch's outputs (or cannot be read back)."""


def max_rel_error(got: np.ndarray | Tensor, want: np.ndarray | Tensor) -> float:
    """``max |got - want| / max(1, max |want|)`` over the finite values: the largest error relative to
    the output's scale. Non-finite values (``exp`` overflowing to inf in a decoded box) must match
    exactly, else the error is inf."""
    got = torch.as_tensor(np.asarray(got, dtype=np.float32) if not isinstance(got, Tensor) else got)
    got, want = got.detach().float().cpu(), torch.as_tensor(want).detach().float().cpu()
    if got.shape != want.shape:
        return float("inf")
    finite = torch.isfinite(want)
    same_specials = torch.equal(torch.isfinite(got), finite) and torch.equal(
        got[~finite].nan_to_num(), want[~finite].nan_to_num()
    )
    if not same_specials:
        return float("inf")
    if not bool(finite.any()):
        return 0.0
    got, want = got[finite], want[finite]
    return float((got - want).abs().max()) / max(1.0, float(want.abs().max()))


def compare_outputs(got: list, want: list[Tensor], names: list[str], tol: float, source: str) -> float:
    """Raise ``ExportCheckError`` naming the first output whose shape or values differ; return the
    largest relative error."""
    worst = 0.0
    for g, w, name in zip(got, want, names, strict=True):
        g_shape, w_shape = tuple(np.shape(g)), tuple(w.shape)
        if g_shape != w_shape:
            raise ExportCheckError(f"{source}: output {name!r} has shape {g_shape}, PyTorch gives {w_shape}")
        err = max_rel_error(g, w)
        if not err <= tol:
            raise ExportCheckError(
                f"{source}: output {name!r} differs from PyTorch by {err:.3g} (relative to its scale; "
                f"allowed {tol:g})"
            )
        worst = max(worst, err)
    return worst


def match_detections(got: np.ndarray | Tensor, want: Tensor, tol: float) -> float:
    """Fraction of rows (``[batch, x1, y1, x2, y2, score, class]``) of either set with no partner in the
    other: same batch and class, the score within ``tol`` and every coordinate within
    ``tol * max(1, |x|)``. Order does not matter. A row whose score ties another of its image and class
    needs no box match: which of two equal scores survives NMS or the ``max_det`` cut is up to each
    runtime's sort. Near-tie decisions may still flip between runtimes, hence a fraction."""
    a = torch.as_tensor(np.asarray(got, dtype=np.float32)).float().reshape(-1, 7)
    b = want.detach().float().cpu().reshape(-1, 7)
    if len(a) == 0 and len(b) == 0:
        return 0.0
    missing = 0
    for key in torch.unique(torch.cat([a[:, [0, 6]], b[:, [0, 6]]]), dim=0):  # per (image, class)
        ga = a[(a[:, 0] == key[0]) & (a[:, 6] == key[1])]
        gb = b[(b[:, 0] == key[0]) & (b[:, 6] == key[1])]
        missing += _unmatched(ga, gb, tol) + _unmatched(gb, ga, tol)
    return missing / (len(a) + len(b))


def _unmatched(x: Tensor, y: Tensor, tol: float) -> int:
    """Rows of ``x`` (one image and class) with no partner in ``y`` (see ``match_detections``)."""
    if len(y) == 0:
        return len(x)
    score_close = (x[:, None, 5] - y[None, :, 5]).abs() <= tol  # (n, m)
    box_close = ((x[:, None, 1:5] - y[None, :, 1:5]).abs() <= tol * x[:, None, 1:5].abs().clamp(min=1.0)).all(
        -1
    )
    ties = ((x[:, None, 5] - x[None, :, 5]).abs() <= 1e-6).sum(1) > 1  # (n,): another row, same score
    matched = (score_close & (box_close | ties[:, None])).any(1)
    return int((~matched).sum())


def check_inputs(img_size: int, batch: int, dynamic: bool, dtype: torch.dtype, device) -> list[Tensor]:  # noqa: ANN001
    """Deterministic [0, 1] images: the export size, and with ``dynamic`` a second batch size and a
    non-square size (so both spatial axes are proven free)."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(batch, 3, img_size, img_size)]
    if dynamic:
        shapes.append((batch + 1, 3, img_size, img_size + 64))
    return [torch.rand(s, generator=gen).to(device=device, dtype=dtype) for s in shapes]
