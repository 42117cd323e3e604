"""benchmarks/bench_serve.py (issue 14) and bench_serve_soak.py run end to end at their smoke sizes: a
real ``yolov3 serve`` subprocess on loopback answers every request (the soak's: a .pt checkpoint, then
an OpenVINO INT8 IR it exports), and the rows ``benchmarks/run_all.py`` reads come out with their
targets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_serve.py"


@pytest.mark.slow
def test_smoke_run_serves_every_request_and_prints_the_rows(capsys):
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    spec = importlib.util.spec_from_file_location("bench_serve_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    try:
        module.main(["--smoke", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["target"] for r in rows] == [">= 0.9", "<= 15", "== 0"]
    throughput, latency, errors = rows
    assert errors["ours"] == 0
    assert throughput["ours"] > 0 and throughput["anchor"] > 0
    assert throughput["ratio"] == pytest.approx(throughput["ours"] / throughput["anchor"], rel=1e-2)
    assert latency["anchor"] > 0 and latency["unit"] == "ms"
    assert {"what", "ours", "anchor", "unit", "ratio", "target", "note"} <= set(throughput)


SOAK = SCRIPT.with_name("bench_serve_soak.py")


@pytest.mark.slow
def test_soak_smoke_run_reads_the_servers_memory_for_both_files(capsys):
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    pytest.importorskip("nncf", reason="the openvino extra is not installed")
    spec = importlib.util.spec_from_file_location("bench_serve_soak_script", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--smoke", "--threads", "1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["target"] for r in rows] == ["<= 1.05", "<= 1.05", "== 0"]
    pt, ir, errors = rows
    assert "PyTorch" in pt["what"] and "OpenVINO INT8" in ir["what"] and errors["ours"] == 0
    for row in (pt, ir):
        assert row["unit"] == "MB" and 50 < row["anchor"] < 10_000 and row["ours"] > 0
        assert row["ratio"] == pytest.approx(row["ours"] / row["anchor"], rel=1e-2)
