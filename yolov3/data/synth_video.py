"""Synthetic video with ground-truth identities, so tracking can be measured offline: the shapes and
glyphs of ``yolov3.data.synth`` moving over a fixed cluttered background, crossing and hiding one
another, written in the MOTChallenge layout.

Each sequence is drawn from its own generator seeded by ``(seed, sequence)``: the same settings give
the same frames. In a sequence, ``objects`` rigid objects (class, size and colour fixed) move at a
steady speed up to ``max_speed`` pixels per frame, their heading drifting a little every frame, and
bounce off the image border (they always lie wholly inside it). Objects are drawn in a fixed depth
order, so a later object passes in front of an earlier one; a third of them appear late or leave
early (track births and deaths). Per-frame pixel noise keeps consecutive frames from being identical.

Layout written under ``out``::

    seq-00/img1/000001.jpg ...      frames (1-based, JPEG quality 92)
    seq-00/gt/gt.txt                MOTChallenge ground truth, one line per object per frame:
                                    frame, id, x, y, w, h, 1, class + 1, visibility   (1-based frame
                                    and id; x, y the top-left corner, pixels; visibility = the share
                                    of the object's silhouette not hidden by objects in front, 0..1)
    seq-00/seqinfo.ini              name, frame rate, length, size (MOTChallenge keys)
    videos/seq-00.mp4               the same frames as a video (mp4v), for ``yolov3 track``
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from yolov3.boxes import box_convert
from yolov3.data.synth import CLASS_NAMES, _background, _rand_colour, _shape_mask, writable_dir
from yolov3.errors import UserError

VIDEO_VERSION = 1  # bump when the drawing changes


@dataclass(frozen=True)
class VideoSynthConfig:
    """What to draw: ``sequences`` of ``frames`` frames, ``size`` pixels square, ``objects`` per
    sequence with sides ``min_frac`` .. ``max_frac`` of ``size`` (25 .. 96 pixels at 416)."""

    sequences: int = 4
    frames: int = 150
    objects: int = 6
    size: int = 416
    fps: float = 30.0
    seed: int = 0
    min_frac: float = 0.06
    max_frac: float = 0.23
    max_speed: float = 4.0  # pixels per frame

    def __post_init__(self) -> None:
        if self.sequences < 1 or self.frames < 2 or self.objects < 1 or self.size < 64:
            raise UserError(
                f"video synth: sequences {self.sequences}, frames {self.frames}, objects "
                f"{self.objects}, size {self.size}: expected >= 1, >= 2, >= 1 and >= 64"
            )
        if not 0 < self.min_frac <= self.max_frac <= 0.5:
            raise UserError(
                f"video synth: side fractions {self.min_frac}..{self.max_frac}: expected 0 < min <= max <= .5"
            )


@dataclass
class _Mover:
    class_id: int
    alpha: np.ndarray  # (h, w, 1) silhouette in [0, 1]
    fill: np.ndarray  # (h, w, 3) colour with shading
    pos: np.ndarray  # (2,) top-left corner, float pixels
    vel: np.ndarray  # (2,) pixels per frame
    first: int  # frames [first, last) it is in the picture
    last: int


def _movers(rng: np.random.Generator, cfg: VideoSynthConfig) -> list[_Mover]:
    out = []
    for k in range(cfg.objects):
        lo, hi = max(4.0, cfg.min_frac * cfg.size), max(4.0, cfg.max_frac * cfg.size)
        side = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        aspect = math.exp(rng.uniform(-math.log(1.6), math.log(1.6)))
        w, h = max(4, round(side * math.sqrt(aspect))), max(4, round(side / math.sqrt(aspect)))
        cls = int(rng.integers(len(CLASS_NAMES)))
        alpha = _shape_mask(CLASS_NAMES[cls], w, h, rng)[..., None]
        ramp = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.2), w, dtype=np.float32)
        fill = np.broadcast_to(_rand_colour(rng) * ramp[None, :, None], (h, w, 3)).astype(np.float32)
        pos = rng.uniform(0, [cfg.size - w, cfg.size - h])
        angle, speed = rng.uniform(0, 2 * math.pi), rng.uniform(1.0, cfg.max_speed)
        vel = speed * np.array([math.cos(angle), math.sin(angle)])
        first, last = 0, cfg.frames
        if k % 3 == 2:  # a third come late or leave early
            if rng.random() < 0.5:
                first = int(rng.integers(1, cfg.frames // 2))
            else:
                last = int(rng.integers(cfg.frames // 2, cfg.frames))
        out.append(_Mover(cls, alpha, fill, pos, vel, first, last))
    return out


def _step(m: _Mover, rng: np.random.Generator, size: int, max_speed: float) -> None:
    """Move one frame: heading drift, speed kept in [1, max_speed], bounce off the border."""
    turn = rng.normal(0, 0.05)
    c, s = math.cos(turn), math.sin(turn)
    m.vel = np.array([c * m.vel[0] - s * m.vel[1], s * m.vel[0] + c * m.vel[1]])
    m.pos = m.pos + m.vel
    h, w = m.alpha.shape[:2]
    for axis, limit in ((0, size - w), (1, size - h)):
        if m.pos[axis] < 0 or m.pos[axis] > limit:
            m.vel[axis] = -m.vel[axis]
            m.pos[axis] = float(np.clip(m.pos[axis], 0, limit))


def draw_frame(
    background: np.ndarray, movers: list[_Mover], frame: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, np.ndarray, float]]]:
    """One frame: RGB uint8 and, per object in the picture, ``(index, xyxy box, visibility)``."""
    img = background.copy()
    owner = np.full(img.shape[:2], -1, np.int32)  # which object shows at each pixel
    boxes = []
    for k, m in enumerate(movers):
        if not m.first <= frame < m.last:
            continue
        h, w = m.alpha.shape[:2]
        x1, y1 = (int(round(v)) for v in m.pos)
        region = img[y1 : y1 + h, x1 : x1 + w]
        img[y1 : y1 + h, x1 : x1 + w] = region * (1 - m.alpha) + m.fill * m.alpha
        owner[y1 : y1 + h, x1 : x1 + w][m.alpha[..., 0] > 0.5] = k
        boxes.append((k, box_convert(np.array([x1, y1, w, h], np.float32), "xywh", "xyxy")))
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    out = []
    for k, box in boxes:
        area = max(1, int((movers[k].alpha > 0.5).sum()))
        out.append((k, box, float((owner == k).sum()) / area))
    return np.clip(img, 0, 255).round().astype(np.uint8), out


def write_sequence(out: Path, cfg: VideoSynthConfig, index: int) -> Path:
    """Draw sequence ``index`` into ``out`` (layout: module docstring); its folder."""
    rng = np.random.default_rng([cfg.seed, index, VIDEO_VERSION])
    name = f"seq-{index:02d}"
    seq = out / name
    (seq / "img1").mkdir(parents=True, exist_ok=True)
    (seq / "gt").mkdir(exist_ok=True)
    (out / "videos").mkdir(exist_ok=True)
    background = _background(rng, cfg.size)
    movers = _movers(rng, cfg)
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    video = cv2.VideoWriter(str(out / "videos" / f"{name}.mp4"), fourcc, cfg.fps, (cfg.size, cfg.size))
    lines = []
    try:
        for f in range(cfg.frames):
            img, objs = draw_frame(background, movers, f, rng)
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(seq / "img1" / f"{f + 1:06d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
            video.write(bgr)
            for k, box, vis in objs:
                x, y, w, h = box_convert(np.asarray(box), "xyxy", "xywh").tolist()
                cls = movers[k].class_id
                lines.append(f"{f + 1},{k + 1},{x:.0f},{y:.0f},{w:.0f},{h:.0f},1,{cls + 1},{vis:.3f}")
            for m in movers:
                _step(m, rng, cfg.size, cfg.max_speed)
    finally:
        video.release()
    (seq / "gt" / "gt.txt").write_text("".join(line + "\n" for line in lines))
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={cfg.fps:g}\nseqLength={cfg.frames}\n"
        f"imWidth={cfg.size}\nimHeight={cfg.size}\nimExt=.jpg\n"
    )
    return seq


def generate_video(out: str | Path, cfg: VideoSynthConfig) -> list[Path]:
    """Write every sequence of ``cfg`` under ``out``; their folders."""
    out = writable_dir(out, "synthetic video")
    try:
        return [write_sequence(out, cfg, i) for i in range(cfg.sequences)]
    except OSError as exc:
        raise UserError(f"writing the synthetic video to {out} failed: {exc}") from exc


def read_mot(path: str | Path) -> np.ndarray:
    """A MOTChallenge txt file (ground truth or results) as ``(N, C)`` float64, C >= 6 (frame, id,
    x, y, w, h, ...); an unreadable line is a ``UserError`` naming the file and line."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append([float(v) for v in line.split(",")])
        except ValueError:
            raise UserError(f"{path}:{n}: {line!r} is not a comma-separated MOTChallenge line") from None
        if len(rows[-1]) < 6 or len(rows[-1]) != len(rows[0]):
            raise UserError(f"{path}:{n}: {len(rows[-1])} values; expected {max(6, len(rows[0]))}")
    return np.array(rows, np.float64).reshape(len(rows), -1 if rows else 9)
