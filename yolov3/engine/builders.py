"""Objects a training run is made of, built from the typed settings: data, model, weights, freezing.

These are the only readers of ``ModelConfig`` / ``DataConfig`` / ``TrainConfig`` in the engine.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from yolov3.builder import build_model
from yolov3.config import DataConfig, ModelConfig, TrainConfig
from yolov3.darknet.weights import load_darknet_weights
from yolov3.data import prefetch
from yolov3.data.dataset import DetectionDataset
from yolov3.data.dataset_config import DatasetSpec, load_dataset
from yolov3.data.formats.common import SPLITS
from yolov3.data.formats.yolo_index import index_keys, trusting
from yolov3.data.loader import DetectionLoader, build_loader
from yolov3.data.shard_read import load_shards_spec
from yolov3.data.shard_stream import RecordItems, ShardLoader, ShardStream, build_shard_loader
from yolov3.data.shards import check_reachable, is_shards_config, read_shards_config
from yolov3.data.types import Sample
from yolov3.distributed import DistInfo, broadcast_object
from yolov3.errors import UserError
from yolov3.modelfile import CheckpointError, read_checkpoint


@dataclass
class RunData:
    """The data side of a run. ``train_loader`` yields the batch dicts of ``yolov3.data.loader``."""

    names: list[str]
    train_loader: DataLoader
    val_loader: DataLoader | None
    val_samples: Sequence[Sample]


def seed_everything(cfg: TrainConfig, rank: int) -> None:
    """Seed torch, NumPy's and Python's global generators with ``cfg.seed + rank`` (what libraries draw
    from; the data pipeline has its own per-item generators); deterministic algorithms when asked."""
    seed = cfg.seed + rank
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (seeds what libraries draw from)
    random.seed(seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not cfg.deterministic  # fastest conv per input shape


def load_spec(path: str, dist: DistInfo | None = None) -> DatasetSpec:
    """The data set, refusing one with no usable training image before anything is built. Under
    torchrun rank 0 reads it first (building or updating the split indexes, ``yolov3.data.index``)
    while the others wait, then they read the indexes it wrote, without listing the folders again
    (``yolov3.data.formats.yolo_index.trusting``)."""
    if not path:
        raise UserError("no data set given: pass --data path/to/data.yaml (or a Darknet .data)")
    if is_shards_config(path):  # train streams from its shards; val is read out of them once
        shards = read_shards_config(path)
        check_reachable(shards, ["train"])
        spec = load_shards_spec(path, splits=("val",))
        if not shards.samples("train"):
            raise UserError(f"{path}: no training shard listed; nothing to train on")
        return spec
    dist = dist or DistInfo()
    if dist.is_main:
        spec = prefetch.take(path) or load_dataset(path)
        broadcast_object(split_index_keys(spec), dist)  # the others wait for this, then read the same
    else:
        with trusting(broadcast_object(None, dist)):
            spec = load_dataset(path)
    if not spec.train:
        skipped = spec.report.skipped_images
        why = f" ({skipped} listed image(s) missing or unreadable)" if skipped else ""
        raise UserError(f"{path}: no usable training image{why}; nothing to train on")
    return spec


def split_index_keys(spec: DatasetSpec) -> dict[str, tuple[int, int, int]]:
    """The index files ``spec``'s splits were read from, with their keys (``index_keys``)."""
    return {k: v for split in SPLITS for k, v in index_keys(getattr(spec, split, None) or []).items()}


def build_run_data(
    spec: DatasetSpec, data_cfg: DataConfig, train_cfg: TrainConfig, model: nn.Module, dist: DistInfo
) -> RunData:
    """Train / val datasets and loaders. ``train_cfg.batch`` is the global batch, split over processes."""
    if train_cfg.batch % dist.world_size:
        raise UserError(f"--batch {train_cfg.batch} is not divisible by the {dist.world_size} processes")
    per_rank = train_cfg.batch // dist.world_size
    common = dict(
        num_classes=len(spec.names),
        img_size=data_cfg.img_size,
        anchors_px=model.anchors,
        strides=model.strides,
        cache=data_cfg.cache,
        seed=train_cfg.seed,
        max_boxes_per_scale=data_cfg.max_boxes_per_scale,
        positive_iou=data_cfg.positive_iou,
        label_smoothing=data_cfg.label_smoothing,
        warn=False,
    )  # the trainer reports skips itself
    if spec.format == "shards":
        train_loader = shard_train_loader(spec.source, data_cfg, train_cfg, common, per_rank, dist)
    else:
        train_ds = DetectionDataset(
            spec.train, augment=data_cfg.augment, hsv=data_cfg.hsv, mosaic=data_cfg.mosaic,
            tile=data_cfg.tile, min_visible=data_cfg.min_visible, **common,
        )  # fmt: skip
        train_loader = build_loader(
            train_ds, batch_size=per_rank, shuffle=True, workers=data_cfg.workers, seed=train_cfg.seed,
            distributed=dist.enabled, multi_scale=data_cfg.multi_scale, drop_last=False,
        )  # fmt: skip
    val_loader = None
    if spec.val and dist.is_main:
        val_ds = DetectionDataset(spec.val, augment=False, hsv=False, mosaic=False, **common)
        val_loader = build_loader(
            val_ds, batch_size=per_rank, shuffle=False, workers=data_cfg.workers, seed=train_cfg.seed,
            distributed=False, multi_scale=False, drop_last=False,
        )  # fmt: skip
    return RunData(list(spec.names), train_loader, val_loader, spec.val)


def shard_train_loader(path: str, data_cfg: DataConfig, train_cfg: TrainConfig, common: dict,
                       per_rank: int, dist: DistInfo) -> ShardLoader:  # fmt: skip
    """The training loader of a shards.yaml: this rank's share of the train shards, shuffled in a buffer
    (``yolov3.data.shard_stream``) through the folder loader's per-sample transform."""
    for flag, on in (("--mosaic", data_cfg.mosaic), ("--cache", data_cfg.cache), ("--tile", data_cfg.tile)):
        if on:
            raise UserError(
                f"{flag} reads a folder data set at random; {path} streams tar shards: leave it off"
            )
    items = RecordItems([], augment=data_cfg.augment, hsv=data_cfg.hsv, encode=False, **common)
    stream = ShardStream(read_shards_config(path).splits["train"], items, per_rank, shuffle=True,
                         seed=train_cfg.seed, rank=dist.rank, world=dist.world_size,
                         workers=data_cfg.workers, multi_scale=data_cfg.multi_scale)  # fmt: skip
    return build_shard_loader(stream, data_cfg.workers, train_cfg.seed)


def build_train_model(model_cfg: ModelConfig, train_cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The network for ``num_classes`` (the data set's), with ``--weights`` loaded and the backbone
    frozen when asked."""
    model = build_model(model_cfg, num_classes)
    if train_cfg.weights:
        load_initial_weights(model, train_cfg.weights, train_cfg.transfer)
    if train_cfg.freeze:
        freeze_backbone(model)
    return model


def load_initial_weights(model: nn.Module, path: str, transfer: bool) -> None:
    """Darknet ``.weights`` (full, or a truncated backbone such as ``darknet53.conv.74``) or a
    checkpoint (``.pt``). ``transfer``: tensors whose shapes differ (the output convolutions, for
    another class count) keep their initial values instead of being an error."""
    if Path(path).suffix.lower() in (".pt", ".pth"):
        _load_checkpoint_weights(model, path, transfer)
    else:
        load_darknet_weights(model, path, mode="transfer" if transfer else "prefix")


def _load_checkpoint_weights(model: nn.Module, path: str, transfer: bool) -> None:
    state = read_checkpoint(path)["model"]
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise CheckpointError(
            f"{path}: not this network ({len(missing)} tensors missing, first {missing[0]!r})"
        )
    differ = [k for k in own if state[k].shape != own[k].shape]
    if differ and not transfer:
        k = differ[0]
        raise CheckpointError(
            f"{path}: {k} has shape {tuple(state[k].shape)}, this model {tuple(own[k].shape)} "
            f"({len(differ)} tensors differ; another class count? use --transfer)"
        )
    model.load_state_dict({k: (own[k] if k in differ else state[k]) for k in own})


def freeze_backbone(model: nn.Module) -> None:
    """Stop gradients into ``model.backbone`` (its BN statistics are kept fixed by ``set_train_mode``)."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise UserError(f"--freeze: {type(model).__name__} has no backbone to freeze")
    for p in backbone.parameters():
        p.requires_grad_(False)


def set_train_mode(model: nn.Module, freeze_bn: bool = False) -> None:
    """``model.train()``, but BN layers stay in eval mode (running statistics, not the batch's) when
    frozen (all their parameters frozen) or when ``freeze_bn``."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if freeze_bn or not any(p.requires_grad for p in m.parameters()):
                m.eval()


def to_device_batch(batch: dict, device: torch.device, channels_last: bool) -> tuple:
    """``(images, labels, bboxes)`` of a loader batch on ``device``."""
    images = batch["images"].to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = [x.to(device, non_blocking=True) for x in batch["labels"]]
    bboxes = [x.to(device, non_blocking=True) for x in batch["bboxes"]]
    return images, labels, bboxes


class _SkipBatches(Sampler):
    """The batches of ``inner`` after the first ``k`` (indices only: no image is loaded for them)."""

    def __init__(self, inner: Sampler, k: int) -> None:
        self.inner, self.k = inner, k

    def __iter__(self):
        batches = iter(self.inner)
        for _ in range(self.k):
            next(batches, None)
        yield from batches

    def __len__(self) -> int:
        return max(len(self.inner) - self.k, 0)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell whatever in ``loader`` keys its shuffling or augmentation by the epoch (dataset, sampler,
    batch sampler, the batch sampler's sampler) which epoch this is."""
    inner = getattr(loader.batch_sampler, "sampler", None)
    candidates = (loader.dataset, loader.sampler, loader.batch_sampler, inner)
    holders = {id(h): h for h in candidates if h is not None}
    for holder in holders.values():
        if hasattr(holder, "set_epoch"):
            holder.set_epoch(epoch)


def samples_done(loader: DataLoader, k: int, dist: DistInfo) -> int:
    """The samples the first ``k`` batches of an epoch hold, all processes together."""
    if isinstance(loader, ShardLoader):
        return loader.dataset.samples_before(k) * dist.world_size
    size, n = loader.batch_sampler.batch_size, len(loader.batch_sampler.sampler)
    return min(k * size, n) * dist.world_size


def check_samples_done(loader: DataLoader, ckpt: dict, dist: DistInfo) -> None:
    """A resume from shards must cut the epoch where the checkpoint did: its ``epoch_step`` batches
    must hold its ``epoch_samples`` (they do not when ``--workers`` or ``--batch`` changed)."""
    saved, k = ckpt.get("epoch_samples"), int(ckpt.get("epoch_step", 0))
    if saved is None or not isinstance(loader, ShardLoader):
        return
    now = samples_done(loader, k, dist)
    if now != saved:
        raise UserError(f"cannot resume mid-epoch from tar shards: the checkpoint's {k} batches held {saved} "
                        f"samples, with these settings they hold {now}; resume with the run's --workers "
                        "and --batch")  # fmt: skip


def rest_of_epoch(loader: DataLoader, k: int):
    """An iterator over ``loader``'s current epoch from batch ``k`` on (a mid-epoch resume).

    ``DetectionLoader`` batches depend only on (seed, epoch, index), so the first ``k`` are skipped
    by index, loading nothing; any other loader is replayed (its first ``k`` batches loaded and
    dropped) so that whatever random state it draws from advances exactly as in the original run.
    """
    if isinstance(loader, ShardLoader):  # each worker starts at its shard and offset
        return loader.from_batch(k)
    if isinstance(loader, DetectionLoader) and k:
        partial = DataLoader(
            loader.dataset, batch_sampler=_SkipBatches(loader.batch_sampler, k),
            num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
            worker_init_fn=loader.worker_init_fn, generator=loader.generator,
        )  # fmt: skip
        return iter(partial)
    batches = iter(loader)
    for _ in range(k):
        next(batches)
    return batches
