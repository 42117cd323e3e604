"""``make bench``: run every ``bench_*.py`` in its own process and rewrite ``docs/benchmarks.md``.

Each benchmark prints one JSON object per line per measurement::

    {"what": "...", "ours": 12.3, "anchor": 45.6, "unit": "ms", "ratio": 0.27, "target": "<= 0.25",
     "note": ""}

Scripts run one after another (they would only disturb each other's timings in parallel), each with
a timeout. A script that exits non-zero, times out or prints no measurement is listed as failed with
its last error line — never silently dropped. ``bench_gpu*.py`` runs only where CUDA is available.
The target (``"<= 0.25"``, ``">= 2"``, ...) is checked against ``ratio`` when given, else ``ours``.

Everything from the line ``HAND_WRITTEN`` (``## Measurements behind design choices (hand-written)``)
to the end of the existing file is written by hand, not measured by a script: the rewrite keeps it
as it is, after the new table.

Usage: ``python benchmarks/run_all.py [--bench-dir DIR] [--out FILE] [--timeout S] [--only bench_x ...]``
(``--only``: re-run just those scripts; the other scripts' rows of the existing file are kept, with a
line saying which rows are from which run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import operator
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq}
_TARGET = re.compile(r"^\s*(<=|>=|==|<|>)\s*([-+0-9.eE]+)")
HAND_WRITTEN = "## Measurements behind design choices (hand-written)"
# Scripts whose targets a later script replaced: their rows stay for the record, "met" says by what.
SUPERSEDED = {
    "bench_backends": "superseded: bench_cpu_runtimes measures the same latencies with issue 13's targets",
}


@dataclass
class ScriptResult:
    """What one benchmark script gave: its measurements, or why it gave none."""

    name: str
    rows: list[dict] = field(default_factory=list)
    error: str | None = None  # set when the script failed or was skipped
    skipped: bool = False
    seconds: float = 0.0


def target_met(target: str | None, ratio: float | None, ours: float | None) -> bool | None:
    """Whether ``target`` (an operator and a number) holds for ``ratio`` (or ``ours`` when there is
    no ratio); None when there is no target, no value, or the target does not parse."""
    if not target:
        return None
    m = _TARGET.match(str(target))
    value = ratio if ratio is not None else ours
    if not m or value is None:
        return None
    try:
        bound = float(m.group(2))
    except ValueError:
        return None
    return bool(_OPS[m.group(1)](float(value), bound))


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def parse_output(stdout: str) -> list[dict]:
    """The measurement objects among ``stdout``'s lines (other lines are the script's own chatter)."""
    rows = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "what" in obj:
            rows.append(obj)
    return rows


def run_script(path: Path, timeout: float, python: str = sys.executable) -> ScriptResult:
    """Run one benchmark in its own process and collect its measurements."""
    result = ScriptResult(path.stem)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [python, str(path)], capture_output=True, text=True, timeout=timeout, cwd=path.parent.parent
        )
    except subprocess.TimeoutExpired:
        result.error = f"timed out after {timeout:g} s"
        result.seconds = time.perf_counter() - t0
        return result
    result.seconds = time.perf_counter() - t0
    result.rows = parse_output(proc.stdout)
    if proc.returncode != 0:
        result.error = f"exit {proc.returncode}: {_last_error_line(proc.stderr or proc.stdout)}"
    elif not result.rows:
        result.error = f"printed no measurement: {_last_error_line(proc.stderr or proc.stdout)}"
    return result


def machine_info() -> dict[str, str]:
    """CPU model (from /proc/cpuinfo), cores, torch version, GPU and date."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        info["torch"], info["gpu"] = "not installed", "unknown"
    info["python"] = platform.python_version()
    info["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return info


def _fmt(value: object) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value).replace("|", "\\|")
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 0.01 <= abs(value) < 1e5:
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:.3g}"


def hand_written_part(path: Path) -> str:
    """The text of ``path`` from the ``HAND_WRITTEN`` heading line to its end ("" when none)."""
    try:
        lines = path.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return ""
    start = next((i for i, line in enumerate(lines) if line.rstrip() == HAND_WRITTEN), None)
    return "" if start is None else "".join(lines[start:])


def kept_rows(path: Path, rerun: set[str]) -> tuple[list[str], str]:
    """``(table lines, machine line)`` of ``path`` for the scripts not in ``rerun`` (``--only``)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return [], ""
    rows = [ln for ln in lines if ln.startswith("| bench") and ln.split("|")[1].strip() not in rerun]
    machine = next((ln for ln in lines if ln.startswith("Machine: ")), "")
    earlier = next((ln for ln in lines if ln.startswith("Re-run on that date: ")), "")
    if earlier:  # that file was itself partly re-run: keep where its older rows came from
        machine += " " + earlier.replace("Re-run on that date", "Of those, re-run then", 1)
    return rows, machine


def _superseded(line: str) -> str:
    """A kept table line with its "met" cell saying what replaced it, when its script is superseded."""
    cells = line.split(" | ")
    name = cells[0].lstrip("| ").strip()
    if name in SUPERSEDED and len(cells) == 9:
        cells[7] = SUPERSEDED[name]
    return " | ".join(cells)


def render_markdown(results: list[ScriptResult], info: dict[str, str], hand_written: str = "",
                    kept: tuple[list[str], str] = ([], "")) -> str:  # fmt: skip
    """The whole ``docs/benchmarks.md``: machine, one row per measurement or failure (merged in script
    order with the ``kept`` rows of an earlier run, for ``--only``), then the ``hand_written`` part
    unchanged."""
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`); do not edit the table by hand (the last",
        "section is hand-written and kept). Each benchmark script runs in its own process; the anchor",
        "is the reference implementation measured in the same run, and the ratio is ours / anchor",
        "unless the target says otherwise.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, GPU: {info['gpu']}; torch {info['torch']}, "
        f"Python {info['python']}; {info['date']}.",
        "",
    ]
    if kept[0]:
        rerun = ", ".join(r.name for r in results)
        out += [f"Re-run on that date: {rerun}; the other rows are from the earlier run ({kept[1]})", ""]
    out += [
        "| script | what | this project | anchor | unit | ratio | target | met | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    table: list[tuple[str, str]] = [(ln.split("|")[1].strip(), _superseded(ln)) for ln in kept[0]]
    for res in results:
        for row in res.rows:
            met = target_met(row.get("target"), row.get("ratio"), row.get("ours"))
            met_s = "—" if met is None else ("yes" if met else "**no**")
            met_s = SUPERSEDED.get(res.name, met_s)
            cells = [res.name, row.get("what"), row.get("ours"), row.get("anchor"), row.get("unit"),
                     row.get("ratio"), row.get("target"), met_s, row.get("note")]  # fmt: skip
            table.append((res.name, "| " + " | ".join(_fmt(c) for c in cells) + " |"))
        if res.error:
            status = "skipped" if res.skipped else "**failed**"
            table.append(
                (res.name, f"| {res.name} | {status}: {_fmt(res.error)} | — | — | — | — | — | — | — |")
            )
    out += [line for _, line in sorted(table, key=lambda t: t[0])]  # stable: each script's rows in order
    n_rows = sum(len(r.rows) for r in results) + len(kept[0])
    n_failed = sum(1 for r in results if r.error and not r.skipped)
    out += ["", f"{n_rows} measurements from {len(results)} scripts; {n_failed} failed.", ""]
    return "\n".join(out) + ("\n" + hand_written if hand_written else "")


def run_all(bench_dir: Path, out: Path, timeout: float, cuda: bool | None = None,
            only: list[str] | None = None) -> list[ScriptResult]:  # fmt: skip
    """Run every ``bench_*.py`` under ``bench_dir`` (``only``: just these names, the other rows of
    ``out`` kept as they were) and write the table to ``out``, keeping the hand-written part of the
    file already there. ``cuda``: whether to run GPU benchmarks (None: when torch sees a GPU)."""
    scripts = sorted(bench_dir.glob("bench_*.py"))
    if only:
        unknown = sorted(set(only) - {p.stem for p in scripts})
        if unknown:
            raise SystemExit(f"run_all: no such benchmark {unknown} in {bench_dir}")
        scripts = [p for p in scripts if p.stem in only]
    kept = kept_rows(out, {p.stem for p in scripts}) if only else ([], "")
    if cuda is None:
        try:
            import torch

            cuda = torch.cuda.is_available()
        except ImportError:
            cuda = False
    results = []
    for i, path in enumerate(scripts, 1):
        if "gpu" in path.stem and not cuda:
            results.append(ScriptResult(path.stem, error="no CUDA device on this machine", skipped=True))
            print(f"[{i}/{len(scripts)}] {path.name}: skipped (no CUDA)", flush=True)
            continue
        print(f"[{i}/{len(scripts)}] {path.name} ...", end=" ", flush=True)
        res = run_script(path, timeout)
        results.append(res)
        print(
            f"{len(res.rows)} rows, {res.seconds:.0f} s" + (f"; FAILED: {res.error}" if res.error else ""),
            flush=True,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(render_markdown(results, machine_info(), hand_written_part(out), kept))
    tmp.replace(out)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench-dir", type=Path, default=HERE, help="folder holding bench_*.py (default: here)")
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "benchmarks.md")
    # bench_cpu_runtimes, the longest, took 674 s (2 cores): two 300-image calibrations, eight runtimes
    p.add_argument("--timeout", type=float, default=1500.0, help="seconds allowed per script")
    p.add_argument(
        "--only", nargs="+", metavar="NAME", help="re-run these (bench_x ...), keep the other rows"
    )
    args = p.parse_args(argv)
    if not args.bench_dir.is_dir():
        print(f"run_all: {args.bench_dir} is not a folder", file=sys.stderr)
        return 2
    results = run_all(args.bench_dir, args.out, args.timeout, only=args.only)
    failed = [r.name for r in results if r.error and not r.skipped]
    print(f"wrote {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
