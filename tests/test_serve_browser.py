"""The page ``yolov3 serve`` ships (``yolov3/infer/serve/static/index.html``) in a real browser:
headless Chromium (Debian's ``chromium`` package, driven by Playwright) opens it, uploads a photo,
waits for the boxes, and the page must list as many boxes as the API returns for that image at the
slider's threshold; moving the slider filters in the page without a new request.

Skips with a message when Chromium or Playwright is missing, except under CI (``CI`` set), where
``.ci/run`` installs Chromium and a missing browser is a failure. The screenshot is written to the
test's folder; with ``YOLOV3_SCREENSHOT=1`` also to ``docs/images/serve_page.png``, the README's picture.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from yolov3.config import InferConfig
from yolov3.infer.detector import Detector

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
README_PICTURE = Path(__file__).resolve().parents[1] / "docs" / "images" / "serve_page.png"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the browser test (.ci/run installs chromium)")
    pytest.skip(f"{why}: install it (apt-get install chromium; pip install playwright) to run this test")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright's Python package is missing")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_page_shows_the_boxes_the_api_returns(browser, tmp_path, darknet_dir):
    pytest.importorskip("starlette", reason="the serve extra is not installed")
    from serve_helpers import live_server, save_tiny_model

    from yolov3.infer.serve.app import create_app

    photo = darknet_dir / "images" / "dog.jpg"
    weights = save_tiny_model(tmp_path / "tiny.pt")
    settings = InferConfig(img_size=128, conf_threshold=0.5, amp="off")
    app = create_app(lambda: Detector.load(weights, device="cpu", settings=settings))
    with live_server(app) as (url, _):
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('model').textContent.includes('classes')")
        assert page.input_value("#threshold") == "0.5"  # the server's default threshold
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("#count[data-shown]", timeout=60_000)
        shown = page.locator("tr.det").count()
        api = httpx.post(
            url + "/v1/detect", params={"conf_threshold": "0.5"}, content=photo.read_bytes()
        ).json()
        assert shown == len(api["detections"]) > 0
        assert int(page.get_attribute("#count", "data-shown")) == shown
        names = page.locator("tr.det td:first-child").all_inner_texts()
        assert names == [d["name"] for d in api["detections"]]
        page.screenshot(path=str(tmp_path / "serve_page.png"))
        if os.environ.get("YOLOV3_SCREENSHOT"):
            page.screenshot(path=str(README_PICTURE))
        # The slider filters in the page: a higher threshold shows the API's boxes above it.
        page.fill("#threshold", "0.6")
        page.dispatch_event("#threshold", "input")
        above = [d for d in api["detections"] if d["score"] > 0.6]
        assert page.locator("tr.det").count() == len(above) < shown
    assert not errors, errors
