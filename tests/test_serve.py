"""``yolov3 serve`` (``yolov3.apps.serve``): the same detections as ``yolov3 detect``, every bad input
answered with its status and a JSON message (and the server still serving after it), readiness,
token, timeouts, metrics read back with Prometheus' own parser, graceful shutdown.

References: ``yolov3 detect``'s ``results.jsonl`` for the same file and weights; the drawing module
for ``?annotated=1``; ``prometheus_client.parser`` for ``/metrics``; the batcher's own tests are in
``tests/test_serve_batcher.py``.
"""

from __future__ import annotations

import json
import struct
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette", reason="the serve extra (pip install -e '.[serve]') is not installed")
httpx = pytest.importorskip("httpx")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from serve_helpers import NAMES, live_server, photo, save_tiny_model  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from yolov3.apps.serve import ServeOptions  # noqa: E402
from yolov3.apps.serve.app import create_app  # noqa: E402
from yolov3.apps.serve.metrics import ServeMetrics  # noqa: E402
from yolov3.cli import main  # noqa: E402
from yolov3.config import InferConfig  # noqa: E402
from yolov3.infer.detector import Detector  # noqa: E402
from yolov3.infer.draw import draw_detections  # noqa: E402

SETTINGS = InferConfig(img_size=128, conf_threshold=0.3, amp="off")
TOKEN = "s3cret"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("serve") / "tiny.pt")


@pytest.fixture(scope="module")
def images(tmp_path_factory, darknet_dir_or_none) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    made = [photo(folder / f"p{k}.jpg", seed=k, size=(160 + 16 * k, 120 + 8 * k)) for k in range(5)]
    made.append(photo(folder / "grid.png", seed=9))
    return made + ([darknet_dir_or_none / "images" / "dog.jpg"] if darknet_dir_or_none else [])


@pytest.fixture(scope="module")
def darknet_dir_or_none() -> Path | None:
    from conftest import SHARED

    return SHARED if SHARED.is_dir() else None


def loader(weights: Path, **overrides):  # noqa: ANN201
    return lambda: Detector.load(weights, device="cpu", batch_size=8, settings=SETTINGS.replace(**overrides))


def wait_ready(client: TestClient) -> None:
    for _ in range(600):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise TimeoutError(client.get("/readyz").json())


@pytest.fixture(scope="module")
def client(weights):
    options = ServeOptions(token=TOKEN, max_bytes=300_000, max_pixels=4_000_000, max_batch=4)
    with TestClient(create_app(loader(weights), options)) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        wait_ready(c)
        yield c


def test_same_detections_as_yolov3_detect(client, weights, images, tmp_path):
    """Each image: the server's JSON equals the ``results.jsonl`` record ``yolov3 detect`` writes."""
    out = tmp_path / "detect"
    for image in images:
        assert main(["detect", str(image), "--weights", str(weights), "--img", "128", "--amp", "off",
                     "--conf", "0.3", "--out", str(out), "--no-save"]) == 0  # fmt: skip
        (record,) = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
        raw = client.post("/v1/detect", content=image.read_bytes()).json()
        form = client.post("/v1/detect", files={"image": (image.name, image.read_bytes())}).json()
        for got in (raw, form):
            assert {k: got[k] for k in ("width", "height", "detections")} == {
                k: record[k] for k in ("width", "height", "detections")
            }, image.name
            assert set(got["speed_ms"]) == {"preprocess", "inference", "nms"}
        assert form["image"] == image.name and raw["image"] is None
    assert any(client.post("/v1/detect", content=p.read_bytes()).json()["detections"] for p in images)


def test_query_options_match_the_same_settings_in_process(client, weights, images):
    """``conf_threshold``, ``iou_threshold``, ``max_det``, ``classes`` reach the detector: the answer
    equals an in-process ``Detector`` built with those settings."""
    image = images[-1]
    query = {"conf_threshold": "0.2", "iou_threshold": "0.3", "max_det": "5", "classes": "0,2"}
    got = client.post("/v1/detect", params=query, content=image.read_bytes()).json()["detections"]
    settings = SETTINGS.replace(conf_threshold=0.2, iou_threshold=0.3, max_det=5, classes=(0, 2))
    ref = Detector.load(weights, device="cpu", settings=settings)
    want = ref.predict(image)[0].to_json()["detections"]
    assert got == want and 0 < len(got) <= 5 and {d["name"] for d in got} <= {"cat", "kite"}
    default = client.post("/v1/detect", content=image.read_bytes()).json()["detections"]
    assert default != got  # the query changed the answer


def test_tile_query_slices_this_request_as_the_same_settings_in_process(client, weights, images):
    """``tile``, ``tile_overlap``, ``tile_merge`` reach the detector per request: the answer equals an
    in-process sliced ``Detector``; ``tile=0`` is whole-picture inference; a picture smaller than the
    tile is this request's 400, naming its size."""
    image = images[4]  # 224 x 152
    query = {"tile": "64", "tile_overlap": "0.25", "tile_merge": "nmm", "conf_threshold": "0.1"}
    got = client.post("/v1/detect", params=query, content=image.read_bytes()).json()["detections"]
    settings = SETTINGS.replace(tile=64, tile_overlap=0.25, tile_merge="nmm", conf_threshold=0.1)
    want = Detector.load(weights, device="cpu", settings=settings).predict(image)[0].to_json()["detections"]
    assert got == want and got
    whole = client.post("/v1/detect", params={"tile": "0"}, content=image.read_bytes()).json()["detections"]
    assert whole == client.post("/v1/detect", content=image.read_bytes()).json()["detections"] != got
    r = client.post("/v1/detect", params={"tile": "256"}, content=image.read_bytes())
    assert r.status_code == 400 and "224x152 is smaller than the tile (256x256)" in r.json()["error"]


def test_annotated_image_is_the_drawn_detections(client, images):
    image = images[0]
    dets = client.post("/v1/detect", content=image.read_bytes()).json()["detections"]
    r = client.post("/v1/detect?annotated=1", content=image.read_bytes())
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert int(r.headers["x-detections"]) == len(dets)
    got = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imread(str(image))
    want = draw_detections(original, np.array([d["box"] for d in dets]).reshape(-1, 4),
                           np.array([d["score"] for d in dets]), np.array([d["class_id"] for d in dets]),
                           NAMES, bgr=True)  # fmt: skip
    want = cv2.imdecode(cv2.imencode(".jpg", want)[1], cv2.IMREAD_COLOR)  # the same JPEG round trip
    assert got.shape == original.shape and len(dets) > 0
    assert np.abs(got.astype(int) - want).mean() < 0.5  # boxes from the JSON's rounded corners
    assert np.abs(got.astype(int) - original).mean() > 5


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk (valid CRC) declaring ``width x height``, and an empty IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def bad_requests(image: bytes) -> dict[str, tuple[dict, int, str]]:
    """name -> (request keywords, expected status, a word the message must hold)."""
    return {
        "oversized upload": ({"content": b"\xff" * 400_000}, 413, "limit"),
        "oversized multipart": ({"files": {"image": ("big.jpg", b"\xff" * 400_000)}}, 413, "limit"),
        "text file": ({"content": b"just some text\n" * 10}, 400, "not an image"),
        "text file in a form": ({"files": {"image": ("a.txt", b"hello")}}, 400, "not an image"),
        "form without a file": ({"files": {"x": (None, "1")}}, 400, "without a file"),
        "empty body": ({"content": b""}, 400, "empty"),
        "truncated JPEG": ({"content": image[: len(image) // 2]}, 400, "truncated"),
        "truncated PNG": ({"content": png_header(64, 64)[:-12] + b"\x00" * 30}, 400, "decode"),
        "3,000 x 3,000 PNG header": ({"content": png_header(3_000, 3_000)}, 413, "3000x3000"),
        "30,000 x 30,000 PNG header": ({"content": png_header(30_000, 30_000)}, 413, "900000000 pixels"),
        "bad threshold": ({"content": image, "params": {"conf_threshold": "x"}}, 400, "parse"),
        "threshold out of range": (
            {"content": image, "params": {"conf_threshold": "3"}},
            400,
            "conf_threshold",
        ),
        "class out of range": ({"content": image, "params": {"classes": "7"}}, 400, "classes"),
        "unknown option": ({"content": image, "params": {"confidence": "0.5"}}, 400, "unknown query option"),
        "tile not a multiple of 32": ({"content": image, "params": {"tile": "100"}}, 400, "multiple of 32"),
        "tile_full not a flag": ({"content": image, "params": {"tile": "64", "tile_full": "x"}}, 400, "full"),
        "missing token": ({"content": image, "headers": {"Authorization": ""}}, 401, "token"),
        "wrong token": ({"content": image, "headers": {"Authorization": "Bearer nope"}}, 401, "token"),
    }


@pytest.mark.parametrize("case", list(bad_requests(b"")))
def test_bad_request_gets_its_status_and_the_server_keeps_serving(client, images, case):
    image = images[0].read_bytes()
    kwargs, status, word = bad_requests(image)[case]
    r = client.post("/v1/detect", **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and word.lower() in body["error"].lower(), body
    assert client.post("/v1/detect", content=image).status_code == 200


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/nowhere", 404), ("post", "/v1/detects", 404), ("get", "/v1/detect", 405),
    ("delete", "/v1/model", 405), ("put", "/", 405),
])  # fmt: skip
def test_unknown_route_and_wrong_method(client, images, method, path, status):
    r = getattr(client, method)(path)
    assert r.status_code == status and r.json()["status"] == status and r.json()["error"]
    assert client.post("/v1/detect", content=images[0].read_bytes()).status_code == 200


def test_model_info_health_page_and_token_scope(client, weights):
    info = client.get("/v1/model").json()
    assert info["names"] == NAMES and info["img_size"] == 128 and info["runtime"] == "torch"
    assert len(info["anchors"]) == 3 and info["strides"] == [8, 16, 32] and info["token_required"]
    assert info["settings"]["conf_threshold"] == 0.3
    bare = {"Authorization": ""}
    assert client.get("/v1/model", headers=bare).status_code == 401
    assert client.get("/metrics", headers=bare).status_code == 401
    assert client.get("/healthz", headers=bare).json() == {"status": "alive"}
    assert client.get("/readyz", headers=bare).status_code == 200
    page = client.get("/", headers=bare)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v1/detect" in page.text and "http://" not in page.text and "https://" not in page.text  # offline


def test_favicon_is_an_svg_the_page_links_and_needs_no_token(client):
    bare = {"Authorization": ""}
    icon = client.get("/favicon.svg", headers=bare)
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert ET.fromstring(icon.content).tag == "{http://www.w3.org/2000/svg}svg"
    assert '<link rel="icon" href="/favicon.svg" type="image/svg+xml">' in client.get("/", headers=bare).text


def test_metrics_parse_and_count_what_was_served(weights, images):
    with TestClient(create_app(loader(weights))) as c:
        wait_ready(c)
        body = images[0].read_bytes()
        for _ in range(3):
            assert c.post("/v1/detect", content=body).status_code == 200
        assert c.post("/v1/detect", content=b"nope").status_code == 400
        assert c.get("/missing").status_code == 404
        text = c.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {(s.labels["route"], s.labels["status"]): s.value for s in families["yolov3_requests"].samples
                if s.name == "yolov3_requests_total"}  # fmt: skip
    assert requests[("/v1/detect", "200")] == 3 and requests[("/v1/detect", "400")] == 1
    assert requests[("other", "404")] == 1
    batch = {s.name: s.value for s in families["yolov3_batch_size"].samples if not s.labels.get("le")}
    assert batch["yolov3_batch_size_count"] == 3 and batch["yolov3_batch_size_sum"] == 3
    latency = [s for s in families["yolov3_request_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in latency if s.labels["route"] == "/v1/detect") == 4
    assert families["yolov3_queue_depth"].samples[0].value == 0
    assert families["yolov3_images_per_second"].samples[0].value == pytest.approx(3 / 10)
    assert [s.value for s in families["yolov3_images"].samples if s.name == "yolov3_images_total"] == [3]


def test_warm_up_runs_every_batch_size_before_ready(weights):
    sizes = []

    def load() -> Detector:
        detector = loader(weights)()
        predict = detector.predict_arrays

        def recorded(images, paths=None, settings=None):  # noqa: ANN001, ANN202
            sizes.append(len(images))
            return predict(images, paths, settings)

        detector.predict_arrays = recorded
        return detector

    with TestClient(create_app(load, ServeOptions(max_batch=5))) as c:
        wait_ready(c)
        assert sizes == [1, 5, 4, 3, 2]  # Detector.warmup, then every batch size, largest first


def test_metrics_keep_only_the_rate_windows_batches_when_nobody_scrapes():
    now = [0.0]
    metrics = ServeMetrics(window_s=10.0, clock=lambda: now[0])
    for _ in range(10_000):  # a batch every 0.1 s for 1,000 s, and no /metrics request
        metrics.batch(2, 0.05)
        now[0] += 0.1
    assert len(metrics._done) <= 101  # a record of every batch once grew without end
    assert metrics.images_per_second() == pytest.approx(2 * 100 / 10, rel=0.02)


def test_not_ready_until_loaded_and_failed_load_says_why(weights, images):
    release = threading.Event()

    def slow_load():  # noqa: ANN202
        release.wait(30)
        return loader(weights)()

    with TestClient(create_app(slow_load)) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503 and c.get("/readyz").json()["error"] == "model loading"
        assert c.post("/v1/detect", content=images[0].read_bytes()).status_code == 503
        release.set()
        wait_ready(c)
        assert c.post("/v1/detect", content=images[0].read_bytes()).status_code == 200

    def broken() -> Detector:
        raise FileNotFoundError("gone.pt")

    with TestClient(create_app(broken)) as c:
        for _ in range(100):
            if "failed" in c.get("/readyz").json()["error"]:
                break
            time.sleep(0.02)
        r = c.get("/readyz")
        assert r.status_code == 503 and "gone.pt" in r.json()["error"]


class SlowDetector:
    """A stand-in for ``Detector``: sleeps ``seconds`` per batch, then returns the real one's result."""

    def __init__(self, detector: Detector, seconds: float) -> None:
        self.inner, self.seconds = detector, seconds
        self.settings, self.names = detector.settings, detector.names
        self.backend, self.device, self.img_size = detector.backend, detector.device, detector.img_size
        self.anchors, self.strides, self.resolve = detector.anchors, detector.strides, detector.resolve

    def warmup(self) -> None:
        pass

    def predict_arrays(self, images, paths=None, settings=None):  # noqa: ANN001, ANN201
        time.sleep(self.seconds)
        return self.inner.predict_arrays(images, paths, settings)


def test_timeout_gives_504_and_graceful_shutdown_finishes_requests_in_flight(weights, images):
    body = images[0].read_bytes()
    with TestClient(
        create_app(lambda: SlowDetector(loader(weights)(), 0.5), ServeOptions(timeout_s=0.1))
    ) as c:
        wait_ready(c)
        r = c.post("/v1/detect", content=body)
        assert r.status_code == 504 and "timeout" in r.json()["error"]
    app = create_app(lambda: SlowDetector(loader(weights)(), 1.0))
    answers = []
    with live_server(app) as (url, server):
        sender = threading.Thread(target=lambda: answers.append(httpx.post(url + "/v1/detect", content=body,
                                                                           timeout=30)))  # fmt: skip
        sender.start()
        time.sleep(0.3)  # the request is in the model now
        server.should_exit = True  # what SIGTERM / Ctrl-C set
        sender.join(30)
    assert answers and answers[0].status_code == 200 and "detections" in answers[0].json()


def test_cli_parses_and_says_how_to_install_the_extra(monkeypatch, weights, capsys):
    from yolov3.apps import serve
    from yolov3.cli import build_parser

    args = build_parser().parse_args(["serve", "--weights", "w.pt", "--port", "9000", "--max-batch", "16",
                                      "--conf", "0.4", "--token", "t"])  # fmt: skip
    assert (args.port, args.max_batch, args.conf_threshold, args.host, args.token) == (
        9000,
        16,
        0.4,
        "127.0.0.1",
        "t",
    )
    monkeypatch.setitem(serve.REQUIREMENTS, "yolov3_no_such_module", "no-such-dist")
    assert main(["serve", "--weights", str(weights)]) == 2
    assert "pip install 'yolov3[serve]'" in capsys.readouterr().err
    monkeypatch.delitem(serve.REQUIREMENTS, "yolov3_no_such_module")
    assert main(["serve", "--weights", "missing.pt"]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_package_and_cli_import_without_the_web_stack(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfor m in ('starlette', 'uvicorn', 'multipart', 'prometheus_client'):\n"
            "    sys.modules[m] = None\n"
            "import yolov3, yolov3.apps.serve\nfrom yolov3.cli import build_parser, main\n"
            "build_parser().parse_args(['serve', '--weights', 'x.pt'])\n"
            "sys.exit(main(['serve', '--weights', 'x.pt']))\n")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "pip install 'yolov3[serve]'" in r.stderr


def test_onnx_file_gives_what_detect_gives_and_a_fixed_batch_runs_one_at_a_time(weights, images, tmp_path):
    from yolov3.export.onnx import export_onnx
    from yolov3.modelfile import ExportInfo, load_model

    model, meta = load_model(weights)
    onnx_file = export_onnx(
        model, meta.replace(export=ExportInfo()), tmp_path / "tiny.onnx"
    )  # batch 1, fixed
    image, out = images[1], tmp_path / "detect"
    assert main(["detect", str(image), "--weights", str(onnx_file), "--img", "128", "--conf", "0.3",
                 "--out", str(out), "--no-save"]) == 0  # fmt: skip
    (record,) = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    load = lambda: Detector.load(onnx_file, device="cpu", settings=SETTINGS)  # noqa: E731
    with TestClient(create_app(load, ServeOptions(max_batch=8))) as c:
        wait_ready(c)
        info = c.get("/v1/model").json()
        assert info["runtime"] == "onnxruntime" and info["max_batch"] == 1
        got = c.post("/v1/detect", content=image.read_bytes()).json()
    assert got["detections"] == record["detections"] and got["detections"]


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("max_batch", 0, "--max-batch"), ("max_bytes", 0, "--max-upload-mb"), ("timeout_s", 0, "--timeout"),
    ("port", 70000, "--port"), ("max_wait_ms", -1, "--max-wait-ms"),
])  # fmt: skip
def test_options_out_of_range_name_the_option(field, value, flag):
    from yolov3.errors import UserError

    with pytest.raises(UserError, match=flag):
        ServeOptions(**{field: value})
    with pytest.raises(UserError) as err:
        ServeOptions(port=70000)
    assert str(err.value) == "port (--port) = 70000: expected a port in [0, 65535]"
