"""A synthetic detection data set that needs no download: coloured shapes and rendered glyphs on
cluttered, textured backgrounds, written in YOLO format with a ``data.yaml``.

Every image is drawn from its own generator seeded by ``(seed, split, index)``, so the output is the
same bytes for the same settings, whatever order (or process) the images are drawn in. Objects:

* classes: ``CLASS_NAMES`` — filled circle (ellipse), square (rectangle), triangle, and the glyphs
  "X" and "3" rendered with ``cv2.putText`` and stretched to the box (no "A": it is a triangle);
* scale: the geometric mean side is ``min_size * (hi / min_size) ** (u ** size_power)``, u uniform,
  from ``min_size`` (about 8 px) to ``hi = max_frac * size`` (half the image): log-uniform bent
  towards larger sizes (``size_power`` < 1 makes objects near ``min_size`` rarer); aspect ratio w/h
  log-uniform in ``[1/max_aspect, max_aspect]``;
* overlaps: a new object may overlap earlier ones (IoU up to ``max_iou``) but the objects drawn
  over an earlier one never hide more than ``max_cover`` of its box, all of them together (checked
  pair by pair, several later objects could bury most of a box: a label no detector can earn);
  every object lies wholly inside the image; its box is the tight box of its own (unoccluded)
  silhouette;
* backgrounds: two-colour gradients, low-frequency colour noise, lines, arcs and soft blobs that are
  not objects; then optional Gaussian blur and pixel noise over everything.

Labels: one ``class cx cy w h`` line per object, normalised to [0, 1] (YOLO format). Images are JPEG
(quality 92: the noise makes PNG files several times larger). Figures behind these choices:
``docs/benchmarks.md``, "Measurements behind design choices".
"""

from __future__ import annotations

import json
import math
import multiprocessing
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from yolov3.boxes import box_area, box_convert
from yolov3.console import Progress
from yolov3.data.formats.coco import write_coco
from yolov3.data.formats.yolo import format_labels
from yolov3.data.types import Sample
from yolov3.errors import UserError

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "letter-X", "digit-3")
_GLYPHS = {"letter-X": "X", "digit-3": "3"}
MARKER = ".complete"  # written last: its presence (with matching settings) means the set is whole
FORMAT_VERSION = 3  # bump when the drawing changes, so cached sets are regenerated


@dataclass(frozen=True)
class SynthConfig:
    """What to draw. ``size``: square image side in pixels; ``n``: images in all, of which
    ``val_fraction`` (rounded, at least 1 when n >= 2) go to the held-out split."""

    n: int = 1000
    seed: int = 0
    size: int = 416
    val_fraction: float = 0.2
    min_objects: int = 1
    max_objects: int = 8
    min_size: float = 8.0
    max_frac: float = 0.5
    max_aspect: float = 1.8
    max_iou: float = 0.3
    max_cover: float = 0.4
    size_power: float = 0.6  # side = min_size * (hi / min_size) ** (u ** size_power); 1 = log-uniform

    def split_sizes(self) -> tuple[int, int]:
        """``(n_train, n_val)``."""
        n_val = round(self.n * self.val_fraction)
        if self.n >= 2:
            n_val = min(max(n_val, 1), self.n - 1)
        return self.n - n_val, n_val


# ----------------------------------------------------------------------------------------------------
# Drawing one image
# ----------------------------------------------------------------------------------------------------


def _rand_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated RGB colour, float32 (3,) in [0, 255]."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(90, 255)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size, 3)`` float32 RGB: gradient + low-frequency colour noise + clutter."""
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = np.clip(0.5 + (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle), 0, 1)[..., None]
    img = c0 * (1 - t) + c1 * t
    k = int(rng.integers(3, 9))
    low = rng.normal(0, rng.uniform(8, 30), (k, k, 3)).astype(np.float32)
    img = img + cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    img = img.astype(np.float32)
    # Soft blobs (blurred, so no crisp outline), composited at quarter resolution for speed:
    # ``tint`` is premultiplied colour and ``cover`` its alpha, both upsampled once.
    q = max(size // 4, 8)
    tint = np.zeros((q, q, 3), np.float32)
    cover = np.zeros((q, q, 1), np.float32)
    for _ in range(int(rng.integers(3, 10))):
        blob = np.zeros((q, q), np.float32)
        centre = (int(rng.integers(0, q)), int(rng.integers(0, q)))
        axes = (int(rng.integers(q // 20 + 1, q // 4 + 2)), int(rng.integers(q // 20 + 1, q // 4 + 2)))
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        blob = 0.6 * cv2.GaussianBlur(blob, (0, 0), max(axes) / 2)[..., None]
        tint = tint * (1 - blob) + blob * rng.uniform(0, 255, 3).astype(np.float32)
        cover = cover * (1 - blob) + blob
    tint = cv2.resize(tint, (size, size), interpolation=cv2.INTER_LINEAR)
    cover = cv2.resize(cover, (size, size), interpolation=cv2.INTER_LINEAR)[..., None]
    img = np.ascontiguousarray(img * (1 - cover) + tint)
    for _ in range(int(rng.integers(4, 16))):  # lines and arcs: thin strokes, never closed shapes
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        thick = int(rng.integers(1, 4))
        if rng.random() < 0.6:
            p0 = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            p1 = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            cv2.line(img, p0, p1, colour, thick, cv2.LINE_AA)
        else:
            centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            r = int(rng.integers(size // 16, size // 2))
            start = float(rng.uniform(0, 360))
            cv2.ellipse(
                img, centre, (r, r), 0, start, start + rng.uniform(30, 150), colour, thick, cv2.LINE_AA
            )
    return img


def _glyph_mask(text: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A rendered glyph cropped to its ink and stretched to ``(h, w)``, float32 in [0, 1]."""
    canvas = np.zeros((160, 160), np.uint8)
    thick = int(rng.integers(8, 16))
    font = cv2.FONT_HERSHEY_SIMPLEX if rng.random() < 0.5 else cv2.FONT_HERSHEY_DUPLEX
    cv2.putText(canvas, text, (20, 135), font, 4.0, 255, thick, cv2.LINE_AA)
    ys, xs = np.nonzero(canvas > 127)
    crop = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _shape_mask(name: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """The silhouette of class ``name`` filling a ``(h, w)`` box edge to edge, float32 in [0, 1],
    drawn at 4x and area-downsampled for anti-aliased edges."""
    if name in _GLYPHS:
        return _glyph_mask(_GLYPHS[name], w, h, rng)
    s = 4
    big = np.zeros((h * s, w * s), np.uint8)
    W, H = w * s - 1, h * s - 1
    if name == "circle":
        cv2.ellipse(big, (W // 2, H // 2), (W // 2, H // 2), 0, 0, 360, 255, -1)
    elif name == "square":
        big[:] = 255
    elif name == "triangle":
        apex = int(rng.uniform(0.3, 0.7) * W)
        pts = np.array([[0, H], [W, H], [apex, 0]], np.int32)
        if rng.random() < 0.5:  # pointing down as often as up
            pts[:, 1] = H - pts[:, 1]
        cv2.fillPoly(big, [pts], 255)
    else:
        raise ValueError(f"unknown class {name!r}; expected one of {CLASS_NAMES}")
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of xyxy boxes ``a`` and ``b``."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (box_area(a) + box_area(b) - inter)


def _covered(box: np.ndarray, over: list[np.ndarray]) -> float:
    """The fraction of integer-pixel box ``box`` inside the union of the boxes ``over``."""
    x1, y1, x2, y2 = (int(v) for v in box)
    hidden = np.zeros((y2 - y1, x2 - x1), bool)
    for o in over:
        ox1, oy1, ox2, oy2 = (int(v) for v in o)
        hidden[max(oy1 - y1, 0) : max(oy2 - y1, 0), max(ox1 - x1, 0) : max(ox2 - x1, 0)] = True
    return float(hidden.mean())


def _place(rng: np.random.Generator, cfg: SynthConfig, boxes: list[np.ndarray]) -> np.ndarray | None:
    """A box (x1, y1, x2, y2) in integer pixels that respects the overlap rules, or None."""
    hi = cfg.max_frac * cfg.size
    for _ in range(30):
        side = cfg.min_size * (hi / cfg.min_size) ** (rng.uniform() ** cfg.size_power)
        aspect = math.exp(rng.uniform(-math.log(cfg.max_aspect), math.log(cfg.max_aspect)))
        w = int(round(min(max(side * math.sqrt(aspect), cfg.min_size), hi)))
        h = int(round(min(max(side / math.sqrt(aspect), cfg.min_size), hi)))
        x1, y1 = int(rng.integers(0, cfg.size - w + 1)), int(rng.integers(0, cfg.size - h + 1))
        box = box_convert(np.array([x1, y1, w, h], np.float32), "xywh", "xyxy")
        if all(_box_iou(box, other) <= cfg.max_iou for other in boxes) and all(
            _covered(earlier, boxes[k + 1 :] + [box]) <= cfg.max_cover for k, earlier in enumerate(boxes)
        ):
            return box
    return None


def draw_image(cfg: SynthConfig, split: str, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image ``index`` of ``split``: ``(H, W, 3)`` uint8 RGB, boxes ``(N, 4)`` float32 xyxy absolute
    pixels, classes ``(N,)`` int64 — a pure function of ``cfg`` (its seed), ``split`` and ``index``."""
    rng = np.random.default_rng([cfg.seed, {"train": 0, "val": 1}[split], index, FORMAT_VERSION])
    img = _background(rng, cfg.size)
    boxes: list[np.ndarray] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(cfg.min_objects, cfg.max_objects + 1))):
        box = _place(rng, cfg, boxes)
        if box is None:
            continue
        cls = int(rng.integers(len(CLASS_NAMES)))
        x1, y1, x2, y2 = (int(v) for v in box)
        alpha = _shape_mask(CLASS_NAMES[cls], x2 - x1, y2 - y1, rng)[..., None]
        region = img[y1:y2, x1:x2]
        colour = _rand_colour(rng)
        # Keep the object visible: flip its brightness when it is too close to what lies under it.
        if abs(colour.mean() - region.mean()) < 40:
            colour = np.clip(255 - colour, 0, 255)
        ramp = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.2), x2 - x1, dtype=np.float32)
        fill = colour * ramp[None, :, None]  # a little shading across the object
        img[y1:y2, x1:x2] = region * (1 - alpha) + fill * alpha
        boxes.append(box)
        classes.append(cls)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    img = img + rng.normal(0, rng.uniform(2, 12), img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).round().astype(np.uint8)
    box_arr = np.array(boxes, np.float32).reshape(-1, 4)
    return out, box_arr, np.array(classes, np.int64)


# ----------------------------------------------------------------------------------------------------
# Writing the data set
# ----------------------------------------------------------------------------------------------------


def writable_dir(path: str | Path, what: str) -> Path:
    """Create ``path`` if needed and check that files can be written there, else ``UserError`` naming
    it (``what`` says what the folder is for)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"cannot write the {what} folder {path} ({exc.strerror or exc}); "
            "choose another place (see --help) or fix its permissions"
        ) from exc
    return path


def is_complete(out: str | Path, cfg: SynthConfig) -> bool:
    """True when ``out`` holds a whole data set written with exactly ``cfg`` (the marker is the last
    file written, so an interrupted generation reads as incomplete)."""
    marker = Path(out) / MARKER
    try:
        return json.loads(marker.read_text()) == _marker_content(cfg)
    except (OSError, ValueError):
        return False


def _marker_content(cfg: SynthConfig) -> dict:
    return {"format_version": FORMAT_VERSION, **asdict(cfg)}


def generate(
    out: str | Path, cfg: SynthConfig, coco: bool = False, progress: bool = True, workers: int = 1
) -> tuple[Path, list[Sample]]:
    """Write the data set to ``out`` (replacing whatever synthetic set is there) and return the path of
    its ``data.yaml`` and the validation samples.

    Layout: ``images/{train,val}/*.jpg``, ``labels/{train,val}/*.txt``, ``data.yaml`` (``train`` /
    ``val`` image folders relative to it, ``nc``, ``names``); with ``coco``,
    ``annotations/instances_{train,val}.json`` too (category ids 1..C, image ids 1..N per split);
    the marker ``.complete`` last. ``workers`` > 1 draws in that many forked processes (same bytes:
    each image has its own generator).
    """
    out = writable_dir(out, "data set")
    try:
        return _generate(out, cfg, coco, progress, workers)
    except OSError as exc:
        raise UserError(f"writing the data set to {out} failed: {exc}") from exc


def _write_one(task: tuple[Path, SynthConfig, str, int]) -> Sample:
    """Draw image ``i`` of ``split`` and write it with its label file; the sample written."""
    out, cfg, split, i = task
    img, boxes, classes = draw_image(cfg, split, i)
    stem = f"{split}_{i:06d}"
    image_path = out / "images" / split / f"{stem}.jpg"
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise OSError(f"{image_path}: JPEG encoding failed")
    image_path.write_bytes(buf.tobytes())
    flags = np.zeros(len(classes), bool)  # no difficult / crowd boxes here
    sample = Sample(str(image_path), boxes, classes, flags, flags.copy(), cfg.size, cfg.size, i + 1)
    (out / "labels" / split / f"{stem}.txt").write_text(format_labels(sample))
    return sample


def _generate(
    out: Path, cfg: SynthConfig, coco: bool, progress: bool, workers: int
) -> tuple[Path, list[Sample]]:
    (out / MARKER).unlink(missing_ok=True)
    for sub in ("images", "labels", "annotations"):
        shutil.rmtree(out / sub, ignore_errors=True)
    samples: dict[str, list[Sample]] = {}
    n_train, n_val = cfg.split_sizes()
    for split, count in (("train", n_train), ("val", n_val)):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        samples[split] = []
        tasks = [(out, cfg, split, i) for i in range(count)]
        bar = Progress(count, f"synth {split}", "img", progress)
        if workers > 1 and count >= 64:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                samples[split] = list(bar.iterate(pool.imap(_write_one, tasks, chunksize=16)))
        else:
            samples[split] = [_write_one(t) for t in bar.iterate(tasks)]
    # No ``path`` key: the paths are relative to data.yaml's folder (this package's loader and
    # Ultralytics' both read it so), which keeps the folder relocatable.
    data = {"train": "images/train", "val": "images/val", "nc": len(CLASS_NAMES), "names": list(CLASS_NAMES)}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    if coco:
        for split, items in samples.items():
            json_path = out / "annotations" / f"instances_{split}.json"
            write_coco(items, list(CLASS_NAMES), json_path, out / "images" / split)
    (out / MARKER).write_text(json.dumps(_marker_content(cfg), sort_keys=True))
    return out / "data.yaml", samples["val"]
