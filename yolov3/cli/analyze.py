"""``yolov3 analyze --data DATA --weights W``: TIDE error analysis of a model on a labelled split.

Runs the model over the split as ``yolov3 val`` does (score threshold 0.001), then gives every false
positive one cause - cls (right place, wrong class), loc (right class, IoU 0.1..0.5), both, dupe,
bkg (IoU <= 0.1 with every box) - and every unmatched box ``miss``, and reports the mAP@0.5 fixing
each cause would gain (TIDE's oracle, Bolya et al. 2020), the counts by object size and by objects
per image, and per class precision / recall / F1 at its best threshold. Writes ``analysis.json`` and
``analysis.html`` (the tables, a dAP chart and, per kind, the ``--gallery`` images with the most errors
of it, boxes drawn) into ``--out`` (default ``runs/analyze/exp``, numbered when it exists).
"""

from __future__ import annotations

import argparse

from yolov3.cli import VERBS
from yolov3.cli.common import add_infer_options, add_model_options, backend_options, infer_settings
from yolov3.config import InferConfig
from yolov3.files import make_dir, next_run_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help=VERBS["analyze"],
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", required=True, help="data.yaml or Darknet .data with labels")
    p.add_argument("--split", default="val", choices=["val", "test", "train"], help="split to analyse (val)")
    add_model_options(p)
    add_infer_options(p, InferConfig.for_map())
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="image reading threads")
    p.add_argument("--pos-iou", type=float, default=0.5, help="IoU of a true positive (0.5)")
    p.add_argument("--bg-iou", type=float, default=0.1, help="bkg: IoU at most this with every box (0.1)")
    p.add_argument("--iou-range", action="store_true", help="also TIDE's mAP@.5:.95 (ten matchings)")
    p.add_argument("--gallery", type=int, default=8, help="worst images per error kind in analysis.html (8)")
    p.add_argument("--out", help="output folder (default runs/analyze/exp, numbered)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from yolov3.evaluate.api import analyze
    from yolov3.evaluate.error_report import format_error_report

    settings = infer_settings(args, InferConfig.for_map())
    out = make_dir(args.out, "output folder (--out)") if args.out else next_run_dir("runs/analyze")
    result = analyze(args.weights, args.data, args.split, cfg=args.cfg, names=args.names, device=args.device,
                     backend=args.backend, batch_size=args.batch, settings=settings, workers=args.workers,
                     out=out, progress=True, pos_threshold=args.pos_iou,
                     bg_threshold=args.bg_iou, iou_range=args.iou_range, gallery=args.gallery,
                     backend_options=backend_options(args))  # fmt: skip
    print(format_error_report(result.summary))
    print(f"Results saved to {out / 'analysis.json'} and {out / 'analysis.html'}")
    return 0
