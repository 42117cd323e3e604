"""benchmarks/run_all.py against a fake benchmark folder: rows, failures, timeouts, GPU skipping."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

RUN_ALL = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("run_all", RUN_ALL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(body)


@pytest.fixture()
def fake_benchmarks(tmp_path: Path) -> Path:
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    ok = [
        {"what": "nms 1000 boxes", "ours": 2.0, "anchor": 8.0, "unit": "ms", "ratio": 0.25,
         "target": "<= 0.5", "note": "cpu"},
        {"what": "loss step", "ours": 30.0, "anchor": 20.0, "unit": "ms", "ratio": 1.5,
         "target": "<= 1.2", "note": ""},
    ]  # fmt: skip
    lines = "\n".join(f"print({json.dumps(json.dumps(o))})" for o in ok)
    _write(bench, "bench_ok.py", f"print('warming up')\n{lines}\n")
    _write(bench, "bench_fail.py", 'print(\'{"what": "half", "ours": 1}\')\nraise ValueError(\'boom 42\')\n')
    _write(bench, "bench_slow.py", "import time\ntime.sleep(30)\n")
    _write(bench, "bench_silent.py", "print('nothing measured')\n")
    _write(bench, "bench_gpu.py", "raise SystemExit('must not run without CUDA')\n")
    _write(bench, "helper_not_a_bench.py", "raise SystemExit('must never run')\n")
    return bench


def test_runner_writes_one_row_per_measurement_and_lists_failures(run_all, fake_benchmarks, tmp_path):
    out = tmp_path / "docs" / "benchmarks.md"
    results = run_all.run_all(fake_benchmarks, out, timeout=3, cuda=False)
    assert [r.name for r in results] == ["bench_fail", "bench_gpu", "bench_ok", "bench_silent", "bench_slow"]
    text = out.read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| bench_")]
    by_name = {}
    for ln in rows:
        by_name.setdefault(ln.split("|")[1].strip(), []).append([c.strip() for c in ln.strip("|").split("|")])
    # bench_ok: both measurements, with the target checked against the ratio (hand-computed).
    ok = by_name["bench_ok"]
    assert ok[0][1:] == ["nms 1000 boxes", "2", "8", "ms", "0.25", "<= 0.5", "yes", "cpu"]
    assert ok[1][1:8] == ["loss step", "30", "20", "ms", "1.5", "<= 1.2", "**no**"]
    # bench_fail: its one measurement is kept, and the failure names the last error line.
    assert by_name["bench_fail"][0][1] == "half"
    assert "**failed**: exit 1: ValueError: boom 42" in by_name["bench_fail"][1][1]
    assert "**failed**: timed out after 3 s" in by_name["bench_slow"][0][1]
    assert "**failed**: printed no measurement: nothing measured" in by_name["bench_silent"][0][1]
    assert by_name["bench_gpu"][0][1].startswith("skipped")
    assert "helper_not_a_bench" not in text
    # The machine line names the CPU model, cores, torch version and date.
    machine = next(ln for ln in text.splitlines() if ln.startswith("Machine:"))
    assert "cores" in machine and "torch" in machine and "UTC" in machine
    assert "3 measurements from 5 scripts; 3 failed." in text


def test_rewrite_keeps_the_hand_written_section(run_all, tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    row = {"what": "new row", "ours": 1.0, "unit": "ms"}
    _write(bench, "bench_one.py", f"print({json.dumps(json.dumps(row))})\n")
    out = tmp_path / "docs" / "benchmarks.md"
    out.parent.mkdir()
    hand = (
        "## Measurements behind design choices (hand-written)\n\n"
        "- huge pages: ~5 ms instead of ~0.7 ms | kept as written\n\n"
        "### The demo's recipe\n\n- 160 px: mAP@0.5 0.81\n"
    )
    out.write_text("# Benchmarks\n\n| bench_old | old row | 9 |\n\n" + hand)
    for _ in range(2):  # a second rewrite keeps it once, not twice
        run_all.run_all(bench, out, timeout=30, cuda=False)
        text = out.read_text()
        assert text.endswith("\n\n" + hand) and text.count(hand) == 1
        assert "| bench_one | new row |" in text and "old row" not in text
        assert text.index("measurements from 1 scripts") < text.index(hand)
    # No such section (or no file yet): the table alone.
    out.write_text("# Benchmarks\n\nold table\n")
    run_all.run_all(bench, out, timeout=30, cuda=False)
    assert "hand-written)" not in out.read_text() and "old table" not in out.read_text()


@pytest.mark.parametrize(
    ("target", "ratio", "ours", "expected"),
    [
        ("<= 0.25", 0.25, 9.0, True),
        ("<= 0.25", 0.26, 0.1, False),  # the ratio, not ours, is checked when present
        (">= 2", None, 3.0, True),  # no ratio: ours is checked
        ("> 2", None, 2.0, False),
        ("< 1e-3", 5e-4, None, True),
        ("about 1", 1.0, 1.0, None),  # unparsable target
        (None, 1.0, 1.0, None),
        ("<= 1", None, None, None),
    ],
)
def test_target_met(run_all, target, ratio, ours, expected):
    assert run_all.target_met(target, ratio, ours) is expected


def test_main_rejects_missing_folder(run_all, tmp_path, capsys):
    assert run_all.main(["--bench-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "b.md")]) == 2
    assert "nope is not a folder" in capsys.readouterr().err


def test_only_reruns_the_named_scripts_and_keeps_the_other_rows(run_all, tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    for name, value in (("bench_a", 1.0), ("bench_b", 2.0)):
        _write(
            bench, f"{name}.py", f"print({json.dumps(json.dumps({'what': name + ' row', 'ours': value}))})\n"
        )
    out = tmp_path / "benchmarks.md"
    run_all.run_all(bench, out, timeout=30, cuda=False)
    _write(bench, "bench_b.py", f"print({json.dumps(json.dumps({'what': 'b row, again', 'ours': 3.0}))})\n")
    _write(bench, "bench_a.py", "raise SystemExit('must not run')\n")
    run_all.run_all(bench, out, timeout=30, cuda=False, only=["bench_b"])
    text = out.read_text()
    assert "| bench_a | bench_a row | 1 |" in text and "| bench_b | b row, again | 3 |" in text
    assert "bench_b row" not in text and "Re-run on that date: bench_b" in text
    assert text.index("| bench_a |") < text.index("| bench_b |") and "2 measurements from 1 scripts" in text
    run_all.run_all(bench, out, timeout=30, cuda=False, only=["bench_b"])  # again: bench_a's date kept
    assert "Of those, re-run then: bench_b; the other rows are from the earlier run" in out.read_text()
    with pytest.raises(SystemExit, match="no such benchmark"):
        run_all.run_all(bench, out, timeout=30, cuda=False, only=["bench_zzz"])


def test_rows_of_a_superseded_script_say_what_replaced_them(run_all, tmp_path, monkeypatch):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    row = {"what": "latency", "ours": 2.0, "anchor": 1.0, "unit": "ms", "ratio": 2.0, "target": "<= 0.5"}
    for name in ("bench_old", "bench_new"):
        _write(bench, f"{name}.py", f"print({json.dumps(json.dumps(row))})\n")
    out = tmp_path / "benchmarks.md"
    run_all.run_all(bench, out, timeout=30, cuda=False)
    assert "| bench_old | latency | 2 | 1 | ms | 2 | <= 0.5 | **no** | — |" in out.read_text()
    monkeypatch.setattr(run_all, "SUPERSEDED", {"bench_old": "superseded: bench_new"})
    old_row = "| bench_old | latency | 2 | 1 | ms | 2 | <= 0.5 | superseded: bench_new | — |"
    run_all.run_all(bench, out, timeout=30, cuda=False, only=["bench_new"])  # bench_old's row kept, marked
    text = out.read_text()
    assert old_row in text and "| bench_new | latency | 2 | 1 | ms | 2 | <= 0.5 | **no** | — |" in text
    run_all.run_all(bench, out, timeout=30, cuda=False)  # and when it runs again
    assert old_row in out.read_text()
