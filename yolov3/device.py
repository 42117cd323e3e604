"""Device choice and mixed-precision support, detected rather than assumed."""

from __future__ import annotations

import contextlib
import ctypes
import functools
from pathlib import Path

import torch

from yolov3.errors import UserError


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively (AMX-BF16 or AVX512-BF16), so CPU autocast
    to bf16 is a speed-up rather than a slow emulation."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def select_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise UserError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec}: CUDA is not available on this machine (try --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device


def autocast_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The mixed-precision dtype to use: ``amp`` is auto | bf16 | fp16 | off.

    auto: bf16 on GPUs that have it (fp16 otherwise), bf16 on CPUs with AMX / AVX512-BF16,
    none elsewhere.
    """
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if amp != "auto":
        raise UserError(f"amp={amp!r}: expected auto, bf16, fp16 or off")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_MMAP_THRESHOLD = 32 * 2**20  # glibc's documented upper limit on 64-bit systems


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse (never trimmed; blocks up to 32 MiB from the
    heap rather than their own mmap) instead of handing it back to the kernel, which must then fault
    in and zero every 4 KB page when it is taken again. A CPU training step frees and takes again the
    same activations and gradients every step (the trainer's process: 0.83-0.88x the step time
    of YOLOv3-tiny on a 2-core Xeon), a loader worker the same few MB per image (its workers). Returns
    False where the C library is not glibc (nothing changes there). Once per process; a forked child
    keeps its parent's setting."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    trim = mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
    mmap = mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(_MMAP_THRESHOLD))
    return bool(trim and mmap)


@functools.cache
def one_malloc_arena() -> bool:
    """Have glibc's malloc serve every thread from one arena instead of giving each new thread its own
    (up to 8 per core). A server's threads (the event loop, the upload decoders, the inference thread
    and its OpenMP workers) take and free blocks of a few large sizes, images and activations that vary
    with the batch size; spread over many arenas, each kept its own fragmented high-water mark and the
    total climbed with the requests served (YOLOv3-tiny at 320, 16 clients: +20 % RSS from 1,000 to
    5,000 requests), while in one arena every freed block is there for the next taker. With
    ``keep_freed_memory`` (a fixed mmap threshold: glibc otherwise raises it to the largest block
    freed, which moves activations between heaps and mmap as the batch size changes) the RSS stays
    flat once each batch size has run (``serve.app.warm_up`` runs them all before ready). Call it
    before the threads start: a thread keeps the arena it has. Returns False where the C library is
    not glibc. Once per process."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, ctypes.c_int(1)))
