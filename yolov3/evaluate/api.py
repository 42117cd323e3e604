"""``yolov3.val(weights, data)``: score a weights file on a data set's labelled split (what ``yolov3
val`` runs), writing the summary JSON and the plots when given an output folder.

    import yolov3
    result = yolov3.val("runs/train/exp/weights/best.pt", "data.yaml", out="runs/val/exp")
    print(result.summary["map50"], result.summary["coco"]["AP"])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from yolov3.config import InferConfig, load_yaml
from yolov3.data.dataset_config import load_dataset
from yolov3.errors import UserError
from yolov3.evaluate.evaluator import Evaluation, check_labelled, evaluate
from yolov3.evaluate.plots import save_plots
from yolov3.evaluate.report import write_summary
from yolov3.infer.detector import Detector


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
    **overrides: Any,
) -> Evaluation:
    """Load ``weights`` (checkpoint, Darknet ``.weights`` + ``cfg``, ONNX...), detect on ``split`` of
    ``data`` and score it (``yolov3.evaluate.evaluator``). ``settings`` / ``overrides``: the
    ``InferConfig``, default ``InferConfig.for_map()`` (the seed's test settings with score threshold
    0.001). The weights' class count must equal the data set's; Darknet weights take the data set's
    names. COCO-format data is scored against its own annotation file unless ``coco_gt`` names
    another. With ``out``: ``summary.json`` and PNGs."""
    settings = (settings or InferConfig.for_map()).replace(**overrides)
    spec = load_dataset(data)
    if split not in ("train", "val", "test"):
        raise UserError(f"split {split!r}: expected train, val or test")
    samples = getattr(spec, split)
    check_labelled(samples, f"{data}: split '{split}'")
    if names is None and Path(weights).suffix == ".weights":
        names = spec.names  # Darknet weights carry no names (their count is checked on load)
    det = Detector.load(weights, cfg=cfg, names=names, device=device, backend=backend, batch_size=batch_size,
                        settings=settings)  # fmt: skip
    if len(det.names) != len(spec.names):
        raise UserError(f"{weights} predicts {len(det.names)} classes but {data} has {len(spec.names)} class "
                        "names: the weights were not trained on this data set")  # fmt: skip
    det.warmup()
    gt_file = coco_gt or (coco_annotation_file(data, split) if coco else None)
    result = evaluate(det, samples, spec.names, coco=coco, coco_gt=gt_file, category_ids=spec.category_ids,
                      workers=workers, progress=progress, coco_backend=coco_backend)  # fmt: skip
    head: dict[str, Any] = {"weights": str(weights), "data": str(data), "split": split,
                            "coco_gt": str(gt_file) if gt_file else None}  # fmt: skip
    result.summary = {**head, **result.summary}
    if out is not None:
        write_summary(result.summary, Path(out) / "summary.json")
        if plots:
            save_plots(result, out)
    return result
