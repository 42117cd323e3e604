"""``yolov3 analyze`` end to end on a tiny random model and data set (the ``yolov3 val`` test's)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
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
    page = (out / "analysis.html").read_text()
    assert page.startswith("<!doctype html>") and 'id="per-class"' in page and "http" not in page


def test_analyze_refuses_other_classes_naming_both_counts_and_files(tmp_path, weights, capsys) -> None:  # noqa: F811
    data = make_dataset(tmp_path / "two", names=["a", "b"])
    out = str(tmp_path / "o")
    argv = ["analyze", "--data", str(data), "--weights", str(weights), "--img", "64", "--out", out]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "3 classes" in err and "2 class names" in err and str(weights) in err and str(data) in err
    assert not (tmp_path / "o" / "analysis.html").exists()
    assert main(argv[:-2] + ["--gallery", "-1"]) == 2
    assert "gallery -1" in capsys.readouterr().err


@pytest.mark.parametrize("entry", ["images/val", None])
def test_analyze_refuses_an_empty_split_naming_it_and_the_data_file(tmp_path, weights, capsys, entry) -> None:  # noqa: F811
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
    cfg = {"path": str(tmp_path), "train": "images/train", "names": list(NAMES)}
    if entry:
        cfg["val"] = entry
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump(cfg))
    assert main(["analyze", "--data", str(data), "--weights", str(weights), "--img", "64",
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert str(data) in err and "split 'val' is empty" in err


def test_val_analyze_writes_the_analysis_of_analyze(tmp_path, weights, capsys) -> None:  # noqa: F811
    """``val --analyze``: the summary and plots of ``val`` plus ``analyze``'s files, the analysis of the
    same detections as ``yolov3 analyze`` gives (counts, dAPs, per class) and the same mAP@0.5 (VOC)."""
    data = make_dataset(tmp_path / "ds")
    common = ["--data", str(data), "--weights", str(weights), "--img", "64"]
    assert main(["val", *common, "--analyze", "--no-plots", "--out", str(tmp_path / "v")]) == 0
    assert main(["analyze", *common, "--out", str(tmp_path / "a")]) == 0
    assert "TIDE mAP@0.5" in capsys.readouterr().out
    via_val = json.loads((tmp_path / "v" / "analysis.json").read_text())
    alone = json.loads((tmp_path / "a" / "analysis.json").read_text())
    for key in ("counts", "dap", "per_class", "by_size", "map", "images", "weights", "split"):
        assert via_val[key] == alone[key], key
    assert (tmp_path / "v" / "summary.json").is_file() and (tmp_path / "v" / "analysis.html").is_file()


def test_analyze_hands_backend_options_to_the_detector(tmp_path, weights, monkeypatch) -> None:  # noqa: F811
    from yolov3.evaluate import api

    seen = []
    load = api.Detector.load
    monkeypatch.setattr(api.Detector, "load",
                        lambda *a, **k: seen.append(k.get("backend_options")) or load(*a, **k))  # fmt: skip
    data = make_dataset(tmp_path / "ds")
    api.analyze(weights, data, img_size=64, device="cpu", backend_options={"threads": 2})
    assert seen == [{"threads": 2}]
