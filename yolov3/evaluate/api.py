"""``yolov3.val(weights, data)``: score a weights file on a data set's labelled split (what ``yolov3
val`` runs), writing the summary JSON and the plots when given an output folder. ``yolov3.analyze``:
the TIDE error analysis of the same run (what ``yolov3 analyze`` runs).

    import yolov3
    result = yolov3.val("runs/train/exp/weights/best.pt", "data.yaml", out="runs/val/exp")
    print(result.summary["map50"], result.summary["coco"]["AP"])
    print(yolov3.analyze("runs/train/exp/weights/best.pt", "data.yaml").summary["dap"])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.distributed as dist

from yolov3.config import InferConfig, load_yaml
from yolov3.data.dataset_config import DatasetSpec, load_dataset
from yolov3.data.types import Sample
from yolov3.device import select_device
from yolov3.distributed import DistInfo, broadcast_object, env_dist_info, init_distributed, shard_indices
from yolov3.errors import UserError
from yolov3.evaluate.error_html import write_error_html
from yolov3.evaluate.error_report import ErrorAnalysis, analyze_errors
from yolov3.evaluate.evaluator import (
    Evaluation,
    check_labelled,
    evaluate,
    evaluate_detections,
    ground_truth_of,
    run_detector,
)
from yolov3.evaluate.plots import save_plots
from yolov3.evaluate.report import write_summary
from yolov3.infer.detector import Detector
from yolov3.infer.results import Detections


def coco_annotation_file(data: str | os.PathLike, split: str) -> Path | None:
    """The split's COCO annotation file when ``data`` is a COCO-format data.yaml with a single one."""
    data = Path(data)
    if data.suffix.lower() not in (".yaml", ".yml"):
        return None
    cfg = load_yaml(data)
    if str(cfg.get("format", "")).lower() != "coco":
        return None
    entry = cfg.get(split)
    entry = entry.get("annotations") if isinstance(entry, dict) else entry
    if not isinstance(entry, str) or not entry.endswith(".json"):
        return None
    root = Path(cfg["path"]) if cfg.get("path") else data.parent
    root = root if root.is_absolute() else data.parent / root
    path = Path(entry) if Path(entry).is_absolute() else root / entry
    return path if path.is_file() else None


def evaluate_sharded(detector: Detector, samples: Sequence[Sample], names: list[str], info: DistInfo,
                     workers: int, progress: bool, **score: Any) -> Evaluation:  # fmt: skip
    """``evaluate`` under ``torchrun``: rank ``r`` of ``N`` detects on samples ``r, r + N...``, rank 0
    gathers the detections (boxes only), puts them back in sample order and scores them once with
    ``evaluate_detections`` (so the metrics are those of one process); every rank returns the result."""
    own = list(shard_indices(len(samples), info))
    dets, kept, speed = run_detector(detector, [samples[i] for i in own], workers, progress and info.is_main)
    mine = ([own[k] for k in kept], dets, speed)
    gathered: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(mine, gathered, dst=0)
    result: Evaluation | str | None = "no image of the validation set could be read"
    pairs = sorted(((i, d) for idx, ds, _ in gathered or [] for i, d in zip(idx, ds)), key=lambda p: p[0])
    if pairs:
        result = evaluate_detections([d for _, d in pairs], [samples[i] for i, _ in pairs], names, **score)
        n = {r: len(g[0]) for r, g in enumerate(gathered)}  # type: ignore[arg-type]
        result.summary["speed_ms"] = {k: round(sum(g[2][k] * n[r] for r, g in enumerate(gathered))
                                               / max(1, sum(n.values())), 3) for k in speed}  # fmt: skip
        result.summary["img_size"] = detector.img_size
        result.summary["processes"] = info.world_size
    result = broadcast_object(result, info)
    if isinstance(result, str):
        raise UserError(result)
    return result


def val(
    weights: str | os.PathLike,
    data: str | os.PathLike,
    split: str = "val",
    cfg: str | os.PathLike | None = None,
    names: str | os.PathLike | list[str] | None = None,
    device: str = "auto",
    backend: str = "auto",
    batch_size: int = 8,
    settings: InferConfig | None = None,
    coco: bool = True,
    coco_gt: str | os.PathLike | None = None,
    coco_backend: str = "auto",
    workers: int = 2,
    out: str | os.PathLike | None = None,
    plots: bool = True,
    progress: bool = False,
    backend_options: dict[str, Any] | None = None,
    analyze: bool = False,
    **overrides: Any,
) -> Evaluation:
    """Load ``weights`` (checkpoint, Darknet ``.weights`` + ``cfg``, ONNX...), detect on ``split`` of
    ``data`` and score it (``yolov3.evaluate.evaluator``). ``settings`` / ``overrides``: the
    ``InferConfig``, default ``InferConfig.for_map()`` (the seed's test settings with score threshold
    0.001). The weights' class count must equal the data set's; Darknet weights take the data set's
    names. COCO-format data is scored against its own annotation file unless ``coco_gt`` names
    another. With ``out``: ``summary.json`` and PNGs (rank 0 only). Under ``torchrun`` (``RANK`` /
    ``WORLD_SIZE`` set) the images are shared out (``evaluate_sharded``). ``backend_options``: as
    ``Detector.load`` takes them (``threads``, ``hint``...). ``analyze`` (one process): also ``analyze``
    of the same detections as ``result.analysis`` (with ``out``: ``analysis.json`` / ``.html``)."""
    settings = (settings or InferConfig.for_map()).replace(**overrides)
    dev = init_distributed(info := env_dist_info(), select_device(device))
    if analyze and info.enabled:
        raise UserError("val --analyze runs in one process: run it without torchrun")
    spec, samples, det = prepare(weights, data, split, names, cfg=cfg, device=str(dev), backend=backend,
                                 batch_size=batch_size, settings=settings, backend_options=backend_options)
    gt_file = coco_gt or (coco_annotation_file(data, split) if coco else None)
    score = dict(coco=coco, coco_gt=gt_file, category_ids=spec.category_ids, coco_backend=coco_backend)
    if info.enabled:
        result = evaluate_sharded(det, samples, spec.names, info, workers, progress, **score)
    else:
        result = _evaluate(det, samples, spec.names, workers, progress, score, analyze)
    head = {"weights": str(weights), "data": str(data), "split": split, "coco_gt": gt_file and str(gt_file)}
    result.summary = {**head, **result.summary}
    if result.analysis is not None:
        result.analysis.summary = {**head, **result.analysis.summary}
    if out is not None and info.is_main:
        _save(result, Path(out), plots)
    return result


def analyze(
    weights: str | os.PathLike,
    data: str | os.PathLike,
    split: str = "val",
    cfg: str | os.PathLike | None = None,
    names: str | os.PathLike | list[str] | None = None,
    device: str = "auto",
    backend: str = "auto",
    batch_size: int = 8,
    settings: InferConfig | None = None,
    workers: int = 2,
    out: str | os.PathLike | None = None,
    progress: bool = False,
    pos_threshold: float = 0.5,
    bg_threshold: float = 0.1,
    iou_range: bool = False,
    gallery: int = 8,
    backend_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> ErrorAnalysis:
    """TIDE error analysis (``yolov3.evaluate.error_report``) of ``weights`` on ``split`` of ``data``:
    the model runs over the split as in ``val`` (same loading, same default settings, the one image
    loop), then every false positive / negative gets its cause and each cause its dAP (``iou_range``:
    TIDE's mAP@.5:.95 too). With ``out``: ``analysis.json`` and ``analysis.html`` (``error_html``: tables,
    dAP chart, up to ``gallery`` worst images per kind with their boxes). One process (no ``torchrun``)."""
    if gallery < 0:
        raise UserError(f"gallery {gallery}: expected the number of images per error kind, 0 or more")
    settings = (settings or InferConfig.for_map()).replace(**overrides)
    spec, samples, det = prepare(weights, data, split, names, cfg=cfg, device=str(select_device(device)),
                                 backend=backend, batch_size=batch_size, settings=settings,
                                 backend_options=backend_options)  # fmt: skip
    dets, kept, speed = run_detector(det, samples, workers, progress)
    if not kept:
        raise UserError(f"{data}: no image of split '{split}' could be read")
    options = {"pos_threshold": pos_threshold, "bg_threshold": bg_threshold, "iou_range": iou_range}
    result = _analysis(dets, kept, samples, spec.names, det.img_size, speed, options)
    result.summary = {"weights": str(weights), "data": str(data), "split": split, **result.summary}
    if out is not None:
        write_analysis(result, Path(out), gallery)
    return result


def _analysis(dets: list[Detections], kept: list[int], samples: Sequence[Sample], names: list[str],
              img_size: int, speed: dict[str, float], options: dict[str, Any]) -> ErrorAnalysis:  # fmt: skip
    """``analyze_errors`` of ``dets`` (of ``samples[kept[i]]``), with the image size and speed."""
    result = analyze_errors(dets, ground_truth_of([samples[i] for i in kept]), names, **options)
    result.images = [samples[i].image for i in kept]
    result.summary = {"img_size": img_size, **result.summary, "speed_ms": speed}
    return result


def write_analysis(result: ErrorAnalysis, out: Path, gallery: int = 8) -> None:
    """``out/analysis.json`` and ``out/analysis.html``."""
    write_summary(result.summary, out / "analysis.json")
    write_error_html(result, result.images, out / "analysis.html", gallery)


def prepare(weights: str | os.PathLike, data: str | os.PathLike, split: str,
            names: str | os.PathLike | list[str] | None = None,
            **load: Any) -> tuple[DatasetSpec, list[Sample], Detector]:  # fmt: skip
    """The prelude ``val``, ``analyze`` and the label audit share: ``(data set, labelled samples of
    split, warmed-up Detector)`` (``load``: ``Detector.load``'s options), refusing an empty or
    unlabelled split and weights of another class count."""
    spec = load_dataset(data)
    samples = _labelled_split(spec, data, split)
    return spec, samples, _detector(weights, spec, data, names, **load)


def _labelled_split(spec: DatasetSpec, data: str | os.PathLike, split: str) -> list[Sample]:
    """The samples of ``split`` (train | val | test), refused when an image has no label file."""
    if split not in ("train", "val", "test"):
        raise UserError(f"split {split!r}: expected train, val or test")
    samples = getattr(spec, split)
    if not samples:
        raise UserError(f"{data}: split '{split}' is empty (no images): its '{split}:' entry must name an "
                        "image folder, a list of images or an annotation file that lists some")  # fmt: skip
    check_labelled(samples, f"{data}: split '{split}'")
    return samples


def _detector(weights: str | os.PathLike, spec: DatasetSpec, data: str | os.PathLike,
              names: str | os.PathLike | list[str] | None, **load: Any) -> Detector:  # fmt: skip
    """``Detector.load(weights, **load)``, warmed up. Darknet weights carry no names: they take the data
    set's. The weights must predict the data set's classes (by count)."""
    if names is None and Path(weights).suffix == ".weights":
        names = spec.names
    det = Detector.load(weights, names=names, **load)
    if len(det.names) != len(spec.names):
        raise UserError(f"{weights} predicts {len(det.names)} classes but {data} has {len(spec.names)} class "
                        "names: the weights were not trained on this data set")  # fmt: skip
    det.warmup()
    return det


def _evaluate(det: Detector, samples: list[Sample], names: list[str], workers: int, progress: bool,
              score: dict[str, Any], analyze: bool) -> Evaluation:  # fmt: skip
    """``evaluate``; with ``analyze`` also ``analyze`` (its defaults) of the same pass of the model, as
    the evaluation's ``.analysis``."""
    if not analyze:
        return evaluate(det, samples, names, workers=workers, progress=progress, **score)
    dets, kept, speed = run_detector(det, samples, workers, progress)
    if not kept:
        raise UserError("no image of the validation set could be read")
    result = evaluate_detections(dets, [samples[i] for i in kept], names, **score)
    result.summary.update(speed_ms=speed, img_size=det.img_size)
    result.analysis = _analysis(dets, kept, samples, names, det.img_size, speed, {})
    return result


def _save(result: Evaluation, out: Path, plots: bool) -> None:
    """``out/summary.json``, the plots with ``plots``, and the analysis when there is one."""
    write_summary(result.summary, out / "summary.json")
    if plots:
        save_plots(result, out)
    if result.analysis is not None:
        write_analysis(result.analysis, out)
