"""The page ``yolov3 serve`` ships (``yolov3/apps/serve/static/index.html``) in a real browser:
headless Chromium (Debian's ``chromium`` package, driven by Playwright) opens it against a live server.

- It uploads a photo, waits for the boxes, and the page must list as many boxes as the API returns for
  that image at the slider's threshold; moving the slider filters in the page without a new request.
  No response the page loads is a 4xx, and its icon is among them, answered as an image (headless
  Chromium asks for the icon a page links; a browser with a window asks for ``/favicon.ico`` when none
  is linked, which the server once answered 404).
- A small picture (64x48) is drawn scaled up to fill the picture's area in width or height, aspect kept.
- Labels stay whole inside the picture: boxes at its top edge and in its top-right corner (answers
  made up in the test through Playwright's request routing, so their places are known) get their
  labels inside, measured from the rectangles the page drew (``window.yolov3View.labels``); a box with
  room above it keeps its label above it.
- The token field shows only when the server needs a token, and the token is nowhere in the page.

Skips with a message when Chromium or Playwright is missing, except under CI (``CI`` set), where
``.ci/run`` installs Chromium and a missing browser is a failure. The screenshot is written to the
test's folder; with ``YOLOV3_SCREENSHOT=1`` also to ``docs/images/serve_page.png``, the README's picture.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")

from serve_helpers import chromium, live_server, photo, save_tiny_model  # noqa: E402

from yolov3.apps.serve import ServeOptions  # noqa: E402
from yolov3.apps.serve.app import create_app  # noqa: E402
from yolov3.config import InferConfig  # noqa: E402
from yolov3.infer.detector import Detector  # noqa: E402

README_PICTURE = Path(__file__).resolve().parents[1] / "docs" / "images" / "serve_page.png"
VIEWPORT = {"width": 1280, "height": 760}
TOKEN = "s3cret-browser-token"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


def serve(weights: Path, token: str | None = None):  # noqa: ANN201
    settings = InferConfig(img_size=128, conf_threshold=0.5, amp="off")
    load = lambda: Detector.load(weights, device="cpu", settings=settings)  # noqa: E731
    return live_server(create_app(load, ServeOptions(token=token)))


@pytest.fixture(scope="module")
def server(weights):
    with serve(weights) as (url, _):
        yield url


def open_page(browser, url: str):  # noqa: ANN001, ANN201
    """The page, loaded; its ``errors`` (JavaScript exceptions) and ``responses`` (status, URL,
    content type of every response: the page's network log) lists filling as it runs."""
    page = browser.new_page(viewport=VIEWPORT)
    page.errors, page.responses = [], []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("response", lambda r: page.responses.append((r.status, r.url, r.headers.get("content-type", ""))))
    page.goto(url + "/")
    return page


def wait_for_model(page) -> None:  # noqa: ANN001
    page.wait_for_function("document.getElementById('model').textContent.includes('classes')")


def upload(page, path: Path) -> None:  # noqa: ANN001
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#count[data-shown]", timeout=60_000)


def test_page_shows_the_boxes_the_api_returns(browser, server, tmp_path, darknet_dir):
    photo_path = darknet_dir / "images" / "dog.jpg"
    page = open_page(browser, server)
    wait_for_model(page)
    assert page.input_value("#threshold") == "0.5"  # the server's default threshold
    upload(page, photo_path)
    shown = page.locator("tr.det").count()
    api = httpx.post(
        server + "/v1/detect", params={"conf_threshold": "0.5"}, content=photo_path.read_bytes()
    ).json()
    assert shown == len(api["detections"]) > 0
    assert int(page.get_attribute("#count", "data-shown")) == shown
    names = page.locator("tr.det td:first-child").all_inner_texts()
    assert names == [d["name"] for d in api["detections"]]
    page.wait_for_load_state("networkidle")  # the favicon's request has been answered
    page.screenshot(path=str(tmp_path / "serve_page.png"))
    if os.environ.get("YOLOV3_SCREENSHOT"):
        page.screenshot(path=str(README_PICTURE))
    # The slider filters in the page: a higher threshold shows the API's boxes above it.
    page.fill("#threshold", "0.6")
    page.dispatch_event("#threshold", "input")
    above = [d for d in api["detections"] if d["score"] > 0.6]
    assert page.locator("tr.det").count() == len(above) < shown
    assert not [r for r in page.responses if r[0] >= 400], page.responses
    icon = page.evaluate("document.querySelector('link[rel~=icon]')?.href")
    assert icon and (200, icon, "image/svg+xml") in page.responses, (icon, page.responses)
    assert not page.errors, page.errors
    page.close()


def test_small_picture_is_scaled_to_fill_its_area(browser, server, tmp_path):
    page = open_page(browser, server)
    wait_for_model(page)
    upload(page, photo(tmp_path / "small.png", size=(64, 48)))
    # The canvas on screen against the content box of the element that holds it (CSS pixels).
    drawn, area = page.evaluate("""() => {
        const c = document.getElementById('view'), p = c.parentElement, s = getComputedStyle(p);
        const r = c.getBoundingClientRect();
        const pad = (a, b) => parseFloat(s[a]) + parseFloat(s[b]);
        return [[r.width, r.height], [p.clientWidth - pad('paddingLeft', 'paddingRight'),
                                      p.clientHeight - pad('paddingTop', 'paddingBottom')]];
    }""")
    assert drawn[0] == pytest.approx(drawn[1] * 64 / 48, abs=1.5)  # aspect kept
    fills_width, fills_height = abs(drawn[0] - area[0]) <= 1, abs(drawn[1] - area[1]) <= 1
    assert fills_width or fills_height, (drawn, area)
    assert drawn[0] <= area[0] + 1 and drawn[1] <= area[1] + 1, (drawn, area)  # and fits inside
    assert drawn[0] >= 4 * 64  # scaled up, not drawn at 64 pixels
    assert not page.errors, page.errors
    page.close()


def test_labels_stay_inside_the_picture(browser, server, tmp_path):
    w, h = 320, 60  # a wide strip: little room above the boxes at its top
    detections = [
        {"box": [0.0, 0.0, 320.0, 60.0], "score": 0.91, "class_id": 0, "name": "cat"},  # the whole picture
        {"box": [300.0, 0.0, 320.0, 12.0], "score": 0.92, "class_id": 1, "name": "dog"},  # top-right corner
        {"box": [0.0, 45.0, 8.0, 60.0], "score": 0.93, "class_id": 2, "name": "kite, long name"},  # left edge
        {"box": [120.0, 40.0, 160.0, 58.0], "score": 0.94, "class_id": 2, "name": "kite"},  # room above it
    ]
    answer = {"image": "strip.png", "width": w, "height": h, "detections": detections, "speed_ms": {}}
    page = open_page(browser, server)
    wait_for_model(page)
    page.route("**/v1/detect*", lambda route: route.fulfill(status=200, content_type="application/json",
                                                             body=json.dumps(answer)))  # fmt: skip
    upload(page, photo(tmp_path / "strip.png", size=(w, h)))
    view = page.evaluate("window.yolov3View")
    assert view is not None and len(view["labels"]) == len(detections), view
    for d, label in zip(detections, view["labels"]):
        x, y, lw, lh = label["x"], label["y"], label["w"], label["h"]
        assert 0 <= x and x + lw <= view["width"] + 0.01, (d, label, view["width"])
        assert 0 <= y and y + lh <= view["height"] + 0.01, (d, label, view["height"])
        assert lw > 0 and lh > 0
    last, scale = view["labels"][-1], view["scale"]
    assert last["y"] + last["h"] == pytest.approx(40 * scale, abs=0.01)  # above its box, touching it
    assert last["x"] == pytest.approx(120 * scale, abs=0.01)
    assert not page.errors, page.errors
    page.close()


def test_token_field_only_when_the_server_needs_one(browser, server, weights):
    page = open_page(browser, server)
    wait_for_model(page)
    assert not page.is_visible("#token")
    page.close()
    with serve(weights, token=TOKEN) as (url, _):
        page = open_page(browser, url)
        page.wait_for_selector("#token", state="visible", timeout=30_000)  # the 401 said a token is needed
        assert TOKEN not in page.content()
        page.fill("#token", TOKEN)
        page.dispatch_event("#token", "change")
        wait_for_model(page)  # the token works, and the field stays for changing it
        assert page.is_visible("#token")
        page.evaluate("localStorage.clear()")
        assert not page.errors, page.errors
        page.close()
