"""``yolov3 benchmark`` end to end on a small net at 64 px and a tiny synthetic data set: every row
measured (exported into the run folder), the PyTorch fp32 mAP equal to what ``yolov3 val`` gives on
the same model and data (the independent path), every float32 runtime agreeing with it, a runtime that
is not installed and a precision the CPU lacks listed as skipped, a failing row listed with its
reason, ``benchmark.json`` well-formed, bad settings refused by name."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from yolov3 import benchmark as bench
from yolov3 import benchmark_plan
from yolov3.cli import main
from yolov3.darknet.synthetic import randomize, sparsify_head
from yolov3.data.dataset_config import load_dataset
from yolov3.data.synth import SynthConfig, generate
from yolov3.device import cpu_supports_bf16
from yolov3.export.quantize import calibration_batches
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

IMG = 64
NAMES = ["circle", "square", "triangle", "letter-X", "digit-3"]  # yolov3.data.synth's classes
ROWS = ["torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-bf16",
        "openvino-int8"]  # fmt: skip
FAST = ["--runs", "2", "--batch", "2", "--calib-images", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # large objects, so that a random net's boxes overlap some of them: a mAP that is not zero
    cfg = SynthConfig(n=12, size=96, seed=0, val_fraction=0.5, min_size=30, max_objects=3, max_frac=0.8)
    path, _ = generate(tmp_path_factory.mktemp("synth") / "d", cfg, progress=False)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory, data) -> Path:
    """A width-1/8 YOLOv3 answering as a trained net does (~20 confident boxes an image; mAP@0.5
    ~0.2 on ``data``); its input size (64) is in its meta."""
    torch.manual_seed(0)
    model = YOLOv3(len(NAMES), width=0.125)
    randomize(model, torch.rand(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1)))
    inputs = calibration_batches(load_dataset(data).train, IMG, 4)
    sparsify_head(model, torch.from_numpy(np.concatenate(inputs)), per_image=20, sharpen=10)
    meta = ModelMeta.of_model(model.eval(), NAMES, IMG)
    return save_model(tmp_path_factory.mktemp("w") / "m.pt", model, meta)


def _rows(out: Path) -> dict[str, dict]:
    report = json.loads((out / "benchmark.json").read_text())
    return {r["name"]: r for r in report["rows"]}


def _bf16_ok(row: dict) -> None:
    """bf16 runs where the CPU has it natively and is skipped, saying why, where it does not."""
    if cpu_supports_bf16():
        assert row["status"] == "ok", row
    else:
        assert row["status"] == "skipped" and "native bf16" in row["reason"]


@pytest.mark.slow
def test_every_row_is_measured_and_the_map_equals_val(tmp_path, weights, data, capsys):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    out = tmp_path / "bench"
    assert main(["benchmark", "--weights", str(weights), "--data", str(data), "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    report = json.loads((out / "benchmark.json").read_text())
    assert report["img_size"] == IMG and report["batch"] == 2 and report["runs"] == 2
    assert report["machine"]["cores"] >= 1 and report["machine"]["torch"] == torch.__version__
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ROWS
    for name, row in rows.items():
        assert name in text  # the table lists every row
        if name.endswith("bf16") and row["status"] != "ok":
            _bf16_ok(row)
            continue
        assert row["status"] == "ok" and row["reason"] is None, row
        assert row["latency_ms"] > 0 and row["throughput_ips"] > 0
        assert set(row["latency_parts_ms"]) == {"preprocess", "inference", "nms"}
        assert 0 <= row["map50_95"] <= row["map50"] <= 1
        assert Path(row["file"]).is_file() and row["file_mb"] > 0
        if not name.startswith("torch"):  # exported into the run folder
            assert Path(row["file"]).parent == out and row["export_s"] > 0
    assert Path(rows["openvino-int8"]["file"]).with_suffix(".bin").is_file()
    # The independent path: `yolov3 val` on the same checkpoint and data, float32 throughout.
    val_out = tmp_path / "val"
    args = ["val", "--data", str(data), "--weights", str(weights), "--img", str(IMG), "--amp", "off",
            "--batch", "2", "--device", "cpu", "--no-plots", "--no-coco", "--out", str(val_out)]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((val_out / "summary.json").read_text())
    assert summary["map50"] > 0.05  # a mAP that can disagree
    assert rows["torch-fp32"]["map50"] == pytest.approx(summary["map50"], abs=1e-9)
    assert rows["torch-fp32"]["map50_95"] == pytest.approx(summary["map50_95"], abs=1e-9)
    for name in ("onnx-fp32", "openvino-fp32"):  # the same network in float32 on other runtimes
        assert rows[name]["map50"] == pytest.approx(summary["map50"], abs=2e-3)


def test_missing_runtime_and_int8_without_data_are_skipped_with_reasons(tmp_path, weights, monkeypatch,
                                                                          capsys):  # fmt: skip
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed: `import openvino` fails
    monkeypatch.chdir(tmp_path)
    argv = ["benchmark", "--weights", str(weights), "--runs", "2", "--batch", "2", "--device", "cpu",
            "--threads", "1"]  # fmt: skip
    threads = torch.get_num_threads()
    assert main(argv) == 0  # no --img-size: the model's own; no --out: runs/benchmark/exp
    assert torch.get_num_threads() == threads  # PyTorch's thread count restored
    out = tmp_path / "runs" / "benchmark" / "exp"
    report = json.loads((out / "benchmark.json").read_text())
    assert report["img_size"] == IMG and report["data"] is None and report["threads"] == 1
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ROWS
    for name in ("openvino-fp32", "openvino-bf16", "openvino-int8"):
        assert rows[name]["status"] == "skipped" and "openvino not installed" in rows[name]["reason"]
        assert "pip install" in rows[name]["reason"]
    assert rows["onnx-int8"]["status"] == "skipped" and "needs --data" in rows["onnx-int8"]["reason"]
    for name in ("torch-fp32", "onnx-fp32"):
        assert rows[name]["status"] == "ok" and rows[name]["map50"] is None and rows[name]["latency_ms"] > 0
    _bf16_ok(rows["torch-bf16"])
    table = capsys.readouterr().out
    assert "openvino not installed" in table and "Traceback" not in table


def test_failing_row_and_cpu_without_bf16_are_reported_not_raised(tmp_path, weights, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise RuntimeError("exporter broke\nsecond line")

    monkeypatch.setattr(bench, "export_weights", refuse)
    monkeypatch.setattr(benchmark_plan, "cpu_supports_bf16", lambda: False)
    out = tmp_path / "b"
    argv = ["benchmark", "--weights", str(weights), "--formats", "onnx-fp32", "torch-bf16", "--out", str(out),
            "--runs", "1", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    rows = _rows(out)
    assert list(rows) == ["torch-bf16", "onnx-fp32"]  # the table's order, whatever the order asked
    assert rows["onnx-fp32"]["status"] == "failed"
    assert rows["onnx-fp32"]["reason"] == "RuntimeError: exporter broke"  # its first line, with its type
    assert rows["torch-bf16"]["status"] == "skipped" and "no native bf16" in rows["torch-bf16"]["reason"]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--formats", "tensorrt"], "--formats tensorrt: expected row names"),
        (["--img-size", "50"], "img_size"),
        (["--batch", "0"], "--batch 0: must be >= 1"),
        (["--threads", "0"], "--threads 0: must be >= 1"),
        (["--data", "DATA3"], "3 classes"),
    ],
)
def test_bad_settings_are_refused_by_name(tmp_path, weights, extra, message, capsys):
    if "DATA3" in extra:
        (tmp_path / "d3").mkdir()
        (tmp_path / "d3" / "data.yaml").write_text("train: .\nval: .\nnames: [a, b, c]\n")
        extra = ["--data", str(tmp_path / "d3" / "data.yaml")]
    argv = ["benchmark", "--weights", str(weights), "--out", str(tmp_path / "o"), "--device", "cpu", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
