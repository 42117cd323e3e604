"""The HTTP app (Starlette): routes, limits, the bearer token, errors as JSON, the browser page.

=======================  ===================================================================
``GET /``                the page (``static/index.html``: upload, drop or webcam; boxes, score
                         slider filtering in the browser, the JSON). No token needed to load it.
``GET /favicon.svg``     the page's icon (``static/favicon.svg``), open like the page.
``POST /v1/detect``      an image as the raw body or a multipart file field -> ``Detections.to_json()``
                         (boxes ``[x1, y1, x2, y2]`` in original pixels); ``?annotated=1`` -> JPEG.
                         Query: ``conf_threshold``, ``iou_threshold``, ``max_det``, ``classes``
                         (``0,2`` or repeated), ``tile``, ``tile_overlap``, ``tile_full``,
                         ``tile_merge`` (sliced inference; ``tile=0``: none): the ``InferConfig``
                         names ``yolov3 detect`` uses.
``GET /v1/model``        names, input size, runtime, anchors, strides, default settings, limits.
``GET /healthz``         200 while the process runs.
``GET /readyz``          503 until the model is loaded and warmed up, then 200.
``GET /metrics``         Prometheus text (``yolov3.apps.serve.metrics``).
=======================  ===================================================================

Every error is JSON ``{"error": message, "status": code}``: 400 (not an image, truncated, bad
option), 401 (token missing or wrong, for ``/v1/*`` and ``/metrics`` when a token is set), 404, 405,
413 (body over ``max_bytes`` or image over ``max_pixels``), 503 (not ready), 504 (``timeout_s``).
The model loads in the background after start-up, so ``/healthz`` answers at once, and warms up with
a batch of each size up to ``max_batch`` before ``/readyz`` says ready (``warm_up``).
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.resources
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from typing import Any

import cv2
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from yolov3.apps.serve import ServeOptions
from yolov3.apps.serve.batcher import MicroBatcher
from yolov3.apps.serve.metrics import ServeMetrics
from yolov3.apps.serve.uploads import UploadError, decode_image
from yolov3.config import InferConfig, parse_classes
from yolov3.data.images import pixel_limit
from yolov3.errors import UserError
from yolov3.infer.detector import Detector
from yolov3.infer.results import Detections
from yolov3.infer.slicing import check_sliceable

log = logging.getLogger("yolov3.serve")
QUERY_OPTIONS = ("conf_threshold", "iou_threshold", "max_det", "classes", "tile", "tile_overlap", "tile_full",
                 "tile_merge", "annotated")  # fmt: skip
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class JSONResponse(Response):
    """A JSON response serialized by orjson (7x faster than ``json`` for a 300-box result)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ServeState:
    """The loaded detector and its batcher (None until ready), or why loading failed."""

    def __init__(self) -> None:
        self.detector: Detector | None = None
        self.batcher: MicroBatcher | None = None
        self.error: str | None = None

    def ready(self) -> MicroBatcher:
        if self.batcher is None:
            raise HTTPException(503, f"model failed to load: {self.error}" if self.error else "model loading")
        return self.batcher


def parse_query(query: dict[str, list[str]], detector: Detector) -> tuple[InferConfig, bool]:
    """``(InferConfig, annotated)`` from the query string; unknown options and bad values raise 400."""
    unknown = sorted(set(query) - set(QUERY_OPTIONS))
    if unknown:
        raise HTTPException(400, f"unknown query option {unknown[0]!r}: expected {', '.join(QUERY_OPTIONS)}")
    one = {k: v[-1] for k, v in query.items()}
    try:
        changes = {
            "conf_threshold": float(one["conf_threshold"]) if "conf_threshold" in one else None,
            "iou_threshold": float(one["iou_threshold"]) if "iou_threshold" in one else None,
            "max_det": int(one["max_det"]) if "max_det" in one else None,
            # 0,2 / classes=0&classes=2 / names, as --classes takes them (config.parse_classes)
            "classes": parse_classes(query["classes"]) if "classes" in query else None,
            **_tile_query(one),
        }
    except ValueError as exc:
        raise HTTPException(400, f"query option does not parse: {exc}") from exc
    # ConfigError (a UserError) -> 400; classes by name to indices, an unknown name or index -> 400:
    # checked here once, before the upload is read (Detector.resolve remembers it for the batch)
    base = detector.settings.replace(**changes)
    if one.get("tile", "").strip() == "0":  # tile=0: this picture whole, though the server slices
        base = replace(base, tile=None)
    settings = detector.resolve(base)
    flag = one.get("annotated", "0").lower()
    if flag not in _TRUE | _FALSE:
        raise HTTPException(400, f"annotated={flag!r}: expected 1 or 0")
    return settings, flag in _TRUE


def _tile_query(one: dict[str, str]) -> dict:
    """This request's sliced-inference settings (``tile=0``: none, whatever the server's ``--tile``)."""
    out: dict = {}
    if "tile" in one:
        out["tile"] = int(one["tile"]) or None  # 0 (None here): parse_query turns slicing off
    if "tile_overlap" in one:
        out["tile_overlap"] = float(one["tile_overlap"])
    if "tile_full" in one:
        flag = one["tile_full"].lower()
        if flag not in _TRUE | _FALSE:
            raise ValueError(f"tile_full={flag!r}: expected 1 or 0")
        out["tile_full"] = flag in _TRUE
    if "tile_merge" in one:
        out["tile_merge"] = one["tile_merge"]
    return out


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPException(
            413, f"body of {int(length):,} bytes: over the limit of {limit:,} (--max-upload-mb)"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over the limit of {limit:,} bytes (--max-upload-mb)")
        chunks.append(chunk)
    return b"".join(chunks)


async def upload_bytes(request: Request, limit: int) -> tuple[bytes, str | None]:
    """``(image bytes, file name or None)`` from a raw body or a multipart form's first file field."""
    body = await read_body(request, limit)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body, None

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=1, max_fields=16)
    try:
        files = [v for _, v in form.multi_items() if hasattr(v, "read")]
        if not files:
            raise HTTPException(
                400, "multipart body without a file: send the image as a file field named 'image'"
            )
        return await files[0].read(), files[0].filename
    finally:
        await form.close()  # the parser's spooled temporary files


def encode_annotated(result: Detections) -> bytes:
    """The image with its boxes drawn (``Detections.plot``), as JPEG."""
    ok, jpeg = cv2.imencode(".jpg", result.plot(bgr=True))
    if not ok:
        raise RuntimeError("OpenCV could not encode the annotated image as JPEG")
    return jpeg.tobytes()


def batch_limit(detector: Detector, max_batch: int) -> int:
    """``max_batch``, or the batch size a file fixes (an ONNX file exported without ``--dynamic``): the
    backend says so (``Backend.fixed_batch``) without opening the file again."""
    fixed = getattr(detector.backend, "fixed_batch", None)
    if fixed is None or fixed >= max_batch:
        return max_batch
    log.warning("%s has a fixed batch size of %d: requests run %d at a time (export with --dynamic to "
                "batch more)", getattr(detector.backend, "source", "the model"), fixed, fixed)  # fmt: skip
    return fixed


def authorize(request: Request, token: str | None) -> None:
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "missing or wrong token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


def model_info(d: Detector, batcher: MicroBatcher, options: ServeOptions) -> dict:
    """What ``GET /v1/model`` answers: the classes, input size, runtime, anchors, settings and limits."""
    return {
        "names": d.names, "num_classes": len(d.names), "img_size": d.img_size,
        "runtime": getattr(d.backend, "kind", type(d.backend).__name__),
        "source": getattr(d.backend, "source", None), "device": str(d.device),
        "anchors": [[list(a) for a in scale] for scale in d.anchors], "strides": list(d.strides),
        "settings": asdict(d.settings), "max_batch": batcher.max_batch,
        "max_bytes": options.max_bytes, "max_pixels": options.max_pixels or pixel_limit(),
        "token_required": options.token is not None,
    }  # fmt: skip


async def read_and_detect(request: Request, batcher: MicroBatcher, settings: InferConfig,
                          options: ServeOptions) -> Detections:  # fmt: skip
    """Read and decode the upload (announced to the batcher meanwhile), then wait for its batch."""
    batcher.announce()
    try:
        data, name = await upload_bytes(request, options.max_bytes)
        image = await run_in_threadpool(decode_image, data, options.max_pixels)
        if settings.tile is not None:  # refused alone (400), not failing the batch it would join
            h, w = image.shape[:2]
            check_sliceable(w, h, settings.tile, name or "upload", options.max_pixels, untiled="with ?tile=0")
    except BaseException:
        batcher.withdraw()
        raise
    return await batcher.submit(image, name, settings)


async def answer_detect(request: Request, state: ServeState, options: ServeOptions) -> Response:
    """``POST /v1/detect``: the detections as JSON, or the annotated JPEG (module docstring)."""
    authorize(request, options.token)
    batcher = state.ready()
    settings, annotated = parse_query({k: request.query_params.getlist(k) for k in request.query_params},
                                      state.detector)  # fmt: skip
    try:  # the whole request, upload included, so a slow sender cannot hold a worker forever
        answer = read_and_detect(request, batcher, settings, options)
        result = await asyncio.wait_for(answer, options.timeout_s)
    except asyncio.TimeoutError as exc:
        raise HTTPException(504, f"no result within {options.timeout_s:g} s (--timeout)") from exc
    if annotated:
        jpeg = await run_in_threadpool(encode_annotated, result)
        return Response(jpeg, media_type="image/jpeg", headers={"X-Detections": str(len(result))})
    result.image = None
    return JSONResponse(result.to_json())


def build_routes(state: ServeState, options: ServeOptions, metrics: ServeMetrics) -> list[Route]:
    static = importlib.resources.files(__package__).joinpath("static")
    page = static.joinpath("index.html").read_text(encoding="utf-8")
    icon = static.joinpath("favicon.svg").read_bytes()

    async def detect(request: Request) -> Response:
        return await answer_detect(request, state, options)

    async def model(request: Request) -> Response:
        authorize(request, options.token)
        return JSONResponse(model_info(state.detector, state.ready(), options))

    async def ready(request: Request) -> Response:
        state.ready()
        return JSONResponse({"status": "ready"})

    async def favicon(request: Request) -> Response:
        return Response(icon, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    async def metrics_text(request: Request) -> Response:
        authorize(request, options.token)
        return Response(metrics.render(), media_type=metrics.content_type)

    return [
        Route("/", lambda request: HTMLResponse(page)),
        Route("/favicon.svg", favicon),
        Route("/healthz", lambda request: JSONResponse({"status": "alive"})),
        Route("/readyz", ready),
        Route("/metrics", metrics_text),
        Route("/v1/model", model),
        Route("/v1/detect", detect, methods=["POST"]),
    ]


class MeasureRequests:
    """ASGI middleware: every HTTP response's status and latency to the metrics, by route (paths that
    match no route count as ``other``, so a scanner cannot grow the label set)."""

    def __init__(self, app: Callable, metrics: ServeMetrics, paths: set[str]) -> None:
        self.app, self.metrics, self.paths = app, metrics, paths

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status, t0 = 500, time.perf_counter()

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope["path"] if scope["path"] in self.paths else "other"
            self.metrics.request(route, status, time.perf_counter() - t0)


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


async def _user_error(request: Request, exc: UserError) -> Response:
    return error_response(exc.status if isinstance(exc, UploadError) else 400, str(exc))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path)
    return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


def warm_up(detector: Detector, max_batch: int) -> None:
    """``Detector.warmup``, then one pass of every batch size the batcher can form, largest first. A
    runtime keeps state per input shape (PyTorch's oneDNN primitives and their buffers): run only as
    requests happen to form each size, the RSS climbed in steps for thousands of requests (+10 % from
    1,000 to 20,000, YOLOv3-tiny at 320, max batch 16); taken before ``/readyz`` says ready, it stays
    flat (``benchmarks/bench_serve_soak.py``). Costs ``max_batch * (max_batch + 1) / 2`` images once."""
    detector.warmup()
    size = detector.img_size
    blank = np.full((size, size, 3), 128, np.uint8)
    for batch in range(max_batch, 1, -1):
        detector.predict_arrays([blank] * batch)


async def load_in_background(state: ServeState, load: Callable[[], Detector], options: ServeOptions,
                             metrics: ServeMetrics) -> None:  # fmt: skip
    """Load and warm the detector in a thread, then start its batcher; record why when it fails."""
    try:
        detector = await asyncio.to_thread(load)
        max_batch = batch_limit(detector, options.max_batch)
        await asyncio.to_thread(warm_up, detector, max_batch)
    except Exception as exc:  # the server stays up and /readyz says why
        state.error = f"{type(exc).__name__}: {exc}"
        log.error("model failed to load: %s", state.error)
        return
    batcher = MicroBatcher(detector, max_batch, options.max_wait_ms,
                           on_batch=metrics.batch, on_queue=metrics.queue_depth.set)  # fmt: skip
    batcher.start()
    state.detector, state.batcher = detector, batcher
    log.info("model ready: %s", getattr(detector.backend, "source", detector.backend))


def create_app(load: Callable[[], Detector], options: ServeOptions | None = None) -> Starlette:
    """The app; ``load()`` (run in a thread after start-up) returns the one ``Detector`` it serves."""
    options = options or ServeOptions()
    state, metrics = ServeState(), ServeMetrics()
    routes = build_routes(state, options, metrics)

    @asynccontextmanager
    async def lifespan(app: Starlette):  # noqa: ANN202
        loading = asyncio.create_task(load_in_background(state, load, options, metrics))
        yield
        if not loading.done():
            loading.cancel()
        if state.batcher is not None:
            await state.batcher.close()  # the requests already queued get their answers

    app = Starlette(
        routes=routes,
        middleware=[Middleware(MeasureRequests, metrics=metrics, paths={r.path for r in routes})],
        exception_handlers={HTTPException: _http_error, UserError: _user_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.serve, app.state.metrics = state, metrics
    return app


__all__ = ["QUERY_OPTIONS", "ServeState", "create_app", "parse_query"]
