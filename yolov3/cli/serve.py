"""``yolov3 serve --weights W``: an HTTP detection service with a browser page.

Routes (``yolov3.apps.serve.app``): ``POST /v1/detect`` (an image -> the JSON of ``results.jsonl``,
or ``?annotated=1`` the drawn image), ``GET /v1/model``, ``/healthz``, ``/readyz``, ``/metrics``
(Prometheus) and ``/`` (the page). Concurrent requests share forward passes (``--max-batch``,
``--max-wait-ms``). Listens on 127.0.0.1 unless ``--host`` says otherwise. Needs the ``serve`` extra:
``pip install 'yolov3[serve]'``.
"""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

from yolov3.apps.serve import TOKEN_ENV, ServeOptions, require_installed
from yolov3.cli import VERBS
from yolov3.cli.common import add_infer_options, add_model_options, backend_options, infer_settings
from yolov3.config import InferConfig
from yolov3.errors import UserError

_DEFAULTS = ServeOptions()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help=VERBS["serve"],
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_model_options(p)
    add_infer_options(p, InferConfig(), title="inference settings (a request's query may override the "
                      "thresholds, max_det and classes)")  # fmt: skip
    g = p.add_argument_group("server")
    g.add_argument(
        "--host", default=_DEFAULTS.host, help="address to bind (default 127.0.0.1: this machine only)"
    )
    g.add_argument("--port", type=int, default=_DEFAULTS.port, help="port (default 8000)")
    g.add_argument(
        "--max-batch", type=int, default=_DEFAULTS.max_batch, help="images per forward pass (default 8)"
    )
    g.add_argument("--max-wait-ms", type=float, default=_DEFAULTS.max_wait_ms,
                   help="how long a batch waits for requests on their way (default 5)")  # fmt: skip
    g.add_argument("--max-upload-mb", type=float, default=_DEFAULTS.max_bytes / 2**20,
                   help="largest request body, MiB (default 20; 413 above)")  # fmt: skip
    g.add_argument(
        "--max-pixels",
        type=int,
        default=_DEFAULTS.max_pixels,
        help="largest image, width x height, checked before decoding (default $YOLOV3_MAX_PIXELS, else "
        "178,956,970: yolov3.data.images.MAX_PIXELS; 413 above)",
    )
    g.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token required by /v1/* and /metrics (default: ${TOKEN_ENV}, else none)",
    )
    g.add_argument(
        "--timeout", type=float, default=_DEFAULTS.timeout_s, help="seconds per request (default 30; 504)"
    )
    g.add_argument("--graceful-timeout", type=float, default=_DEFAULTS.graceful_s,
                   help="on shutdown, seconds the requests in flight may take (default 30)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_installed()
    if not Path(args.weights).exists():  # fail now, not later in the background load
        raise UserError(f"{args.weights}: weights file not found")
    from yolov3.apps.serve.server import run_server  # the optional web stack, present once checked
    from yolov3.infer.detector import Detector

    options = ServeOptions(
        host=args.host, port=args.port, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
        max_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels, token=args.token or None,
        timeout_s=args.timeout, graceful_s=args.graceful_timeout,
    )  # fmt: skip
    settings = infer_settings(args, InferConfig())
    load = functools.partial(
        Detector.load, args.weights, cfg=args.cfg, names=args.names, device=args.device,
        backend=args.backend, batch_size=options.max_batch, settings=settings,
        backend_options=backend_options(args),
    )  # fmt: skip
    run_server(load, options)
    return 0
