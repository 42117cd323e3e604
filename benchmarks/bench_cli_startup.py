"""Command-line start-up: how long ``yolov3 --help``, ``yolov3 --version`` and ``yolov3 VERB --help``
(every verb in ``yolov3.cli.VERBS``, and ``yolov3 data check --help``) take beyond Python's own
start-up, each in a fresh process of this venv (the ``yolov3`` console script beside the running
interpreter, else ``python -m yolov3``).

Every command and the anchor, ``python -c pass``, run once per round in turn (the order rotated each
round, so that no command always follows the same one); each row is the median over the rounds of the
command's wall time minus the median of ``python -c pass``'s, in seconds. Targets: ``<= 0.5`` for
``yolov3 --help`` and ``--version`` (they load no verb module), ``<= 1`` for each ``VERB --help`` (it
loads its verb's module, which imports no torch: ``yolov3/cli/__init__.py``).

Usage: ``python benchmarks/bench_cli_startup.py [--rounds 7] [--smoke]``; ``--smoke``: one round of
the anchor, ``--help``, ``--version`` and the first verb (checks the script in seconds). Prints JSON
lines (``benchmarks/run_all.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from yolov3.cli import VERBS  # noqa: E402  (light: the verbs' one-line helps, no verb module)

ANCHOR = "python -c pass"
TOP_TARGET = "<= 0.5"  # yolov3 --help / --version
VERB_TARGET = "<= 1"  # yolov3 VERB --help


def yolov3_command(python: str = sys.executable) -> list[str]:
    """How this venv starts ``yolov3``: its console script if installed, else ``python -m yolov3``."""
    script = Path(python).parent / "yolov3"
    return [str(script)] if script.is_file() else [python, "-m", "yolov3"]


def commands(smoke: bool = False) -> dict[str, list[str]]:
    """label -> argv: the anchor first, then every command measured."""
    yolo = yolov3_command()
    verbs = list(VERBS)[:1] if smoke else list(VERBS)
    out = {ANCHOR: [sys.executable, "-c", "pass"], "yolov3 --help": [*yolo, "--help"],
           "yolov3 --version": [*yolo, "--version"]}  # fmt: skip
    out.update({f"yolov3 {v} --help": [*yolo, v, "--help"] for v in verbs})
    if not smoke:
        out["yolov3 data check --help"] = [*yolo, "data", "check", "--help"]
    return out


def time_once(argv: list[str]) -> float:
    """Wall seconds of ``argv`` in a fresh process (its output discarded); a failure stops the script."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: {err[-1] if err else '(no output)'}")
    return seconds


def measure(cmds: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    """label -> wall seconds per round, each round running every command once, rotated."""
    labels = list(cmds)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(rounds):
        k = r % len(labels)
        for label in labels[k:] + labels[:k]:
            times[label].append(time_once(cmds[label]))
    return times


def rows(times: dict[str, list[float]]) -> list[dict]:
    """The JSON rows (``run_all``'s format): each command's median minus the anchor's, in seconds."""
    anchor = statistics.median(times[ANCHOR])
    out = []
    for label, ts in times.items():
        if label == ANCHOR:
            continue
        median = statistics.median(ts)
        top = label in ("yolov3 --help", "yolov3 --version")
        out.append({"what": f"`{label}` start-up beyond `{ANCHOR}`", "ours": round(median - anchor, 4),
                    "anchor": round(anchor, 4), "unit": "s", "ratio": None,
                    "target": TOP_TARGET if top else VERB_TARGET,
                    "note": f"median of {len(ts)} rounds; {median:.3f} s in all"})  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="times each command runs (7)")
    p.add_argument("--smoke", action="store_true", help="one round of four commands: checks the script")
    args = p.parse_args(argv)
    cmds = commands(args.smoke)
    rounds = 1 if args.smoke else args.rounds
    print(f"{len(cmds)} commands x {rounds} rounds: {' '.join(cmds['yolov3 --help'][:-1])}", flush=True)
    for row in rows(measure(cmds, rounds)):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
