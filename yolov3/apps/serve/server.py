"""Run the app on uvicorn: one process, one event loop, one model.

Shutdown (Ctrl-C or SIGTERM): uvicorn stops accepting connections and lets the requests in flight
finish (at most ``graceful_s``); then the batcher answers everything still queued and stops.

Memory: the process gives glibc's malloc one arena for all its threads and keeps freed memory for reuse
(``yolov3.device.one_malloc_arena``, ``keep_freed_memory``), so its RSS stays flat under a long load.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

import uvicorn

from yolov3.apps.serve import ServeOptions
from yolov3.apps.serve.app import create_app
from yolov3.device import keep_freed_memory, one_malloc_arena
from yolov3.infer.detector import Detector

log = logging.getLogger("yolov3.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(load: Callable[[], Detector], options: ServeOptions, log_level: str = "info") -> None:
    """Serve until interrupted. ``load()`` returns the ``Detector`` (called once, in the background)."""
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    # Before any thread starts: one malloc arena, freed memory kept, so the RSS stays flat under load
    # (yolov3.device.one_malloc_arena says why; benchmarks/bench_serve_soak.py measures it).
    one_malloc_arena()
    keep_freed_memory()
    if not is_loopback(options.host) and options.token is None:
        log.warning("listening on %s without a token: anyone who reaches this port can use the model "
                    "(set --token or YOLOV3_SERVE_TOKEN)", options.host)  # fmt: skip
    config = uvicorn.Config(create_app(load, options), host=options.host, port=options.port,
                            log_level=log_level, timeout_graceful_shutdown=options.graceful_s,
                            timeout_keep_alive=5)  # fmt: skip
    uvicorn.Server(config).run()


__all__ = ["is_loopback", "run_server"]
