"""``python -m yolov3.tools.sizes``: every module over 400 lines and every function over 50 in the package.

The house rule (``STYLE.md``: a file rarely over ~400 lines, a function rarely over ~50) made a check.
Every line counts, docstrings, comments and blank lines included: a module is its line count, a
function (or method, or nested function) ``end_lineno - lineno + 1`` of its ``def`` as ``ast`` reads
it, decorators left out. ``ALLOWED`` names what may stay over for now, each with why; an entry that is
no longer over is reported too, so the list only shrinks.

Exit status 1 when anything is reported, 0 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "yolov3"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50

# "path" (a module) or "path:qualified.name" (a function), relative to the folder holding the package,
# with why it may stay over for now. Empty: everything is within its limits.
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Oversize:
    """``name`` (``path`` or ``path:qualified.name``) is ``lines`` long, over ``limit``."""

    name: str
    lines: int
    limit: int

    def __str__(self) -> str:
        kind = "function" if ":" in self.name else "module"
        return f"{self.name}: {kind} of {self.lines} lines (limit {self.limit})"


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.AST]]:
    """Every function in ``tree`` with its qualified name (``Class.method``, ``outer.inner``)."""
    out = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                out.append((name, node))
            out += _functions(node, name + ".")
        else:
            out += _functions(node, prefix)
    return out


def measure(path: Path, name: str) -> list[Oversize]:
    """What in the file at ``path`` (reported as ``name``) is over its limit."""
    text = path.read_text(encoding="utf-8")
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(Oversize(name, lines, MAX_MODULE_LINES))
    for qualified, node in _functions(ast.parse(text, filename=str(path))):
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            found.append(Oversize(f"{name}:{qualified}", length, MAX_FUNCTION_LINES))
    return found


def check(root: Path, package: str = PACKAGE, allowed: dict[str, str] = ALLOWED) -> tuple[list[str], int]:
    """``(reported lines, modules read)``: what is over and not allowed, and allowed entries no longer
    over (or gone)."""
    files = sorted(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)
    over = [o for p in files for o in measure(p, p.relative_to(root).as_posix())]
    out = [str(o) for o in over if o.name not in allowed]
    names = {o.name for o in over}
    out += [f"{name}: in ALLOWED (yolov3/tools/sizes.py) but within its limit now: take it out"
            for name in allowed if name not in names]  # fmt: skip
    return out, len(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolov3.tools.sizes",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the folder holding the yolov3 package (default: this one's)")  # fmt: skip
    args = parser.parse_args(argv)
    found, modules = check(args.root)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} modules or functions over their limits", file=sys.stderr)
        return 1
    print(f"{modules} modules: none over {MAX_MODULE_LINES} lines, no function over {MAX_FUNCTION_LINES} "
          f"({len(ALLOWED)} allowed for now)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
