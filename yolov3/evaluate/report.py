"""The text report of an evaluation summary (``yolov3 val``), and its JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def format_report(summary: dict[str, Any]) -> str:
    """Per-class table (images, boxes, detections, AP50, AP50-95), then the headline numbers."""
    width = max([len("class"), *(len(n) for n in summary["per_class"])]) + 2
    head = f"{'class':<{width}}{'images':>8}{'instances':>11}{'detections':>12}{'AP50':>8}{'AP50-95':>9}"
    lines = [head, "-" * len(head)]
    lines.append(
        f"{'all':<{width}}{summary['images']:>8}{summary['instances']:>11}{summary['detections']:>12}"
        f"{_num(summary['map50']):>8}{_num(summary['map50_95']):>9}"
    )
    for name, c in summary["per_class"].items():
        lines.append(
            f"{name:<{width}}{'':>8}{c['instances']:>11}{c['detections']:>12}"
            f"{_num(c['ap50']):>8}{_num(c['ap50_95']):>9}"
        )
    lines.append("")
    lines.append(
        f"VOC mAP@0.5 {_num(summary['map50'])}  mAP@[.5:.95] {_num(summary['map50_95'])}  (all-point, "
        f"difficult ignored)   P {_num(summary['precision'])}  R {_num(summary['recall'])}  "
        f"F1 {_num(summary['f1'])} at conf {_num(summary['best_conf'])}"
    )
    coco = summary.get("coco")
    if coco:
        lines.append("COCO (pycocotools): " + "  ".join(f"{k} {_num(coco[k])}" for k in (
            "AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")))  # fmt: skip
    speed = summary.get("speed_ms")
    if speed:
        size = summary.get("img_size", "?")
        lines.append(
            "Speed per image: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in speed.items())
            + f" at {size}x{size}"
        )
    return "\n".join(lines)


def write_summary(summary: dict[str, Any], path: str | Path) -> Path:
    """The summary as indented JSON (NaN written as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, allow_nan=False))
    return path
