"""ByteTrack (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box",
ECCV 2022): identities across frames from per-frame detections.

Each frame, every track's box is predicted one frame ahead (``kalman.py``), then:

1. tracks that are confirmed or lost are matched with the high-score detections (score >=
   ``high_threshold``) by IoU, optimally (``scipy.optimize.linear_sum_assignment``), pairs under
   ``match_iou`` refused;
2. the confirmed tracks still unmatched are matched with the low-score detections (``low_threshold``
   <= score < ``high_threshold``: boxes a plain threshold would throw away, often the occluded
   object), pairs under ``low_match_iou`` refused; those still unmatched become lost;
3. tentative tracks (born on the previous frame) are matched with the high detections left; a
   tentative track left unmatched is dropped;
4. a high detection left over scoring >= ``new_track_threshold`` starts a tentative track (confirmed
   at once on a sequence's first frame); a track lost for more than the buffer is dropped.

Settings: ``yolov3.config.TrackConfig``. Boxes are ``(x1, y1, x2, y2)`` image pixels in and out; the
boxes given out are the filter's corrected states. Track ids count from 1 per ``ByteTracker``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from yolov3.apps.track import kalman
from yolov3.boxes import box_area, box_convert
from yolov3.config import TrackConfig

_REFUSED = 1e6  # the cost of a pair under the IoU gate: chosen only when nothing else is possible


@dataclass
class Track:
    """One identity: its filter state, last detection score and class, and the recent centres."""

    track_id: int
    mean: np.ndarray  # (8,) kalman state (cx, cy, w, h, vcx, vcy, vw, vh)
    cov: np.ndarray  # (8, 8)
    score: float
    class_id: int
    last_seen: int  # the frame number it was last matched on
    confirmed: bool = False
    lost: bool = False
    row: int = -1  # the detection it was matched with (or born from) on its last frame
    slot: int = -1  # its row in the tracker's state arrays on this frame
    trail: deque = field(default_factory=deque)

    @property
    def box(self) -> np.ndarray:
        """``(x1, y1, x2, y2)`` of the current state."""
        return to_xyxy(self.mean[None, :4])[0]


@dataclass
class TrackOutput:
    """One frame's confirmed, matched tracks: ``boxes`` ``(M, 4)`` float32 xyxy pixels, ``scores``
    ``(M,)`` float32 and ``class_ids`` ``(M,)`` int64 of the detection each matched, ``track_ids``
    ``(M,)`` int64, ``det_index`` ``(M,)`` int64 (the row of that detection in the input), ``trails``:
    track id -> its recent centres ``(x, y)``, oldest first."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray
    det_index: np.ndarray
    trails: dict[int, list[tuple[float, float]]]


def to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners -> centre / size, the Kalman filter's measurement."""
    return box_convert(xyxy, "xyxy", "cxcywh")


def to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    """``(N, 4)`` centre / size -> corners; a size the filter predicts negative counts as its magnitude."""
    return box_convert(np.concatenate([cxcywh[:, :2], np.abs(cxcywh[:, 2:4])], axis=1), "cxcywh", "xyxy")


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of xyxy boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)``; 0 where a union is empty."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(
    track_boxes: np.ndarray, det_boxes: np.ndarray, min_iou: float, same_class: np.ndarray | None = None
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal one-to-one pairs ``(track row, detection row)`` maximising total IoU among pairs with
    IoU >= ``min_iou`` (and ``same_class[i, j]`` when given); then the unmatched rows of each side."""
    n, m = len(track_boxes), len(det_boxes)
    if not n or not m:
        return [], list(range(n)), list(range(m))
    iou = pairwise_iou(track_boxes, det_boxes)
    allowed = iou >= min_iou
    if same_class is not None:
        allowed &= same_class
    rows, cols = linear_sum_assignment(np.where(allowed, 1.0 - iou, _REFUSED))
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]
    used_t, used_d = {p[0] for p in pairs}, {p[1] for p in pairs}
    return pairs, [i for i in range(n) if i not in used_t], [j for j in range(m) if j not in used_d]


class ByteTracker:
    """Tracks over one sequence: call ``update`` once per frame, in order (``reset`` between
    sequences). ``frame_rate``: of the source, to turn ``track_buffer`` (frames at 30 fps) into frames."""

    def __init__(self, settings: TrackConfig | None = None, frame_rate: float = 30.0) -> None:
        self.settings = settings or TrackConfig()
        self.buffer = round(self.settings.track_buffer * frame_rate / 30.0)
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again from 1."""
        self.tracks: list[Track] = []
        self.frame = 0
        self._next_id = 1

    def update(
        self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray | None = None
    ) -> TrackOutput:
        """One frame's detections (``(N, 4)`` xyxy pixels, ``(N,)`` scores, ``(N,)`` class ids) -> the
        tracks confirmed and seen on this frame."""
        s = self.settings
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        class_ids = np.zeros(len(scores), np.int64) if class_ids is None else np.asarray(class_ids, np.int64)
        self.frame += 1
        self._predict()
        high = np.flatnonzero(scores >= s.high_threshold)
        low = np.flatnonzero((scores >= s.low_threshold) & (scores < s.high_threshold))
        pool = [t for t in self.tracks if t.confirmed]
        tentative = [t for t in self.tracks if not t.confirmed]
        pairs1, rest, high_left = self._match(pool, boxes, class_ids, high, s.match_iou)
        active = [pool[i] for i in rest if not pool[i].lost]
        pairs2, unmatched, _ = self._match(active, boxes, class_ids, low, s.low_match_iou)
        for i in unmatched:
            active[i].lost = True
        left = high[high_left]
        pairs3, dropped, new_left = self._match(tentative, boxes, class_ids, left, s.unconfirmed_match_iou)
        gone = {id(tentative[i]) for i in dropped}
        pairs = [(pool[t], high[d]) for t, d in pairs1] + [(active[t], low[d]) for t, d in pairs2]
        pairs += [(tentative[t], left[d]) for t, d in pairs3]
        self._correct(pairs, boxes, scores, class_ids)
        self.tracks = [
            t for t in self.tracks if id(t) not in gone and self.frame - t.last_seen <= self.buffer
        ]
        born = [d for d in left[new_left] if scores[d] >= s.new_track_threshold]
        self._start(born, boxes, scores, class_ids)
        return self._output()

    def _predict(self) -> None:
        """Every track one frame ahead, in one batch. The states then live in ``self._mean`` /
        ``self._cov`` (row ``t.slot``), each track's ``mean`` / ``cov`` a view of its row."""
        if not self.tracks:
            return
        self._mean, self._cov = kalman.predict(
            np.stack([t.mean for t in self.tracks]), np.stack([t.cov for t in self.tracks])
        )
        for k, t in enumerate(self.tracks):
            t.mean, t.cov, t.slot = self._mean[k], self._cov[k], k

    def _match(
        self, tracks: list[Track], boxes: np.ndarray, class_ids: np.ndarray, rows: np.ndarray, min_iou: float
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """``match`` of ``tracks`` with the detections ``rows`` (indices into ``boxes``)."""
        if not tracks or not len(rows):
            return [], list(range(len(tracks))), list(range(len(rows)))
        track_boxes = to_xyxy(self._mean[[t.slot for t in tracks], :4])
        same = None
        if self.settings.class_aware:
            same = np.array([t.class_id for t in tracks])[:, None] == class_ids[rows][None, :]
        return match(track_boxes, boxes[rows], min_iou, same)

    def _correct(
        self, pairs: list[tuple[Track, int]], boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray
    ) -> None:
        """Kalman update of every matched track with its detection, in one batch."""
        if not pairs:
            return
        slots, rows = [t.slot for t, _ in pairs], np.array([r for _, r in pairs])
        mean, cov = kalman.update(self._mean[slots], self._cov[slots], to_cxcywh(boxes[rows]))
        self._mean[slots], self._cov[slots] = mean, cov  # seen through each track's views
        for (t, _), r in zip(pairs, rows.tolist()):
            t.score, t.class_id = float(scores[r]), int(class_ids[r])
            t.last_seen, t.confirmed, t.lost, t.row = self.frame, True, False, r
            self._remember(t)

    def _start(self, rows: list[int], boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> None:
        if not rows:
            return
        rows = np.array(rows)
        mean, cov = kalman.initiate(to_cxcywh(boxes[rows]))
        for m, c, r in zip(mean, cov, rows):
            t = Track(
                self._next_id,
                m,
                c,
                float(scores[r]),
                int(class_ids[r]),
                self.frame,
                confirmed=self.frame == 1,
                row=int(r),
                trail=deque(maxlen=max(1, self.settings.trail)),
            )
            self._next_id += 1
            self._remember(t)
            self.tracks.append(t)

    @staticmethod
    def _remember(t: Track) -> None:
        t.trail.append((float(t.mean[0]), float(t.mean[1])))

    def _output(self) -> TrackOutput:
        """The confirmed tracks matched (or born confirmed) on this frame, by id."""
        seen = sorted(
            (t for t in self.tracks if t.confirmed and t.last_seen == self.frame), key=lambda t: t.track_id
        )
        means = np.array([t.mean[:4] for t in seen], np.float64).reshape(-1, 4)
        return TrackOutput(
            boxes=to_xyxy(means).astype(np.float32),
            scores=np.array([t.score for t in seen], np.float32),
            class_ids=np.array([t.class_id for t in seen], np.int64),
            track_ids=np.array([t.track_id for t in seen], np.int64),
            det_index=np.array([t.row for t in seen], np.int64),
            trails={t.track_id: list(t.trail) for t in seen},
        )
