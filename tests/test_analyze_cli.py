"""``yolov3 analyze`` end to end on a tiny random model and data set (the ``yolov3 val`` test's)."""

from __future__ import annotations

import json

import numpy as np
from test_val_cli import NAMES, make_dataset, model, weights  # noqa: F401 (fixtures)

from yolov3.cli import main
from yolov3.data.dataset_config import load_dataset
from yolov3.evaluate.errors import KINDS


def test_analyze_writes_analysis_json_and_table(tmp_path, weights, capsys) -> None:  # noqa: F811
    data = make_dataset(tmp_path / "ds")
    out = tmp_path / "an"
    argv = ["analyze", "--data", str(data), "--weights", str(weights), "--img", "64", "--out", str(out),
            "--iou-range"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "TIDE mAP@0.5" in text and "mAP@.5:.95" in text and "dAP" in text and "analysis.json" in text
    summary = json.loads((out / "analysis.json").read_text())
    assert summary["images"] == 4 and summary["instances"] == 8 and summary["split"] == "val"
    assert set(summary["dap"]) == set(KINDS) | {"false_pos", "false_neg"}
    assert set(summary["per_class"]) == set(NAMES)
    counts = summary["counts"]
    # every box is matched or missed or pointed at; every detection has one kind
    false_pos = sum(counts[k] for k in ("cls", "loc", "both", "dupe", "bkg"))
    assert counts["tp"] + false_pos == summary["detections"] > 0
    assert counts["tp"] + counts["miss"] <= summary["instances"]
    assert sum(c["miss"] for c in summary["by_size"].values()) == counts["miss"]
    assert load_dataset(data).names == NAMES and np.isfinite(summary["map"])
    assert 0 <= summary["map50_95"] <= summary["map"] + 1e-9
