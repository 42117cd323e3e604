"""What a run shows and records: the run folder, TensorBoard scalars, CSV files, a text log.

Scalar names follow the seed (``lr``, ``loss/total_loss``, ``loss/giou_loss``, ``loss/conf_loss``,
``loss/prob_loss``) plus ``val/...`` metrics. Only rank 0 writes; on other ranks every call is a
no-op.
"""

from __future__ import annotations

import contextlib
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from yolov3.errors import UserError

SEED_LOSS_NAMES = {"total": "loss/total_loss", "giou": "loss/giou_loss", "conf": "loss/conf_loss",
                   "prob": "loss/prob_loss"}  # fmt: skip


def read_columns(path: str | Path) -> dict[str, np.ndarray]:
    """A CSV this logger wrote (``steps.csv``, ``results.csv``) as float columns by header name; an empty
    cell (a column that appeared later) is NaN, a missing file gives ``{}``."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    return {key: np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])
            for key in (rows[0] if rows else [])}  # fmt: skip


def seed_scalars(terms: dict[str, float], lr: float | None = None) -> dict[str, float]:
    """Loss terms keyed giou / conf / prob / total -> the seed's TensorBoard names (+ ``lr``)."""
    out = {SEED_LOSS_NAMES[k]: float(v) for k, v in terms.items() if k in SEED_LOSS_NAMES}
    if lr is not None:
        out = {"lr": lr, **out}
    return out


def banner(model_name: str, model: torch.nn.Module, device: torch.device, world_size: int,
           amp_dtype: torch.dtype | None, batch: int, steps_per_epoch: int,
           run_dir: Path) -> str:  # fmt: skip
    """The line a run starts with: what trains where, in what precision, into which folder."""
    amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]
    n = sum(p.numel() for p in model.parameters())
    return (f"training {model_name} ({n:,} params, {model.num_classes} classes) on {device} x{world_size}, "
            f"{amp}, batch {batch}, {steps_per_epoch} steps/epoch -> {run_dir}")  # fmt: skip


def stop_message(reason: str, used_seconds: float, budget_minutes: float, step: int, patience: Any) -> str:
    """Why a run stopped early: its time budget, or patience (``yolov3.engine.budget.Patience``)."""
    if reason == "time":
        return (f"stopped at the time budget ({used_seconds / 60:.1f} of {budget_minutes:g} min) after step "
                f"{step}, the lr at its end value")  # fmt: skip
    p = patience
    return (f"stopped early: no better val mAP@0.5 in {p.stale} validations (patience {p.limit}); "
            f"best {p.best:.4g} at epoch {p.best_epoch}")  # fmt: skip


def gpu_memory_gb(device: torch.device) -> float | None:
    """Peak memory reserved on a CUDA device (GiB), None elsewhere."""
    return torch.cuda.max_memory_reserved(device) / 2**30 if device.type == "cuda" else None


def bar_postfix(sums: dict[str, float], count: int, lr: float, ips: float, device: torch.device) -> dict:
    """The progress bar's fields: running mean of each loss term, lr, images/s, GPU memory."""
    post = {k: f"{v / max(count, 1):.3g}" for k, v in sums.items()}
    post.update(lr=f"{lr:.2e}", **{"img/s": f"{ips:.1f}"})
    if (mem := gpu_memory_gb(device)) is not None:
        post["mem"] = f"{mem:.1f}G"
    return post


def epoch_summary(epoch: int, epochs: int, step: int, m: dict[str, float], device: torch.device) -> str:
    """The one line printed after each epoch."""
    parts = [f"epoch {epoch + 1}/{epochs}", f"step {step}",
             f"loss {m['loss/total_loss']:.4g} (giou {m['loss/giou_loss']:.3g} conf "
             f"{m['loss/conf_loss']:.3g} prob {m['loss/prob_loss']:.3g})",
             f"lr {m['lr']:.2e}", f"{m['img_per_s']:.1f} img/s"]  # fmt: skip
    parts += [f"{k} {v:.4g}" for k, v in m.items() if k.startswith("val/")]
    if (mem := gpu_memory_gb(device)) is not None:
        parts.append(f"{mem:.1f} GB")
    return "  ".join(parts)


@contextlib.contextmanager
def _writing(path: Path):
    """Turn a failed write (unwritable folder, full disk) into an error that names the file."""
    try:
        yield
    except OSError as exc:
        raise UserError(
            f"cannot write {path}: {exc.strerror or exc} (run folder not writable or disk full?)"
        ) from exc


class RunLogger:
    """TensorBoard (``tb/``), ``steps.csv`` (every optimiser step), ``results.csv`` (every epoch),
    ``train.log`` and the console, for one run folder. ``enabled=False`` (ranks > 0) does nothing."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.run_dir, self.enabled = Path(run_dir), enabled
        self._tb = None
        self._headers: dict[str, list[str]] = {}
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # heavy; only rank 0 pays for it

            self._tb = SummaryWriter(str(self.run_dir / "tb"))

    def save_config(self, config: dict[str, Any]) -> None:
        if self.enabled:
            with _writing(self.run_dir / "config.yaml"):
                (self.run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def step(self, step: int, scalars: dict[str, float]) -> None:
        """Per optimiser step: TensorBoard and ``steps.csv``."""
        if not self.enabled:
            return
        for k, v in scalars.items():
            self._tb.add_scalar(k, v, step)
        self._append_csv("steps.csv", {"step": step, **scalars})

    def epoch(self, epoch: int, step: int, scalars: dict[str, float]) -> None:
        """Per epoch: epoch means and validation metrics to TensorBoard and ``results.csv``."""
        if not self.enabled:
            return
        for k, v in scalars.items():
            self._tb.add_scalar(f"epoch/{k}" if not k.startswith("val/") else k, v, step)
        self._tb.flush()
        self._append_csv("results.csv", {"epoch": epoch, "step": step, **scalars})

    def message(self, text: str) -> None:
        """A line for the console (stderr, beside the progress bar) and ``train.log``."""
        if not self.enabled:
            return
        print(text, file=sys.stderr, flush=True)
        with _writing(self.run_dir / "train.log"), open(self.run_dir / "train.log", "a") as f:
            f.write(text + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def _append_csv(self, name: str, row: dict[str, Any]) -> None:
        with _writing(self.run_dir / name):
            self._append_row(self.run_dir / name, name, row)

    def _append_row(self, path: Path, name: str, row: dict[str, Any]) -> None:
        """Append ``row``; a column not seen before (validation appearing later) rewrites the header."""
        header = self._headers.get(name)
        if header is None and path.exists():
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
        if header and any(k not in header for k in row):
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            header = header + [k for k in row if k not in header]
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, header)
                w.writeheader()
                w.writerows(rows)
        new = not header
        header = header or list(row)
        self._headers[name] = header
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, header, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)


class SkipReport:
    """Unreadable images of a run, said once each on the console and in ``train.log``: at start-up,
    those the data set left out (and those found while filling the cache), counted with the first
    ``SHOWN`` named; then each one a loader worker replaces in a batch (the batch's ``skipped``)."""

    SHOWN = 3

    def __init__(self, log: RunLogger, spec: Any, loaders: tuple) -> None:
        self.log = log
        bad = {p.where: p.message for p in spec.report.problems if p.kind == "missing-image"}
        for loader in loaders:
            bad.update(getattr(getattr(loader, "dataset", None), "unreadable", {}))
        self.seen = set(bad)
        if bad:
            named = "; ".join(f"{path}: {why}" for path, why in list(bad.items())[: self.SHOWN])
            more = f" and {len(bad) - self.SHOWN} more" if len(bad) > self.SHOWN else ""
            log.message(f"{len(bad)} image(s) of the data set cannot be read and are left out "
                        f"(yolov3 data check lists them all): {named}{more}")  # fmt: skip

    def batch(self, batch: dict) -> None:
        for entry in batch.get("skipped", ()):
            path = entry.split(": ", 1)[0]
            if path not in self.seen:
                self.seen.add(path)
                self.log.message(
                    f"skipped unreadable training image {entry} (replaced by the next readable one)"
                )
