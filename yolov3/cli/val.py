"""``yolov3 val --data DATA --weights W``: VOC mAP@0.5 (the seed's metric), COCO AP via pycocotools,
per-class AP, PR / F1 / P / R curves and the confusion matrix as PNG, speed, a JSON summary.

Writes into ``--out`` (default ``runs/val/exp``, numbered when it exists): ``summary.json`` and the
plots. For a COCO-format data set whose split is an annotation file, COCO AP is computed against
that file itself (official numbers, segment areas for APs / APm / APl); ``--coco-gt`` names one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from yolov3.cli.detect import add_model_options, next_run_dir
from yolov3.config import load_yaml
from yolov3.data.dataset_config import load_dataset
from yolov3.errors import UserError
from yolov3.evaluate.evaluator import check_labelled, evaluate
from yolov3.evaluate.plots import save_plots
from yolov3.evaluate.report import format_report, write_summary
from yolov3.predict import Detector


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("val", help="mAP (VOC and COCO), curves and confusion matrix on a labelled split",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", required=True, help="data.yaml or Darknet .data with labels")
    p.add_argument("--split", default="val", choices=["val", "test", "train"], help="split to score (val)")
    add_model_options(p)
    p.add_argument("--img", type=int, default=544, help="input size, multiple of 32 (seed test size 544)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--conf", type=float, default=0.001, help="score threshold (low: mAP needs the tail)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (seed 0.45)")
    p.add_argument("--max-det", type=int, default=300)
    p.add_argument("--nms", choices=["greedy", "soft", "diou"], default="greedy")
    p.add_argument("--amp", default="off", help="auto | bf16 | fp16 | off (default off: exact float32)")
    p.add_argument("--workers", type=int, default=2, help="image reading threads")
    p.add_argument("--no-coco", action="store_true", help="skip pycocotools (VOC metrics only)")
    p.add_argument("--coco-gt", help="COCO annotation file to compute COCO AP against")
    p.add_argument("--coco-backend", default="auto", choices=["auto", "faster", "pycocotools"],
                   help="COCO tool: faster-coco-eval (auto, when installed) or pycocotools")  # fmt: skip
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--out", help="output folder (default runs/val/exp, numbered)")
    p.set_defaults(func=run)


def coco_annotation_file(data: Path, split: str) -> Path | None:
    """The split's COCO annotation file when ``data`` is a COCO-format data.yaml with a single one."""
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


def run(args: argparse.Namespace) -> int:
    spec = load_dataset(args.data)
    samples = getattr(spec, args.split)
    check_labelled(samples, f"{args.data}: split '{args.split}'")
    names = args.names
    if names is None and Path(args.weights).suffix == ".weights":
        names = spec.names  # Darknet weights carry no names: the data set's (count checked on load)
    det = Detector.load(args.weights, cfg=args.cfg, names=names, device=args.device, img_size=args.img,
                        backend=args.backend, amp=args.amp, conf_threshold=args.conf, iou_threshold=args.iou,
                        max_det=args.max_det, nms=args.nms, batch_size=args.batch)  # fmt: skip
    if len(det.names) != len(spec.names):
        raise UserError(
            f"{args.weights} predicts {len(det.names)} classes but {args.data} has {len(spec.names)} "
            f"class names: the weights were not trained on this data set"
        )
    det.warmup()
    coco_gt = args.coco_gt or (None if args.no_coco else coco_annotation_file(Path(args.data), args.split))
    result = evaluate(det, samples, spec.names, coco=not args.no_coco, coco_gt=coco_gt, full=True,
                      category_ids=spec.category_ids, workers=args.workers, progress=True,
                      coco_backend=args.coco_backend)  # fmt: skip
    out = next_run_dir(args.out, "runs/val")
    summary = {"weights": str(args.weights), "data": str(args.data), "split": args.split,
               "coco_gt": str(coco_gt) if coco_gt else None, **result.summary}  # fmt: skip
    print(format_report(summary))
    write_summary(summary, out / "summary.json")
    if not args.no_plots:
        save_plots(result, out)
    print(f"Results saved to {out}")
    return 0
