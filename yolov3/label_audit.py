"""``yolov3.audit(weights, data)``: the label audit of a split (``yolov3 data audit``; issue 24).

The default audits ``split`` (``val``) with the given model: one pass of the model over it (score
threshold 0.001 as ``val``, so that weak predictions count against ``spurious``), then
``yolov3.evaluate.audit.audit_labels``. A model trained on the audited images has learnt their
errors; ``folds=K`` (K >= 2) instead splits the images into K folds (a seeded shuffle), trains K models
of the given model's architecture, input size and anchors from scratch, model ``k`` on the other folds
on a clock (``time`` minutes split evenly; ``yolov3 train --time``), and predicts fold ``k`` with model
``k``: every image is scored out of sample. The given weights then only name the architecture.

With ``out``: ``issues.jsonl`` (every record, worst image first), ``proposals.json`` (the flagged
fixes as COCO, ``proposals_coco``), ``audit.html`` (``audit_html``) and, with folds, ``folds/`` (each
fold's image list, data.yaml and training run).

    import yolov3
    issues = yolov3.audit("runs/train/exp/weights/best.pt", "data.yaml", out="runs/audit/exp")
    print(issues[0].kind, issues[0].score, issues[0].path, issues[0].fix)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from yolov3.config import InferConfig
from yolov3.console import note
from yolov3.data.dataset_config import DatasetSpec
from yolov3.data.types import Sample
from yolov3.device import select_device
from yolov3.engine.trainer import train
from yolov3.errors import UserError
from yolov3.evaluate.api import prepare
from yolov3.evaluate.audit import AuditThresholds, LabelIssue, audit_labels, proposals_coco, write_issues
from yolov3.evaluate.audit_html import write_audit_html
from yolov3.evaluate.evaluator import run_detector
from yolov3.files import atomic_writer
from yolov3.infer.detector import Detector
from yolov3.infer.results import Detections
from yolov3.modelfile import load_model


def audit(weights: str | os.PathLike, data: str | os.PathLike, split: str = "val", folds: int = 0,
          time: float = 0.0, epochs: int = 300, batch: int = 16, device: str = "auto",
          cfg: str | os.PathLike | None = None, names: str | os.PathLike | list[str] | None = None,
          backend: str = "auto", batch_size: int = 8, settings: InferConfig | None = None, workers: int = 2,
          out: str | os.PathLike | None = None, gallery: int = 24, progress: bool = False,
          thresholds: AuditThresholds | None = None, seed: int = 0,
          backend_options: dict[str, Any] | None = None, **overrides: Any) -> list[LabelIssue]:  # fmt: skip
    """The records of ``split`` of ``data`` (module docstring), worst image first. ``folds``: 0 (the
    given model) or K >= 2 (out-of-sample models trained for ``time`` minutes in all, at most
    ``epochs`` each, ``batch`` images a step; ``time`` must be > 0). ``settings``: the
    prediction settings (default ``InferConfig.for_map()``; ``overrides``: its fields, as ``val`` takes
    them); ``backend_options``: as ``val``'s."""
    if folds == 1 or folds < 0:
        raise UserError(f"--folds {folds}: expected 0 (audit with the given model) or 2 or more folds "
                        "(each fold scored by a model trained on the others)")  # fmt: skip
    if folds and time <= 0:
        raise UserError(f"--folds {folds} trains {folds} models on a clock: give --time MINUTES (all folds)")
    if gallery < 0:
        raise UserError(f"gallery {gallery}: expected the number of images to show, 0 or more")
    if split == "train" and not folds:
        note("auditing the split the model was most likely trained on: it has learnt its label errors, "
             "which then hide; --folds K scores every image with a model that never saw it")
    settings = (settings or InferConfig.for_map()).replace(**overrides)
    spec, samples, det = prepare(weights, data, split, names, cfg=cfg, device=str(select_device(device)),
                                 backend=backend, batch_size=batch_size, settings=settings,
                                 backend_options=backend_options)  # fmt: skip
    if folds:
        run = Path(out) if out is not None else Path("runs/audit/folds")
        dets, kept = _fold_predictions(det, weights, cfg, spec, samples, folds, run / "folds", time, epochs,
                                       batch, device, settings, workers, seed)  # fmt: skip
    else:
        dets, kept, _ = run_detector(det, samples, workers, progress)
    if not kept:
        raise UserError(f"{data}: no image of split '{split}' could be read")
    audited = [samples[i] for i in kept]
    truth = [(s.boxes, s.classes) for s in audited]
    records = audit_labels(dets, truth, [s.image for s in audited], thresholds or AuditThresholds())
    if out is not None:
        title = f"Label audit: {weights} on {data} ({split})"
        _write(records, audited, spec.names, Path(out), title, gallery)
    return records


def _write(records: list[LabelIssue], samples: Sequence[Sample], names: Sequence[str], out: Path, title: str,
           gallery: int) -> None:  # fmt: skip
    write_issues(records, out / "issues.jsonl")
    with atomic_writer(out / "proposals.json") as f:
        f.write(json.dumps(proposals_coco(records, samples, names)).encode("utf-8"))
    write_audit_html(records, samples, names, out / "audit.html", title, gallery)


def fold_of(n: int, folds: int, seed: int = 0) -> np.ndarray:
    """``(n,)`` the fold of each image: a seeded shuffle dealt round-robin, so folds differ by one at most."""
    fold = np.empty(n, np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return fold


def _fold_data(spec: DatasetSpec, images: Sequence[str], folder: Path) -> Path:
    """``folder/data.yaml`` training on ``images`` (listed in ``folder/train.txt``), no val split."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("".join(f"{Path(p).resolve()}\n" for p in images))
    doc = {"path": str(folder.resolve()), "train": "train.txt", "names": list(spec.names)}
    (folder / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder / "data.yaml"


def _fold_predictions(det: Detector, weights: str | os.PathLike, cfg: str | os.PathLike | None,
                      spec: DatasetSpec, samples: list[Sample], folds: int, root: Path,
                      minutes: float, epochs: int, batch: int, device: str, settings: InferConfig,
                      workers: int, seed: int) -> tuple[list[Detections], list[int]]:  # fmt: skip
    """Predictions on every sample by the model of its fold (module docstring), in sample order."""
    if len(samples) < folds:
        raise UserError(f"--folds {folds}: the split has only {len(samples)} images")
    fold = fold_of(len(samples), folds, seed)
    model = _architecture(weights, cfg)
    found: dict[int, Detections] = {}
    for k in range(folds):
        yaml_path = _fold_data(spec, [s.image for s, f in zip(samples, fold) if f != k], root / f"fold{k}")
        result = train(data=str(yaml_path), **model, time=minutes / folds, epochs=epochs, batch=batch,
                       device=device, project=str(root), name=f"fold{k}/train", exist_ok=True,
                       seed=seed + k)  # fmt: skip
        weights = Path(result["run_dir"]) / "weights"
        best = weights / "best.pt" if (weights / "best.pt").is_file() else weights / "last.pt"
        fold_det = Detector.load(best, device=str(det.device), settings=settings, batch_size=det.batch_size)
        own = np.flatnonzero(fold == k)
        dets, kept, _ = run_detector(fold_det, [samples[i] for i in own], workers)
        found.update({int(own[j]): d for j, d in zip(kept, dets)})
    kept = sorted(found)
    return [found[i] for i in kept], kept


def _architecture(weights: str | os.PathLike, cfg: str | os.PathLike | None) -> dict[str, Any]:
    """The training options that rebuild the network of ``weights``: name, width, anchors, input size."""
    if Path(weights).suffix.lower() not in (".pt", ".pth", ".safetensors", ".weights"):
        raise UserError(f"{weights}: --folds trains models like this one and reads their architecture "
                        "from it: give a checkpoint (.pt / .safetensors) or Darknet .weights with --cfg")
    _, meta = load_model(weights, cfg)
    return {"model": meta.arch, "width": meta.width, "img_size": meta.img_size,
            "anchors": [[list(map(float, wh)) for wh in scale] for scale in meta.anchors]}  # fmt: skip
