"""benchmarks/bench_analyze.py runs end to end at a small size (it shares bench_eval.py's data and its
conversion to ``Detections``, which the evaluator takes) and prints the rows run_all reads."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_analyze.py"


def test_small_run_prints_both_rows(capsys):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_analyze_script", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(["--images", "40", "--rounds", "1"])
    finally:
        sys.path.remove(str(SCRIPT.parent))
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["target"] for r in rows] == ["<= 2", ""]
    for row in rows:
        assert row["unit"] == "s" and row["ours"] > 0 and row["anchor"] > 0 and "40 images" in row["note"]
        # ours and anchor are rounded to 0.01 s, the ratio (of the unrounded times) to 0.001
        low = (row["ours"] - 0.005) / (row["anchor"] + 0.005) - 0.0005
        high = (row["ours"] + 0.005) / (row["anchor"] - 0.005) + 0.0005
        assert row["ratio"] > 0 and low <= row["ratio"] <= high
