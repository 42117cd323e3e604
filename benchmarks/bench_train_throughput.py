"""Training throughput: model + YoloLoss + Adam on synthetic batches, and end to end with the loader.

CPU: a full YOLOv3 (80 classes) step at batch 8, 320 px with bf16 autocast + channels_last (what
``--amp auto --channels-last`` does on CPUs with AMX / AVX512-BF16), against a plain eager fp32 step
of the same model measured in the same run (the issue's figures: 1.62 s vs 5.54 s). Then the same
bf16 step fed by the real loader (generated images, augmentation on). CUDA, when present: batch 64
at 416 in fp32, bf16 + channels_last, and with torch.compile.

Prints one JSON object per measurement. ``--steps N`` timed steps (after one warm-up step).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from yolov3.builder import build_model
from yolov3.config import DataConfig, ModelConfig, TrainConfig
from yolov3.data.synth import SynthConfig, generate
from yolov3.data.targets import encode_targets
from yolov3.device import cpu_supports_bf16
from yolov3.distributed import DistInfo
from yolov3.engine.builders import build_run_data, load_spec
from yolov3.engine.step import build_step
from yolov3.model import YOLOv3


def synthetic_batch(model: YOLOv3, batch: int, size: int, seed: int = 0) -> dict:
    """Random images with seed-encoded targets for 1..8 random boxes each."""
    rng = np.random.default_rng(seed)
    labels, bboxes = [[] for _ in model.strides], [[] for _ in model.strides]
    for _ in range(batch):
        n = int(rng.integers(1, 9))
        wh = rng.uniform(8, size / 2, (n, 2))
        c = rng.uniform(wh / 2, size - wh / 2)
        rows = np.concatenate([c - wh / 2, c + wh / 2, rng.integers(0, model.num_classes, (n, 1))], 1)
        lab, bb = encode_targets(rows, model.num_classes, size, model.anchors, model.strides)
        for i in range(len(model.strides)):
            labels[i].append(lab[i])
            bboxes[i].append(bb[i])
    return {
        "images": torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)),
        "labels": [torch.from_numpy(np.stack(x)) for x in labels],
        "bboxes": [torch.from_numpy(np.stack(x)) for x in bboxes],
    }


class Step:
    """The trainer's step (``yolov3.engine.step.TrainStep``: forward under autocast, loss in fp32,
    backward, gradient norm, Adam) on a freshly seeded network."""

    def __init__(self, device: torch.device, amp, channels_last: bool, compile: bool = False,
                 num_classes: int = 80, model: ModelConfig | None = None) -> None:  # fmt: skip
        """``amp``: the autocast dtype (None: fp32); ``model``: the network to build (default the
        native YOLOv3)."""
        torch.manual_seed(0)
        net = build_model(model, num_classes) if model is not None else YOLOv3(num_classes)
        self.model = net.to(device).train()
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        amp_mode = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp]
        cfg = TrainConfig(amp=amp_mode, channels_last=channels_last)
        self.step = build_step(self.model, cfg, device, net=torch.compile(self.model) if compile else None)
        self.device = device

    def __call__(self, batch: dict) -> float:
        return self.step(batch)["total"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Step, batches, steps: int) -> float:
    """Seconds per step, after one warm-up step."""
    it = iter(batches)
    step(next(it))
    sync(step.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(next(it))
    sync(step.device)
    return (time.perf_counter() - t0) / steps


def repeat(batch: dict):
    while True:
        yield batch


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def cpu_benchmarks(steps: int, batch: int, size: int) -> None:
    cpu = torch.device("cpu")
    data = synthetic_batch(YOLOv3(80), batch, size)
    fp32 = time_steps(Step(cpu, None, False), repeat(data), steps)
    amp = torch.bfloat16 if cpu_supports_bf16() else None
    fast = time_steps(Step(cpu, amp, True), repeat(data), steps)
    what = f"train step YOLOv3 b{batch} {size}px CPU: bf16 autocast + channels_last vs eager fp32"
    emit(
        what=what,
        ours=round(fast * 1e3, 1),
        anchor=round(fp32 * 1e3, 1),
        unit="ms",
        ratio=round(fast / fp32, 3),
        target="<= 0.35",
        note=f"{batch / fast:.2f} img/s vs {batch / fp32:.2f}; bf16 native: {cpu_supports_bf16()}",
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_yaml, _ = generate(Path(tmp), SynthConfig(n=(steps + 3) * batch + 2, size=size), progress=False)
        spec = load_spec(str(data_yaml))
        step = Step(cpu, amp, True, num_classes=len(spec.names))
        cfg = DataConfig(path=str(data_yaml), img_size=size, workers=2)
        run = build_run_data(spec, cfg, TrainConfig(batch=batch), step.model, DistInfo())
        batches = iter(run.train_loader)
        premade = time_steps(step, repeat(next(batches)), steps)
        e2e = time_steps(step, batches, steps)
    emit(
        what=f"train end to end (loader, augment, 2 workers) YOLOv3 b{batch} {size}px CPU bf16",
        ours=round(batch / e2e, 2), anchor=round(batch / premade, 2), unit="img/s",
        ratio=round(premade / e2e, 3), target=">= 0.8", note="anchor: the same step on one pre-made batch",
    )  # fmt: skip


def cuda_benchmarks(steps: int) -> None:
    gpu = torch.device("cuda")
    torch.backends.cudnn.benchmark = True  # as the trainer sets it
    name = torch.cuda.get_device_name(gpu)
    data = synthetic_batch(YOLOv3(80), 64, 416)
    fp32 = time_steps(Step(gpu, None, False), repeat(data), steps)
    bf16 = time_steps(Step(gpu, torch.bfloat16, True), repeat(data), steps)
    emit(
        what="train step YOLOv3 b64 416 CUDA: bf16 + channels_last vs fp32",
        ours=round(64 / bf16, 1),
        anchor=round(64 / fp32, 1),
        unit="img/s",
        ratio=round(fp32 / bf16, 2),
        target=">= 2 (906 vs 388 on H200)",
        note=name,
    )
    try:
        comp = time_steps(Step(gpu, torch.bfloat16, True, compile=True), repeat(data), steps)
        emit(
            what="train step YOLOv3 b64 416 CUDA: bf16 + channels_last + torch.compile",
            ours=round(64 / comp, 1),
            anchor=round(64 / fp32, 1),
            unit="img/s",
            ratio=round(fp32 / comp, 2),
            target="1150 img/s on H200",
            note=name,
        )
    except Exception as exc:  # compile needs a working toolchain; report rather than fail the others
        emit(
            what="train step torch.compile",
            ours=None,
            anchor=None,
            unit="img/s",
            ratio=None,
            target="",
            note=f"compile failed: {type(exc).__name__}: {exc}"[:300],
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--img", type=int, default=320)
    ap.add_argument("--cuda-only", action="store_true")
    args = ap.parse_args()
    if not args.cuda_only:
        cpu_benchmarks(args.steps, args.batch, args.img)
    if torch.cuda.is_available():
        cuda_benchmarks(max(args.steps, 10))


if __name__ == "__main__":
    main()
