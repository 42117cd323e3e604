"""The demo's recipes and its synthetic data set, without PyTorch.

``yolov3/cfg/demo.yaml`` read into ``Recipe`` objects, the data set each recipe draws, and drawing it
into the cache folder. Nothing here imports torch, so that ``make demo`` can draw the data set on one
core while pip installs torch on the other::

    python -m yolov3.demo_data [--recipe cpu|gpu|quick] [--cache DIR] [--workers N]

``yolov3 demo`` (``yolov3.demo``) then finds the set complete and reuses it.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from yolov3.config import DataConfig, ModelConfig, TrainConfig, from_dict
from yolov3.data.synth import SynthConfig, generate, is_complete
from yolov3.errors import UserError

DEFAULT_CACHE = ".cache/yolov3-demo"
DEFAULT_OUT = "runs/demo"


@dataclass(frozen=True)
class Recipe:
    """One entry of ``yolov3/cfg/demo.yaml``: the config sections the trainer gets (before the demo
    fills in paths, anchors and epochs), and the demo's own knobs. ``train.epochs`` is an upper bound;
    the demo lowers it to what fits the time budget (at least ``min_epochs``)."""

    name: str
    why: str
    n_images: int
    min_epochs: int
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    synth: tuple[tuple[str, Any], ...]  # SynthConfig fields shared by every recipe


@functools.cache
def recipes() -> dict[str, Recipe]:
    """Every recipe of ``yolov3/cfg/demo.yaml``, its sections checked like any config file."""
    path = resources.files("yolov3") / "cfg" / "demo.yaml"
    doc = yaml.safe_load(path.read_text())
    synth = tuple(sorted(doc.get("synth", {}).items()))
    out = {}
    for name, r in doc["recipes"].items():
        where = f"{path}: recipes.{name}"
        own = r["demo"]
        classes = (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig))
        sections = [from_dict(cls, r.get(key), f"{where}.{key}") for key, cls in classes]
        why = " ".join(str(own["why"]).split())
        out[name] = Recipe(name, why, int(own["n_images"]), int(own["min_epochs"]), *sections, synth)
    return out


def synth_config(recipe: Recipe, seed: int = 0) -> SynthConfig:
    """The data set the recipe trains on: ``n_images`` drawn at the input size, the shared settings."""
    return SynthConfig(n=recipe.n_images, seed=seed, size=recipe.data.img_size, **dict(recipe.synth))


def prepare_data(cache: Path, cfg: SynthConfig, progress: bool = True, workers: int = 0) -> tuple[Path, bool]:
    """``(data.yaml, reused)``: the cached set when complete for ``cfg``, else a freshly drawn one
    (``workers`` processes; 0: up to 4 cores for a thousand images or more)."""
    folder = cache / f"synth-{cfg.size}px-{cfg.n}-seed{cfg.seed}"
    if is_complete(folder, cfg):
        return folder / "data.yaml", True
    workers = workers or (min(os.cpu_count() or 1, 4) if cfg.n >= 1000 else 1)
    data_yaml, _ = generate(folder, cfg, progress=progress, workers=workers)
    return data_yaml, False


def likely_recipe() -> str:
    """The recipe ``yolov3 demo`` will most likely choose, guessed without torch: ``gpu`` when an
    NVIDIA driver is loaded, else ``cpu`` (a wrong guess only costs the demo drawing its own set)."""
    return "gpu" if Path("/proc/driver/nvidia/version").exists() else "cpu"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Draw the demo's synthetic data set into its cache folder.")
    ap.add_argument("--recipe", choices=["auto", *recipes()], default="auto", help="default: auto")
    ap.add_argument("--cache", default=DEFAULT_CACHE, help=f"cache folder (default {DEFAULT_CACHE})")
    ap.add_argument("--workers", type=int, default=0, help="drawing processes (default: up to 4 cores)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    if args.workers < 0:
        ap.error(f"--workers {args.workers}: expected 0 (automatic) or a number of processes")
    recipe = recipes()[likely_recipe() if args.recipe == "auto" else args.recipe]
    t0 = time.time()
    cfg = synth_config(recipe)
    try:
        data_yaml, reused = prepare_data(Path(args.cache), cfg, not args.quiet, args.workers)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = "reused" if reused else f"drew {cfg.n} images in {time.time() - t0:.0f} s:"
    print(f"{what} {data_yaml} (the demo's data set, recipe {recipe.name})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
