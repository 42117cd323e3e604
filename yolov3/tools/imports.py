"""``python -m yolov3.tools.imports``: every import in the package that runs the wrong way.

``LAYERS`` is the package's layers, lowest first (``docs/architecture.md`` draws the same picture). A
module belongs to the layer of the longest module prefix that names it (``yolov3.apps.detect.runner``:
``yolov3.apps.detect``); the package's own ``__init__`` (the lazy public API) is named ``yolov3`` and
that entry matches it alone. Every ``import`` and ``from ... import`` statement of every module is read
with ``ast`` (inside functions and ``if TYPE_CHECKING:`` too; relative ones resolved), and reported when:

- it runs upward: the imported module's layer is above the importing module's;
- it runs across rooms: a layer with several rooms (the applications) keeps each room to itself, so
  two rooms of one layer never import each other;
- a module is in no layer (a new module gets its place in ``LAYERS``).

Exit status 1 when anything is reported, 0 otherwise. Imports by string (``importlib.import_module``,
as the lazy API and the CLI's verb table do) are not statements and are not read.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "yolov3"


@dataclass(frozen=True)
class Layer:
    """One layer: a name, its rooms (each a tuple of module prefixes) and what it holds."""

    name: str
    rooms: tuple[tuple[str, ...], ...]
    holds: str


# Lowest first. A module imports only from its own room or the layers below its own.
LAYERS: tuple[Layer, ...] = (
    Layer("foundation", (("yolov3.errors", "yolov3.files", "yolov3.console", "yolov3.config_io",
                          "yolov3.config", "yolov3.device", "yolov3.distributed", "yolov3.boxes"),),
          "errors, atomic files, console, typed settings + YAML, device choice, torchrun, box formats"),
    Layer("model", (("yolov3.model",),), "the native network: Darknet-53, the seed's head, BN folding"),
    Layer("darknet", (("yolov3.darknet",),), "Darknet cfg parse / write / build, .weights I/O"),
    Layer("builder", (("yolov3.builder", "yolov3.modelfile"),),
          "every network built (settings, model-file meta, cfg); model files read and written"),
    Layer("data", (("yolov3.data", "yolov3.anchors"),), "formats, augmentation, targets, dataset, loader"),
    Layer("decode / loss", (("yolov3.decode", "yolov3.loss"),), "raw maps decoded; the seed's loss"),
    Layer("inference core", (("yolov3.infer",),),
          "backends, Detector, postprocess, Detections, sources, streams, video, drawing"),
    Layer("evaluate", (("yolov3.evaluate",),), "VOC / COCO / MOT scores of the core's results"),
    Layer("applications: detect", (("yolov3.apps.detect",),),
          "detect jobs (writers, shards, resume), the room the other applications build on"),
    Layer("applications", (("yolov3.apps",), ("yolov3.apps.track",), ("yolov3.apps.serve",),
                           ("yolov3.apps.ray_data",)),
          "one room per application: track, serve, Ray Data"),
    Layer("engine", (("yolov3.engine",),), "training"),
    Layer("export", (("yolov3.export",),), "exporters, each checked by running the file it wrote"),
    Layer("recipes", (("yolov3.benchmark", "yolov3.benchmark_plan"), ("yolov3.demo", "yolov3.demo_data"),
                      ("yolov3.label_audit",)),
          "benchmark (export + val on every runtime), the demo (train + evaluate), the label audit "
          "(predict, or train out-of-fold models, then audit)"),
    Layer("command line and package API", (("yolov3", "yolov3.__main__", "yolov3.cli", "yolov3.tools"),),
          "yolov3 <verb>, the lazy public API, these checks"),
)  # fmt: skip


@dataclass(frozen=True)
class Import:
    """One import statement's target inside the package: ``module`` imports ``target`` at ``line``."""

    module: str
    target: str
    line: int


@dataclass(frozen=True)
class Place:
    layer: int  # index into LAYERS
    room: int  # index into that layer's rooms


def module_name(path: Path, root: Path) -> str:
    """``yolov3/apps/detect/runner.py`` -> ``yolov3.apps.detect.runner``; a package's ``__init__.py``
    is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``root`` (the folder holding it), by module name."""
    files = sorted(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)
    return {module_name(p, root): p for p in files}


def _statements(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` of every import statement in ``tree``, relative ones resolved;
    ``from a import b`` names ``a.b`` when that is a module, ``a`` otherwise."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                yield (sub if sub in known else source), node.lineno


def read_imports(files: Mapping[str, Path], package: str = PACKAGE) -> list[Import]:
    """The imports of ``package`` modules by ``package`` modules (a module importing itself left out)."""
    known = set(files)
    out: dict[Import, None] = {}  # one per (module, target, line): ``from a import b, c`` is one import of a
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for target, line in _statements(tree, module, path.name == "__init__.py", known):
            if (target == package or target.startswith(package + ".")) and target != module:
                out[Import(module, target, line)] = None
    return list(out)


def place(module: str, layers: tuple[Layer, ...] = LAYERS, package: str = PACKAGE) -> Place | None:
    """The layer and room of the longest prefix naming ``module``; the package itself matches only the
    entry ``package`` (its ``__init__``), so a module missing from the table has no place."""
    best: tuple[int, Place] | None = None
    for i, layer in enumerate(layers):
        for j, room in enumerate(layer.rooms):
            for prefix in room:
                hit = module == prefix or (prefix != package and module.startswith(prefix + "."))
                if hit and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), Place(i, j))
    return best[1] if best else None


def violations(imports: list[Import], modules: list[str], layers: tuple[Layer, ...] = LAYERS,
               package: str = PACKAGE) -> list[str]:  # fmt: skip
    """One line per module with no place and per import running upward or across rooms."""
    out = [f"{m}: in no layer (give it a place in LAYERS, yolov3/tools/imports.py)" for m in modules
           if place(m, layers, package) is None]  # fmt: skip
    for imp in imports:
        src, dst = place(imp.module, layers, package), place(imp.target, layers, package)
        if src is None:
            continue  # reported above
        if dst is None:
            out.append(f"{imp.module}:{imp.line}: imports {imp.target}, which is in no layer")
        elif dst.layer > src.layer:
            out.append(f"{imp.module}:{imp.line}: imports {imp.target} upward, from "
                       f"{layers[src.layer].name!r} to {layers[dst.layer].name!r}")  # fmt: skip
        elif dst.layer == src.layer and dst.room != src.room:
            out.append(f"{imp.module}:{imp.line}: imports {imp.target} across rooms of "
                       f"{layers[src.layer].name!r}")  # fmt: skip
    return out


def check(root: Path, package: str = PACKAGE, layers: tuple[Layer, ...] = LAYERS
          ) -> tuple[list[str], int, int]:  # fmt: skip
    """``(reported lines, modules read, imports read)`` for ``package`` under ``root``."""
    files = package_files(root, package)
    imports = read_imports(files, package)
    return violations(imports, list(files), layers, package), len(files), len(imports)


def table(layers: tuple[Layer, ...] = LAYERS) -> str:
    """The layers, highest first (as the architecture drawing reads), one line each."""
    lines = []
    for layer in reversed(layers):
        rooms = " | ".join(", ".join(room) for room in layer.rooms)
        lines.append(f"{layer.name:<31} {rooms}\n{'':<31} ({layer.holds})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolov3.tools.imports",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the folder holding the yolov3 package (default: this one's)")  # fmt: skip
    parser.add_argument("--layers", action="store_true", help="print the layer table first")
    args = parser.parse_args(argv)
    if args.layers:
        print(table(), end="\n\n")
    found, modules, imports = check(args.root)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} imports run the wrong way (or modules have no layer)", file=sys.stderr)
        return 1
    print(f"{modules} modules, {imports} imports inside the package: none runs upward or across rooms "
          f"({len(LAYERS)} layers)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
