"""``yolov3 info``: this install (versions, the runtimes and extras present, what the hardware runs
natively); ``yolov3 info MODEL``: what a model file holds (format, input size, classes, anchors,
precision, outputs), read without running it."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform

import yolov3
from yolov3.cli import VERBS

# what `yolov3 info` lists: (label, distribution, module to look for, what it is for, how to install)
RUNTIMES = [
    ("PyTorch", "torch", "torch", "training, --backend torch, TorchScript", "pip install torch"),
    ("ONNX Runtime", "onnxruntime", "onnxruntime", "--backend onnxruntime, .onnx", "pip install onnxruntime"),
    ("OpenCV DNN", "opencv-python-headless", "cv2", "--backend opencv, Darknet files", "pip install yolov3"),
    ("OpenVINO", "openvino", "openvino", "--backend openvino, .xml IRs", "pip install 'yolov3[openvino]'"),
    ("NNCF", "nncf", "nncf", "export --format openvino --int8", "pip install 'yolov3[openvino]'"),
]  # fmt: skip
EXTRAS = [
    ("serve", ["starlette", "uvicorn", "orjson", "python-multipart", "prometheus-client"], "yolov3 serve"),
    ("ray", ["ray"], "Ray Data detection (yolov3.apps.ray_data)"),
    ("dev", ["pytest", "motmetrics", "playwright"], "the test suite"),
]  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help=VERBS["info"], description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("model", nargs="?", metavar="MODEL", help="a model file to describe (.pt, .safetensors, "
                   ".weights with --cfg, .onnx, .torchscript, .xml)")  # fmt: skip
    p.add_argument("--cfg", help="the Darknet cfg of a .weights MODEL (a path or a shipped name)")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=run)


def version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def run(args: argparse.Namespace) -> int:
    if args.model:
        from yolov3.infer.backends.describe import describe_model, format_description

        info = describe_model(args.model, args.cfg)
        print(json.dumps(info, indent=1) if args.json else format_description(info))
        return 0
    from yolov3.device import cpu_supports_bf16

    print(f"yolov3 {yolov3.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print(f"cpu: {_cpu_name()}; native bf16: {'yes' if cpu_supports_bf16() else 'no'}")
    print("runtimes:")
    for label, dist, module, use, install in RUNTIMES:
        found = version(dist) if importlib.util.find_spec(module) is not None else None
        state = found or f"not installed ({install})"
        print(f"  {label:<13} {state:<40} {use}")
    cuda = _cuda()
    print(f"  {'CUDA':<13} {cuda}")
    print("extras:")
    for name, dists, use in EXTRAS:
        missing = [d for d in dists if version(d) is None]
        state = "installed" if not missing else f"missing {', '.join(missing)} (pip install 'yolov3[{name}]')"
        print(f"  {name:<13} {state:<40} {use}")
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cuda() -> str:
    """CUDA as PyTorch sees it (imports torch: the one slow line)."""
    import torch

    if not torch.cuda.is_available():
        return f"not available (torch {torch.__version__})"
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return f"{torch.version.cuda}: {names}"
