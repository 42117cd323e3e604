"""The video ``yolov3 detect`` writes plays in a browser: headless Chromium (Debian's ``chromium``,
driven by Playwright) loads it over HTTP (Python's ``http.server`` in a thread) into a ``<video>``
element, which must show its size, start playing (``play()`` resolves) and move on (``currentTime``
grows) without an ``error``. The check is shown to have teeth on OpenCV's ``mp4v`` file of the same
frames (what ``detect`` wrote before), which Chromium refuses.

Skips when Chromium or Playwright is missing, except under CI (see ``tests/serve_helpers.py``).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from serve_helpers import chromium

from yolov3.cli import main
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

FPS, FRAMES, SIZE = 10, 30, (160, 120)  # a 3-second clip

PLAY = """async (src) => {
  const v = document.createElement("video");
  v.muted = true; v.playsInline = true;
  const failed = new Promise((resolve) => v.addEventListener("error", resolve, { once: true }));
  const loaded = new Promise((resolve) => v.addEventListener("loadedmetadata", resolve, { once: true }));
  document.body.append(v);
  v.src = src;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  await Promise.race([loaded, failed, sleep(15000)]);
  let played;
  try { await v.play(); played = true; } catch (e) { played = String(e); }
  const start = v.currentTime;
  await Promise.race([failed, sleep(800)]);
  return { width: v.videoWidth, height: v.videoHeight, played, start, now: v.currentTime,
           error: v.error ? `${v.error.code}: ${v.error.message}` : null };
}"""


@contextlib.contextmanager
def http_folder(folder: Path) -> Iterator[str]:
    """``folder`` served over HTTP on a free loopback port; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def clip_frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    w, h = SIZE
    frames = []
    for k in range(FRAMES):
        im = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (0, 0), 2)
        cv2.rectangle(im, (4 + 3 * k, 30), (40 + 3 * k, 80), (0, 200, 255), -1)
        frames.append(im)
    return frames


def plays(browser, url: str) -> dict:  # noqa: ANN001
    page = browser.new_page()
    try:
        page.goto(url + "/")  # an origin for the page, so the video loads as from any web server
        return page.evaluate(PLAY, url + "/clip.mp4")
    finally:
        page.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_detect_output_plays_in_chromium(browser, tmp_path):
    source = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    for im in clip_frames():
        writer.write(im)
    writer.release()
    torch.manual_seed(0)
    model = YOLOv3(3, width=0.125)
    weights = save_model(tmp_path / "m.pt", model, ModelMeta.of_model(model, ["a", "b", "c"], 64))
    out = tmp_path / "out"
    assert main(["detect", str(source), "--weights", str(weights), "--out", str(out), "--img", "64",
                 "--amp", "off", "-q"]) == 0  # fmt: skip
    with http_folder(out) as url:
        state = plays(browser, url)
    assert state["error"] is None and state["played"] is True, state
    assert (state["width"], state["height"]) == SIZE, state
    assert state["now"] > state["start"], state  # it plays on


def test_the_check_refuses_opencvs_mp4v(browser, tmp_path):
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for im in clip_frames():
        writer.write(im)
    writer.release()
    with http_folder(tmp_path) as url:
        state = plays(browser, url)
    assert state["error"] is not None or state["played"] is not True or state["width"] == 0, state
