"""``yolov3 demo``: the whole system on this machine in minutes — no download, no pretrained weights.

1. draw the synthetic data set (``yolov3.data.synth``) into a cache folder, or reuse it when it is
   complete (an interrupted generation has no completion marker and is redrawn);
2. choose the model for the device (``choose_recipe``): on a CPU YOLOv3-tiny at 192 px (see
   ``CPU_RECIPE`` for why), in bf16 autocast where the CPU has it; on a GPU the full YOLOv3 at 416;
3. time a few training steps (on a CPU with 1 and with all threads, keeping the faster), then pick
   the epochs and images per epoch that fill the time budget, and start from prior-initialised
   output biases;
4. train with the project's trainer (``yolov3.engine.trainer.train``, channels-last) into
   ``OUT/train``; an interrupted run is resumed from its ``last.pt`` when the demo is run again;
5. evaluate the held-out split once (mAP@0.5, PR curve; the trainer is given no val split), draw
   detections on validation images, plot the loss curves, and write ``OUT/metrics.json``.

Everything the demo writes is under ``OUT`` (default ``runs/demo``) and the cache folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from yolov3.config import DataConfig, EvalConfig, ModelConfig, TrainConfig
from yolov3.data.dataset_config import load_dataset
from yolov3.data.synth import CLASS_NAMES, SynthConfig, generate, is_complete, writable_dir
from yolov3.device import autocast, autocast_dtype, select_device
from yolov3.engine.schedule import build_optimizer
from yolov3.engine.trainer import train
from yolov3.evaluate.evaluator import evaluate
from yolov3.evaluate.plots import plot_pr_curves
from yolov3.evaluate.report import write_summary
from yolov3.loss import YoloLoss
from yolov3.model.factory import build_model
from yolov3.predict import Detector

DEFAULT_OUT = "runs/demo"
DEFAULT_CACHE = ".cache/yolov3-demo"
PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class Recipe:
    """What the demo trains: the model, its input size, the data set and the optimiser settings.

    ``epochs`` is an upper bound; the demo lowers it to what fits the time budget (at least
    ``min_epochs``). ``budget_fraction`` of the time budget goes to training, the rest to data,
    timing, evaluation and pictures.
    """

    model: str
    width: float
    img_size: int
    n_images: int
    batch: int
    lr_init: float
    lr_end: float
    warmup_epochs: float
    epochs: int
    min_epochs: int
    workers: int
    why: str


# Measured for the CPU recipe on this project's 2-core AVX512-BF16 machine, 480-540 s budgets:
# 160 px gave 1.3x the steps of 192 px but mAP@0.5 0.81 against 0.84-0.86 (synth max_cover 0.4);
# YOLOv3-tiny at half width (a cfg with every filter count halved) 2.2x the images/s and 0.85 against
# 0.86; batch 16 lr 5e-3 0.85 against 0.86 at 3e-3; batch 16 channels-last 1.45x the images/s of
# batch 8 channels-first: mAP@0.5 0.86 against 0.83-0.85 in the same 480 s.
CPU_RECIPE = Recipe(
    model="yolov3-tiny", width=1.0, img_size=192, n_images=7200, batch=16, lr_init=3e-3, lr_end=3e-5,
    warmup_epochs=0.3, epochs=30, min_epochs=1, workers=0,
    why="YOLOv3-tiny (8.7 M parameters) at 192 px: on this data it learns about 10x faster per step than "
    "Darknet-53 scaled down to the same CPU cost (width 0.125-0.25), and a time budget is a number of "
    "steps; 192 px (objects 8-96 px) buys 1.8x the steps of 256 px and scores higher than 160 px",
)  # fmt: skip
GPU_RECIPE = Recipe(
    model="yolov3", width=1.0, img_size=416, n_images=4000, batch=32, lr_init=1e-3, lr_end=1e-5,
    warmup_epochs=1.0, epochs=40, min_epochs=1, workers=4,
    why="the full YOLOv3 (Darknet-53, 61.5 M parameters at 5 classes) at the seed's 416 px",
)  # fmt: skip
QUICK_RECIPE = Recipe(
    model="yolov3", width=0.0625, img_size=64, n_images=10, batch=4, lr_init=1e-3, lr_end=1e-4,
    warmup_epochs=0.0, epochs=1, min_epochs=1, workers=0,
    why="--quick: a smoke run of every step (tiny network, 64 px, one epoch); its mAP means nothing",
)  # fmt: skip


def choose_recipe(device: torch.device, quick: bool = False) -> Recipe:
    """``QUICK_RECIPE`` for ``quick``, ``GPU_RECIPE`` on CUDA, else ``CPU_RECIPE``."""
    if quick:
        return QUICK_RECIPE
    return GPU_RECIPE if device.type == "cuda" else CPU_RECIPE


def synth_config(recipe: Recipe, seed: int = 0) -> SynthConfig:
    """The data set the recipe trains on: images drawn at the input size, 1/12 held out, sizes
    ``size_power`` 0.4 (objects under 16 px are ~4% at 192 px: the 8-12 px ones are near hopeless for a
    stride-16 network trained for minutes, and each one costs recall in every class's AP), at most a
    quarter of a box hidden by the objects drawn over it (``max_cover`` 0.25: at the generator's
    default 0.4, 18% of the objects hidden by more than a fifth were missed at IoU 0.5 against 5% of
    the rest, as the visible part no longer shows the whole box. mAP@0.5 went from 0.84-0.86 at 0.4 and
    480 s to 0.904-0.908 at 0.25 and 540 s: the two changes were not measured apart)."""
    return SynthConfig(
        n=recipe.n_images, seed=seed, size=recipe.img_size, val_fraction=1 / 12, size_power=0.4,
        max_cover=0.25,
    )  # fmt: skip


def synth_anchors(cfg: SynthConfig, num_scales: int = 3) -> list[list[list[float]]]:
    """``3 * num_scales`` anchors (input pixels, three per scale by increasing stride) spread over the
    generator's object sizes: sides log-spaced from ~1.25x the smallest to ~0.75x the largest,
    aspect ratios 1, 1.5 and 1/1.5 at each scale — the data's own size range rather than COCO's."""
    lo, hi = cfg.min_size * 1.25, cfg.max_frac * cfg.size * 0.75
    sides = np.exp(np.linspace(math.log(lo), math.log(hi), 3 * num_scales))
    aspects = [1.0, 1.5, 1 / 1.5] * num_scales
    flat = [
        [round(float(s * math.sqrt(a)), 1), round(float(s / math.sqrt(a)), 1)] for s, a in zip(sides, aspects)
    ]
    return [flat[3 * k : 3 * k + 3] for k in range(num_scales)]


def measure_speed(
    model_cfg: ModelConfig, img_size: int, batch: int, device: torch.device, amp: str = "auto", steps: int = 8
) -> float:
    """Seconds per training image on ``device``: forward, the seed's loss, backward and the trainer's
    Adam step on random images, channels-last as the demo trains (the median of ``steps`` after one
    warm-up step: the best of three read 82 images/s where training then ran at 61 on a 2-core CPU,
    and the demo overran its budget by 10%)."""
    model = build_model(model_cfg).to(device).train().to(memory_format=torch.channels_last)
    criterion = YoloLoss(model.anchors, model.strides, model.num_classes)
    opt = build_optimizer(model, TrainConfig(lr_init=1e-4))
    dtype = autocast_dtype(device, amp)
    x = torch.rand(batch, 3, img_size, img_size, device=device).contiguous(memory_format=torch.channels_last)
    labels = [torch.zeros(batch, img_size // s, img_size // s, 3, 5 + model.num_classes, device=device)
              for s in model.strides]  # fmt: skip
    boxes = [torch.zeros(batch, 150, 4, device=device) for _ in model.strides]
    times = []
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with autocast(device, dtype):
            raws = model(x)
        loss = criterion(raws, labels, boxes)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) / batch


def prior_init_checkpoint(model_cfg: ModelConfig, img_size: int, path: Path, objects: float = 4.0) -> Path:
    """A starting checkpoint for the trainer's ``weights``: a freshly initialised network whose output
    convolutions' biases are set to priors (RetinaNet / YOLOv5): objectness log-odds of ``objects``
    per image spread over a scale's cells, class log-odds of 0.6 / C. From the default zero-mean
    biases, every cell starts at objectness 0.5 and the first hundreds of steps go into pushing them
    all down; on a time budget those steps are the ones that matter."""
    model = build_model(model_cfg).eval()
    c = model.num_classes
    # The output convolutions: the only ones with a bias (every other one is followed by batch norm).
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None]
    grid: dict[torch.nn.Module, int] = {}
    hooks = [h.register_forward_hook(lambda m, i, o: grid.__setitem__(m, o.shape[-1])) for h in heads]
    with torch.no_grad():
        model(torch.zeros(1, 3, img_size, img_size))
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for conv in heads:
            bias = conv.bias.view(-1, 5 + c)  # (A, 5 + C), Darknet's channel order
            p = min(objects / (grid[conv] ** 2 * bias.shape[0]), 0.5)
            bias[:, 4] = math.log(p / (1 - p))
            bias[:, 5:] = math.log(0.6 / (c - 0.99))
    torch.save({"model": model.state_dict()}, path)
    return path


def fastest_threads(
    model_cfg: ModelConfig, recipe: Recipe, device: torch.device, amp: str
) -> tuple[float, int]:
    """``(seconds per training image, threads)``: on a CPU, times every thread count from 1 to the
    current one (a busy machine can make the extra threads a loss) and keeps the fastest set."""
    if device.type != "cpu":
        return measure_speed(model_cfg, recipe.img_size, recipe.batch, device, amp), torch.get_num_threads()
    timings = {}
    for n in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(n)
        timings[n] = measure_speed(model_cfg, recipe.img_size, recipe.batch, device, amp)
    best = min(timings, key=timings.get)
    torch.set_num_threads(best)
    return timings[best], best


def plan_training(
    recipe: Recipe, sec_per_image: float, n_train: int, train_seconds: float
) -> tuple[int, int]:
    """``(epochs, images per epoch)`` that fill ``train_seconds`` at ``sec_per_image`` plus 20%: the
    real steps add data loading, target encoding, the loss of real boxes and logging to what
    ``measure_speed`` times. Batch 16 at 192 px on this project's 2-core CPU trained at 57-64 images/s
    in six runs while the few timed steps read 65-82: the allowance is for that noise, which decides
    whether the demo ends early (fewer steps, mAP@0.5 0.893 at 26.5k images against 0.904-0.908 at
    29-35k) or late (9 min 52 s at 82). The fewest whole epochs (at least ``recipe.min_epochs``, at
    most ``recipe.epochs``) that use the time, each over the first ``images / epochs`` training images
    (all of them when they fit; at least two batches). Whole epochs of the full set would leave up to
    an epoch of the budget unused."""
    images = max(train_seconds, 0.0) / max(sec_per_image * 1.2, 1e-9)
    epochs = min(recipe.epochs, max(recipe.min_epochs, math.ceil(images / n_train - 1e-6)))
    return epochs, min(n_train, max(2 * recipe.batch, int(images // epochs)))


def subset_yaml(data_yaml: Path, count: int, out: Path) -> Path:
    """A data.yaml in ``out`` whose train split is the first ``count`` training images of
    ``data_yaml``'s set (a list file of absolute paths), with no val split: the demo evaluates the
    held-out images once, after training (the trainer's own end-of-run validation would measure the
    same thing again, ~20 s of a CPU budget)."""
    root = data_yaml.parent
    images = sorted((root / "images" / "train").glob("*.jpg"))[:count]
    listing = out / "train_subset.txt"
    listing.write_text("".join(f"{p.resolve()}\n" for p in images))
    doc = {"train": str(listing.resolve()), "names": list(CLASS_NAMES)}
    path = out / "data_subset.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ----------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------


def prepare_data(cache: Path, cfg: SynthConfig, progress: bool = True) -> tuple[Path, bool]:
    """``(data.yaml, reused)``: the cached set when complete for ``cfg``, else a freshly drawn one."""
    folder = cache / f"synth-{cfg.size}px-{cfg.n}-seed{cfg.seed}"
    if is_complete(folder, cfg):
        return folder / "data.yaml", True
    workers = min(os.cpu_count() or 1, 4) if cfg.n >= 1000 else 1
    data_yaml, _ = generate(folder, cfg, progress=progress, workers=workers)
    return data_yaml, False


def _plan(recipe: Recipe, data_yaml: Path, anchors: list, epochs: int, device: torch.device, amp: str,
          out: Path, weights: str = "") -> dict[str, Any]:  # fmt: skip
    """The configs handed to the trainer, as plain data (also saved to ``OUT/plan.json`` so that a
    re-run can recognise and resume an interrupted training)."""
    model = ModelConfig(name=recipe.model, num_classes=0, anchors=anchors, width=recipe.width)
    data = DataConfig(path=str(data_yaml), img_size=recipe.img_size, test_size=recipe.img_size,
                      augment=False, workers=recipe.workers, cache=True)  # fmt: skip
    tr = TrainConfig(
        epochs=epochs, batch=recipe.batch, lr_init=recipe.lr_init, lr_end=recipe.lr_end,
        warmup_epochs=recipe.warmup_epochs, device=str(device), amp=amp, val_interval=max(epochs, 1),
        project=str(out), name="train", exist_ok=True, seed=0, weights=weights, channels_last=True,
    )  # fmt: skip
    return {"recipe": asdict(recipe), "model": asdict(model), "data": asdict(data), "train": asdict(tr)}


def _resumable(out: Path, plan: dict[str, Any]) -> Path | None:
    """``OUT/train`` when it holds an unfinished training run of this same plan (aside from what the
    timing decided: the epochs and the training list, ``OUT/data_subset.yaml``)."""
    last = out / "train" / "weights" / "last.pt"
    try:
        saved = json.loads((out / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return None

    def settings(p: dict[str, Any]) -> dict[str, Any]:
        return {k: v if k != "data" else {**v, "path": None} for k, v in p.items() if k != "train"}

    same = settings(saved) == settings(plan) and Path(saved["data"]["path"]).is_file()
    finished = (out / "metrics.json").exists()
    return out / "train" if same and last.is_file() and not finished else None


def _say(text: str) -> None:
    print(text, flush=True)


def _fresh_out(out: Path) -> None:
    """Remove what an earlier demo left in ``out`` (only the demo's own names)."""
    shutil.rmtree(out / "train", ignore_errors=True)
    shutil.rmtree(out / "val_images", ignore_errors=True)
    for name in (
        PLAN_FILE,
        "train_subset.txt",
        "data_subset.yaml",
        "metrics.json",
        "pr_curve.png",
        "loss_curves.png",
        "detections.jpg",
    ):
        (out / name).unlink(missing_ok=True)


def run_demo(
    out: str | Path = DEFAULT_OUT,
    cache: str | Path = DEFAULT_CACHE,
    time_budget: float = 540.0,
    device: str = "auto",
    quick: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Data, training, evaluation and pictures within about ``time_budget`` seconds; returns the
    metrics written to ``OUT/metrics.json``. See the module docstring."""
    t0 = time.time()
    out = writable_dir(out, "demo output (--out)")
    cache = writable_dir(cache, "data cache (--cache)")
    dev = select_device(device)
    recipe = choose_recipe(dev, quick)
    amp = "auto"
    scfg = synth_config(recipe)
    n_train, n_val = scfg.split_sizes()
    _say(f"[1/4] data: {n_train} + {n_val} synthetic {scfg.size}px images in {cache}")
    data_yaml, reused = prepare_data(cache, scfg, progress)
    _say(f"      {'reused the cached set' if reused else 'drawn'} ({time.time() - t0:.0f} s): {data_yaml}")
    anchors = synth_anchors(scfg, 2 if recipe.model == "yolov3-tiny" else 3)
    plan = _plan(recipe, data_yaml, anchors, 0, dev, amp, out)
    resume = _resumable(out, plan)
    if resume is not None:
        plan = json.loads((out / PLAN_FILE).read_text())
        _say(f"[2/4] resuming the interrupted training in {resume}")
    else:
        _fresh_out(out)
        model_cfg = ModelConfig(recipe.model, len(CLASS_NAMES), anchors, recipe.width)
        sec, threads = fastest_threads(model_cfg, recipe, dev, amp)
        # evaluation, pictures and plots: ~6 s for 600 images here (inference ~1/3 of a training step)
        reserve = 10 + n_val * sec / 2
        train_s = time_budget - (time.time() - t0) - reserve
        epochs, used = (recipe.epochs, n_train) if quick else plan_training(recipe, sec, n_train, train_s)
        train_yaml = subset_yaml(data_yaml, used, out)
        init = str(prior_init_checkpoint(model_cfg, recipe.img_size, out / "init.pt"))
        plan = _plan(recipe, train_yaml, anchors, epochs, dev, amp, out, init)
        (out / PLAN_FILE).write_text(json.dumps(plan, indent=1))
        dtype = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype(dev, amp)]
        _say(f"[2/4] model: {recipe.why}.\n      {dtype} on {dev}: {1 / sec:.0f} training images/s -> "
             f"{epochs} epoch(s) of {used} images to fit ~{max(train_s, 0):.0f} s" +
             (f" ({threads} CPU threads)" if dev.type == "cpu" else ""))  # fmt: skip
    try:
        if resume is not None:
            result = train(resume=resume)
        else:
            result = train(
                ModelConfig(**plan["model"]), DataConfig(**plan["data"]), TrainConfig(**plan["train"])
            )
    except KeyboardInterrupt:
        _say(
            f"\ninterrupted: run `yolov3 demo --out {out}` again to resume (the data set is kept in {cache})"
        )
        raise
    t_train = time.time()
    _say(f"[3/4] evaluating on the {n_val} held-out images")
    weights = Path(result["run_dir"]) / "weights" / "best.pt"
    metrics = evaluate_and_draw(weights, data_yaml, out, plan, dev, progress)
    metrics.update(
        seconds_total=round(time.time() - t0, 1), seconds_training=round(t_train - t0, 1),
        device=str(dev), recipe=plan["recipe"], epochs=plan["train"]["epochs"], weights=str(weights),
        data=str(data_yaml), torch=torch.__version__, threads=torch.get_num_threads(),
    )  # fmt: skip
    write_summary(metrics, out / "metrics.json")
    _say(summary_text(metrics, out))
    return metrics


def evaluate_and_draw(
    weights: Path, data_yaml: Path, out: Path, plan: dict[str, Any], device: torch.device, progress: bool
) -> dict[str, Any]:
    """mAP on the val split (score threshold 0.001, NMS IoU 0.45), ``pr_curve.png``, annotated
    validation images (the seed's test thresholds: score 0.3, NMS 0.45) and ``loss_curves.png``."""
    spec = load_dataset(data_yaml)
    size = plan["data"]["img_size"]
    det = Detector.load(weights, device=str(device), img_size=size, conf_threshold=0.001, batch_size=16)
    ev = evaluate(det, spec.val, spec.names, img_size=size, full=True, coco=False, progress=progress)
    plot_pr_curves(ev.curves, spec.names, out / "pr_curve.png")
    eval_cfg = EvalConfig()
    shown = Detector.load(weights, device=str(device), img_size=size, conf_threshold=eval_cfg.conf_threshold,
                          iou_threshold=eval_cfg.iou_threshold, batch_size=16)  # fmt: skip
    draw_examples(shown, [s.image for s in spec.val[:8]], out, scale=max(1, round(480 / size)))
    run_dir = weights.parent.parent
    plot_loss_curves(run_dir / "steps.csv", run_dir / "results.csv", out / "loss_curves.png")
    keep = ("map50", "map50_95", "precision", "recall", "f1", "best_conf", "per_class", "images",
            "instances", "speed_ms")  # fmt: skip
    return {k: ev.summary[k] for k in keep if k in ev.summary}


def draw_examples(detector: Detector, images: list[str], out: Path, scale: int = 2) -> Path:
    """Each image with its detections, drawn at ``scale``x so that the labels read, into
    ``out/val_images/``; and a 2-row grid of them, ``out/detections.jpg``."""
    folder = out / "val_images"
    folder.mkdir(parents=True, exist_ok=True)
    tiles = []
    for r in detector.predict(images):
        big = cv2.resize(r.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        tile = replace(r, boxes=r.boxes * scale).plot(image=big, bgr=False)[..., ::-1]  # BGR for OpenCV
        cv2.imwrite(str(folder / Path(r.path or f"{len(tiles)}.jpg").name), tile)
        tiles.append(tile)
    cols = max(1, math.ceil(len(tiles) / 2))
    h, w = tiles[0].shape[:2]
    grid = np.full((h * math.ceil(len(tiles) / cols), w * cols, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        y, x = divmod(k, cols)
        grid[y * h : (y + 1) * h, x * w : (x + 1) * w] = cv2.resize(tile, (w, h))
    path = out / "detections.jpg"
    cv2.imwrite(str(path), grid, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    cols: dict[str, np.ndarray] = {}
    for key in rows[0] if rows else []:
        cols[key] = np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])
    return cols


def plot_loss_curves(steps_csv: Path, results_csv: Path, path: Path) -> Path:
    """Training loss terms per optimiser step (thin: raw, thick: moving average) and the learning
    rate, from the trainer's ``steps.csv``; validation losses per epoch from ``results.csv``."""
    steps, epochs = _read_csv(steps_csv), _read_csv(results_csv)
    fig = Figure(figsize=(10, 4), dpi=110, tight_layout=True)
    FigureCanvasAgg(fig)
    ax, ax_lr = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    x = steps.get("step", np.zeros(0))
    for term, colour in (("total", "k"), ("giou", "tab:blue"), ("conf", "tab:orange"), ("prob", "tab:green")):
        y = steps.get(f"loss/{term}_loss")
        if y is None or not len(y):
            continue
        k = max(1, len(y) // 25)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x, y, color=colour, alpha=0.25, lw=0.8)
        ax.plot(x[k - 1 :], smooth, color=colour, lw=2, label=f"train {term}")
        val = epochs.get(f"val/{term}_loss")
        if val is not None and np.isfinite(val).any():
            ax.plot(epochs["step"], val, "o--", color=colour, label=f"val {term}")
    ax.set(xlabel="optimiser step", ylabel="loss (seed's terms)", yscale="log", title="Loss")
    ax.legend(fontsize=8)
    if "lr" in steps:
        ax_lr.plot(x, steps["lr"], color="tab:purple")
    ax_lr.set(xlabel="optimiser step", ylabel="learning rate", title="Warmup + cosine schedule")
    fig.savefig(path)
    return path


def summary_text(m: dict[str, Any], out: Path) -> str:
    """The closing lines: the score, the time, where the pictures are, what to try next."""
    r = m["recipe"]
    minutes, seconds = divmod(int(round(m["seconds_total"])), 60)
    model = {"yolov3": "YOLOv3", "yolov3-tiny": "YOLOv3-tiny"}.get(r["model"], r["model"])
    model += f" width {r['width']:g}" if r["width"] != 1 else ""
    return "\n".join([
        f"[4/4] done in {minutes} min {seconds:02d} s: mAP@0.5 {m['map50']:.3f} "
        f"(mAP@0.5:0.95 {m['map50_95']:.3f}) on {m['images']} held-out images",
        f"      {model}, {r['img_size']} px, {m['epochs']} epochs on {m['device']}",
        f"pictures: {out / 'detections.jpg'}, {out / 'pr_curve.png'}, {out / 'loss_curves.png'}",
        f"metrics:  {out / 'metrics.json'}; model: {m['weights']}",
        f"next:     yolov3 detect {Path(m['data']).parent / 'images' / 'val'} --weights {m['weights']} "
        f"--img {r['img_size']}",
    ])  # fmt: skip
