"""The server's Prometheus metrics, in a registry of its own (one per app, so tests can make many).

``yolov3_requests_total{route, status}``, ``yolov3_request_seconds{route}`` (latency histogram),
``yolov3_batch_size`` (images per forward pass, histogram), ``yolov3_batch_seconds`` (time per batch),
``yolov3_queue_depth`` (requests waiting for a batch), ``yolov3_images_total`` and
``yolov3_images_per_second`` (images detected per second over the last ``window_s`` seconds).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


class ServeMetrics:
    """Counters the app and the batcher update; ``render()`` is the ``/metrics`` body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("yolov3_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)  # fmt: skip
        self.latency = Histogram("yolov3_request_seconds", "Request latency, seconds", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.batch_size = Histogram("yolov3_batch_size", "Images per forward pass", buckets=BATCH_BUCKETS,
                                    registry=r)  # fmt: skip
        self.batch_seconds = Histogram("yolov3_batch_seconds", "Seconds per batch (all its forward passes)",
                                       buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.queue_depth = Gauge("yolov3_queue_depth", "Requests waiting for a batch", registry=r)
        self.images = Counter("yolov3_images", "Images detected", registry=r)
        rate = Gauge("yolov3_images_per_second", f"Images detected per second over the last {window_s:g} s",
                     registry=r)  # fmt: skip
        rate.set_function(self.images_per_second)
        self.window_s, self.clock = window_s, clock
        # (time, images) of the batches within the window: pruned on every batch, so that a server
        # nobody scrapes does not keep a record of every batch it ever ran
        self._done: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.images.inc(size)
        now = self.clock()
        with self._lock:
            self._done.append((now, size))
            self._forget_before(now - self.window_s)

    def images_per_second(self) -> float:
        with self._lock:
            self._forget_before(self.clock() - self.window_s)
            return sum(n for _, n in self._done) / self.window_s

    def _forget_before(self, start: float) -> None:
        while self._done and self._done[0][0] < start:
            self._done.popleft()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["ServeMetrics"]
