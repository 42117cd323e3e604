"""``yolov3 serve``: detection over HTTP — one model shared by every request, micro-batched.

Modules: ``uploads`` (an upload's bytes -> RGB array, with the size, pixel-count and format checks),
``batcher`` (``MicroBatcher``: one asyncio queue, one worker running ``Detector.predict_arrays`` in one
thread), ``metrics`` (Prometheus counters and histograms), ``app`` (the Starlette routes and the page in
``static/index.html``) and ``server`` (uvicorn). Every response carries ``Detections.to_json()``: the
records ``yolov3 detect`` writes to ``results.jsonl``.

The web stack is the optional extra ``serve`` (``pip install 'yolov3[serve]'``): this module imports
none of it, so the package and the command line work without it; ``require_installed`` says what to
install.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from yolov3.config import bad_setting
from yolov3.errors import UserError

# module imported -> the distribution that provides it
REQUIREMENTS = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "multipart": "python-multipart",
    "prometheus_client": "prometheus-client",
}
TOKEN_ENV = "YOLOV3_SERVE_TOKEN"


def missing_requirements() -> list[str]:
    """Distributions of the ``serve`` extra that are not installed."""
    return [dist for module, dist in REQUIREMENTS.items() if importlib.util.find_spec(module) is None]


def require_installed() -> None:
    """Raise ``UserError`` naming what to install when the ``serve`` extra is missing."""
    missing = missing_requirements()
    if missing:
        raise UserError(f"yolov3 serve needs {', '.join(missing)}: pip install 'yolov3[serve]' "
                        f"(or pip install {' '.join(missing)})")  # fmt: skip


@dataclass(frozen=True)
class ServeOptions:
    """How the server listens and what it accepts. Sizes in bytes and pixels, times in seconds."""

    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    max_batch: int = 8  # images per forward pass
    max_wait_ms: float = 5.0  # how long a batch waits for more requests that are on their way
    max_bytes: int = 20 * 2**20  # request body (413 above)
    # width * height from the header, before decoding (413 above); None: the process's pixel limit,
    # ``yolov3.data.images.pixel_limit()`` ($YOLOV3_MAX_PIXELS, else MAX_PIXELS), read per request
    max_pixels: int | None = None
    token: str | None = None  # bearer token for /v1/* and /metrics
    timeout_s: float = 30.0  # a detection request waiting longer gets 504
    graceful_s: float = 30.0  # on shutdown, how long requests in flight may take to finish

    def __post_init__(self) -> None:
        checks = {  # field -> (holds, what is expected, the command-line option that sets it)
            "port": (0 <= self.port <= 65535, "a port in [0, 65535]", "--port"),
            "max_batch": (self.max_batch >= 1, "a whole number >= 1", "--max-batch"),
            "max_wait_ms": (self.max_wait_ms >= 0, "milliseconds >= 0", "--max-wait-ms"),
            "max_bytes": (self.max_bytes >= 1, "bytes >= 1", "--max-upload-mb"),
            "max_pixels": (self.max_pixels is None or self.max_pixels >= 1, "pixels >= 1", "--max-pixels"),
            "timeout_s": (self.timeout_s > 0, "seconds > 0", "--timeout"),
            "graceful_s": (self.graceful_s >= 0, "seconds >= 0", "--graceful-timeout"),
        }
        for name, (ok, expected, flag) in checks.items():
            if not ok:  # NaN fails every comparison: refused too
                bad_setting(name, getattr(self, name), expected, flag)


__all__ = ["REQUIREMENTS", "TOKEN_ENV", "ServeOptions", "missing_requirements", "require_installed"]
