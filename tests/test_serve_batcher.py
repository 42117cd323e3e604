"""``MicroBatcher`` (``yolov3/apps/serve/batcher.py``): batches up to ``max_batch``, waits only for
announced requests and at most ``max_wait_ms``, one forward pass at a time in one thread, per-settings
groups, failures to their waiters, a drained queue on close; and through a live server, concurrent
requests get byte for byte the answers they get one by one.

The reference for the batching is a fake detector that records every call it gets (the images it was
handed, from which thread, how many calls overlapped); for the answers, the same requests sent one by one.
Waits are timed on a fake clock (``FakeClockLoop``), never by sleeping: exact, and as fast on a loaded
machine as on an idle one.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from yolov3.apps.serve.batcher import MicroBatcher
from yolov3.config import InferConfig
from yolov3.infer.results import Detections


class Recorder:
    """Records each ``predict_arrays`` call; answers one box per image whose score is the image's
    first pixel / 255, so every waiter can check it got its own answer."""

    def __init__(self, seconds: float = 0.0, fail_on: int | None = None) -> None:
        self.settings = InferConfig()
        self.calls: list[tuple[int, InferConfig, str]] = []
        self.overlap = {"active": 0, "most": 0}
        self.lock = threading.Lock()
        self.seconds, self.fail_on = seconds, fail_on

    def predict_arrays(self, images, paths=None, settings=None):  # noqa: ANN001, ANN201
        with self.lock:
            self.overlap["active"] += 1
            self.overlap["most"] = max(self.overlap["most"], self.overlap["active"])
        try:
            time.sleep(self.seconds)
            self.calls.append((len(images), settings, threading.current_thread().name))
            if self.fail_on is not None and any(int(im[0, 0, 0]) == self.fail_on for im in images):
                raise RuntimeError("model failed")
            return [Detections(np.zeros((1, 4), np.float32), np.array([im[0, 0, 0] / 255], np.float32),
                               np.zeros(1, np.int64), path=p) for im, p in zip(images, paths)]  # fmt: skip
        finally:
            with self.lock:
                self.overlap["active"] -= 1


def image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


class _JumpingSelector(selectors.DefaultSelector):
    """Where the loop would sleep until its next timer, the fake clock jumps there instead."""

    def __init__(self, loop: FakeClockLoop) -> None:
        super().__init__()
        self.loop = loop

    def select(self, timeout: float | None = None):  # noqa: ANN201
        if timeout:  # every task waits on a timer (or on a thread: see FakeClockLoop)
            self.loop.now += timeout
            timeout = 0
        return super().select(timeout)


class FakeClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` starts at 0 and moves only by jumping to the next due timer when
    nothing is ready (``asyncio.sleep``, ``wait_for`` timeouts: the batcher's waits). Work in a thread
    takes no fake time, and a timer due while a thread works fires at once: the waits timed here are
    those during which no thread runs."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run(coro):  # noqa: ANN001, ANN201
    with asyncio.Runner(loop_factory=FakeClockLoop) as runner:
        return runner.run(coro)


async def submit_all(batcher: MicroBatcher, values: list[int], settings: list[InferConfig] | None = None):
    settings = settings or [InferConfig()] * len(values)
    return await asyncio.gather(*(batcher.submit(image(v), f"img{v}", s) for v, s in zip(values, settings)))


@pytest.mark.parametrize(("max_batch", "sizes"), [(4, [4, 4, 2]), (8, [8, 2]), (16, [10])])
def test_queued_requests_fill_batches_of_max_batch(max_batch, sizes):
    async def main():  # noqa: ANN202
        rec = Recorder()
        b = MicroBatcher(rec, max_batch=max_batch, max_wait_ms=50)
        b.start()
        results = await submit_all(b, list(range(10)))
        await b.close()
        return rec, results

    rec, results = run(main())
    assert [n for n, _, _ in rec.calls] == sizes
    assert [r.path for r in results] == [f"img{v}" for v in range(10)]
    assert [round(float(r.scores[0]) * 255) for r in results] == list(range(10))


def test_a_lone_request_does_not_wait_but_an_announced_one_is_waited_for():
    async def main():  # noqa: ANN202
        rec = Recorder()
        b = MicroBatcher(rec, max_batch=8, max_wait_ms=2000)
        b.start()
        clock = asyncio.get_running_loop().time
        t0 = clock()
        await b.submit(image(1), None, InferConfig())
        lone = clock() - t0
        b.announce()  # a second request is being read...
        b.announce()

        async def later():  # noqa: ANN202
            await asyncio.sleep(0.2)
            return await b.submit(image(3), None, InferConfig())

        t0 = clock()
        await asyncio.gather(b.submit(image(2), None, InferConfig()), later())
        joined = clock() - t0
        await b.close()
        return rec, lone, joined

    rec, lone, joined = run(main())
    assert lone == 0.0  # not the 2 s wait
    assert [n for n, _, _ in rec.calls] == [1, 2]  # the late one joined the first one's batch
    assert joined == pytest.approx(0.2)  # ran as soon as it came, not at the 2 s deadline


def test_wait_is_bounded_by_max_wait_ms():
    async def main():  # noqa: ANN202
        rec = Recorder()
        b = MicroBatcher(rec, max_batch=8, max_wait_ms=150)
        b.start()
        b.announce()
        b.announce()  # this one never comes
        clock = asyncio.get_running_loop().time
        t0 = clock()
        await b.submit(image(1), None, InferConfig())
        waited = clock() - t0
        await b.close()
        return waited

    assert run(main()) == pytest.approx(0.150)


def test_one_forward_pass_at_a_time_in_one_thread_and_settings_kept_apart():
    loose, strict = InferConfig(conf_threshold=0.1), InferConfig(conf_threshold=0.6)

    async def main():  # noqa: ANN202
        rec = Recorder(seconds=0.01)
        b = MicroBatcher(rec, max_batch=4, max_wait_ms=5)
        b.start()
        settings = [loose if v % 3 else strict for v in range(24)]
        results = await submit_all(b, list(range(24)), settings)
        await b.close()
        return rec, results

    rec, results = run(main())
    assert rec.overlap["most"] == 1 and len({name for _, _, name in rec.calls}) == 1
    assert sum(n for n, _, _ in rec.calls) == 24
    assert {s for _, s, _ in rec.calls} == {loose, strict} and rec.settings == InferConfig()  # not mutated
    assert [round(float(r.scores[0]) * 255) for r in results] == list(range(24))


def test_a_failed_call_fails_its_waiters_only_and_close_drains_the_queue():
    async def main():  # noqa: ANN202
        rec = Recorder(fail_on=5)
        b = MicroBatcher(rec, max_batch=2, max_wait_ms=0)
        b.start()
        tasks = [asyncio.ensure_future(b.submit(image(v), None, InferConfig())) for v in range(8)]
        await asyncio.sleep(0)  # every request queued
        await b.close()  # answers all eight before stopping
        return await asyncio.gather(*tasks, return_exceptions=True)

    out = run(main())
    failed = [k for k, r in enumerate(out) if isinstance(r, Exception)]
    assert failed == [4, 5]  # the batch holding image 5
    assert all(isinstance(r, Detections) for k, r in enumerate(out) if k not in failed)


def test_a_waiter_that_gave_up_is_dropped_from_its_batch():
    async def main():  # noqa: ANN202
        rec = Recorder()
        b = MicroBatcher(rec, max_batch=8, max_wait_ms=0)
        gone = asyncio.ensure_future(b.submit(image(1), None, InferConfig()))
        kept = asyncio.ensure_future(b.submit(image(2), None, InferConfig()))
        await asyncio.sleep(0)
        gone.cancel()
        b.start()
        result = await kept
        await b.close()
        return rec, result

    rec, result = run(main())
    assert [n for n, _, _ in rec.calls] == [1] and round(float(result.scores[0]) * 255) == 2


def same_as_single_pass(alone: dict, together: dict) -> None:
    """The same record but for the timings, up to the last rounded digit of a box or score.

    Not byte for byte: oneDNN runs a batch of one through another convolution kernel than a batch of
    two or more (their raw maps differ by ~1e-5; batches of 2 and 8 agree exactly), so a coordinate
    rounded to 0.01 px or a score rounded to 1e-5 can land on the neighbouring value. Everything else —
    which boxes, their order, classes, names, sizes — must be identical."""
    a, t = dict(alone), dict(together)
    a.pop("speed_ms"), t.pop("speed_ms")
    da, dt = a.pop("detections"), t.pop("detections")
    assert a == t
    assert [(d["class_id"], d["name"]) for d in da] == [(d["class_id"], d["name"]) for d in dt]
    if da:
        assert np.abs(np.array([d["box"] for d in da]) - [d["box"] for d in dt]).max() <= 0.0101
        assert np.abs(np.array([d["score"] for d in da]) - [d["score"] for d in dt]).max() <= 2.01e-5


def test_concurrent_requests_equal_the_same_requests_one_by_one(tmp_path):
    pytest.importorskip("starlette", reason="the serve extra is not installed")
    httpx = pytest.importorskip("httpx")
    from prometheus_client.parser import text_string_to_metric_families
    from serve_helpers import live_server, photo, save_tiny_model

    from yolov3.apps.serve import ServeOptions
    from yolov3.apps.serve.app import create_app
    from yolov3.infer.detector import Detector

    weights = save_tiny_model(tmp_path / "tiny.pt")
    bodies = [
        photo(tmp_path / f"{k}.jpg", seed=k, size=(120 + 8 * k, 96 + 4 * k)).read_bytes() for k in range(16)
    ]
    settings = InferConfig(img_size=128, conf_threshold=0.3, amp="off")
    app = create_app(lambda: Detector.load(weights, device="cpu", batch_size=8, settings=settings),
                     ServeOptions(max_batch=8, max_wait_ms=20))  # fmt: skip

    def answer(client: httpx.Client, body: bytes) -> dict:
        r = client.post("/v1/detect", content=body, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    with live_server(app) as (url, _):
        with httpx.Client(base_url=url) as c:
            alone = [answer(c, body) for body in bodies]
        with ThreadPoolExecutor(16) as pool:
            clients = [httpx.Client(base_url=url) for _ in range(16)]
            together = list(pool.map(answer, clients, bodies * 1))
            for c in clients:
                c.close()
        text = httpx.get(url + "/metrics").text
    for a, t in zip(alone, together):
        same_as_single_pass(a, t)
    assert any(a["detections"] for a in alone)
    families = text_string_to_metric_families(text)
    hist = {s.labels["le"]: s.value for f in families if f.name == "yolov3_batch_size"
            for s in f.samples if s.name.endswith("_bucket")}  # fmt: skip
    assert hist["1.0"] < hist["+Inf"]  # some requests did share a forward pass
