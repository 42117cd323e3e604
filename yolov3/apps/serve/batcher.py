"""Micro-batching: requests that arrive together share one forward pass.

One asyncio queue and one worker task. The worker takes the first waiting request, then gathers more
until it holds ``max_batch`` or ``max_wait_ms`` has passed — but it waits only while other requests are
still being read and decoded (``announce``): a lone request runs at once, so batching costs nothing at
concurrency 1. The batch runs ``Detector.predict_arrays`` in a single worker thread, so the one model
instance never runs two forward passes at once and the event loop keeps serving meanwhile.
``predict_arrays`` is the per-batch step of the package's one image loop
(``yolov3.infer.loop.detect_batches``); the batcher calls it directly because it gathers its batches
itself, asynchronously, from images already decoded (an unreadable upload is refused before it queues).

Requests asking for different ``InferConfig`` settings (thresholds, classes...) are run as one
``predict_arrays`` call per distinct setting, in arrival order, each under its own settings (the
detector is shared, never copied or changed); the common case (every client on the server's
defaults) is one call per batch. A request whose waiter gave up (timeout, disconnect) before
its batch started is dropped from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from yolov3.config import InferConfig
from yolov3.infer.detector import Detector
from yolov3.infer.results import Detections


@dataclass
class _Job:
    image: np.ndarray
    name: str | None
    settings: InferConfig
    future: asyncio.Future


class MicroBatcher:
    """Batches ``submit`` calls onto ``detector``; ``on_batch(size, seconds)`` and ``on_queue(depth)``
    report to the metrics. Create, ``start`` and ``close`` inside one running event loop."""

    def __init__(self, detector: Detector, max_batch: int = 8, max_wait_ms: float = 5.0,
                 on_batch: Callable[[int, float], None] | None = None,
                 on_queue: Callable[[int], None] | None = None) -> None:  # fmt: skip
        self.detector = detector
        self.max_batch, self.max_wait = int(max_batch), max_wait_ms / 1e3
        self.on_batch, self.on_queue = on_batch, on_queue
        self.queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self.arrived = asyncio.Event()
        self.incoming = 0  # requests announced (being read / decoded) but not yet submitted
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="yolov3-infer")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._work())

    def announce(self) -> None:
        """A request is on its way (its body is being read): a batch being gathered waits for it."""
        self.incoming += 1

    def withdraw(self) -> None:
        """An announced request will not come (its body was refused)."""
        self.incoming = max(0, self.incoming - 1)

    async def submit(self, image: np.ndarray, name: str | None, settings: InferConfig) -> Detections:
        """The detections of one RGB uint8 image under ``settings`` (after ``announce``, if called)."""
        future = asyncio.get_running_loop().create_future()
        self.withdraw()
        self.queue.put_nowait(_Job(image, name, settings, future))
        self.arrived.set()
        self._report_queue()
        return await future

    async def close(self) -> None:
        """Finish every queued request, then stop the worker and its thread."""
        if self.task is not None:
            self.queue.put_nowait(None)
            self.arrived.set()
            await self.task
            self.task = None
        self.executor.shutdown(wait=True)

    async def _work(self) -> None:
        while True:
            first = await self.queue.get()
            if first is None:
                return
            batch, stop = await self._gather(first)
            batch = [job for job in batch if not job.future.done()]  # waiters that gave up
            self._report_queue()
            if batch:
                await self._run(batch)
            if stop:
                return

    async def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and whatever joins it within the wait; True when the close sentinel was met."""
        loop = asyncio.get_running_loop()
        batch, deadline = [first], loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self.queue.empty():
                job = self.queue.get_nowait()
                if job is None:
                    return batch, True
                batch.append(job)
                continue
            remaining = deadline - loop.time()
            if self.incoming <= 0 or remaining <= 0:
                break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return batch, False

    async def _run(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        groups: dict[InferConfig, list[_Job]] = {}
        for job in batch:
            groups.setdefault(job.settings, []).append(job)
        t0 = loop.time()
        for settings, jobs in groups.items():
            images, names = [j.image for j in jobs], [j.name for j in jobs]
            try:
                results = await loop.run_in_executor(
                    self.executor, self.detector.predict_arrays, images, names, settings
                )
            except Exception as exc:  # the model failed: every waiter of this call hears why
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, result in zip(jobs, results):
                if not job.future.done():
                    job.future.set_result(result)
        if self.on_batch:
            self.on_batch(len(batch), loop.time() - t0)

    def _report_queue(self) -> None:
        if self.on_queue:
            self.on_queue(self.queue.qsize())


__all__ = ["MicroBatcher"]
