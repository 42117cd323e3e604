"""``yolov3 demo``: the whole system on this machine in minutes — no download, no pretrained weights.

1. draw the synthetic data set (``yolov3.data.synth``) into a cache folder, or reuse it when it is
   complete (an interrupted generation has no completion marker and is redrawn);
2. choose the recipe for the device (``yolov3/cfg/demo.yaml``): on a CPU YOLOv3-tiny at 192 px in
   bf16 autocast where the CPU has it; on a GPU the full YOLOv3 at 416;
3. on a CPU, time a few training steps with 1 and with all threads and keep the faster; start from
   prior-initialised output biases;
4. train with the project's trainer (``yolov3.engine.trainer.train``) into ``OUT/train`` on a clock:
   the time left, less what evaluation needs, is the trainer's ``time`` budget, so the learning rate
   anneals to its end value by the deadline and the run stops there whatever the machine's speed;
   an interrupted run is resumed from its ``last.pt`` (and its remaining budget) when run again;
5. evaluate the held-out split once (mAP@0.5, PR curve; the trainer is given no val split), draw
   detections on validation images, plot the loss curves, and write ``OUT/metrics.json``.

Everything the demo writes is under ``OUT`` (default ``runs/demo``) and the cache folder.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import yaml

from yolov3.builder import build_model
from yolov3.config import DataConfig, InferConfig, ModelConfig, TrainConfig
from yolov3.data.dataset_config import load_dataset
from yolov3.data.synth import CLASS_NAMES, SynthConfig
from yolov3.demo_data import DEFAULT_CACHE, DEFAULT_OUT, Recipe, prepare_data, recipes, synth_config
from yolov3.device import autocast_dtype, keep_freed_memory, select_device
from yolov3.engine.logging import read_columns
from yolov3.engine.step import build_step
from yolov3.engine.trainer import train
from yolov3.evaluate.evaluator import evaluate
from yolov3.evaluate.plots import plot_loss_curves, plot_pr_curves
from yolov3.evaluate.report import write_summary
from yolov3.files import writable_dir
from yolov3.infer.detector import Detector
from yolov3.infer.draw import tile_grid

PLAN_FILE = "plan.json"
MIN_TRAIN_SECONDS = 30.0  # a model worth evaluating, even when the deadline is (nearly) gone
EVAL_SECONDS = 10.0  # evaluation, pictures and plots: this, plus half a training step per held-out image


def choose_recipe(device: torch.device, quick: bool = False) -> Recipe:
    """``quick`` for ``quick``, ``gpu`` on CUDA, else ``cpu``."""
    return recipes()["quick" if quick else "gpu" if device.type == "cuda" else "cpu"]


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


def measure_speed(model_cfg: ModelConfig, num_classes: int, img_size: int, batch: int, device: torch.device,
                  amp: str = "auto", steps: int = 8) -> float:  # fmt: skip
    """Seconds per training image on ``device``: the trainer's step (``yolov3.engine.step``: forward,
    the seed's loss, backward, Adam) on random images, channels-last as the demo trains; the median of
    ``steps`` after one warm-up step (a best-of-few reads faster than training then runs)."""
    if device.type == "cpu":
        keep_freed_memory()  # as the trainer will
    model = build_model(model_cfg, num_classes).to(device).train().to(memory_format=torch.channels_last)
    step = build_step(model, TrainConfig(lr_init=1e-4, amp=amp, channels_last=True), device)
    labels = [torch.zeros(batch, img_size // s, img_size // s, 3, 5 + num_classes, device=device)
              for s in model.strides]  # fmt: skip
    boxes = [torch.zeros(batch, DataConfig.max_boxes_per_scale, 4, device=device) for _ in model.strides]
    images = torch.rand(batch, 3, img_size, img_size, device=device)
    data = {"images": images, "labels": labels, "bboxes": boxes}
    times = []
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step(data)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) / batch


def prior_init_checkpoint(model_cfg: ModelConfig, num_classes: int, img_size: int, path: Path,
                          objects: float = 4.0) -> Path:  # fmt: skip
    """A starting checkpoint for the trainer's ``weights``: a freshly initialised network whose output
    convolutions' biases are set to priors (RetinaNet / YOLOv5): objectness log-odds of ``objects``
    per image spread over a scale's cells, class log-odds of 0.6 / C. From the default zero-mean
    biases, every cell starts at objectness 0.5 and the first hundreds of steps go into pushing them
    all down; on a time budget those steps are the ones that matter."""
    model = build_model(model_cfg, num_classes).eval()
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
    recipe: Recipe, model_cfg: ModelConfig, device: torch.device, amp: str
) -> tuple[float, int]:
    """``(seconds per training image, threads)``: on a CPU, times every thread count from 1 to the
    current one (a busy machine can make the extra threads a loss) and keeps the fastest set."""
    args = (model_cfg, len(CLASS_NAMES), recipe.data.img_size, recipe.train.batch, device, amp)
    if device.type != "cpu":
        return measure_speed(*args), torch.get_num_threads()
    timings = {}
    for n in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(n)
        timings[n] = measure_speed(*args)
    best = min(timings, key=timings.get)
    torch.set_num_threads(best)
    return timings[best], best


def train_only_yaml(data_yaml: Path, out: Path) -> Path:
    """A data.yaml in ``out`` with ``data_yaml``'s train split and no val split: the demo evaluates the
    held-out images once, after training (the trainer's own end-of-run validation would measure the
    same thing again, on time taken from training)."""
    doc = {"path": str(data_yaml.parent.resolve()), "train": "images/train", "names": list(CLASS_NAMES)}
    path = out / "data_train.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _plan(recipe: Recipe, data_yaml: Path, anchors: list, minutes: float, device: torch.device, out: Path,
          weights: str = "") -> dict[str, Any]:  # fmt: skip
    """The config sections handed to the trainer, as plain data (also saved to ``OUT/plan.json`` so
    that a re-run can recognise and resume an interrupted training). ``minutes``: the training budget
    (0: the recipe's epochs)."""
    model = replace(recipe.model, anchors=anchors)
    data = replace(recipe.data, path=str(data_yaml))
    tr = replace(recipe.train, time=round(minutes, 3), device=str(device), amp="auto", project=str(out),
                 name="train", exist_ok=True, seed=0, weights=weights)  # fmt: skip
    return {"recipe": recipe.name, "model": asdict(model), "data": asdict(data), "train": asdict(tr)}


def _resumable(out: Path, plan: dict[str, Any]) -> Path | None:
    """``OUT/train`` when it holds an unfinished training run of this same plan (aside from its time
    budget and the training list, ``OUT/data_train.yaml``)."""
    last = out / "train" / "weights" / "last.pt"
    try:
        saved = json.loads((out / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return None

    def settings(p: dict[str, Any]) -> dict[str, Any]:  # aside from what the clock decided
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
    for name in (PLAN_FILE, "data_train.yaml", "metrics.json", "pr_curve.png", "loss_curves.png",
                 "detections.jpg"):  # fmt: skip
        (out / name).unlink(missing_ok=True)


def _new_plan(recipe: Recipe, data_yaml: Path, anchors: list, dev: torch.device, out: Path, quick: bool,
              deadline: float) -> dict[str, Any]:  # fmt: skip
    """Pick the threads, give training the time left before ``deadline`` (``time.time()``) less what
    evaluation needs, write ``OUT/plan.json``."""
    _fresh_out(out)
    model_cfg = replace(recipe.model, anchors=anchors)
    sec, threads = fastest_threads(recipe, model_cfg, dev, "auto")
    train_s = deadline - time.time() - (EVAL_SECONDS + synth_config(recipe).split_sizes()[1] * sec / 2)
    if train_s < MIN_TRAIN_SECONDS and not quick:
        _say(
            f"      the deadline leaves {max(train_s, 0):.0f} s for training (the install or the data took "
            f"longer than usual): training {MIN_TRAIN_SECONDS:.0f} s anyway; the demo will end late"
        )
    minutes = 0.0 if quick else max(train_s, MIN_TRAIN_SECONDS) / 60
    init = str(prior_init_checkpoint(model_cfg, len(CLASS_NAMES), recipe.data.img_size, out / "init.pt"))
    plan = _plan(recipe, train_only_yaml(data_yaml, out), anchors, minutes, dev, out, init)
    (out / PLAN_FILE).write_text(json.dumps(plan, indent=1))
    dtype = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype(dev, "auto")]
    budget = "one epoch" if quick else f"{minutes * 60:.0f} s of training (the schedule anneals by then)"
    _say(f"[2/4] model: {recipe.why}.\n      {dtype} on {dev}: {1 / sec:.0f} training images/s, {budget}" +
         (f", {threads} CPU thread{'s' if threads > 1 else ''}" if dev.type == "cpu" else ""))  # fmt: skip
    return plan


def run_demo(out: str | Path = DEFAULT_OUT, cache: str | Path = DEFAULT_CACHE, time_budget: float = 540.0,
             device: str = "auto", quick: bool = False, progress: bool = True,
             deadline: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Data, training, evaluation and pictures within ``time_budget`` seconds, or by ``deadline`` (a
    ``time.time()`` value: ``make demo`` passes the end of its 10 minutes); returns the metrics written
    to ``OUT/metrics.json``. See the module docstring."""
    t0 = time.time()
    deadline = deadline if deadline is not None else t0 + time_budget
    out = writable_dir(out, "demo output (--out)")
    cache = writable_dir(cache, "data cache (--cache)")
    dev = select_device(device)
    recipe = choose_recipe(dev, quick)
    scfg = synth_config(recipe)
    n_train, n_val = scfg.split_sizes()
    _say(f"[1/4] data: {n_train} + {n_val} synthetic {scfg.size}px images in {cache}")
    data_yaml, reused = prepare_data(cache, scfg, progress)
    _say(f"      {'reused the cached set' if reused else 'drawn'} ({time.time() - t0:.0f} s): {data_yaml}")
    anchors = synth_anchors(scfg, 2 if recipe.model.name == "yolov3-tiny" else 3)
    resume = _resumable(out, _plan(recipe, data_yaml, anchors, 0.0, dev, out))
    if resume is not None:
        plan = json.loads((out / PLAN_FILE).read_text())
        _say(f"[2/4] resuming the interrupted training in {resume}")
    else:
        plan = _new_plan(recipe, data_yaml, anchors, dev, out, quick, deadline)
    try:
        sections = [
            cls(**plan[k])
            for k, cls in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig))
        ]
        result = train(resume=resume) if resume is not None else train(*sections)
    except KeyboardInterrupt:
        _say(
            f"\ninterrupted: run `yolov3 demo --out {out}` again to resume (the data set is kept in {cache})"
        )
        raise
    t_train = time.time()
    _say(f"[3/4] evaluating on the {n_val} held-out images")
    weights = Path(result["run_dir"]) / "weights" / "best.pt"
    metrics = evaluate_and_draw(weights, data_yaml, out, dev, progress)
    metrics.update(
        seconds_total=round(time.time() - t0, 1), seconds_training=round(t_train - t0, 1),
        device=str(dev), recipe=plan["recipe"], img_size=plan["data"]["img_size"], model=plan["model"],
        epochs=result.get("epochs_done", plan["train"]["epochs"]), weights=str(weights), data=str(data_yaml),
        torch=torch.__version__, threads=torch.get_num_threads(), stopped=result.get("stopped"),
    )  # fmt: skip
    write_summary(metrics, out / "metrics.json")
    _say(summary_text(metrics, out))
    return metrics


def evaluate_and_draw(weights: Path, data_yaml: Path, out: Path, device: torch.device,
                      progress: bool) -> dict[str, Any]:  # fmt: skip
    """mAP on the val split (``InferConfig.for_map``), ``pr_curve.png``, annotated validation images
    (the seed's test thresholds) and ``loss_curves.png``, all at the size the model records (the
    training size), as ``yolov3 val`` and ``yolov3 detect`` run it."""
    spec = load_dataset(data_yaml)
    det = Detector.load(weights, device=str(device), batch_size=16, settings=InferConfig.for_map())
    ev = evaluate(det, spec.val, spec.names, coco=False, progress=progress)
    plot_pr_curves(ev.curves, spec.names, out / "pr_curve.png")
    draw_examples(det, [s.image for s in spec.val[:8]], out, scale=max(1, round(480 / det.img_size)),
                  settings=InferConfig())  # fmt: skip
    run_dir = weights.parent.parent
    plot_loss_curves(read_columns(run_dir / "steps.csv"), read_columns(run_dir / "results.csv"),
                     out / "loss_curves.png")  # fmt: skip
    keep = ("map50", "map50_95", "precision", "recall", "f1", "best_conf", "per_class", "images",
            "instances", "speed_ms")  # fmt: skip
    return {k: ev.summary[k] for k in keep if k in ev.summary}


def draw_examples(detector: Detector, images: list[str], out: Path, scale: int = 2,
                  settings: InferConfig | None = None) -> Path:  # fmt: skip
    """Each image with its detections (under ``settings``, default the detector's), drawn at ``scale``x
    so that the labels read, into ``out/val_images/``; and a 2-row grid of them, ``out/detections.jpg``."""
    folder = out / "val_images"
    folder.mkdir(parents=True, exist_ok=True)
    tiles = []
    for k, d in enumerate(detector.predict(images, settings=settings)):
        big = cv2.resize(d.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        tile = d.plot(image=big[..., ::-1], bgr=True, scale=scale)  # BGR, for OpenCV's writer
        cv2.imwrite(str(folder / Path(d.path or f"{k}.jpg").name), tile)
        tiles.append(tile)
    path = out / "detections.jpg"
    cv2.imwrite(str(path), tile_grid(tiles, rows=2), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def summary_text(m: dict[str, Any], out: Path) -> str:
    """The closing lines: the score, the time, where the pictures are, what to try next."""
    minutes, seconds = divmod(int(round(m["seconds_total"])), 60)
    model = {"yolov3": "YOLOv3", "yolov3-tiny": "YOLOv3-tiny"}.get(m["model"]["name"], m["model"]["name"])
    model += f" width {m['model']['width']:g}" if m["model"]["width"] != 1 else ""
    size = m["img_size"]
    return "\n".join([
        f"[4/4] done in {minutes} min {seconds:02d} s: mAP@0.5 {m['map50']:.3f} "
        f"(mAP@0.5:0.95 {m['map50_95']:.3f}) on {m['images']} held-out images",
        f"      {model}, {size} px, {m['epochs']:g} epochs on {m['device']}",
        f"pictures: {out / 'detections.jpg'}, {out / 'pr_curve.png'}, {out / 'loss_curves.png'}",
        f"metrics:  {out / 'metrics.json'}; model: {m['weights']}",
        f"next:     yolov3 detect {Path(m['data']).parent / 'images' / 'val'} --weights {m['weights']}",
        f"          yolov3 val --data {m['data']} --weights {m['weights']}",
    ])  # fmt: skip
