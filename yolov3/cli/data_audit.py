"""``yolov3 data audit --weights W --data D``: which labels of a split are likely wrong, which boxes are
likely missing (issue 24).

The model predicts on the split (``--split``, default val; score threshold 0.001 as ``val``) and every
label gets the kind of error it most likely has - missing (a confident prediction on no label),
wrong_class, bad_box (a same-class prediction overlapping it only partly), spurious (nothing predicted
near it) - with a score in [0, 1] and the fix the model proposes (``yolov3.evaluate.audit``); images
are ranked by their worst record, a record is flagged at score >= 0.5. Auditing the split a model was
trained on hides its errors: ``--folds K`` (K >= 2) trains K models like the given one, each on the
other folds, for ``--time`` minutes in all, and scores each fold out of sample.

Writes into ``--out`` (default ``runs/audit/exp``, numbered): ``issues.jsonl`` (every record),
``proposals.json`` (the flagged fixes as COCO annotations: bbox, category_id, action) and
``audit.html`` (the counts, the top records and a gallery of the worst images).
"""

from __future__ import annotations

import argparse

from yolov3.cli.common import add_infer_options, add_model_options, backend_options, infer_settings
from yolov3.config import InferConfig
from yolov3.files import make_dir, next_run_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="find likely wrong and missing labels with a model (audit.html)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", required=True, help="data.yaml or Darknet .data with labels")
    p.add_argument("--split", default="val", choices=["val", "test", "train"], help="split to audit (val)")
    add_model_options(p)
    add_infer_options(p, InferConfig.for_map())
    p.add_argument("--folds", type=int, default=0,
                   help="K >= 2: score each fold with a model trained on the others (0: the given model)")
    p.add_argument("--time", type=float, default=0.0, help="--folds: minutes of training, all folds")
    p.add_argument("--epochs", type=int, default=300, help="--folds: most epochs per fold (300)")
    p.add_argument("--train-batch", type=int, default=16, help="--folds: training batch (16)")
    p.add_argument("--batch", type=int, default=8, help="prediction batch (8)")
    p.add_argument("--workers", type=int, default=2, help="image reading threads")
    p.add_argument("--gallery", type=int, default=24, help="worst images shown in audit.html (24)")
    p.add_argument("--out", help="output folder (default runs/audit/exp, numbered)")
    p.set_defaults(func=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from yolov3.evaluate.audit import FLAG_SCORE, count_kinds
    from yolov3.label_audit import audit

    settings = infer_settings(args, InferConfig.for_map())
    out = make_dir(args.out, "output folder (--out)") if args.out else next_run_dir("runs/audit")
    records = audit(args.weights, args.data, args.split, folds=args.folds, time=args.time, epochs=args.epochs,
                    batch=args.train_batch, device=args.device, cfg=args.cfg, names=args.names,
                    backend=args.backend, batch_size=args.batch, settings=settings, workers=args.workers,
                    out=out, gallery=args.gallery, progress=True,
                    backend_options=backend_options(args))  # fmt: skip
    counts = count_kinds(records)
    images = len({r.image for r in records if r.score >= FLAG_SCORE})
    print(f"{sum(counts.values())} labels flagged (score >= {FLAG_SCORE}) in {images} images: "
          + ", ".join(f"{n} {k}" for k, n in counts.items()))  # fmt: skip
    for r in sorted(records, key=lambda r: -r.score)[:5]:
        print(f"  {r.score:.2f} {r.kind:<11} {r.path} box {[round(v) for v in r.box]} -> {r.fix['action']}")
    print(f"Results saved to {out / 'issues.jsonl'}, {out / 'proposals.json'} and {out / 'audit.html'}")
    return 0
