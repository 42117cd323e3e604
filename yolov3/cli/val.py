"""``yolov3 val --data DATA --weights W``: VOC mAP@0.5 (the seed's metric), COCO AP via pycocotools,
per-class AP, PR / F1 / P / R curves and the confusion matrix as PNG, speed, a JSON summary.

Writes into ``--out`` (default ``runs/val/exp``, numbered when it exists): ``summary.json`` and the
plots (with ``--analyze`` also ``analysis.json`` / ``analysis.html``: ``yolov3 analyze``'s TIDE error
analysis of the same detections). For a COCO-format data set whose split is an annotation file, COCO
AP is computed against that file itself (official numbers, segment areas for APs / APm / APl);
``--coco-gt`` names one.
Settings: the seed's test settings with score threshold 0.001 (mAP needs the low-score tail).
"""

from __future__ import annotations

import argparse

from yolov3.cli import VERBS
from yolov3.cli.common import add_infer_options, add_model_options, backend_options, infer_settings
from yolov3.config import InferConfig
from yolov3.files import make_dir, next_run_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("val", help=VERBS["val"],
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", required=True, help="data.yaml or Darknet .data with labels")
    p.add_argument("--split", default="val", choices=["val", "test", "train"], help="split to score (val)")
    add_model_options(p)
    add_infer_options(p, InferConfig.for_map())
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="image reading threads")
    p.add_argument("--no-coco", action="store_true", help="skip pycocotools (VOC metrics only)")
    p.add_argument("--coco-gt", help="COCO annotation file to compute COCO AP against")
    p.add_argument("--coco-backend", default="auto", choices=["auto", "faster", "pycocotools"],
                   help="COCO tool: faster-coco-eval (auto, when installed) or pycocotools")  # fmt: skip
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--analyze", action="store_true",
                   help="also analyze's TIDE error analysis of the same detections (analysis.json / .html)")
    p.add_argument("--out", help="output folder (default runs/val/exp, numbered)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.distributed import cleanup, env_dist_info
    from yolov3.evaluate.api import val, write_analysis
    from yolov3.evaluate.error_report import format_error_report
    from yolov3.evaluate.plots import save_plots
    from yolov3.evaluate.report import format_report, write_summary

    settings = infer_settings(args, InferConfig.for_map())
    result = val(args.weights, args.data, args.split, cfg=args.cfg, names=args.names, device=args.device,
                 backend=args.backend, batch_size=args.batch, settings=settings,
                 coco=not args.no_coco, coco_gt=args.coco_gt, coco_backend=args.coco_backend,
                 workers=args.workers, progress=True, backend_options=backend_options(args),
                 analyze=args.analyze)  # fmt: skip
    info = env_dist_info()
    if not info.is_main:  # rank 0 reports for the whole torchrun job
        cleanup(info)
        return 0
    print(format_report(result.summary))
    out = make_dir(args.out, "output folder (--out)") if args.out else next_run_dir("runs/val")
    write_summary(result.summary, out / "summary.json")
    if not args.no_plots:
        save_plots(result, out)
    if result.analysis is not None:
        print(format_error_report(result.analysis.summary))
        write_analysis(result.analysis, out)
    print(f"Results saved to {out}")
    cleanup(info)
    return 0
