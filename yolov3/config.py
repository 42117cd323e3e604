"""Typed settings, with the seed's values as defaults (``docs/seed.md``, "Settings").

Four sections, one dataclass each: ``ModelConfig`` (which network), ``DataConfig`` (what the loader
feeds it), ``TrainConfig`` (the optimiser and the run) and ``InferConfig`` (how raw maps become
detections: input size, thresholds, NMS, precision). A YAML file holds any of the first three as
``model:`` / ``data:`` / ``train:`` mappings; ``from_dict`` builds a section from such a mapping and
rejects an unknown or misspelt key by name, suggesting the nearest valid one. Only the ``build_*``
functions of the modules that construct objects read these.

Each knob has one name, used by the YAML key, the Python API keyword and the command-line option
(``conf_threshold`` is ``--conf-threshold``; the CLI also accepts the short forms it has always had,
``--conf``, ``--iou``, ``--img``). The two exceptions are the things a command is about:
``--model`` sets ``model.name`` and ``--data`` sets ``data.path``.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, TypeVar

from yolov3.config_io import (
    ConfigError,
    bad_setting,
    build_dataclass,
    check_keys,
    load_yaml,
    nearest,
    to_dict,
)

T = TypeVar("T")

# The seed's anchors (w, h) in input pixels, one row per output scale (stride 8, 16, 32): Darknet's
# COCO anchors. The seed writes them in stride units (``docs/seed.md``); ``anchors / stride`` gives those.
COCO_ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)
STRIDES: tuple[int, int, int] = (8, 16, 32)

NMS_METHODS = ("greedy", "soft", "diou")
TILE_MERGES = ("nms", "nmm")  # how sliced inference merges its tiles' boxes (yolov3.infer.slicing)
EXPORT_FORMATS = ("onnx", "torchscript", "darknet", "openvino")  # --format; yolov3.export.formats.EXPORTERS
ONNX_MIN_OPSET = 17  # the oldest opset the ONNX exporter writes
OPENVINO_HINTS = ("auto", "latency", "throughput")  # auto: latency at batch 1, throughput above
AMP_MODES = ("auto", "bf16", "fp16", "off")
# The seed's test input size: what a model runs at when nothing records its own (a bare module).
SEED_TEST_SIZE = 544
# mAP integrates precision over recall down to the low-score tail: evaluation keeps every box above
# this score instead of the seed's 0.3 display threshold.
MAP_CONF_THRESHOLD = 0.001


@dataclass
class ModelConfig:
    """The network. Its class count is not a setting: it comes from the data set's names. Invalid
    values raise ``ConfigError`` naming the setting when the object is made."""

    name: str = "yolov3"  # yolov3 | yolov3-tiny | yolov3-spp | yolov3-voc | path to a Darknet .cfg
    # input pixels, one row per scale (increasing stride); None: the model's own (COCO for yolov3)
    anchors: list[list[list[float]]] | None = None
    width: float = 1.0  # channel multiplier for the native YOLOv3

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            bad_setting("name", self.name, "a model name or a path to a Darknet .cfg", "--model")
        if not _positive(self.width):
            bad_setting("width", self.width, "a channel multiplier > 0")
        if self.anchors is not None and not _anchor_table(self.anchors):
            bad_setting("anchors", self.anchors, "per scale, a list of [w, h] pairs of input pixels > 0")


@dataclass
class DataConfig:
    path: str = ""  # dataset config (data.yaml, .data) the loaders read
    img_size: int = 416  # train input size (validation during training runs at it too)
    max_boxes_per_scale: int = 150  # rows of each scale's ground-truth box list (the ignore test)
    label_smoothing: float = 0.01  # class targets: one-hot * (1 - d) + d / C
    positive_iou: float = 0.3  # target encoding: an anchor is positive when its IoU with the box > this
    augment: bool = True  # the seed's flip / crop / translate, each p = 0.5
    hsv: bool = False
    mosaic: bool = False
    multi_scale: bool = False  # a new size in 320..608 step 32 per batch
    workers: int = 2
    cache: bool = False
    tile: int = 0  # > 0: train on a random tile of this side from each picture (yolov3.data.dataset)
    min_visible: float = 0.5  # with tile: a box cut by the tile's edge is kept if this share lies inside

    def __post_init__(self) -> None:
        """Sizes and counts a loader can use; invalid values raise ``ConfigError`` naming the setting."""
        size = self.img_size
        if not _whole(size) or size < 32 or size % 32:
            bad_setting("img_size", size, "a positive multiple of 32")
        for name, low in (("max_boxes_per_scale", 1), ("workers", 0)):
            if not _whole(getattr(self, name)) or getattr(self, name) < low:
                bad_setting(name, getattr(self, name), f"a whole number >= {low}")
        if not 0.0 <= self.label_smoothing < 1.0:
            bad_setting("label_smoothing", self.label_smoothing, "a number in [0, 1)")
        if not 0.0 <= self.positive_iou < 1.0:
            bad_setting("positive_iou", self.positive_iou, "an IoU in [0, 1)")
        if not _whole(self.tile) or self.tile < 0 or self.tile % 32 or (self.tile and self.cache):
            bad_setting("tile", self.tile, "0 or a multiple of 32, without cache (it keeps pictures resized)")
        if not 0.0 < self.min_visible <= 1.0:
            bad_setting("min_visible", self.min_visible, "a fraction in (0, 1]")


@dataclass
class TrainConfig:
    epochs: int = 20
    batch: int = 2
    lr_init: float = 1e-3
    lr_end: float = 1e-4
    warmup_epochs: float = 2.0
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9
    weight_decay: float = 0.0005  # SGD only; never on BN and biases
    ignore_iou: float = 0.5  # the confidence loss ignores predictions overlapping a box by >= this
    seed: int = 0
    # how the trainer runs (yolov3 train); none of these change the seed's recipe
    weights: str = ""  # initial weights: Darknet .weights (full or a backbone prefix) or a .pt checkpoint
    transfer: bool = False  # load --weights except the tensors whose shapes differ (output convs)
    freeze: bool = False  # freeze the backbone (Darknet-53)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto | bf16 | fp16 | off
    ema: bool = False  # keep an exponential moving average of the weights (evaluated, saved in best)
    ema_decay: float = 0.9999
    accumulate: int = 1  # batches per optimiser step
    clip_grad: float = 0.0  # max gradient norm; 0 = no clipping
    channels_last: bool = False
    compile: bool = False  # torch.compile the model
    sync_bn: bool = False  # SyncBatchNorm under torchrun
    freeze_bn: bool = False  # every BN layer in eval mode (fixed statistics): tiny per-process batches
    deterministic: bool = False  # torch.use_deterministic_algorithms (bit-exact resume on CPU)
    val_interval: int = 1  # validate every N epochs (and after the last)
    save_period: int = 0  # also write last.pt every N optimiser steps; 0 = at epoch ends only
    max_bad_steps: int = 10  # consecutive non-finite steps before the run stops (with a checkpoint)
    time: float = 0.0  # minutes of wall clock for the whole run (with epochs: whichever ends first); 0: none
    patience: int = 0  # stop after N validations without a better val mAP@0.5; 0 = never
    project: str = "runs"
    name: str = "exp"
    exist_ok: bool = False

    def __post_init__(self) -> None:
        """The counts and the clock must make sense (a negative ``time`` would train unbudgeted)."""
        for name, low in (("epochs", 0), ("batch", 1), ("accumulate", 1), ("val_interval", 1),
                          ("save_period", 0), ("max_bad_steps", 1), ("patience", 0)):  # fmt: skip
            if not _whole(getattr(self, name)) or getattr(self, name) < low:
                bad_setting(name, getattr(self, name), f"a whole number >= {low}")
        for name in ("time", "warmup_epochs", "clip_grad"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                bad_setting(name, getattr(self, name), "a number >= 0")


@dataclass(frozen=True)
class InferConfig:
    """How raw maps become detections; the same for ``detect``, ``val``, the Python API, an export's
    in-graph NMS and validation during training. Defaults: the seed's test settings, except the input
    size: ``img_size=None`` is the model file's own (the size it was trained and validated at, or the
    input shape an export fixes; ``SEED_TEST_SIZE`` only for a model that records none), resolved by
    ``Detector``: a model trained at 192 halves its mAP at the seed's 544.

    ``amp`` auto runs bf16 where the hardware does it natively (GPUs; CPUs with AVX-512 BF16 or AMX)
    and float32 elsewhere: bf16 keeps the demo's mAP for much less CPU time (``docs/benchmarks.md``,
    "The demo's recipe", and the latency rows). ``amp="off"`` is the seed's float32.
    Invalid values raise ``ConfigError`` naming the setting when the object is made.
    """

    img_size: int | None = None  # None: the model file's own (see above)
    conf_threshold: float = 0.3  # keep boxes whose score conf * prob > this
    iou_threshold: float = 0.45  # NMS: suppress a box overlapping a better one of its class by > this
    max_det: int = 300  # boxes per image, best first
    nms: str = "greedy"  # greedy (the seed) | soft (Gaussian, sigma 0.3) | diou
    multi_label: bool = False  # one candidate per class whose score passes, not only the best class
    classes: tuple[int | str, ...] | None = None  # keep only these classes: indices or names (parse_classes)
    amp: str = "auto"  # auto | bf16 | fp16 | off
    # sliced inference for large pictures (yolov3.infer.slicing); tile None: the whole picture at once
    tile: int | None = None  # tile side in picture pixels, a multiple of 32 (the input size is natural)
    tile_overlap: float = 0.2  # fraction of a tile shared with its neighbour
    tile_full: bool = False  # also run the whole picture, for objects larger than a tile
    tile_merge: str = "nms"  # nms | nmm (greedy non-maximum merging: matched boxes -> their union)

    def __post_init__(self) -> None:
        self._check_tiles()
        if not 0.0 <= self.conf_threshold <= 1.0:
            bad_setting("conf_threshold", self.conf_threshold, "a score in [0, 1]")
        if not 0.0 < self.iou_threshold <= 1.0:
            bad_setting("iou_threshold", self.iou_threshold, "an IoU in (0, 1]")
        if not _whole(self.max_det) or self.max_det < 1:
            bad_setting("max_det", self.max_det, "a positive whole number")
        size = self.img_size
        if size is not None and (not _whole(size) or size < 32 or size % 32):
            bad_setting("img_size", self.img_size, "a positive multiple of 32")
        if self.nms not in NMS_METHODS:
            bad_setting("nms", self.nms, f"one of {', '.join(NMS_METHODS)}")
        if self.amp not in AMP_MODES:
            bad_setting("amp", self.amp, f"one of {', '.join(AMP_MODES)}")
        if self.classes is not None:
            object.__setattr__(self, "classes", parse_classes(self.classes))
            if any(isinstance(c, int) and c < 0 for c in self.classes):
                bad_setting("classes", list(self.classes), "class indices >= 0")

    def _check_tiles(self) -> None:
        if self.tile is not None and (not _whole(self.tile) or self.tile < 32 or self.tile % 32):
            bad_setting("tile", self.tile, "a multiple of 32, >= 32 (tile side in pixels)")
        if not 0.0 <= self.tile_overlap < 0.9:
            bad_setting("tile_overlap", self.tile_overlap, "a fraction in [0, 0.9)")
        if self.tile_merge not in TILE_MERGES:
            bad_setting("tile_merge", self.tile_merge, f"one of {', '.join(TILE_MERGES)}")

    def replace(self, **changes: Any) -> InferConfig:
        """A copy with ``changes`` (None values mean "not given" and keep the current value); an
        unknown name is an error naming the nearest setting."""
        given = {k: v for k, v in changes.items() if v is not None}
        check_keys(type(self), given, "inference settings")
        return dataclasses.replace(self, **given)

    @classmethod
    def for_map(cls, **changes: Any) -> InferConfig:
        """The seed's settings with the score threshold mAP needs (``MAP_CONF_THRESHOLD``)."""
        return cls(conf_threshold=MAP_CONF_THRESHOLD).replace(**changes)


def parse_classes(value: Any) -> tuple[int | str, ...] | None:
    """Classes as given anywhere (``--classes 0,2``, ``--classes 0 2``, ``--classes dog cat``,
    ``classes="0,2"``, ``classes=[0, "dog"]``, ``?classes=0,2``): a tuple of indices (whole numbers) and
    names (anything else), commas splitting; None for none. Names become indices where the model's
    names are known (``resolve_classes``)."""
    if value is None:
        return None
    items = [value] if isinstance(value, (str, int)) else list(value)
    out: list[int | str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            bad_setting("classes", value, "class indices or names")
        for part in [item] if isinstance(item, int) else [p.strip() for p in item.split(",")]:
            if isinstance(part, int) or part.lstrip("-").isdigit():
                out.append(int(part))
            elif part:
                out.append(part)
    return tuple(out) or None


def resolve_classes(classes: tuple[int | str, ...] | None, names: list[str]) -> tuple[int, ...] | None:
    """``classes`` as indices into ``names``; a name matches exactly, else ignoring case. An unknown
    name or an index out of range is a ``ConfigError`` naming it and the classes there are."""
    if classes is None:
        return None
    lower = {}
    for i, n in enumerate(names):
        lower.setdefault(n.lower(), i)
    out = []
    for c in classes:
        if isinstance(c, str):
            i = names.index(c) if c in names else lower.get(c.lower())
            if i is None:
                raise ConfigError(f"classes (--classes): no class named {c!r}{nearest(c, names)}; the "
                                  f"model's classes are {', '.join(names)}")  # fmt: skip
            c = i
        if not 0 <= c < len(names):
            raise ConfigError(f"classes (--classes): index {c} out of range: the model has {len(names)} "
                              f"classes (0..{len(names) - 1})")  # fmt: skip
        out.append(c)
    return tuple(out)


TRACKERS = ("bytetrack",)


@dataclass(frozen=True)
class TrackConfig:
    """How detections become tracks (``yolov3.apps.track.bytetrack``, ByteTrack: Zhang et al. 2022).

    Scores split each frame's detections: ``>= high_threshold`` are matched first (IoU >= ``match_iou``
    with the tracks' predicted boxes), then those in ``[low_threshold, high_threshold)`` rescue still
    unmatched tracks (IoU >= ``low_match_iou``); an unmatched high detection scoring
    ``>= new_track_threshold`` starts a track, confirmed when it is matched on the next frame (at once
    on a sequence's first frame). A track unseen for ``track_buffer`` frames (at 30 fps; scaled by the
    source's frame rate) is dropped. ``class_aware``: match only detections of the track's class.
    ``trail``: centres kept per track for drawing. Invalid values raise ``ConfigError``.
    """

    tracker: str = "bytetrack"
    high_threshold: float = 0.5
    low_threshold: float = 0.1
    new_track_threshold: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    unconfirmed_match_iou: float = 0.3
    track_buffer: int = 30
    class_aware: bool = False
    trail: int = 30

    def __post_init__(self) -> None:
        if self.tracker not in TRACKERS:
            bad_setting("tracker", self.tracker, f"one of {', '.join(TRACKERS)}")
        for name in ("high_threshold", "low_threshold", "new_track_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad_setting(name, getattr(self, name), "a score in [0, 1]")
        if self.low_threshold > self.high_threshold:
            bad_setting("low_threshold", self.low_threshold,
                        f"at most high_threshold ({self.high_threshold})")  # fmt: skip
        for name in ("match_iou", "low_match_iou", "unconfirmed_match_iou"):
            if not 0.0 < getattr(self, name) <= 1.0:
                bad_setting(name, getattr(self, name), "an IoU in (0, 1]")
        for name in ("track_buffer", "trail"):
            if not _whole(getattr(self, name)) or getattr(self, name) < 0:
                bad_setting(name, getattr(self, name), "a whole number >= 0")

    def replace(self, **changes: Any) -> TrackConfig:
        """A copy with ``changes`` (None means "not given"); an unknown name is an error."""
        given = {k: v for k, v in changes.items() if v is not None}
        check_keys(type(self), given, "tracker settings")
        return dataclasses.replace(self, **given)


def _whole(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _positive(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and x > 0  # also refuses NaN


def _anchor_table(anchors: Any) -> bool:
    """True for a non-empty list of scales, each a non-empty list of ``[w, h]`` with both > 0."""
    rows = (list, tuple)
    return (isinstance(anchors, rows) and len(anchors) > 0
            and all(isinstance(scale, rows) and len(scale) > 0 for scale in anchors)
            and all(isinstance(a, rows) and len(a) == 2 and all(map(_positive, a))
                    for scale in anchors for a in scale))  # fmt: skip


# Keys older versions of this project wrote into a run's config.yaml / checkpoint, read no more.
# A resumed run drops them; a config file that still sets one gets an error saying why.
RETIRED_KEYS: dict[str, dict[str, str]] = {
    "model": {"num_classes": "the class count comes from the data set's names"},
    "data": {"test_size": "the test size is the inference setting img_size (yolov3 val / detect --img-size)"},
}


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data`` (``build_dataclass``); a retired key of its section is an
    error saying what replaced it."""
    data = dict(data or {})
    section = _SECTION_OF.get(cls, "")
    for key in data:
        if key in RETIRED_KEYS.get(section, {}):
            raise ConfigError(f"{where}: {key!r} is no longer a setting: {RETIRED_KEYS[section][key]}")
    return build_dataclass(cls, data, where)


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
_SECTION_OF = {cls: name for name, cls in SECTIONS.items()}
# Training option name -> (section, field): each field's own name, but the two things a command is
# about (``--model`` is ``model.name``, ``--data`` is ``data.path``).
_NAMED_FOR_THE_SECTION = {("model", "name"): "model", ("data", "path"): "data"}
TRAIN_OPTIONS: dict[str, tuple[str, str]] = {
    _NAMED_FOR_THE_SECTION.get((section, f.name), f.name): (section, f.name)
    for section, cls in SECTIONS.items()
    for f in dataclasses.fields(cls)
}


def check_sections(doc: dict[str, Any], where: str) -> None:
    """A config file's top level holds only ``model`` / ``data`` / ``train`` mappings."""
    for key, value in doc.items():
        if key not in SECTIONS:
            raise ConfigError(f"{where}: unknown section {key!r}{nearest(str(key), SECTIONS)}; "
                              f"known: {', '.join(SECTIONS)}")  # fmt: skip
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{where}: section {key!r} must be a mapping of settings, got {value!r}")


def upgrade_saved(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A config saved by a run of any version of this project, with the ``RETIRED_KEYS`` removed
    (they described values the run now derives), ready for ``from_dict``."""
    return {section: {k: v for k, v in (config.get(section) or {}).items()
                      if k not in RETIRED_KEYS.get(section, {})}
            for section in SECTIONS}  # fmt: skip


__all__ = [
    "AMP_MODES", "COCO_ANCHORS", "EXPORT_FORMATS", "MAP_CONF_THRESHOLD", "NMS_METHODS", "ONNX_MIN_OPSET",
    "RETIRED_KEYS", "SEED_TEST_SIZE", "SECTIONS", "STRIDES", "TRAIN_OPTIONS", "ConfigError", "DataConfig",
    "InferConfig", "ModelConfig", "TrainConfig", "bad_setting", "check_sections", "from_dict", "load_yaml",
    "nearest", "parse_classes", "resolve_classes", "to_dict", "upgrade_saved", "TRACKERS", "TrackConfig",
]  # fmt: skip
