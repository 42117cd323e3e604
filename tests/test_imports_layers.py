"""Imports point one way (``yolov3/tools/imports.py``): the package as it stands has no import running
up a layer or across application rooms, and a copy of it with such imports planted (inside a function,
under ``TYPE_CHECKING``, relative, between two rooms, plus a module in no layer) is reported line by
line, nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from yolov3.tools.imports import LAYERS, check, main, place

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_imports_nothing_upward():
    proc = subprocess.run([sys.executable, "-m", "yolov3.tools.imports"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "none runs upward" in proc.stdout


def _plant(path: Path, text: str) -> int:
    """Append ``text`` to ``path``; the line number of its first line."""
    old = path.read_text()
    if not old.endswith("\n"):
        old += "\n"
    path.write_text(old + text)
    return old.count("\n") + 1


def test_planted_imports_are_reported(tmp_path):
    shutil.copytree(ROOT / "yolov3", tmp_path / "yolov3", ignore=shutil.ignore_patterns("__pycache__"))
    pkg = tmp_path / "yolov3"
    assert check(tmp_path)[0] == []  # the copy is clean before planting

    # Inside a function, relative: the core reaching up to evaluate.
    draw = _plant(pkg / "infer" / "draw.py", "def _planted():\n    from ..evaluate import coco\n\n"
                  "    return coco\n")  # fmt: skip
    # Under TYPE_CHECKING: the network reaching up to Darknet interop.
    model = _plant(pkg / "model" / "fuse.py", "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                   "    import yolov3.darknet.cfg\n")  # fmt: skip
    # One application room importing another.
    serve = _plant(pkg / "apps" / "serve" / "batcher.py", "from yolov3.apps.track import kalman  # noqa\n")
    # Downward and same-room imports stay unreported (``from yolov3 import distributed`` is the module).
    _plant(pkg / "engine" / "ema.py", "from yolov3 import distributed\nfrom yolov3.engine import budget\n")
    (pkg / "stray.py").write_text('"""A module nobody placed."""\n')

    found, modules, _ = check(tmp_path)
    assert sorted(found) == sorted([
        f"yolov3.infer.draw:{draw + 1}: imports yolov3.evaluate.coco upward, from 'inference core' to "
        "'evaluate'",
        f"yolov3.model.fuse:{model + 3}: imports yolov3.darknet.cfg upward, from 'model' to 'darknet'",
        f"yolov3.apps.serve.batcher:{serve}: imports yolov3.apps.track.kalman across rooms of 'applications'",
        "yolov3.stray: in no layer (give it a place in LAYERS, yolov3/tools/imports.py)",
    ])  # fmt: skip
    assert modules == len(list(pkg.rglob("*.py")))
    assert main(["--root", str(tmp_path)]) == 1


def test_every_layer_is_ordered_lowest_first_and_the_package_matches_only_itself():
    names = [layer.name for layer in LAYERS]
    assert names.index("foundation") < names.index("inference core") < names.index("evaluate")
    assert names.index("evaluate") < names.index("applications") < names.index("command line and package API")
    assert place("yolov3") == place("yolov3.cli.detect")  # the lazy API sits with the command line
    assert place("yolov3.no_such_module") is None  # not swallowed by the package's own entry
    assert place("yolov3.apps.detect.runner").layer < place("yolov3.apps.track.runner").layer
