"""benchmarks/gpu.py (issue 8) runs end to end in its CPU smoke mode: every section reports a figure
(or, for CUDA graphs on a CPU-only machine, says it was skipped), none errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_reports_every_section(gpu_bench, capsys):
    gpu_bench.main(["--smoke", "--device", "cpu", "--workers", "0"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_what = {r["what"]: r for r in rows}
    assert not [r for r in rows if "error" in r], rows
    for what in ("train_step_fp32", "train_step_bf16_cl", "train_step_compiled", "train_real_pipeline",
                 "loader_only", "infer_batch", "latency_b1_eager"):  # fmt: skip
        assert by_what[what]["images_per_s"] > 0 and by_what[what]["ms"] > 0, what
        assert by_what[what]["card"].startswith("cpu")
    assert by_what["train_step_bf16_cl"]["ratio_to_fp32"] > 0
    parity = by_what["loss_parity"]
    assert set(parity["losses"]) == {"fp32", "bf16_cl", "compiled"}
    assert max(parity["rel_diff_to_fp32"].values()) < 0.05  # bf16 changes the loss only a little
    assert by_what["latency_b1_cuda_graph"]["skipped"]
    assert by_what["total"]["seconds"] > 0
