"""Detection inside Ray Data: ``RayDetector`` is the callable class a user hands to
``ray.data.Dataset.map_batches``; Ray runs one instance (one ``Detector``) per actor and schedules the
batches. Nothing here imports Ray (the ``ray`` extra installs it), and there is no scheduler of ours.

    import ray
    from yolov3.apps.ray_data import RayDetector
    ds = ray.data.from_items([{"path": p} for p in paths])      # or read_images(..., include_paths=True)
    rows = ds.map_batches(RayDetector, fn_constructor_kwargs={"weights": "best.pt"}, batch_size=16,
                          concurrency=4, num_gpus=1)                       # num_gpus=0 on CPUs
    rows.write_json("out/")                                                # or rows.write_parquet("out/")

A batch (Ray's ``numpy`` format: column name -> array) carries ``image`` (decoded RGB uint8 arrays,
as ``read_images(mode="RGB")`` gives) and / or ``path``; without ``image`` the paths are read here.
The output is an Arrow table of fixed schema (``arrow_schema``); ``rows`` gives the same as dicts.
Each output row has the fields of a ``results.jsonl`` line (``yolov3.apps.detect.runner``): ``image`` (the
path), ``width``, ``height``, ``detections`` (``[{"box": [x1, y1, x2, y2] original pixels, "score",
"class_id", "name"}]``), ``speed_ms``, plus ``error`` (None, or why the image could not be read: the
row is kept, with no detections, so one bad file never fails the job). Ray keeps no global order, so
rows carry no ``image_id``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

try:
    import pyarrow as pa
except ImportError:  # the `ray` extra installs it (Ray Data needs it); rows() works without
    pa = None

from yolov3.config import InferConfig
from yolov3.errors import UserError
from yolov3.infer.detector import Detector
from yolov3.infer.loop import detect_batches

STAGES = ("preprocess", "inference", "nms")  # the ``speed_ms`` keys (milliseconds per image)


def arrow_schema() -> pa.Schema:
    """The output's fixed Arrow schema: the same columns whatever a batch holds (an all-empty or
    all-unreadable batch too), so every Parquet file of a job has one schema."""
    detection = pa.struct([("box", pa.list_(pa.float64())), ("score", pa.float64()),
                           ("class_id", pa.int64()), ("name", pa.string())])  # fmt: skip
    return pa.schema([("image", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
                      ("detections", pa.list_(detection)),
                      ("speed_ms", pa.struct([(k, pa.float64()) for k in STAGES])),
                      ("error", pa.string())])  # fmt: skip


class RayDetector:
    """One ``Detector`` (``Detector.load`` arguments) per Ray actor; ``__call__`` maps a batch of
    images or paths to rows of detections (module docstring)."""

    def __init__(self, weights: str | os.PathLike, cfg: str | os.PathLike | None = None,
                 names: str | os.PathLike | list[str] | None = None, device: str = "auto",
                 backend: str = "auto", batch_size: int = 8, settings: InferConfig | None = None,
                 **overrides: Any) -> None:  # fmt: skip
        self.detector = Detector.load(weights, cfg=cfg, names=names, device=device, backend=backend,
                                      batch_size=batch_size, settings=settings, **overrides)  # fmt: skip
        self.detector.warmup()

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """A batch -> an Arrow table of rows (``arrow_schema``), what Ray Data writes as JSON / Parquet."""
        if pa is None:
            raise UserError("RayDetector needs pyarrow: pip install 'yolov3[ray]'")
        return pa.Table.from_pylist(self.rows(batch), schema=arrow_schema())

    def rows(self, batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """A batch (column -> array of ``image`` and / or ``path``) -> one row dict per image, in order."""
        if "image" not in batch and "path" not in batch:
            raise UserError(f"a batch with columns {sorted(batch)}: expected 'image' and / or 'path'")
        n = len(batch["image"] if "image" in batch else batch["path"])
        paths = [str(p) for p in batch["path"]] if "path" in batch else [None] * n
        pictures = batch["image"] if "image" in batch else paths
        rows: list[dict[str, Any]] = []
        for o in detect_batches(self.detector, range(n), max(1, n), picture=lambda k: pictures[k]):
            if o.error is not None:  # the row is kept, empty, saying why
                rows.append({"image": paths[o.item], "width": 0, "height": 0, "detections": [],
                             "speed_ms": dict.fromkeys(STAGES, 0.0), "error": str(o.error)})  # fmt: skip
                continue
            o.detections.path = paths[o.item]  # the path column's, also beside an image column
            rows.append({**o.detections.to_json(), "error": None})
        return rows


__all__ = ["RayDetector", "arrow_schema"]
