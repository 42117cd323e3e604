"""What an exported file must carry besides its weights: class names, anchors, strides, input size.

The same dictionary ``yolov3.checkpoint.load_model`` / ``model_meta`` return as ``meta``::

    {"names": [str] * C, "num_classes": C, "anchors": [[[w, h]] * A] * S (input pixels, one row
     per output, increasing stride), "strides": [8, 16, 32], "img_size": 416}

plus, in exported files, how the file was written: ``outputs`` (raw | decoded | nms), ``dynamic``,
``half`` and, with ``outputs == "nms"``, the thresholds baked into the graph. It is stored as one JSON
string: ONNX ``metadata_props["yolov3"]``, TorchScript ``_extra_files["yolov3.json"]``.
"""

from __future__ import annotations

import json
from typing import Any

from yolov3.errors import UserError

META_KEY = "yolov3"  # ONNX metadata_props key
TORCHSCRIPT_META = "yolov3.json"  # TorchScript _extra_files name
_REQUIRED = ("names", "num_classes", "anchors", "strides", "img_size")


def check_meta(meta: dict[str, Any], source: str) -> dict[str, Any]:
    """Validate the fields every consumer relies on; errors name ``source`` and the field."""
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise UserError(f"{source}: model metadata lacks {missing}")
    c, names, anchors, strides = meta["num_classes"], meta["names"], meta["anchors"], meta["strides"]
    if not isinstance(c, int) or c < 1:
        raise UserError(f"{source}: num_classes={c!r}: expected a positive integer")
    if len(names) != c:
        raise UserError(f"{source}: {len(names)} class names for num_classes={c}")
    if len(anchors) != len(strides) or not anchors:
        raise UserError(f"{source}: {len(anchors)} anchor rows for {len(strides)} strides")
    if len({len(a) for a in anchors}) != 1:
        raise UserError(f"{source}: every output needs the same number of anchors, got {anchors}")
    return meta


def dumps_meta(meta: dict[str, Any]) -> str:
    return json.dumps(meta, separators=(",", ":"))


def loads_meta(text: str | bytes, source: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{source}: the {META_KEY!r} metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise UserError(f"{source}: the {META_KEY!r} metadata is not a JSON object")
    return check_meta(meta, source)
