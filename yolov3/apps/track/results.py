"""``TrackedDetections``: one frame's tracked objects, the project's ``Detections`` plus a stable
track id per box (and recent centres for drawing trails)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from yolov3.boxes import box_convert
from yolov3.infer.draw import class_colour
from yolov3.infer.results import Detections


@dataclass
class TrackedDetections(Detections):
    """``Detections`` (boxes ``(x1, y1, x2, y2)`` original pixels, scores, class ids, names, path,
    size, image, speed) of the confirmed tracks seen on frame ``frame`` (0-based, in its sequence)
    of sequence ``sequence`` (the name of its MOTChallenge results file,
    ``yolov3.apps.track.sequences``), with ``track_ids`` ``(N,)`` int64 (from 1, stable across the
    frames of one sequence) and ``trails`` (track id -> its recent box centres ``(x, y)`` in pixels,
    oldest first)."""

    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    frame: int = 0
    trails: dict[int, list[tuple[float, float]]] = field(default_factory=dict, repr=False)
    sequence: str = ""

    def to_json(self) -> dict[str, Any]:
        """``Detections.to_json`` with ``"frame"``, ``"sequence"`` (when known) and a ``"track_id"``
        in each detection."""
        out = super().to_json()
        for det, tid in zip(out["detections"], np.asarray(self.track_ids).tolist()):
            det["track_id"] = int(tid)
        return {**out, **({"sequence": self.sequence} if self.sequence else {}), "frame": self.frame}

    def mot_lines(self) -> list[str]:
        """MOTChallenge result lines ``frame, id, x, y, w, h, score, -1, -1, -1`` (1-based frame,
        top-left corner and size in pixels)."""
        d = self.numpy()
        xywh = box_convert(d.boxes.astype(np.float64), "xyxy", "xywh").tolist()
        return [
            f"{self.frame + 1},{int(t)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1"
            for (x, y, w, h), s, t in zip(xywh, d.scores.tolist(), self.track_ids.tolist())
        ]

    def plot(
        self,
        image: np.ndarray | None = None,
        bgr: bool = False,
        line_width: int | None = None,
        scale: float = 1.0,
    ) -> np.ndarray:
        """``Detections.plot`` plus each track's id under its box and its trail, in a colour per id."""
        out = super().plot(image, bgr, line_width, scale)
        lw = line_width or max(1, round(sum(out.shape[:2]) / 2 * 0.003))
        for box, tid in zip(self.numpy().boxes * scale, np.asarray(self.track_ids).tolist()):
            colour = class_colour(tid)
            colour = colour[::-1] if bgr else colour
            trail = self.trails.get(int(tid))
            if trail is not None and len(trail) > 1:
                pts = np.round(np.asarray(trail, np.float32) * scale).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(out, [pts], False, colour, lw, cv2.LINE_AA)
            x1, y2 = int(box[0]), int(box[3])
            font, size = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, lw / 3)
            at = (x1 + 2, max(12, y2 - 4))
            cv2.putText(
                out, f"id {tid}", at, font, size, (0, 0, 0), max(1, lw - 1) + 2, cv2.LINE_AA
            )  # outline
            cv2.putText(out, f"id {tid}", at, font, size, colour, max(1, lw - 1), cv2.LINE_AA)
        return out


__all__ = ["TrackedDetections"]
