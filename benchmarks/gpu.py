"""GPU speed of YOLOv3-416 (issue 8): one prepared run that prints every figure as JSON lines.

    python benchmarks/gpu.py                 # on one H100 / H200: <= 8 minutes
    python benchmarks/gpu.py --smoke         # anywhere, CPU included: tiny sizes, 1-2 steps, seconds

Each line: ``{"what", "settings", "images_per_s", "ms", "peak_mem_gib", "card", "ratio_to_fp32",
"target", "note"}`` (``ms``: per step / per batch / per image as ``what`` says). Sections (run as
1-2, 8, 3-4, 5-6, 7: the ones without compilation first), each in its own try: one failing prints
``"error"`` and the others still run; one that would start after ``--budget-s`` prints ``"skipped"``.

1. ``train_step_fp32``: the plain-PyTorch baseline every ratio is taken against, measured in this run:
   native YOLOv3 stepped by the trainer's step (``yolov3.engine.step``: the project's loss, Adam), one
   synthetic batch (random images, random boxes encoded by the project's target encoder) kept on the
   device, fp32, NCHW.
2. ``train_step_bf16_cl``: the same with bf16 autocast and channels_last.
3. ``loss_parity``: the first-step loss of fp32, bf16 and compiled bf16 from the same weights and batch.
4. ``train_step_compiled``: 2. with ``torch.compile`` of the model (the loss stays eager).
5. ``train_real_pipeline``: the trainer itself (``yolov3.engine.trainer.Trainer.train_batch``): JPEG
   files of the synthetic data set, the seed's augmentations, targets in the loader workers (all
   cores), loss, Adam, EMA, bf16, channels_last, compiled. Target >= 1,150 images/s.
6. ``loader_only``: the same loader alone, all cores.
7. ``infer_batch``: batch-64 inference incl. decode + NMS (``yolov3.infer.postprocess``), BN folded, bf16,
   channels_last, compiled. Target >= 4,500 images/s.
8. ``latency_b1_eager`` / ``latency_b1_cuda_graph``: one 416 image, tensor in to boxes out, fp16,
   eager vs the CUDA-graph replay of ``TorchBackend(cuda_graph=True)`` (GPU only). Target <= 2 ms.

Weights are random (no downloads), with the objectness bias set so that, like a trained net, a few
dozen anchors per image pass the 0.3 score threshold (NMS cost as in real use).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from yolov3.builder import build_model
from yolov3.config import DataConfig, InferConfig, ModelConfig, TrainConfig
from yolov3.darknet.synthetic import randomize
from yolov3.data.synth import SynthConfig, generate
from yolov3.data.targets import TargetEncoder
from yolov3.engine.schedule import schedule_steps
from yolov3.engine.step import build_step
from yolov3.engine.trainer import Trainer
from yolov3.infer.backends.pytorch import TorchBackend
from yolov3.infer.postprocess import postprocess
from yolov3.model.fuse import prepare_for_inference
from yolov3.modelfile import ModelMeta

FULL = dict(img=416, batch=64, width=1.0, warmup=3, steps=10, synth=640, compile_backend="inductor")
SMOKE = dict(img=32, batch=2, width=0.125, warmup=1, steps=1, synth=6, compile_backend="eager")


class Bench:
    """Settings, the device and the fp32 baseline shared by the sections."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.s = dict(SMOKE if args.smoke else FULL)
        for k in ("img", "batch", "steps", "warmup", "width", "synth"):
            if getattr(args, k) is not None:
                self.s[k] = getattr(args, k)
        self.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cuda = self.device.type == "cuda"
        self.card = torch.cuda.get_device_name(self.device) if self.cuda else f"cpu ({os.cpu_count()} cores)"
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        self.baseline: float | None = None  # fp32 train images/s
        self.start = time.perf_counter()
        self.tmp = Path(tempfile.mkdtemp(prefix="yolov3_gpu_"))
        if self.cuda:  # PyTorch's defaults otherwise (cuDNN may use TF32 for fp32 convolutions)
            torch.backends.cudnn.benchmark = True

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> float | None:
        return round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2) if self.cuda else None

    def emit(self, what: str, settings: str, images_per_s: float | None, ms: float | None, **extra) -> None:
        ips = round(images_per_s, 1) if images_per_s else None
        row = {"what": what, "settings": settings, "images_per_s": ips, "ms": round(ms, 3) if ms else None,
               "peak_mem_gib": self.peak(), "card": self.card}  # fmt: skip
        if images_per_s and self.baseline and what != "train_step_fp32" and what.startswith("train"):
            row["ratio_to_fp32"] = round(images_per_s / self.baseline, 2)
        row.update(extra)
        print(json.dumps(row), flush=True)

    def model(self, num_classes: int = 80) -> torch.nn.Module:
        """YOLOv3 (width per settings) with trained-like activations (``randomize``: BN statistics
        from images) and objectness (bias -6: a few dozen boxes per image pass 0.3, as in real use)."""
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="yolov3", width=self.s["width"]), num_classes)
        randomize(model, torch.rand(2, 3, self.s["img"], self.s["img"]))
        with torch.no_grad():
            for out in (model.out_s, model.out_m, model.out_l):
                bias = out[-1].bias.view(3, 5 + num_classes)  # (A, 5 + C): anchor a's fields
                bias[:, 4] = -6.0
        return model.to(self.device)

    def batch(self, model: torch.nn.Module, seed: int = 0) -> tuple:
        """A synthetic batch on the device: images, encoded labels and box lists per scale."""
        b, img = self.s["batch"], self.s["img"]
        rng = np.random.default_rng(seed)
        boxes = []
        for _ in range(b):
            n = int(rng.integers(1, 9))
            xy = rng.uniform(0, img * 0.7, (n, 2))
            wh = rng.uniform(img * 0.05, img * 0.3, (n, 2))
            cls = rng.integers(0, model.num_classes, (n, 1))
            boxes.append(np.concatenate([xy, np.minimum(xy + wh, img - 1), cls], 1).astype(np.float32))
        enc = TargetEncoder.create(model.num_classes, img, model.anchors, model.strides)
        labels, bboxes = enc.encode_batch(boxes)
        images = torch.rand(b, 3, img, img, generator=torch.Generator().manual_seed(seed))
        to = lambda a: torch.as_tensor(np.asarray(a)).to(self.device)  # noqa: E731
        return images.to(self.device), [to(x) for x in labels], [to(x) for x in bboxes]


def _train_step(bench: Bench, mode: str) -> tuple[float, float, float]:
    """``(images/s, ms per step, first loss)`` of the trainer's step (``yolov3.engine.step``) in
    ``mode``: fp32 | bf16_cl | compiled."""
    model = bench.model()
    images, labels, bboxes = bench.batch(model)
    fast = mode != "fp32"
    if fast:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model, backend=bench.s["compile_backend"]) if mode == "compiled" else model
    model.train()
    cfg = TrainConfig(lr_init=1e-4, amp="bf16" if fast else "off", channels_last=fast)
    train_step = build_step(model, cfg, bench.device, net=net)
    batch = {"images": images, "labels": labels, "bboxes": bboxes}
    first = []

    def step() -> None:
        loss = train_step(batch)["total"]
        if not first:
            first.append(loss)

    ms = _timed(bench, step)
    return 1e3 * bench.s["batch"] / ms, ms, first[0]


def _timed(bench: Bench, fn, warmup: int | None = None, steps: int | None = None) -> float:  # noqa: ANN001
    """Mean ms per call over ``steps`` calls after ``warmup`` (synchronised at both ends)."""
    for _ in range(bench.s["warmup"] if warmup is None else warmup):
        fn()
    bench.sync()
    n = bench.s["steps"] if steps is None else steps
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    bench.sync()
    return (time.perf_counter() - t0) * 1e3 / n


def train_plain(bench: Bench) -> None:
    settings = f"batch {bench.s['batch']}, {bench.s['img']} px, Adam, synthetic batch on device"
    losses = {}
    for mode, what in (("fp32", "train_step_fp32"), ("bf16_cl", "train_step_bf16_cl")):
        bench.reset_peak()
        ips, ms, losses[mode] = _train_step(bench, mode)
        if mode == "fp32":
            bench.baseline = ips
        bench.emit(what, f"{mode}, {settings}", ips, ms, note="ms per optimiser step")
    bench.losses = losses


def train_compiled(bench: Bench) -> None:
    bench.reset_peak()
    t0 = time.perf_counter()
    ips, ms, loss = _train_step(bench, "compiled")
    settings = f"bf16, channels_last, torch.compile({bench.s['compile_backend']}), batch {bench.s['batch']}"
    bench.emit("train_step_compiled", settings, ips, ms, target=">= 1150 images/s (plain step)",
               note=f"compile + warm-up + steps took {time.perf_counter() - t0:.0f} s")  # fmt: skip
    losses = dict(getattr(bench, "losses", {}), compiled=loss)
    ref = losses.get("fp32")
    rel = {k: round(abs(v - ref) / abs(ref), 4) for k, v in losses.items() if ref and k != "fp32"}
    bench.emit("loss_parity", "first-step loss, same weights and batch", None, None,
               losses={k: round(v, 4) for k, v in losses.items()}, rel_diff_to_fp32=rel)  # fmt: skip


def _trainer(bench: Bench, workers: int) -> Trainer:
    n = bench.s["synth"]
    synth = SynthConfig(n=n + 2, size=bench.s["img"], val_fraction=2 / (n + 2))
    data_yaml, _ = generate(bench.tmp / "synth", synth, progress=False)
    # 80 class names (the labels use the first 5): the head and loss cost what they cost on COCO.
    text = data_yaml.read_text().split("nc:")[0]
    data_yaml.write_text(text + f"nc: 80\nnames: {json.dumps([f'class{i}' for i in range(80)])}\n")
    compile_on = bench.s["compile_backend"] == "inductor"
    train_cfg = TrainConfig(batch=bench.s["batch"], device=str(bench.device), amp="bf16", channels_last=True,
                            compile=compile_on, ema=True, epochs=1, project=str(bench.tmp / "runs"),
                            exist_ok=True)  # fmt: skip
    data_cfg = DataConfig(path=str(data_yaml), img_size=bench.s["img"], workers=workers)
    return Trainer(ModelConfig(name="yolov3", width=bench.s["width"]), data_cfg, train_cfg)


def _cycle(loader):  # noqa: ANN001, ANN202
    """Batches across epochs (the synthetic set is smaller than the measured run)."""
    epoch = 0
    while True:
        for holder in (loader.batch_sampler, getattr(loader.batch_sampler, "sampler", None)):
            if hasattr(holder, "set_epoch"):
                holder.set_epoch(epoch)
        yield from loader
        epoch += 1


def train_real(bench: Bench) -> None:
    """Two epochs of ``Trainer.train_epoch`` over the synthetic set: the first warms up (compilation,
    cuDNN autotuning, worker start-up), the second is measured, as the trainer itself reports it."""
    workers = bench.args.workers if bench.args.workers is not None else bench.cores
    trainer = _trainer(bench, workers)
    loader = trainer.data.train_loader
    trainer.steps_per_epoch = math.ceil(len(loader) / trainer.cfg.accumulate)
    trainer.warmup_steps, trainer.total_steps = schedule_steps(trainer.cfg, trainer.steps_per_epoch)
    t0 = time.perf_counter()
    trainer.train_epoch(0)
    warm_s = time.perf_counter() - t0
    bench.reset_peak()
    ips = trainer.train_epoch(1)["img_per_s"]
    b = bench.s["batch"]
    settings = (f"Trainer.train_epoch: JPEG decode, seed augmentations, targets in {workers} loader "
                f"workers, loss, Adam, EMA, bf16, channels_last, compile={trainer.cfg.compile}, "
                f"batch {b}")  # fmt: skip
    note = f"{len(loader)} batches measured (2nd epoch); warm-up epoch took {warm_s:.0f} s"
    bench.emit("train_real_pipeline", settings, ips, 1e3 * b / ips, target=">= 1150 images/s", note=note)
    bench.reset_peak()
    it = _cycle(loader)
    ms = _timed(bench, lambda: next(it), warmup=2, steps=max(bench.s["steps"], 10 if bench.cuda else 1))
    bench.emit("loader_only", f"{workers} workers, batch {b}, seed augmentations on", 1e3 * b / ms, ms,
               note="must exceed the real pipeline's images/s")  # fmt: skip


def infer_batch(bench: Bench) -> None:
    model = bench.model().eval()
    meta = ModelMeta.of_model(model, None, bench.s["img"])
    dtype = torch.bfloat16
    net = torch.compile(prepare_for_inference(model, bench.device, dtype), backend=bench.s["compile_backend"])
    x = torch.rand(bench.s["batch"], 3, bench.s["img"], bench.s["img"], device=bench.device)
    x = x.to(dtype).contiguous(memory_format=torch.channels_last)
    counts = []

    @torch.inference_mode()
    def run() -> None:
        raws = [r.float() for r in net(x)]
        dets = postprocess(raws, meta.anchors, meta.strides, settings=InferConfig())
        counts.append(sum(len(d) for d in dets))

    bench.reset_peak()
    ms = _timed(
        bench, run, warmup=bench.s["warmup"] + 1, steps=max(bench.s["steps"], 20 if bench.cuda else 1)
    )
    settings = f"batch {bench.s['batch']}, bf16, BN folded, channels_last, compiled, decode + NMS"
    bench.emit("infer_batch", settings, 1e3 * bench.s["batch"] / ms, ms, target=">= 4500 images/s",
               note=f"{counts[-1] / bench.s['batch']:.0f} boxes per image after NMS")  # fmt: skip


def latency_b1(bench: Bench) -> None:
    model = bench.model().eval()
    meta = ModelMeta.of_model(model, None, bench.s["img"])
    x = torch.rand(1, 3, bench.s["img"], bench.s["img"], device=bench.device)
    amp = "fp16" if bench.cuda else "off"
    for graph in (False, True):
        what = f"latency_b1_{'cuda_graph' if graph else 'eager'}"
        if graph and not bench.cuda:
            print(json.dumps({"what": what, "skipped": "CUDA graphs need a GPU", "card": bench.card}))
            continue
        backend = TorchBackend(model, meta, bench.device, amp=amp, cuda_graph=graph)

        def run(backend: TorchBackend = backend) -> None:
            postprocess(backend(x), backend.anchors, backend.strides, settings=InferConfig())
            bench.sync()  # boxes out: the result is on the host's clock

        n = 100 if bench.cuda else 1
        for _ in range(5 if bench.cuda else 1):
            run()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
        ms = statistics.median(times)
        bench.reset_peak()
        settings = f"batch 1, {bench.s['img']} px, {amp}, BN folded, channels_last, decode + NMS"
        bench.emit(what, settings, 1e3 / ms, ms, target="<= 2 ms", note="median of tensor-in to boxes-out")


# Quick and baseline sections first; the compiled ones (minutes of compilation) after.
SECTIONS = [train_plain, latency_b1, train_compiled, train_real, infer_batch]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 1-2 steps: a check that runs on CPU")
    p.add_argument("--device", help="cuda (default when present) or cpu")
    p.add_argument("--img", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--width", type=float, help="channel multiplier of the native YOLOv3 (1.0)")
    p.add_argument("--synth", type=int, help="training images of the synthetic set (640: 10 batches of 64)")
    p.add_argument("--workers", type=int, help="loader workers (default: all cores)")
    p.add_argument("--budget-s", type=float, default=450.0, help="start no section after this many seconds")
    p.add_argument("--only", help="comma-separated section names (train_plain, train_compiled, ...)")
    args = p.parse_args(argv)
    bench = Bench(args)
    wanted = set(args.only.split(",")) if args.only else None
    for section in SECTIONS:
        if wanted and section.__name__ not in wanted:
            continue
        elapsed = time.perf_counter() - bench.start
        if elapsed > args.budget_s:
            print(json.dumps({"what": section.__name__, "skipped": f"time budget ({elapsed:.0f} s spent)"}))
            continue
        try:
            section(bench)
        except Exception as exc:  # report and go on: one run must give every figure it can
            tail = traceback.format_exc().strip().splitlines()[-3:]
            print(
                json.dumps({"what": section.__name__, "error": f"{type(exc).__name__}: {exc}", "trace": tail})
            )
        if bench.cuda:
            torch.cuda.empty_cache()
    shutil.rmtree(bench.tmp, ignore_errors=True)
    total = round(time.perf_counter() - bench.start, 1)
    print(json.dumps({"what": "total", "seconds": total, "card": bench.card}))


if __name__ == "__main__":
    main()
