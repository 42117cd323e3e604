"""``Detections``: the one per-image result type, from ``postprocess`` to every consumer.

``postprocess`` makes them (tensors on the maps' device), the ``Detector`` hands them out (NumPy,
with the image, its path and timings), and the evaluator, the JSON / COCO / YOLO-txt writers and the
drawing code all take them. One naming throughout: ``boxes`` are ``(x1, y1, x2, y2)`` in the original
image's pixels, ``scores`` the seed's ``conf * prob``, ``class_ids`` indices into ``names`` (every class
name of the model), ``labels`` those names per box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from torch import Tensor

from yolov3.infer.draw import draw_detections

Array = np.ndarray | Tensor


@dataclass(eq=False)  # arrays: equality of two results is a question for the caller
class Detections:
    """One image's detections, highest score first.

    ``boxes``: ``(N, 4)`` float32 ``(x1, y1, x2, y2)``, original-image pixels (network-input pixels when
    ``postprocess`` got no letterboxes); ``scores``: ``(N,)`` float32 in (0, 1]; ``class_ids``: ``(N,)``
    int64. NumPy arrays, or tensors as ``postprocess`` returns them (``numpy()`` converts).
    ``names``: the model's class names; ``width`` / ``height``: the image's size (0 when unknown);
    ``image``: the RGB uint8 picture, kept for ``plot``; ``speed``: milliseconds per stage spent on it.
    """

    boxes: Array
    scores: Array
    class_ids: Array
    names: Sequence[str] = ()
    path: str | None = None
    width: int = 0
    height: int = 0
    image: np.ndarray | None = field(default=None, repr=False)
    speed: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def labels(self) -> list[str]:
        """The class name of each detection (its number when ``names`` does not cover it)."""
        return [
            self.names[c] if 0 <= c < len(self.names) else str(c)
            for c in _np(self.class_ids, np.int64).tolist()
        ]

    def numpy(self) -> Detections:
        """NumPy arrays on the host: float32 boxes and scores, int64 class ids."""
        boxes = _np(self.boxes, np.float32).reshape(-1, 4)
        scores, class_ids = _np(self.scores, np.float32), _np(self.class_ids, np.int64)
        return replace(self, boxes=boxes, scores=scores, class_ids=class_ids)

    def to_json(self) -> dict[str, Any]:
        """Plain data: ``{"image", "width", "height", "detections": [{"box", "score", "class_id",
        "name"}], "speed_ms"}`` with boxes as ``[x1, y1, x2, y2]`` pixels."""
        d = self.numpy()
        # Rounded as Python's round() does, a whole array at a time (a ninth of the time at 300 boxes; a
        # server's cost per request): float32 -> float64 and the scaling by 10**k are both exact, so
        # NumPy's rint-based rounding meets the same ties as round() on the exact value.
        boxes = np.round(d.boxes.astype(np.float64), 2).tolist()
        scores = np.round(d.scores.astype(np.float64), 5).tolist()
        dets = [{"box": b, "score": s, "class_id": c, "name": n}
                for b, s, c, n in zip(boxes, scores, d.class_ids.tolist(), d.labels)]  # fmt: skip
        return {"image": self.path, "width": self.width, "height": self.height, "detections": dets,
                "speed_ms": {k: round(v, 3) for k, v in self.speed.items()}}  # fmt: skip

    def plot(self, image: np.ndarray | None = None, bgr: bool = False, line_width: int | None = None,
             scale: float = 1.0) -> np.ndarray:  # fmt: skip
        """The image with boxes, names and scores drawn: RGB, or BGR (for ``cv2.imwrite``) with ``bgr``.
        An ``image`` passed in must be this picture in that colour order, resized by ``scale``."""
        base = self.image if image is None else image
        if base is None:
            raise ValueError("these Detections keep no image: pass plot(image=...)")
        if bgr and image is None:
            base = base[..., ::-1]
        d = self.numpy()
        return draw_detections(base, d.boxes * scale, d.scores, d.class_ids, self.names, bgr, line_width)


def _np(x: Array, dtype: type) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


__all__ = ["Detections"]
