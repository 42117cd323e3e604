"""The Python API for detection: ``Detector`` (``yolov3.load``), returning ``Detections`` per image.

    import yolov3
    det = yolov3.load("yolov3.weights", cfg="yolov3.cfg", names="coco.names")   # or a checkpoint
    for d in det.predict(["a.jpg", "b.jpg"]):
        print(d.boxes, d.scores, d.labels)          # (x1, y1, x2, y2) in the original image's pixels
        cv2.imwrite("a_out.jpg", d.plot(bgr=True))

Colour order: **RGB**, as the rest of the package (``read_image``) and PIL. A NumPy array is taken as
RGB unless ``predict(..., bgr=True)`` (what ``cv2.imread`` / ``cv2.VideoCapture`` give); a PIL image
is converted to RGB; a path is read with ``yolov3.data.images.read_image``.

The detector owns letterbox, batching, ``yolov3.infer.postprocess`` and timing around a backend: any
callable ``(images (B, 3, H, W) float32 in [0, 1], RGB) -> raw maps`` (``yolov3.infer.backends``, whose
exported files may also give decoded boxes or detections after in-graph NMS), or a bare ``nn.Module``
(a model being trained). Its settings are one ``InferConfig``; a call may bring its own
(``predict(..., settings=...)``: thresholds, NMS, classes; not the input size, ``Detector.resolve``).
Reading and batching many pictures is ``yolov3.infer.loop.detect_batches``, which ``predict`` iterates.

Defaults travel with the model (``resolve_settings``): without an explicit ``img_size`` the detector
runs at the size the model file records (the size it was trained and validated at) or the input
shape its file fixes. An explicit size that a fixed-size file cannot take is an error; one that
differs from the recorded size is run, with a one-line note. An in-graph NMS export's thresholds are
the graph's: settings can only narrow them (a note says so when they ask for more).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from yolov3.config import SEED_TEST_SIZE, InferConfig, resolve_classes
from yolov3.console import note
from yolov3.data.transforms import letterbox_image
from yolov3.device import autocast, autocast_dtype, select_device
from yolov3.errors import UserError
from yolov3.infer.backends import load_backend
from yolov3.infer.frame import Frame
from yolov3.infer.loop import ImageLike, detect_batches, to_rgb
from yolov3.infer.postprocess import postprocess_outputs
from yolov3.infer.results import Detections
from yolov3.infer.slicing import predict_sliced
from yolov3.modelfile import default_names

RESOLVED_KEEP = 64  # per-call settings remembered resolved (Detector.resolve), then forgotten


def resolve_settings(settings: InferConfig, backend: Any, names: list[str], explain: bool = True
                     ) -> InferConfig:  # fmt: skip
    """``settings`` with ``img_size`` set for ``backend`` (module docstring) and ``classes`` given by
    name turned into indices into ``names``; ``explain``: print the notes. A size the backend's file
    cannot take, or a class the model does not have, raises ``UserError``."""
    meta = getattr(backend, "meta", None)
    fixed = getattr(backend, "input_size", None)
    source = getattr(backend, "source", "the model")
    if fixed is not None and fixed[0] != fixed[1]:
        raise UserError(f"{source}: fixed input {fixed[1]}x{fixed[0]} is not square; this package "
                        "letterboxes to a square input (export with --dynamic, or at one size)")  # fmt: skip
    recorded = fixed[0] if fixed else (meta.img_size if meta is not None else SEED_TEST_SIZE)
    if settings.classes is not None:
        settings = settings.replace(classes=resolve_classes(settings.classes, names))
    size = settings.img_size
    if size is None:
        settings = settings.replace(img_size=recorded)
    elif fixed is not None and size != fixed[0]:
        raise UserError(f"--img-size {size}: {source} takes {fixed[0]}x{fixed[0]} input only (the size is "
                        "fixed in the file); leave --img-size out, or export with --dynamic")  # fmt: skip
    elif explain and meta is not None and meta.arch != "foreign" and size != recorded:
        note(f"input size {size}: {source} was trained at {recorded} (recorded in the file), which is "
             "its default; another size can score very differently")  # fmt: skip
    if settings.tile is not None and fixed is not None and settings.tile != fixed[0]:
        raise UserError(f"--tile {settings.tile}: {source} takes {fixed[0]}x{fixed[0]} input only (fixed in "
                        f"the file); use --tile {fixed[0]}, or export with --dynamic")  # fmt: skip
    if explain and getattr(backend, "outputs", "raw") == "nms":
        _explain_nms(settings, meta.export, source)
    return settings


def _explain_nms(settings: InferConfig, graph: Any, source: str) -> None:
    """Notes for the settings an in-graph NMS export cannot honour (it keeps what its graph kept)."""
    if settings.conf_threshold < graph.conf_threshold:
        note(f"{source} keeps boxes scoring above {graph.conf_threshold} (its in-graph NMS): a score "
             f"threshold of {settings.conf_threshold} cannot bring back fewer-scoring ones")  # fmt: skip
    if settings.iou_threshold != graph.iou_threshold or settings.nms != "greedy" or settings.multi_label:
        note(f"{source} runs greedy NMS at IoU {graph.iou_threshold} in its graph; the IoU threshold, NMS "
             "method and multi-label settings given here do not apply")  # fmt: skip


class Detector:
    """Letterbox -> backend -> postprocess, in batches of ``batch_size``; see the module docstring.

    ``backend``: a callable, or an ``nn.Module`` (run in eval mode and inference mode on ``device``,
    under autocast when ``settings.amp`` says so). ``anchors`` (per scale, input pixels), ``strides``
    and ``names`` describe its output; ``settings``: ``InferConfig`` (default: the seed's, at the
    model's own input size: ``resolve_settings``).
    """

    def __init__(self, backend: Callable[[Tensor], list[Tensor]], names: Sequence[str],
                 anchors: Sequence[Sequence[Sequence[float]]], strides: Sequence[int],
                 settings: InferConfig | None = None, device: str | torch.device = "cpu",
                 batch_size: int = 8) -> None:  # fmt: skip
        settings = settings or InferConfig()
        num_classes = getattr(backend, "num_classes", None)
        if num_classes is not None and int(num_classes) != len(names):
            raise UserError(f"{len(names)} class names for a model with {num_classes} classes")
        if batch_size < 1:
            raise UserError(f"batch size {batch_size}: must be at least 1")
        self.device = torch.device(device)
        self.backend = backend
        self.names, self.anchors, self.strides = list(names), anchors, list(strides)
        self._settings, self.batch_size = resolve_settings(settings, backend, self.names), int(batch_size)
        self._resolved: dict[InferConfig, InferConfig] = {}
        self.amp = autocast_dtype(self.device, settings.amp) if isinstance(backend, nn.Module) else None
        self.outputs = getattr(backend, "outputs", "raw")

    @property
    def settings(self) -> InferConfig:
        """The detector's own ``InferConfig``, its ``img_size`` resolved for the model; a call may run
        under others (``predict(..., settings=...)``, ``resolve``)."""
        return self._settings

    @property
    def img_size(self) -> int:
        return self.settings.img_size

    @classmethod
    def from_model(cls, model: nn.Module, names: Sequence[str] | None = None,
                   settings: InferConfig | None = None, device: str | torch.device | None = None,
                   batch_size: int = 8) -> Detector:  # fmt: skip
        """A detector on a bare model (``.anchors``, ``.strides``, ``.num_classes``), e.g. during
        training; the model is only switched to eval mode while it runs."""
        names = list(names) if names is not None else default_names(model.num_classes)
        device = device or next(model.parameters()).device
        return cls(model, names, model.anchors, model.strides, settings, device, batch_size)

    @classmethod
    def load(cls, weights: str | os.PathLike, cfg: str | os.PathLike | None = None,
             names: str | os.PathLike | Sequence[str] | None = None, device: str = "auto",
             backend: str = "auto", batch_size: int = 8, settings: InferConfig | None = None,
             backend_options: dict[str, Any] | None = None, **overrides: Any) -> Detector:  # fmt: skip
        """A detector from a file: a checkpoint (``.pt`` / ``.safetensors``), Darknet ``.weights`` with
        ``cfg`` (+ ``names``), an ``.onnx``, TorchScript or OpenVINO ``.xml`` export. ``backend``: auto |
        torch | onnxruntime | opencv | openvino; ``backend_options``: ``threads``, ``spin``,
        ``cuda_graph``, ``hint`` (OpenVINO). ``overrides``:
        ``InferConfig`` fields (``img_size``, ``conf_threshold``...) over ``settings``. Class names that
        disagree with the weights' class count are an error."""
        settings = (settings or InferConfig()).replace(**overrides)
        names = [str(n) for n in names] if isinstance(names, (list, tuple)) else names
        b = load_backend(weights, kind=backend, device=select_device(device), cfg=cfg, names=names,
                         amp=settings.amp, **(backend_options or {}))  # fmt: skip
        return cls(b, b.names, b.anchors, b.strides, settings, b.device, batch_size)

    def __call__(self, images: ImageLike | Sequence[ImageLike], bgr: bool = False,
                 settings: InferConfig | None = None) -> list[Detections]:  # fmt: skip
        return self.predict(images, bgr, settings)

    def resolve(self, settings: InferConfig | None) -> InferConfig:
        """Per-call ``settings`` as this detector runs them: classes by name turned into indices (an
        unknown class is a ``ConfigError``), ``img_size`` and ``amp`` the detector's own. Both are fixed
        when the detector is made (its letterbox, the backend's input, autocast): a per-call ``img_size``
        of None means the detector's, any other size is a ``UserError`` (load another detector for
        another size); a per-call ``amp`` is not read. None: the detector's settings. Each distinct
        value is checked once and remembered (the last ``RESOLVED_KEEP``)."""
        if settings is None or settings == self._settings:
            return self._settings
        known = self._resolved.get(settings)
        if known is not None:
            return known
        if settings.img_size not in (None, self.img_size):
            raise UserError(f"img_size {settings.img_size}: this detector runs at {self.img_size} (fixed "
                            "when it was made); load another detector for another input size")  # fmt: skip
        own = settings.replace(img_size=self.img_size, amp=self._settings.amp)
        known = resolve_settings(own, self.backend, self.names, explain=False)
        if len(self._resolved) >= RESOLVED_KEEP:
            self._resolved.clear()
        self._resolved[settings] = self._resolved[known] = known
        return known

    def predict(self, images: ImageLike | Sequence[ImageLike], bgr: bool = False,
                settings: InferConfig | None = None) -> list[Detections]:  # fmt: skip
        """One ``Detections`` per image: a path, array, PIL image, ``Frame``, or a list of them (read in
        batches: ``yolov3.infer.loop.detect_batches``); an unreadable one raises its ``ImageError``.
        ``settings``: this call's (``resolve``), default the detector's."""
        single = isinstance(images, (str, os.PathLike, np.ndarray, Frame)) or hasattr(images, "convert")
        out: list[Detections] = []
        for o in detect_batches(self, [images] if single else images, self.batch_size, settings, bgr=bgr):
            if o.error is not None:
                raise o.error
            o.detections.speed["read"] = o.read_ms
            out.append(o.detections)
        return out

    def predict_arrays(self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None,
                       settings: InferConfig | None = None) -> list[Detections]:  # fmt: skip
        """One batch of RGB uint8 arrays -> ``Detections`` (NumPy, with image, path and timings), under
        this call's ``settings`` (``resolve``), default the detector's; with ``settings.tile`` each
        picture is detected by tiles (``yolov3.infer.slicing.predict_sliced``)."""
        if not len(images):
            return []
        settings = self.resolve(settings)
        paths = list(paths) if paths is not None else [None] * len(images)
        if settings.tile is not None:  # each picture by tiles, its tiles in batches (infer/slicing.py)
            return [predict_sliced(self, im, p, settings) for im, p in zip(images, paths)]
        t0 = time.perf_counter()
        batch, boxes = self.preprocess(images)
        t1 = time.perf_counter()
        raws = self.forward(batch)
        t2 = time.perf_counter()
        sizes = [(im.shape[1], im.shape[0]) for im in images]
        dets = postprocess_outputs(raws, self.outputs, self.anchors, self.strides, len(images),
                                   (self.img_size, self.img_size), boxes, sizes, settings)  # fmt: skip
        dets = [d.numpy() for d in dets]
        n, t3 = len(images), time.perf_counter()
        ms = {"preprocess": t1 - t0, "inference": t2 - t1, "nms": t3 - t2}
        speed = {k: v * 1e3 / n for k, v in ms.items()}
        for d, im, p in zip(dets, images, paths):
            d.names, d.path, d.image, d.speed = self.names, p, im, dict(speed)
        return dets

    def warmup(self) -> None:
        """One throw-away pass at the input size, so that first-call costs (kernel selection, lazy
        initialisation) stay out of the per-image timings; one input, not tiles (a tile is one input)."""
        whole = dataclasses.replace(self._settings, tile=None)  # replace() would keep the tile
        self.predict_arrays([np.full((self.img_size, self.img_size, 3), 128, np.uint8)], settings=whole)

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[Tensor, list]:
        """RGB uint8 arrays -> ``(B, 3, S, S)`` float32 in [0, 1] on the device, and their letterboxes."""
        boxed = [letterbox_image(im, self.img_size) for im in images]
        x = torch.from_numpy(np.stack([b[0] for b in boxed])).permute(0, 3, 1, 2)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        return x.contiguous(), [b[1] for b in boxed]

    def forward(self, batch: Tensor) -> list[Tensor]:
        """The backend's raw maps (a module runs in eval mode and inference mode, then is restored)."""
        model = self.backend
        if not isinstance(model, nn.Module):
            out = [torch.as_tensor(r) for r in model(batch)]
            return self._synced([r.to(self.device) for r in out])
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), autocast(self.device, self.amp):
                out = model(batch.to(self.device))
        finally:
            model.train(was_training)
        return self._synced([r.float() for r in out])

    def _synced(self, maps: list[Tensor]) -> list[Tensor]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # so the timings measure the work, not its launch
        return maps


def load(weights: str | os.PathLike, **kwargs: Any) -> Detector:
    """``Detector.load`` (see there)."""
    return Detector.load(weights, **kwargs)


__all__ = ["Detector", "load", "to_rgb"]
