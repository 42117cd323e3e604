"""INT8 accuracy on a trained model: ``yolov3 export --int8`` through both routes (OpenVINO + NNCF,
ONNX Runtime static QDQ), the float32 and INT8 mAPs it measures on the val split, the calibration
time, and how many float32 boxes the INT8 file finds again (issue 13's accuracy targets).

Defaults: the demo's model (``runs/demo/train/weights/best.pt``, written by ``make demo``) and the
demo's synthetic data set in ``.cache/yolov3-demo``. Any checkpoint with its data.yaml works:

    .venv/bin/python benchmarks/bench_int8_accuracy.py [--weights W --data DATA.yaml]
        [--calib-images 300] [--formats openvino,onnx] [--img-size N] [--max-images 300]

Box agreement: each float32 box at score >= 0.3 counts as found when the INT8 file gives a box of the
same class at IoU >= 0.5, the INT8 side read down to 0.15 (a box whose score lands just under the
threshold is the same detection). Target >= 95 %. mAP targets: drop <= 1.0 point at 0.5 and <= 1.5
at .5:.95.
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
DEMO_WEIGHTS = ROOT / "runs/demo/train/weights/best.pt"


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


TARGETS = (("map50", "mAP@0.5", "drop <= 1.0"), ("map50_95", "mAP@.5:.95", "drop <= 1.5"))
ROUTES = {"openvino": "OpenVINO + NNCF", "onnx": "ONNX Runtime QDQ"}


def route(fmt: str, a: argparse.Namespace, data: Path, size: int, photos: list[str], ref: list,
          folder: Path) -> None:  # fmt: skip
    """Quantize through ``fmt``, emit its rows."""
    out = folder / f"int8{'.xml' if fmt == 'openvino' else '.onnx'}"
    report = export_weights(a.weights, fmt, out, int8=True, data=str(data), img_size=size,
                            calib_images=a.calib_images, int8_max_drop=100.0)  # fmt: skip
    acc, name = report.accuracy, f"{shown(a.weights)} at {size}"
    note = f"{name}; {acc['val_images']} val images; calibrated on {acc['calib_images']} train images"
    what = f"INT8 {ROUTES[fmt]}"
    for key, label, target in TARGETS:
        emit(f"{what} {label} (anchor: float32)", 100 * acc["int8"][key], 100 * acc["fp32"][key], "points",
             target, note)  # fmt: skip
    emit(f"{what} calibration time", acc["calib_seconds"], None, "s", "<= 300 for 300 images", note)
    int8 = Detector.load(out, amp="off", img_size=size, conf_threshold=0.15)
    found, total = agreement(ref, int8.predict(photos))
    emit(f"{what} box agreement with float32", 100 * found / max(total, 1), None, "%", ">= 95",
         f"{name}; {total} float32 boxes at score >= 0.3 on {len(photos)} val images")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=DEMO_WEIGHTS)
    p.add_argument("--data", type=Path, default=None, help="data.yaml (default: the demo's data set)")
    p.add_argument("--calib-images", type=int, default=300)
    p.add_argument("--formats", default="openvino,onnx")
    p.add_argument("--img-size", type=int, default=None, help="default: the size the model was trained at")
    p.add_argument("--max-images", type=int, default=300, help="val images for the box agreement")
    a = p.parse_args(argv)
    data = a.data or demo_data()
    if not a.weights.is_file() or data is None:
        sys.exit(f"needs a trained model and its data: {a.weights} (run `make demo`) and --data")
    size = a.img_size or load_model(a.weights)[1].img_size
    photos = [s.image for s in load_dataset(str(data)).val[: a.max_images]]
    ref = Detector.load(a.weights, device="cpu", amp="off", img_size=size, conf_threshold=0.3).predict(photos)
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in a.formats.split(","):
            route(fmt, a, data, size, photos, ref, Path(tmp))


if __name__ == "__main__":
    main()
