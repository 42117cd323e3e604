"""``torch.onnx.export`` of the network: raw maps, decoded boxes, or detections after in-graph NMS.

Uses the TorchScript-based exporter (``dynamo=False``): it needs no extra package, folds BatchNorm
into the convolutions (eval mode, constant folding) and writes nearest upsampling as ``Resize``.
The graph holds only standard ops (Conv, LeakyRelu, Resize, Concat, Add; Sigmoid, Exp, ... for the
decode; ``NonMaxSuppression`` for NMS), opset >= 17, so ONNX Runtime, OpenCV DNN and TensorRT load it.

NMS output (``outputs="nms"``): ``detections`` ``(K, 7)`` float32 rows
``[batch_index, x1, y1, x2, y2, score, class]`` with boxes in network-input pixels, clipped to the
input (undo the letterbox yourself), ordered by batch, class, then decreasing score.
``score = conf * prob[c]`` for each anchor's argmax class ``c`` (the seed's score); kept when
``score > conf_threshold``; per-class greedy NMS at IoU > ``iou_threshold``; at most ``max_det`` boxes
per class and image (ONNX ``NonMaxSuppression``'s ``max_output_boxes_per_class``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
import torchvision
from torch import Tensor, nn

from yolov3.boxes import box_convert
from yolov3.config import ONNX_MIN_OPSET, InferConfig
from yolov3.export.heads import ExportHead, raw_output_names, scores_argmax_class
from yolov3.modelfile import META_KEY, ModelMeta

MIN_OPSET = ONNX_MIN_OPSET
NMS_OUTPUT = "detections"
DECODED_OUTPUT = "decoded"
INPUT_NAME = "images"


def _nms_eager(boxes: Tensor, scores: Tensor, max_out: int, iou: float, threshold: float) -> Tensor:
    """ONNX ``NonMaxSuppression`` semantics in PyTorch: ``boxes (B, N, 4)`` xyxy, ``scores (B, C, N)``
    -> ``selected (K, 3)`` int64 ``[batch, class, box]``, by batch, class, decreasing score."""
    rows = []
    for b in range(boxes.shape[0]):
        cls, idx = (scores[b] > threshold).nonzero(as_tuple=True)
        s = scores[b, cls, idx]
        keep = torchvision.ops.batched_nms(boxes[b, idx].float(), s.float(), cls, iou)
        for c in cls[keep].unique(sorted=True):
            k = keep[cls[keep] == c][:max_out]  # batched_nms returns decreasing score
            rows.append(torch.stack([torch.full_like(k, b), cls[k], idx[k]], dim=1))
    return torch.cat(rows) if rows else torch.zeros((0, 3), dtype=torch.int64)


class _NonMaxSuppression(torch.autograd.Function):
    """Runs ``_nms_eager`` in PyTorch and exports as one ONNX ``NonMaxSuppression`` node."""

    @staticmethod
    def forward(ctx, boxes, scores, max_out, iou, threshold):  # noqa: ANN001, ANN205
        return _nms_eager(boxes, scores, int(max_out), float(iou), float(threshold))

    @staticmethod
    def symbolic(g, boxes, scores, max_out, iou, threshold):  # noqa: ANN001, ANN205
        return g.op("NonMaxSuppression", boxes, scores, max_out, iou, threshold, center_point_box_i=0)


class NmsHead(nn.Module):
    """``images -> detections (K, 7)``: decode, the seed's argmax-class score, ONNX NMS."""

    def __init__(self, head: ExportHead, conf_threshold: float, iou_threshold: float, max_det: int) -> None:
        super().__init__()
        self.head = head
        self.max_det = torch.tensor([max_det], dtype=torch.int64)
        self.iou = torch.tensor([iou_threshold], dtype=torch.float32)
        self.conf = torch.tensor([conf_threshold], dtype=torch.float32)

    def forward(self, images: Tensor) -> Tensor:
        return self.select(self.head(images), torch._shape_as_tensor(images)[2:])

    def select(self, decoded: Tensor, image_hw: Tensor) -> Tensor:
        """``decoded (B, N, 5 + C)`` -> ``detections (K, 7)`` (the part after the network); boxes are
        clipped to the ``image_hw`` input first (the seed clips to the image: this also keeps areas
        finite for the runtimes' IoU when a box's ``exp(t_wh)`` is huge)."""
        cxcywh, scores = scores_argmax_class(decoded)  # (B, N, 4), (B, C, N)
        hw = image_hw.to(decoded.dtype)
        limit = torch.stack([hw[1], hw[0], hw[1], hw[0]])  # (4,): W, H, W, H
        xyxy = box_convert(cxcywh, "cxcywh", "xyxy")  # (B, N, 4) x1, y1, x2, y2 input pixels
        boxes = torch.minimum(xyxy.clamp(min=0), limit)
        sel = _NonMaxSuppression.apply(boxes, scores, self.max_det, self.iou, self.conf)  # (K, 3)
        b, c, i = sel[:, 0], sel[:, 1], sel[:, 2]
        n, num_classes = boxes.shape[1], scores.shape[1]
        picked = boxes.reshape(-1, 4).index_select(0, b * n + i)  # (K, 4)
        score = scores.reshape(-1).index_select(0, (b * num_classes + c) * n + i)
        return torch.cat([b[:, None].float(), picked, score[:, None], c[:, None].float()], dim=1)


def decoded_tensor_name(proto: onnx.ModelProto) -> str:
    """The name, inside an NMS export, of the decoded ``(B, N, 5 + C)`` tensor: the one value computed
    inside ``NmsHead.head`` (node names ``/head/...``) that nodes outside it read. Exposing it as an
    extra output lets the check compare the network and the NMS separately."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    for node in proto.graph.node:
        if node.name.startswith("/head/"):
            continue
        for name in node.input:
            src = producer.get(name)
            if src is not None and src.name.startswith("/head/") and src.op_type != "Constant":
                return name
    raise ValueError("no decoded tensor found in the NMS graph")


def build_head(
    model: nn.Module, meta: ModelMeta, outputs: str, settings: InferConfig | None = None
) -> nn.Module:
    """The traced module for ``outputs`` raw | decoded | nms (thresholds and max_det from ``settings``)."""
    if outputs == "nms":
        s = settings or InferConfig()
        return NmsHead(ExportHead(model, meta, "decoded"), s.conf_threshold, s.iou_threshold, s.max_det)
    return ExportHead(model, meta, outputs)


def output_names(meta: ModelMeta, outputs: str) -> list[str]:
    if outputs == "raw":
        return raw_output_names(meta.strides)
    return [DECODED_OUTPUT if outputs == "decoded" else NMS_OUTPUT]


def _dynamic_axes(meta: ModelMeta, outputs: str, dynamic: bool) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    if dynamic:
        axes[INPUT_NAME] = {0: "batch", 2: "height", 3: "width"}
        if outputs == "raw":
            for name, s in zip(raw_output_names(meta.strides), meta.strides):
                axes[name] = {0: "batch", 2: f"height_{s}", 3: f"width_{s}"}
        elif outputs == "decoded":
            axes[DECODED_OUTPUT] = {0: "batch", 1: "anchors"}
    if outputs == "nms":
        axes[NMS_OUTPUT] = {0: "detections"}
    return axes


def export_onnx(model: nn.Module, meta: ModelMeta, path: str | Path, batch: int = 1, opset: int = MIN_OPSET
                ) -> Path:  # fmt: skip
    """Write ``model`` (eval mode, any device; float16 when ``meta.export.half``) as ONNX at ``path``:
    input ``meta.img_size``, outputs ``meta.export.outputs`` (with the NMS thresholds ``meta.export``
    holds), sizes free when ``meta.export.dynamic``. ``meta`` is stored in the file's
    ``metadata_props["yolov3"]``. Returns the path written. The caller validates the settings
    (``yolov3.export.exporter``); this function only writes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    info = meta.export
    dtype = torch.float16 if info.half else torch.float32
    settings = InferConfig(conf_threshold=info.conf_threshold, iou_threshold=info.iou_threshold,
                           max_det=info.max_det) if info.outputs == "nms" else None  # fmt: skip
    head = build_head(model, meta, info.outputs, settings).eval()
    example = torch.rand(batch, 3, meta.img_size, meta.img_size, device=device, dtype=dtype)
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about Python-level shape checks (constant once traced: fine for a fixed-size
        # export; dynamic sizes are traced as Shape ops); torch warns that dynamo=False is legacy.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            head, (example,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
            output_names=output_names(meta, info.outputs),
            dynamic_axes=_dynamic_axes(meta, info.outputs, info.dynamic) or None,
            do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL,
        )  # fmt: skip
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_KEY, value=meta.to_json())
    proto.producer_name = "yolov3"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path
