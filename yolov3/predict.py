"""The Python API for detection: ``Detector`` (``yolov3.load``) and its ``Result`` objects.

    import yolov3
    det = yolov3.load("yolov3.weights", cfg="yolov3.cfg", names="coco.names")   # or a checkpoint
    for r in det.predict(["a.jpg", "b.jpg"]):
        print(r.boxes, r.scores, r.labels)          # (x1, y1, x2, y2) in the original image's pixels
        cv2.imwrite("a_out.jpg", r.plot(bgr=True))

Colour order: **RGB**, as the rest of the package (``read_image``) and PIL. A NumPy array is taken as
RGB unless ``predict(..., bgr=True)`` (what ``cv2.imread`` / ``cv2.VideoCapture`` give); a PIL image
is converted to RGB; a path is read with ``yolov3.data.images.read_image``.

A backend is any callable ``(images (B, 3, H, W) float32 in [0, 1], RGB) -> list of raw maps`` as the
model's forward returns them (smallest stride first); ``Detector`` owns the rest: letterbox,
batching, ``yolov3.postprocess.postprocess`` and timing. ``Detector.load`` builds one with
``yolov3.export.backends.load_backend`` (checkpoints, Darknet cfg + weights, ONNX, TorchScript).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from yolov3.data.images import read_image
from yolov3.data.transforms import letterbox_image
from yolov3.device import autocast, autocast_dtype, select_device
from yolov3.draw import draw_detections
from yolov3.errors import UserError
from yolov3.export.backends import load_backend
from yolov3.postprocess import NMS_METHODS, postprocess

ImageLike = str | os.PathLike | np.ndarray | Any  # Any: a PIL image


@dataclass
class Result:
    """Detections on one image. ``boxes``: ``(N, 4)`` float32 ``(x1, y1, x2, y2)`` in the original
    image's pixels; ``scores``: ``(N,)`` float32; ``class_ids``: ``(N,)`` int64 indices into ``names``
    (every class name of the model). ``image``: the RGB uint8 input, kept for ``plot``; ``speed``:
    milliseconds of preprocess / inference / nms spent on this image (its share of the batch)."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: list[str]
    path: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    width: int = 0
    height: int = 0
    speed: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def labels(self) -> list[str]:
        """The class name of each detection."""
        return [self.names[int(c)] for c in self.class_ids]

    def plot(
        self, image: np.ndarray | None = None, bgr: bool = False, line_width: int | None = None
    ) -> np.ndarray:
        """The image with boxes, names and scores drawn; RGB, or BGR (for ``cv2.imwrite``) with ``bgr``.
        An ``image`` passed in must be the same picture (same size), in that same colour order."""
        base = self.image if image is None else image
        if base is None:
            raise ValueError("this Result keeps no image: pass plot(image=...)")
        if bgr and image is None:
            base = base[..., ::-1]
        return draw_detections(base, self.boxes, self.scores, self.class_ids, self.names, bgr, line_width)

    def to_json(self) -> dict[str, Any]:
        """Plain data: ``{"image", "width", "height", "detections": [{"box", "score", "class_id",
        "name"}], "speed_ms"}`` with boxes as ``[x1, y1, x2, y2]`` pixels."""
        dets = [
            {
                "box": [round(float(v), 2) for v in b],
                "score": round(float(s), 5),
                "class_id": int(c),
                "name": self.names[int(c)],
            }  # fmt: skip
            for b, s, c in zip(self.boxes, self.scores, self.class_ids)
        ]
        speed = {k: round(v, 3) for k, v in self.speed.items()}
        return {"image": self.path, "width": self.width, "height": self.height, "detections": dets,
                "speed_ms": speed}  # fmt: skip


def to_rgb(image: ImageLike, bgr: bool = False) -> tuple[np.ndarray, str | None]:
    """``(RGB uint8 (H, W, 3), path or None)`` from a path, an array (RGB, or BGR with ``bgr``) or a PIL
    image. Grey arrays become 3-channel; a 4-channel array loses its alpha."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image), str(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image.Image
        return np.asarray(image.convert("RGB")), getattr(image, "filename", None) or None
    if not isinstance(image, np.ndarray):
        raise UserError(
            f"cannot detect on a {type(image).__name__}: expected a path, NumPy array or PIL image"
        )
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise UserError(f"image array of shape {image.shape}: expected (H, W, 3)")
    image = image[..., :3]
    if image.dtype != np.uint8:
        raise UserError(f"image array of dtype {image.dtype}: expected uint8 (0..255)")
    return np.ascontiguousarray(image[..., ::-1] if bgr else image), None


class Detector:
    """Letterbox -> backend -> postprocess, in batches; see the module docstring.

    ``backend``: a callable (or a ``nn.Module``, put in eval mode on ``device``). ``anchors`` (per
    scale, input pixels), ``strides`` and ``names`` describe its output. Thresholds default to the
    seed's test settings (``img_size`` 544, score 0.3, NMS IoU 0.45).
    """

    def __init__(
        self,
        backend: Callable[[Tensor], list[Tensor]],
        names: Sequence[str],
        anchors: Sequence[Sequence[Sequence[float]]],
        strides: Sequence[int],
        img_size: int = 544,
        device: str | torch.device = "cpu",
        conf_threshold: float = 0.3,
        iou_threshold: float = 0.45,
        nms: str = "greedy",
        max_det: int = 300,
        classes: Sequence[int] | None = None,
        multi_label: bool = False,
        batch_size: int = 8,
        amp: str = "off",
    ) -> None:
        if img_size % 32:
            raise UserError(f"img_size {img_size}: must be a multiple of 32")
        if nms not in NMS_METHODS:
            raise UserError(f"nms {nms!r}: expected one of {', '.join(NMS_METHODS)}")
        num_classes = getattr(backend, "num_classes", None)
        if num_classes is not None and int(num_classes) != len(names):
            raise UserError(f"{len(names)} class names for a model with {num_classes} classes")
        if classes is not None and any(not 0 <= int(c) < len(names) for c in classes):
            raise UserError(f"classes {list(classes)}: indices must be in 0..{len(names) - 1}")
        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self.backend = backend
        self.names, self.anchors, self.strides = list(names), anchors, list(strides)
        self.img_size, self.batch_size = int(img_size), int(batch_size)
        self.options = dict(conf_threshold=conf_threshold, iou_threshold=iou_threshold, nms=nms,
                            max_det=max_det, classes=classes, multi_label=multi_label)  # fmt: skip
        self.amp = autocast_dtype(self.device, amp) if isinstance(backend, nn.Module) else None

    @classmethod
    def from_model(cls, model: nn.Module, names: Sequence[str] | None = None, **kwargs: Any) -> Detector:
        """A detector on a bare model (``.anchors``, ``.strides``, ``.num_classes``), e.g. during
        training; the model is only switched to eval mode while it runs."""
        names = list(names) if names is not None else [f"class{i}" for i in range(model.num_classes)]
        device = kwargs.pop("device", None) or next(model.parameters()).device
        return cls(model, names, model.anchors, model.strides, device=device, **kwargs)

    @classmethod
    def load(
        cls,
        weights: str | os.PathLike,
        cfg: str | os.PathLike | None = None,
        names: str | os.PathLike | Sequence[str] | None = None,
        device: str = "auto",
        img_size: int = 544,
        backend: str = "auto",
        amp: str = "auto",
        **kwargs: Any,
    ) -> Detector:
        """A detector from a file: a checkpoint (``.pt`` / ``.safetensors``), Darknet ``.weights`` with
        ``cfg`` (+ ``names``), an ``.onnx`` or TorchScript export. ``backend``: auto | torch |
        onnxruntime | opencv. Class names that disagree with the weights' class count are an error."""
        names = [str(n) for n in names] if isinstance(names, (list, tuple)) else names
        b = load_backend(weights, kind=backend, device=select_device(device), cfg=cfg, names=names, amp=amp)
        return cls(b, b.names, b.anchors, b.strides, img_size, b.device, **kwargs)

    def __call__(self, images: ImageLike | Sequence[ImageLike], bgr: bool = False) -> list[Result]:
        return self.predict(images, bgr)

    def predict(self, images: ImageLike | Sequence[ImageLike], bgr: bool = False) -> list[Result]:
        """One ``Result`` per image: a path, array, PIL image, or a list of them (read in batches)."""
        single = isinstance(images, (str, os.PathLike, np.ndarray)) or hasattr(images, "convert")
        items = [images] if single else list(images)
        out: list[Result] = []
        for start in range(0, len(items), self.batch_size):
            t0 = time.perf_counter()
            loaded = [to_rgb(im, bgr) for im in items[start : start + self.batch_size]]
            read_ms = (time.perf_counter() - t0) * 1e3 / len(loaded)
            results = self.predict_arrays([im for im, _ in loaded], [p for _, p in loaded])
            for r in results:
                r.speed["read"] = read_ms
            out += results
        return out

    def predict_arrays(
        self, images: Sequence[np.ndarray], paths: Sequence[str | None] | None = None
    ) -> list[Result]:
        """One batch of RGB uint8 arrays -> results (the core; no file reading)."""
        if not len(images):
            return []
        paths = list(paths) if paths is not None else [None] * len(images)
        t0 = time.perf_counter()
        batch, boxes = self.preprocess(images)
        t1 = time.perf_counter()
        raws = self.forward(batch)
        t2 = time.perf_counter()
        sizes = [(im.shape[1], im.shape[0]) for im in images]
        dets = postprocess(raws, self.anchors, self.strides, boxes, sizes, **self.options)
        dets = [d.to("cpu") for d in dets]
        t3 = time.perf_counter()
        n = len(images)
        speed = {
            "preprocess": (t1 - t0) * 1e3 / n,
            "inference": (t2 - t1) * 1e3 / n,
            "nms": (t3 - t2) * 1e3 / n,
        }
        return [
            Result(d.boxes.numpy(), d.scores.numpy(), d.classes.numpy(), self.names, p, im, w, h, dict(speed))
            for d, im, p, (w, h) in zip(dets, images, paths, sizes)
        ]

    def warmup(self) -> None:
        """One throw-away pass at the input size, so that first-call costs (kernel selection, lazy
        initialisation) stay out of the per-image timings."""
        self.predict_arrays([np.full((self.img_size, self.img_size, 3), 128, np.uint8)])

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


__all__ = ["Detector", "Result", "load", "to_rgb"]
