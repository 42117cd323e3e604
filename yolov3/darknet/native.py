"""The native ``YOLOv3`` written as a Darknet cfg (``native_to_cfg``).

The layout is Darknet's ``yolov3.cfg``: Darknet-53 (75 layers, 52 convolutions), then the
large-object branch, its [yolo], a route back, a 1x1 conv, an upsample, a route to the stride-16
backbone output, and likewise down to stride 8. Channel counts come from the model's own modules,
so ``width`` variants write out too. The convolution order is the native module order, so one
``.weights`` file serves both the native model and ``DarknetModel(native_to_cfg(model))``.
"""

from __future__ import annotations

from torch import nn

from yolov3.darknet.cfg import DarknetCfg, parse_cfg_text
from yolov3.model.layers import ConvBNLeaky, Residual
from yolov3.model.yolov3 import YOLOv3

_YOLO_TRAINING = "jitter=.3\nignore_thresh=.7\ntruth_thresh=1\nrandom=1"


def _conv(m: ConvBNLeaky | nn.Conv2d) -> str:
    """One ``[convolutional]`` block for a ConvBNLeaky (BN, leaky) or a plain output Conv2d."""
    conv = m.conv if isinstance(m, ConvBNLeaky) else m
    lines = ["[convolutional]"]
    if isinstance(m, ConvBNLeaky):
        lines.append("batch_normalize=1")
    lines += [f"filters={conv.out_channels}", f"size={conv.kernel_size[0]}", f"stride={conv.stride[0]}",
              "pad=1", f"activation={'leaky' if isinstance(m, ConvBNLeaky) else 'linear'}"]  # fmt: skip
    return "\n".join(lines)


def native_to_cfg(model: YOLOv3, width: int = 416, height: int = 416) -> DarknetCfg:
    """The Darknet cfg of ``model`` (input size ``width`` x ``height`` recorded in ``[net]``)."""
    if not isinstance(model, YOLOv3):
        raise TypeError(f"native_to_cfg expects a native YOLOv3, got {type(model).__name__}")
    blocks = [f"[net]\nbatch=1\nsubdivisions=1\nwidth={width}\nheight={height}\nchannels=3"]
    bb = model.backbone
    blocks.append(_conv(bb.stem))
    stage_ends = []
    for stage in (bb.stage1, bb.stage2, bb.stage3, bb.stage4, bb.stage5):
        blocks.append(_conv(stage[0]))
        for unit in stage[1:]:
            assert isinstance(unit, Residual)
            blocks += [_conv(unit.conv1), _conv(unit.conv2), "[shortcut]\nfrom=-3\nactivation=linear"]
        stage_ends.append(len(blocks) - 2)  # layer index = block index - 1 ([net] is block 0)
    route_1, route_2 = stage_ends[2], stage_ends[3]  # stride 8 and stride 16 backbone outputs
    flat = [f"{w:g},{h:g}" for scale in model.anchors for w, h in scale]
    na = len(model.anchors[0])
    branches = [
        (model.head_l, model.out_l, model.lateral_l, route_2, 2),
        (model.head_m, model.out_m, model.lateral_m, route_1, 1),
        (model.head_s, model.out_s, None, None, 0),
    ]
    for head, out, lateral, route_to, scale in branches:
        blocks += [_conv(m) for m in head] + [_conv(out[0]), _conv(out[1])]
        mask = ",".join(str(scale * na + k) for k in range(na))
        blocks.append(f"[yolo]\nmask={mask}\nanchors={', '.join(flat)}\nclasses={model.num_classes}\n"
                      f"num={len(flat)}\n{_YOLO_TRAINING}")  # fmt: skip
        if lateral is not None:
            blocks += ["[route]\nlayers=-4", _conv(lateral), "[upsample]\nstride=2",
                       f"[route]\nlayers=-1, {route_to}"]  # fmt: skip
    return parse_cfg_text("\n\n".join(blocks) + "\n", f"<native YOLOv3, {model.num_classes} classes>")
