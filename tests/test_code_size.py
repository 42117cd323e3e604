"""No module over 400 lines, no function over 50 (``yolov3/tools/sizes.py``): the package as it stands
passes, and a copy with an oversized function, method, nested function and module planted is reported
for each of them, by name and length, along with an allow-list entry that no longer applies."""

from __future__ import annotations

import shutil
from pathlib import Path

from yolov3.tools.sizes import ALLOWED, MAX_FUNCTION_LINES, MAX_MODULE_LINES, check, main

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_or_function_over_its_limit():
    found, modules = check(ROOT)
    assert found == [], "\n".join(found)
    assert modules > 100


def test_nothing_is_allowed_over_its_limit():
    assert ALLOWED == {}  # issue 23 brought every module and function within its limit


def _function(name: str, length: int, indent: str = "") -> str:
    """A ``def`` of ``length`` lines in all (its own line included)."""
    body = "".join(f"{indent}    x{k} = {k}\n" for k in range(length - 1))
    return f"{indent}def {name}():\n{body}"


def test_planted_oversizes_are_reported(tmp_path):
    shutil.copytree(ROOT / "yolov3", tmp_path / "yolov3", ignore=shutil.ignore_patterns("__pycache__"))
    pkg = tmp_path / "yolov3"
    assert check(tmp_path)[0] == []  # the copy is clean before planting

    limit = MAX_FUNCTION_LINES
    planted = [
        '"""Planted."""\n',
        _function("too_long", limit + 1),  # one line over
        _function("just_fits", limit),  # at the limit: not reported
        "class Holder:\n" + _function("method", limit + 6, "    "),
        "def outer():\n" + _function("inner", limit + 1, "    ") + "    return inner\n",  # 1 + 51 + 1
    ]
    (pkg / "planted.py").write_text("\n\n".join(planted))
    module = "".join(f"X{k} = {k}\n" for k in range(MAX_MODULE_LINES + 1))
    (pkg / "infer" / "planted_long.py").write_text(module)
    # An allow-list entry for what is not over (any more): it must go.
    allowed = {"yolov3/apps/detect/runner.py:gone": "a test", **ALLOWED}

    found, _ = check(tmp_path, allowed=allowed)
    assert sorted(found) == sorted([
        f"yolov3/planted.py:too_long: function of {limit + 1} lines (limit {limit})",
        f"yolov3/planted.py:Holder.method: function of {limit + 6} lines (limit {limit})",
        f"yolov3/planted.py:outer: function of {limit + 3} lines (limit {limit})",
        f"yolov3/planted.py:outer.inner: function of {limit + 1} lines (limit {limit})",
        f"yolov3/infer/planted_long.py: module of {MAX_MODULE_LINES + 1} lines (limit {MAX_MODULE_LINES})",
        "yolov3/apps/detect/runner.py:gone: in ALLOWED (yolov3/tools/sizes.py) but within its limit now: "
        "take it out",
    ])  # fmt: skip
    assert main(["--root", str(tmp_path)]) == 1
