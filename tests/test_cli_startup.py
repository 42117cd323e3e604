"""The command line starts light: ``yolov3 --help`` and ``yolov3 VERB --help`` (every verb, and ``data
check``) import no torch, checked in fresh interpreters through ``sys.modules`` and independently through
``python -X importtime``'s list of what was imported; ``yolov3 --version`` prints the version the
installed package's metadata gives; ``benchmarks/bench_cli_startup.py --smoke`` prints its rows."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import yolov3
from yolov3.cli import VERBS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_cli_startup.py"
HELPS = [["--help"], *([verb, "--help"] for verb in VERBS), ["data", "check", "--help"]]

# Runs each argv through the CLI in this one fresh interpreter and prints, per argv, whether torch had
# been imported by then: once one imports it, every later one shows it too, so the first is the culprit.
CHECK = """
import json, sys
from yolov3.cli import main
seen = {}
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None), (argv, exc.code)
    seen[" ".join(argv)] = "torch" in sys.modules
print(json.dumps(seen), file=sys.stderr)
"""


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_help_of_the_command_and_of_every_verb_imports_no_torch():
    proc = _python("-c", CHECK, json.dumps(HELPS))
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stderr.strip().splitlines()[-1])
    assert list(seen) == [" ".join(a) for a in HELPS]
    assert [argv for argv, torch in seen.items() if torch] == []
    assert all(verb in proc.stdout for verb in VERBS)  # `yolov3 --help` lists every verb, benchmark too
    assert "benchmark" in VERBS


@pytest.mark.parametrize("argv", [["--help"], ["benchmark", "--help"], ["train", "--help"]],
                         ids=lambda a: " ".join(a))  # fmt: skip
def test_importtime_lists_no_torch(argv):
    """The interpreter's own record of every module imported (``-X importtime``), not ``sys.modules``."""
    proc = _python("-X", "importtime", "-m", "yolov3", *argv)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "yolov3.cli" in imported  # the record is there
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}


def test_version_prints_the_package_version():
    proc = _python("-m", "yolov3", "--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"yolov3 {importlib.metadata.version('yolov3')}"
    assert yolov3.__version__ == importlib.metadata.version("yolov3")


def test_startup_benchmark_smoke_prints_its_rows(capsys):
    spec = importlib.util.spec_from_file_location("bench_cli_startup", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--smoke"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    first = next(iter(VERBS))
    labels = [r["what"].split("`")[1] for r in rows]
    assert labels == ["yolov3 --help", "yolov3 --version", f"yolov3 {first} --help"]
    assert [r["target"] for r in rows] == ["<= 0.5", "<= 0.5", "<= 1"]
    for r in rows:
        assert {"what", "ours", "anchor", "unit", "ratio", "target", "note"} <= set(r)
        assert r["unit"] == "s" and r["ratio"] is None and r["anchor"] > 0
        assert r["ours"] > -r["anchor"]  # a time beyond the anchor's (noise may make it slightly negative)
