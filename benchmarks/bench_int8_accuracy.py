"""INT8 accuracy on trained models: ``yolov3 export --int8`` through both routes (OpenVINO + NNCF,
ONNX Runtime static QDQ), the float32 and INT8 mAPs it measures on the val split, the calibration
time, and how many float32 boxes the INT8 file finds again (issue 13's accuracy targets).

Default models (each skipped, with a message, when missing), both on the demo's synthetic data set
in ``.cache/yolov3-demo``:

- the demo's YOLOv3-tiny, ``runs/demo/train/weights/best.pt``, written by ``make demo``;
- a YOLOv3 (Darknet-53 at width 0.25: its residual sums, upsampling and concatenations) trained for
  9 minutes on the same data, ``runs/yolov3-w25/weights/best.pt``::

      .venv/bin/yolov3 train --data .cache/yolov3-demo/synth-192px-7200-seed0/data.yaml --model yolov3 \
          --width 0.25 --img 192 --batch 16 --lr-init 3e-3 --lr-end 3e-5 --warmup-epochs 0.3 --time 9 \
          --epochs 100 --no-augment --cache --workers 0 --channels-last --project runs --name yolov3-w25

Any checkpoints with their data.yaml work::

    .venv/bin/python benchmarks/bench_int8_accuracy.py [--weights W ... --data DATA.yaml]
        [--calib-images 300] [--formats openvino,onnx] [--img-size N] [--max-images 300]

Box agreement: each float32 box at score >= 0.3 counts as found when the INT8 file gives a box of the
same class at IoU >= 0.5, the INT8 side read down to 0.15 (a box whose score lands just under the
threshold is the same detection). Targets: agreement >= 95 %; mAP drop <= 1.0 point at 0.5 and
<= 1.5 at .5:.95.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torchvision.ops import box_iou

from yolov3.data.dataset_config import load_dataset
from yolov3.export.exporter import export_weights
from yolov3.infer.detector import Detector
from yolov3.modelfile import load_model

ROOT = Path(__file__).resolve().parents[1]
MODELS = [ROOT / "runs/demo/train/weights/best.pt", ROOT / "runs/yolov3-w25/weights/best.pt"]


def demo_data() -> Path | None:
    found = sorted((ROOT / ".cache/yolov3-demo").glob("synth-*/data.yaml"))
    return found[-1] if found else None


def shown(path: Path) -> Path:
    """``path`` relative to the repository when it is inside it."""
    try:
        return path.resolve().relative_to(ROOT)
    except ValueError:
        return path


def agreement(ref: list, test: list) -> tuple[int, int]:
    """``(float32 boxes found by an INT8 box of the same class at IoU >= 0.5, float32 boxes)``."""
    found = total = 0
    for a, b in zip(ref, test):
        total += len(a.boxes)
        if len(a.boxes) and len(b.boxes):
            iou = box_iou(torch.as_tensor(a.boxes), torch.as_tensor(b.boxes))
            same = torch.as_tensor(a.class_ids)[:, None] == torch.as_tensor(b.class_ids)[None]
            found += int(((iou >= 0.5) & same).any(1).sum())
    return found, total


def emit(what: str, ours: float, anchor: float | None, unit: str, target: str, note: str) -> None:
    anchor = None if anchor is None else round(anchor, 4)
    row = {"what": what, "ours": round(ours, 4), "anchor": anchor, "unit": unit, "ratio": None}
    print(json.dumps({**row, "target": target, "note": note}), flush=True)


TARGETS = (("map50", "mAP@0.5", "<= 1.0"), ("map50_95", "mAP@.5:.95", "<= 1.5"))
ROUTES = {"openvino": "OpenVINO + NNCF", "onnx": "ONNX Runtime QDQ"}


def route(fmt: str, weights: Path, a: argparse.Namespace, data: Path, size: int, photos: list[str],
          ref: list, folder: Path) -> None:  # fmt: skip
    """Quantize ``weights`` through ``fmt``, emit its rows."""
    out = folder / f"int8{'.xml' if fmt == 'openvino' else '.onnx'}"
    report = export_weights(weights, fmt, out, int8=True, data=str(data), img_size=size,
                            calib_images=a.calib_images, int8_max_drop=100.0)  # fmt: skip
    acc, name = report.accuracy, f"{shown(weights)} at {size}"
    note = f"{name}; {acc['val_images']} val images; calibrated on {acc['calib_images']} train images"
    what = f"INT8 {ROUTES[fmt]}"
    for key, label, target in TARGETS:
        fp32, int8 = 100 * acc["fp32"][key], 100 * acc["int8"][key]
        emit(f"{what} {label} drop (anchor: float32 {label})", fp32 - int8, fp32, "points", target,
             f"{note}; INT8 {int8:.2f}")  # fmt: skip
    emit(f"{what} calibration time", acc["calib_seconds"], None, "s", "", note)
    int8 = Detector.load(out, amp="off", img_size=size, conf_threshold=0.15)
    found, total = agreement(ref, int8.predict(photos))
    emit(f"{what} box agreement with float32", 100 * found / max(total, 1), None, "%", ">= 95",
         f"{name}; {total} float32 boxes at score >= 0.3 on {len(photos)} val images")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, nargs="+", default=MODELS)
    p.add_argument("--data", type=Path, default=None, help="data.yaml (default: the demo's data set)")
    p.add_argument("--calib-images", type=int, default=300)
    p.add_argument("--formats", default="openvino,onnx")
    p.add_argument("--img-size", type=int, default=None, help="default: the size the model was trained at")
    p.add_argument("--max-images", type=int, default=300, help="val images for the box agreement")
    a = p.parse_args(argv)
    data = a.data or demo_data()
    if data is None:
        sys.exit("no data set: pass --data, or run `make demo` (it draws the demo's data set)")
    found = [w for w in a.weights if w.is_file()]
    for w in sorted(set(a.weights) - set(found)):
        print(f"skipped {shown(w)}: no such file (the module docstring says how it is made)", file=sys.stderr)
    if not found:
        sys.exit("no trained model to measure")
    photos = [s.image for s in load_dataset(str(data)).val[: a.max_images]]
    for weights in found:
        size = a.img_size or load_model(weights)[1].img_size
        fp32 = Detector.load(weights, device="cpu", amp="off", img_size=size, conf_threshold=0.3)
        ref = fp32.predict(photos)
        with tempfile.TemporaryDirectory() as tmp:
            for fmt in a.formats.split(","):
                route(fmt, weights, a, data, size, photos, ref, Path(tmp))


if __name__ == "__main__":
    main()
