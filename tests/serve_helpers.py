"""Shared by the server's and the browser tests: a small model with varied scores, uvicorn on a free
loopback port, and headless Chromium (Debian's ``chromium``, driven by Playwright)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolov3.darknet.synthetic import randomize
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

NAMES = ["cat", "dog", "kite"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def save_tiny_model(path: Path, img_size: int = 128) -> Path:
    """A width-1/8 YOLOv3 with calibrated random weights (scores spread over (0, 1), unlike a fresh
    init whose scores all tie near 0.26), saved as a checkpoint with its ``ModelMeta``."""
    torch.manual_seed(0)
    model = YOLOv3(3, width=0.125)
    randomize(model, torch.rand(2, 3, 64, 64))
    return save_model(path, model, ModelMeta.of_model(model, NAMES, img_size))


def photo(path: Path, seed: int = 0, size: tuple[int, int] = (160, 120)) -> Path:
    """A JPEG of coloured rectangles on noise (any size; the suffix picks the format)."""
    rng = np.random.default_rng(seed)
    w, h = size
    image = (rng.random((h, w, 3)) * 80).astype(np.uint8)
    for _ in range(4):
        x1, y1 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        colour = tuple(int(c) for c in rng.integers(60, 255, 3))
        cv2.rectangle(
            image, (x1, y1), (x1 + int(rng.integers(15, 60)), y1 + int(rng.integers(15, 60))), colour, -1
        )
    cv2.imwrite(str(path), image)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app, ready: bool = True, timeout: float = 60.0) -> Iterator[tuple[str, object]]:  # noqa: ANN001
    """``(base url, uvicorn.Server)`` of ``app`` served from a thread; waits for /readyz when ``ready``."""
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=10))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + ("/readyz" if ready else "/healthz")).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    else:
        raise TimeoutError(f"server on {url} not ready within {timeout} s")
    try:
        yield url, server
    finally:
        server.should_exit = True
        thread.join(30)


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(f"{why}: install it (apt-get install chromium; pip install playwright) to run this test")


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium ``Browser`` (Playwright's sync API) on the system's Chromium, never
    Playwright's own download; skips when either is missing, fails instead under CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright's Python package is missing")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def offline_page(path: Path, width: int = 1280, height: int = 900) -> Iterator[object]:
    """A Chromium ``Page`` showing the local file ``path`` with the network refused: ``page.asked``
    lists every request that left the file (``file:`` / ``data:`` URLs are its own), ``page.errors``
    every script error."""
    with chromium() as browser:
        context = browser.new_context(viewport={"width": width, "height": height})
        asked: list[str] = []

        def refuse(route) -> None:  # noqa: ANN001
            asked.append(route.request.url)
            route.abort()

        context.route("http*://**/*", refuse)
        page = context.new_page()
        page.errors, page.asked = [], asked
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else asked.append(r.url))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        try:
            yield page
        finally:
            context.close()
