"""The module an exporter traces: the network plus, optionally, the seed's decode.

Interface of every exported file (ONNX and TorchScript alike):

* input ``images``: ``(B, 3, H, W)`` float32 (float16 with ``--half``), RGB in [0, 1], letterboxed;
  ``H`` and ``W`` multiples of 32 (fixed to ``img_size`` unless exported ``--dynamic``).
* ``outputs="raw"``: ``raw_8, raw_16, raw_32`` (one per stride, increasing), each
  ``(B, A * (5 + C), H / s, W / s)`` exactly as ``YOLOv3.forward`` (channel ``a * (5 + C) + k``).
* ``outputs="decoded"``: ``decoded`` ``(B, N, 5 + C)`` float32, ``yolov3.decode.decode_all``: ``(cx, cy,
  w, h)`` network-input pixels, sigmoid objectness, sigmoid class probabilities; N = 10,647 at 416.
* ``outputs="nms"`` (ONNX only, ``yolov3.export.onnx``): ``detections`` ``(K, 7)`` float32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from yolov3.decode import decode_all
from yolov3.modelfile import ModelMeta

OUTPUT_KINDS = ("raw", "decoded", "nms")


def raw_output_names(strides: tuple[int, ...] | list[int]) -> list[str]:
    return [f"raw_{s}" for s in strides]


class ExportHead(nn.Module):
    """``images -> raw maps`` (a tuple) or ``images -> decoded (B, N, 5 + C)`` float32.

    Decoding runs in float32 even for a half model: ``exp(t_wh) * anchor`` overflows float16.
    """

    def __init__(self, model: nn.Module, meta: ModelMeta, outputs: str = "raw") -> None:
        super().__init__()
        if outputs not in ("raw", "decoded"):
            raise ValueError(f"outputs={outputs!r}: ExportHead produces raw or decoded")
        self.model = model
        self.outputs = outputs
        self.anchors = [list(scale) for scale in meta.anchors]
        self.strides = list(meta.strides)

    def forward(self, images: Tensor) -> tuple[Tensor, ...] | Tensor:
        raws = self.model(images)
        if self.outputs == "raw":
            return tuple(raws)
        return decode_all([r.float() for r in raws], self.anchors, self.strides)


def scores_argmax_class(decoded: Tensor) -> tuple[Tensor, Tensor]:
    """``(B, N, 5 + C) -> boxes (B, N, 4) cxcywh, scores (B, C, N)``: the seed's candidate score
    ``conf * prob[c]`` for the argmax class ``c`` only, 0 for the other classes (so per-class NMS
    sees each anchor once, under its best class, as the seed's ``postprocess_boxes``)."""
    boxes = decoded[..., :4]
    probs = decoded[..., 5:]
    best = probs.max(dim=-1, keepdim=True).values  # (B, N, 1)
    scores = torch.where(probs >= best, probs * decoded[..., 4:5], torch.zeros_like(probs))
    return boxes, scores.transpose(1, 2).contiguous()
