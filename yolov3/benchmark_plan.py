"""What ``yolov3 benchmark`` measures and how it shows it: the rows (``SPECS``), which of them can run
here (``skip_reason``), the plan every row is measured by, the report (``benchmark.json``) and its text
table. ``yolov3.benchmark`` runs the rows (export, time, score) and re-exports these names.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from yolov3.device import cpu_supports_bf16
from yolov3.errors import UserError
from yolov3.infer.backends import cpu_cores
from yolov3.infer.backends.openvino import INSTALL_HINT as OPENVINO_HINT


@dataclass(frozen=True)
class Spec:
    """One row: ``runtime`` (a backend kind) running ``format`` (None: the checkpoint) at ``precision``
    (fp32 | bf16 | int8), needing the Python ``modules``."""

    name: str
    runtime: str
    format: str | None
    precision: str
    modules: tuple[str, ...] = ()

    @property
    def amp(self) -> str:
        return "bf16" if self.precision == "bf16" else "off"


SPECS = (
    Spec("torch-fp32", "torch", None, "fp32"),
    Spec("torch-bf16", "torch", None, "bf16"),
    Spec("onnx-fp32", "onnxruntime", "onnx", "fp32", ("onnxruntime",)),
    Spec("onnx-int8", "onnxruntime", "onnx", "int8", ("onnxruntime",)),
    Spec("openvino-fp32", "openvino", "openvino", "fp32", ("openvino",)),
    Spec("openvino-bf16", "openvino", "openvino", "bf16", ("openvino",)),
    Spec("openvino-int8", "openvino", "openvino", "int8", ("openvino", "nncf")),
)
GROUPS = ("torch", "onnx", "openvino")  # --formats NAME selects every row NAME-*
RUNTIME_NAMES = {"torch": "PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
INSTALL_HINTS = {"onnxruntime": "pip install onnxruntime", "openvino": OPENVINO_HINT, "nncf": OPENVINO_HINT}


@dataclass(frozen=True)
class Plan:
    """How every row is measured: where, at what input size and batch, how many timed passes, with how
    many CPU threads (None: the runtimes' defaults, every core), scored on which data set (or none)."""

    device: torch.device
    img_size: int
    batch: int
    runs: int
    threads: int | None = None
    data: str | None = None

    @property
    def backend_options(self) -> dict[str, Any]:
        """``Detector.load``'s and ``val``'s ``backend_options`` (ONNX Runtime's and OpenVINO's threads)."""
        return {"threads": self.threads} if self.threads else {}


@dataclass
class Row:
    """What one row measured, or why it has no figures (``status``: ok | skipped | failed)."""

    name: str
    runtime: str
    precision: str
    status: str = "ok"
    reason: str | None = None
    file: str | None = None
    file_mb: float | None = None
    export_s: float | None = None
    latency_ms: float | None = None
    latency_parts_ms: dict[str, float] | None = None
    throughput_ips: float | None = None
    map50: float | None = None
    map50_95: float | None = None


@dataclass
class BenchmarkReport:
    """Every row, with what was measured and where (``to_dict`` is ``benchmark.json``)."""

    weights: str
    data: str | None
    img_size: int
    batch: int
    runs: int
    threads: int | None
    device: str
    machine: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_specs(formats: Sequence[str] | None) -> list[Spec]:
    """The rows ``formats`` names (a row name such as ``onnx-int8``, or a group: torch | onnx | openvino),
    in ``SPECS`` order; all of them for None."""
    if not formats:
        return list(SPECS)
    names = {s.name for s in SPECS}
    bad = [f for f in formats if f not in names and f not in GROUPS]
    if bad:
        raise UserError(f"--formats {' '.join(bad)}: expected row names ({', '.join(s.name for s in SPECS)}) "
                        f"or groups ({', '.join(GROUPS)})")  # fmt: skip
    return [s for s in SPECS if s.name in formats or s.name.split("-")[0] in formats]


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The ``modules`` that cannot be imported here (found without importing them)."""
    out = []
    for name in modules:
        if name in sys.modules:
            if sys.modules[name] is None:  # blocked: an import raises ImportError
                out.append(name)
        elif importlib.util.find_spec(name) is None:
            out.append(name)
    return out


def skip_reason(spec: Spec, device: torch.device, data: str | None) -> str | None:
    """Why ``spec`` cannot run here (None: it can)."""
    missing = missing_modules(spec.modules)
    if missing:
        hint = INSTALL_HINTS.get(missing[0], f"pip install {missing[0]}")
        return f"{', '.join(missing)} not installed ({hint})"
    if spec.runtime == "openvino" and device.type != "cpu":
        return f"OpenVINO runs on the CPU here, not --device {device}"
    if spec.precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(device)} has no native bf16"
        if device.type == "cpu" and not cpu_supports_bf16():
            return "this CPU has no native bf16 (AVX512-BF16 or AMX): emulated, it would be slower than fp32"
    if spec.precision == "int8" and not data:
        return "INT8 needs --data: its calibration images come from the train split"
    return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model, cores, GPU, and the versions of Python, torch and the runtimes installed."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), cpu)  # fmt: skip
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("onnxruntime", "openvino", "nncf"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"cpu": cpu, "cores": cpu_cores(), "bf16_cpu": cpu_supports_bf16(), "gpu": gpu, **versions}


def _cell(value: float | None, digits: int, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def format_table(report: BenchmarkReport) -> str:
    """The rows as an aligned text table (mAPs in points), with the machine and settings above it."""
    m = report.machine
    threads = f"{report.threads} threads" if report.threads else "all cores"
    head = (f"{report.weights} at {report.img_size}, batch {report.batch}, {report.runs} runs, {threads}, "
            f"{report.device} ({m['gpu'] or m['cpu']}, {m['cores']} cores)")  # fmt: skip
    cols = ["row", "runtime", "precision", "status", "MB", "latency ms", f"images/s @{report.batch}",
            "mAP@0.5", "mAP@.5:.95", "note"]  # fmt: skip
    lines = [cols]
    for r in report.rows:
        lines.append([r.name, r.runtime, r.precision, r.status, _cell(r.file_mb, 1), _cell(r.latency_ms, 1),
                      _cell(r.throughput_ips, 1), _cell(r.map50, 2, 100), _cell(r.map50_95, 2, 100),
                      r.reason or ""])  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols) - 1)]
    text = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            + ("  " + line[-1] if line[-1] else "") for line in lines]  # fmt: skip
    return "\n".join([head, *(t.rstrip() for t in text)])
