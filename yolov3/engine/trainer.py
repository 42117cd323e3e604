"""The training loop: the seed's recipe (loss, Adam, warmup + cosine) in a resumable, observable run.

``train(model_cfg, data_cfg, train_cfg, resume=None) -> dict`` is the API; ``yolov3 train`` calls
it, and so does each process under ``torchrun``. The run folder (``project/name``) holds
``config.yaml``, ``weights/last.pt`` / ``best.pt``, ``tb/`` (TensorBoard), ``steps.csv``,
``results.csv`` and ``train.log``; only rank 0 writes there.

Resume is exact in deterministic CPU mode: a checkpoint stores the step, the batches done in the
epoch and the RNG states at the start of the epoch and at the step. A resumed run skips the
batches already trained on (by index for ``DetectionLoader``, whose batches depend only on seed,
epoch and index; by replaying them for any other loader), restores the step's RNG state and
continues bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from yolov3 import distributed as ddp
from yolov3.config import DataConfig, InferConfig, ModelConfig, TrainConfig, from_dict, to_dict, upgrade_saved
from yolov3.console import Progress
from yolov3.device import keep_freed_memory, select_device
from yolov3.engine import builders
from yolov3.engine.budget import Budget, Patience
from yolov3.engine.ema import ModelEMA
from yolov3.engine.logging import (
    RunLogger,
    SkipReport,
    banner,
    bar_postfix,
    epoch_summary,
    seed_scalars,
    stop_message,
)
from yolov3.engine.options import build_configs, resume_checkpoint
from yolov3.engine.schedule import lr_at, schedule_steps, set_lr
from yolov3.engine.state import TrainingStopped, TrainState, check_resumable, rng_state, set_rng_state
from yolov3.engine.step import build_step
from yolov3.engine.validate import fitness, validate
from yolov3.files import make_dir, next_run_dir
from yolov3.loss import LOSS_TERMS
from yolov3.modelfile import CheckpointError, ModelMeta, read_checkpoint, write_torch


def train(
    model_cfg: ModelConfig | None = None,
    data_cfg: DataConfig | None = None,
    train_cfg: TrainConfig | None = None,
    resume: str | Path | None = None,
    config: str | Path | dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Train and return the run's metrics (last epoch's losses and validation, ``best_fitness``,
    ``run_dir``). ``options``: the training options by name (``data=``, ``model=``, ``epochs=``,
    ``img_size=``, ``batch=``... see ``yolov3.engine.options.OPTIONS``) over ``config`` (a YAML file or
    mapping with model / data / train sections) or the given config objects. With ``resume`` (a run
    folder or a ``.pt``), what is not given comes from the checkpoint; a different model or class list
    is refused, naming what differs.

    >>> yolov3.train(data="data.yaml", model="yolov3", weights="darknet53.conv.74", epochs=30)
    """
    if options or config is not None:
        if config is None:
            given = (("model", model_cfg), ("data", data_cfg), ("train", train_cfg))
            config = {k: to_dict(c) for k, c in given if c is not None}
        model_cfg, data_cfg, train_cfg = build_configs(options, config, resume)
    return Trainer(model_cfg, data_cfg, train_cfg, resume=resume).fit()


class Trainer:
    """One run. ``fit()`` trains; the methods below are its steps, each short."""

    def __init__(
        self,
        model_cfg: ModelConfig | None,
        data_cfg: DataConfig | None,
        train_cfg: TrainConfig | None,
        resume: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        ckpt = read_checkpoint(resume_checkpoint(resume)) if resume else None
        if ckpt is not None and "optimizer" not in ckpt:
            raise CheckpointError(f"--resume {resume}: this checkpoint holds the weights only (as best.pt "
                                  "does); resume from the run's last.pt (--resume runs/NAME), or start "
                                  "a run from these weights with --weights")  # fmt: skip
        saved = upgrade_saved(ckpt.get("config", {})) if ckpt else {}
        given = {"model": model_cfg, "data": data_cfg, "train": train_cfg}
        cfgs = {
            k: given[k] or from_dict(cls, saved.get(k), f"{resume}: config.{k}")
            for k, cls in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig))
        }
        self.model_cfg, self.data_cfg, self.cfg = cfgs["model"], cfgs["data"], cfgs["train"]
        self.dist = ddp.env_dist_info()
        self.device = ddp.init_distributed(self.dist, select_device(self.cfg.device))
        builders.seed_everything(self.cfg, self.dist.rank)
        spec = builders.load_spec(self.data_cfg.path, self.dist)
        if ckpt:
            check_resumable(ckpt, to_dict(self.model_cfg), list(spec.names), str(resume))
        self.run_dir = self._run_dir(resume)
        self.log = RunLogger(self.run_dir, enabled=self.dist.is_main)
        self._build_model(len(spec.names))
        self.data = builders.build_run_data(spec, self.data_cfg, self.cfg, self.raw_model, self.dist)
        # validation: the seed's test settings with mAP's score threshold, at the training size and precision;
        # with --tile, sliced at that tile, as the model will detect on the large pictures it trains for
        self.val_settings = InferConfig.for_map(img_size=self.data_cfg.img_size, amp=self.cfg.amp,
                                                tile=self.data_cfg.tile or None)  # fmt: skip
        self.steps_per_epoch = math.ceil(len(self.data.train_loader) / self.cfg.accumulate)
        self.warmup_steps, self.total_steps = schedule_steps(self.cfg, self.steps_per_epoch)
        self.state = TrainState()
        self.rng_epoch = self.rng_step = None
        self._resuming = ckpt is not None
        self._last_terms: dict[str, float] = {}
        self._window_bad = False  # a non-finite loss in the current accumulation window
        self.budget = Budget(self.cfg.time * 60.0, float(ckpt.get("time_used", 0.0)) if ckpt else 0.0, clock)
        self.patience = Patience(self.cfg.patience)
        self._val_images = len(self.data.val_samples) if self.data.val_loader is not None else 0
        self.stop_reason: str | None = None  # "time" or "patience" once the run decides to stop early
        if ckpt:
            self._restore(ckpt)
        self.log.save_config(self.config_dict())
        self.skips = SkipReport(self.log, spec, (self.data.train_loader, self.data.val_loader))

    # ------------------------------------------------------------------ set-up
    def _run_dir(self, resume: str | Path | None) -> Path:
        if resume:
            path = Path(resume_checkpoint(resume)).parent.parent
        elif self.dist.is_main:
            path = next_run_dir(self.cfg.project, self.cfg.name, self.cfg.exist_ok)
            make_dir(path / "weights", "run folder")
        else:
            path = None
        return Path(ddp.broadcast_object(str(path) if path else None, self.dist))

    def _build_model(self, num_classes: int) -> None:
        model = builders.build_train_model(self.model_cfg, self.cfg, num_classes)
        model.to(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # the step's buffers reused rather than faulted in afresh
        if self.cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        self.raw_model = model
        self.ema = ModelEMA(model, self.cfg.ema_decay) if self.cfg.ema and self.dist.is_main else None
        self.model = ddp.wrap_model(model, self.dist, self.device, self.cfg.sync_bn)
        if self.cfg.compile:
            self.model = torch.compile(self.model)
        self.train_step = build_step(model, self.cfg, self.device, net=self.model, ema=self.ema)
        self.optimizer, self.scaler = self.train_step.optimizer, self.train_step.scaler
        self.criterion, self.amp_dtype = self.train_step.criterion, self.train_step.amp_dtype

    def config_dict(self) -> dict[str, Any]:
        return {"model": to_dict(self.model_cfg), "data": to_dict(self.data_cfg), "train": to_dict(self.cfg)}

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, model_state: dict | None = None, resumable: bool = True) -> dict[str, Any]:
        """What ``last.pt`` holds (``yolov3.engine.state``); without ``resumable`` (``best.pt``) only the
        weights, their meta and where they came from: no optimiser, scaler, EMA or RNG state, which
        only a resume needs and which is two thirds of the file."""
        raw = self.raw_model
        kept = {
            "model": model_state if model_state is not None else raw.state_dict(),
            # the size validation ran at: a bare `yolov3 val` of the file reproduces the run's mAP
            "meta": ModelMeta.of_model(
                raw, self.data.names, self.data_cfg.img_size, self.model_cfg.name
            ).to_dict(),
            "step": self.state.step,
            "epoch": self.state.epoch,
            "best_fitness": self.state.best_fitness,
            "metrics": dict(self.state.metrics),
            "config": self.config_dict(),
            "names": list(self.data.names),
        }
        if not resumable:
            return kept
        return {
            **kept,
            **self.train_step.state_dict(),  # optimizer, scaler, ema
            "epoch_step": self.state.epoch_step,
            "epoch_samples": builders.samples_done(self.data.train_loader, self.state.epoch_step, self.dist),
            "rng": self.rng_step or rng_state(),
            "rng_epoch": self.rng_epoch,
            "time_used": self.budget.used(),
            "warm_end": self.budget.warm_end,
            "patience": dataclasses.asdict(self.patience),
        }

    def save(self, name: str = "last", model_state: dict | None = None) -> Path | None:
        """``weights/{name}.pt``; only ``last`` can be resumed from (``checkpoint``)."""
        if not self.dist.is_main:
            return None
        with self.budget.timing("save"):
            ckpt = self.checkpoint(model_state, resumable=name == "last")
            return write_torch(ckpt, self.run_dir / "weights" / f"{name}.pt")

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.raw_model.load_state_dict(ckpt["model"])
        self.train_step.load_state_dict(ckpt)
        self.state = s = TrainState.from_checkpoint(ckpt)
        builders.check_samples_done(self.data.train_loader, ckpt, self.dist)  # shards: cut where it was
        self.rng_epoch, self.rng_step = ckpt.get("rng_epoch"), ckpt.get("rng")
        self.budget.warm_end = ckpt.get("warm_end")
        self.patience = Patience(self.cfg.patience, **{k: v for k, v in (ckpt.get("patience") or {}).items()
                                                       if k != "limit"})  # fmt: skip
        if self.dist.enabled:  # each process saved only rank 0's RNG: offset as at start-up
            self.rng_epoch = self.rng_step = None
        self.log.message(
            f"resumed {self.run_dir} at epoch {s.epoch + 1}, batch {s.epoch_step}, step {s.step}"
        )

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        line = banner(self.model_cfg.name, self.raw_model, self.device, self.dist.world_size, self.amp_dtype,
                      self.cfg.batch, self.steps_per_epoch, self.run_dir)  # fmt: skip
        self.log.message(line)
        if self.state.epoch >= self.cfg.epochs:
            self.log.message(
                f"already trained {self.state.epoch}/{self.cfg.epochs} epochs; --epochs N trains on"
            )
        try:
            for epoch in range(self.state.epoch, self.cfg.epochs):
                epoch_means = self.train_epoch(epoch)
                self.end_epoch(epoch, epoch_means)
                if self.stop_reason:
                    break
        except KeyboardInterrupt:
            path = self.save("last")
            self.log.message(
                f"interrupted; saved {path}; continue with: yolov3 train --resume {self.run_dir}"
            )
            raise
        finally:
            self.log.close()
        ddp.barrier(self.dist)
        ddp.cleanup(self.dist)
        s = self.state
        done = s.epoch + s.epoch_step / max(len(self.data.train_loader), 1)
        return {**s.metrics, "best_fitness": s.best_fitness, "run_dir": str(self.run_dir), "steps": s.step,
                "epochs_done": round(done, 2), "stopped": self.stop_reason or "epochs",
                "time_used": self.budget.used()}  # fmt: skip

    def _epoch_batches(self, epoch: int):
        """The epoch's loader iterator; on a mid-epoch resume, from the first batch not yet trained."""
        loader = self.data.train_loader
        builders.set_epoch(loader, epoch)
        skip = self.state.epoch_step if epoch == self.state.epoch else 0
        resumed_state = (self.rng_epoch if skip else self.rng_step) if self._resuming else None
        if resumed_state is not None:  # continue the uninterrupted run's random streams
            set_rng_state(resumed_state)
        self._resuming = False
        self.rng_epoch = rng_state()
        batches = builders.rest_of_epoch(loader, skip)
        if skip and self.rng_step is not None:
            set_rng_state(self.rng_step)
        return batches, skip

    def train_epoch(self, epoch: int) -> dict[str, float]:
        batches, start = self._epoch_batches(epoch)
        self.state.epoch, n_batches = epoch, len(self.data.train_loader)
        builders.set_train_mode(self.model, self.cfg.freeze_bn)
        sums, count, t0, images = dict.fromkeys(LOSS_TERMS + ("total",), 0.0), 0, time.time(), 0
        bar = Progress(n_batches, f"epoch {epoch + 1}/{self.cfg.epochs}", "batch", self.dist.is_main, start)
        self._window_bad = False
        for i, batch in enumerate(batches, start=start):
            self.skips.batch(batch)
            with self.budget.timing("step"):
                terms = self.train_batch(batch, i, n_batches)
            images += len(batch["images"])
            if terms is not None:
                count += 1
                for k in sums:
                    sums[k] += terms[k]
            ips = images / max(time.time() - t0, 1e-9)
            bar.set_postfix(bar_postfix(sums, count, self.optimizer.param_groups[0]["lr"], ips, self.device))
            bar.update()
            if self._time_is_up():
                self.stop_reason = "time"
                break
        bar.close()
        means = {k: v / max(count, 1) for k, v in sums.items()}
        means = ddp.mean_over_processes(means, self.dist, self.device)
        means["img_per_s"] = images * self.dist.world_size / max(time.time() - t0, 1e-9)
        return means

    @property
    def _val_estimate(self) -> float:
        return self.budget.val_estimate(self._val_images, self.cfg.batch // self.dist.world_size)

    def _time_is_up(self) -> bool:
        """The budget left covers no more than the last validation and checkpoints (every process stops
        when one does, so they stay in step)."""
        if not self.budget.enabled:
            return False
        return not ddp.all_true(not self.budget.must_stop(self._val_estimate), self.dist, self.device)

    def train_batch(self, batch: dict, i: int, n_batches: int) -> dict[str, float] | None:
        """Forward, loss, backward for one batch (``self.train_step``: ``yolov3.engine.step``);
        an optimiser step at the end of each accumulation window. Returns the loss terms, or None when
        the batch was skipped (non-finite loss)."""
        images, labels, bboxes = builders.to_device_batch(batch, self.device, self.cfg.channels_last)
        last = (i + 1) % self.cfg.accumulate == 0 or i + 1 == n_batches
        sync = contextlib.nullcontext() if last or not self.dist.enabled else self.model.no_sync()
        with sync:
            terms = self.train_step.loss(images, labels, bboxes)
            finite = ddp.all_true(bool(torch.isfinite(terms["total"])), self.dist, self.device)
            if finite:
                self.train_step.backward(terms)
                self._last_terms = {k: float(v.detach()) for k, v in terms.items()}
        if not finite:
            self._bad_batch(batch, terms)
        if last:
            self.optimizer_step(i)
        return self._last_terms if finite else None

    def optimizer_step(self, i: int) -> None:
        bad, self._window_bad = self._window_bad, False
        lr = self.optimizer.param_groups[0]["lr"]
        if not bad:
            time_progress = self.budget.progress(self._val_estimate)
            lr = lr_at(self.state.step + 1, self.cfg.lr_init, self.cfg.lr_end, self.warmup_steps,
                       self.total_steps, time_progress)  # fmt: skip
            set_lr(self.optimizer, lr)
            stepped, norm = self.train_step.apply()  # unscale, clip, optimiser and EMA
            bad = not stepped
            if bad:
                self._bad_batch(None, {"grad_norm": norm})
        if not bad:
            self.state.step += 1
            self.state.bad_steps = 0
            if self.budget.warm_end is None and self.state.step >= self.warmup_steps:
                self.budget.warm_end = self.budget.used()
        self.optimizer.zero_grad(set_to_none=True)
        self._window_bad = False  # the next accumulation window starts clean
        self.state.epoch_step = i + 1
        self.rng_step = rng_state()
        if not bad:
            self.log.step(self.state.step, seed_scalars(self._last_terms, lr))
        if self.cfg.save_period and not bad and self.state.step % self.cfg.save_period == 0:
            self.save("last")

    def _bad_batch(self, batch: dict | None, terms: dict) -> None:
        """A non-finite loss or gradient: the step is skipped; after ``max_bad_steps`` in a row the
        run saves ``last`` and stops."""
        self._window_bad = True
        self.optimizer.zero_grad(set_to_none=True)
        self.state.bad_steps += 1
        values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
        paths = list(batch["paths"]) if batch is not None else []
        self.log.message(f"step {self.state.step + 1}: non-finite {values}; skipped. images: {paths}")
        if self.state.bad_steps >= self.cfg.max_bad_steps:
            path = self.save("last")
            raise TrainingStopped(
                f"{self.state.bad_steps} consecutive non-finite steps; stopped and saved {path}. "
                "Try a lower --lr-init, --amp off, or --clip-grad 10."
            )

    def end_epoch(self, epoch: int, means: dict[str, float]) -> None:
        """Validate (every ``val_interval`` epochs as the budget allows, and always last), log, save
        last / best; decide whether patience runs out."""
        s = self.state
        if s.epoch_step >= len(self.data.train_loader):  # the epoch is complete (not cut by the clock)
            s.epoch, s.epoch_step = epoch + 1, 0
        final = epoch + 1 == self.cfg.epochs or self.stop_reason is not None
        due = (epoch + 1) % self.cfg.val_interval == 0 and self.budget.may_validate(self._val_estimate)
        val = {}
        if self.dist.is_main and (due or final):
            with self.budget.timing("validation"):
                val = validate(self.eval_model(), self.data, self.criterion, self.device, self.amp_dtype,
                               self.val_settings, self.cfg.channels_last)  # fmt: skip
        val = ddp.broadcast_object(val, self.dist)  # every process returns rank 0's metrics
        lr = self.optimizer.param_groups[0]["lr"]
        s.metrics = {**seed_scalars(means, lr), "img_per_s": means["img_per_s"], **val}
        improved = bool(val) and fitness(s.metrics) > s.best_fitness
        if improved:
            s.best_fitness = fitness(s.metrics)
        if self.patience.update(val.get("val/map50"), epoch + 1) and not self.stop_reason:
            self.stop_reason = "patience"
        self.rng_step = rng_state()  # after validation, which draws from the RNGs too
        self.log.epoch(epoch + 1, s.step, s.metrics)
        self.log.message(epoch_summary(epoch, self.cfg.epochs, s.step, s.metrics, self.device))
        self.save("last")
        if improved or (final and not (self.run_dir / "weights" / "best.pt").exists()):
            self.save("best", self.eval_model().state_dict())
        if self.stop_reason:
            used = self.budget.used()
            self.log.message(
                stop_message(self.stop_reason, used, self.cfg.time, self.state.step, self.patience)
            )
        ddp.barrier(self.dist)

    def eval_model(self) -> torch.nn.Module:
        """What validation and ``best.pt`` use: the EMA when kept, else the trained model."""
        return self.ema.module if self.ema else self.raw_model
