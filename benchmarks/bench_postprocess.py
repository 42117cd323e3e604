"""Post-processing one 416 image (10,647 candidates, 80 classes) on the CPU: ``yolov3.infer.postprocess``
(decode + score + threshold 0.3 + NMS 0.45 + undo the letterbox) against the literal NumPy
transcription of the seed's ``postprocess_boxes`` + ``nms`` (kept in tests/test_postprocess.py), in
the same run, one thread each. The seed's timing starts from maps already decoded (its decode runs
in the TF graph), ours includes the decode.

Maps: "trained-like" = objectness logits ~ N(-6, 2) (a few hundred candidates pass 0.3, NMS keeps ~30),
the other channels ~ N(0, 1); "all-random" = every channel ~ N(0, 1) (about 5,000 pass: a stress case).
Median of repeated runs. Prints JSON lines.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_postprocess import seed_nms, seed_postprocess_boxes  # noqa: E402

from yolov3.boxes import Letterbox  # noqa: E402
from yolov3.config import COCO_ANCHORS, STRIDES  # noqa: E402
from yolov3.decode import decode_all  # noqa: E402
from yolov3.infer.postprocess import postprocess  # noqa: E402

SIZE, C, IMAGE_WH = 416, 80, (640, 480)


def raw_maps(conf_mean: float, conf_std: float, batch: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = []
    for s in STRIDES:
        r = torch.randn(batch, 3, 5 + C, SIZE // s, SIZE // s, generator=g)
        r[:, :, 4] = r[:, :, 4] * conf_std + conf_mean
        out.append(r.view(batch, 3 * (5 + C), SIZE // s, SIZE // s))
    return out


def median_ms(fn, repeat: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def emit(what: str, ours: float, anchor: float, target: str, note: str) -> None:
    print(json.dumps({"what": what, "ours": round(ours, 3), "anchor": round(anchor, 3), "unit": "ms",
                      "ratio": round(ours / anchor, 4), "target": target, "note": note}))  # fmt: skip


def main() -> None:
    torch.set_num_threads(1)
    lb = Letterbox.fit(*IMAGE_WH, SIZE)
    for label, (mean, std), repeat in (("trained-like", (-6.0, 2.0), 300), ("all-random", (0.0, 1.0), 20)):
        raws = raw_maps(mean, std)
        pred = decode_all(raws, COCO_ANCHORS, STRIDES)[0].double().numpy()  # (10647, 85), decoded
        kept = len(postprocess(raws, COCO_ANCHORS, STRIDES, [lb], [IMAGE_WH])[0])
        ours = median_ms(lambda r=raws: postprocess(r, COCO_ANCHORS, STRIDES, [lb], [IMAGE_WH]), repeat)
        anchor = median_ms(
            lambda p=pred: seed_nms(seed_postprocess_boxes(p, IMAGE_WH[::-1], SIZE, 0.3), 0.45),
            max(3, repeat // 10),
        )
        what = f"postprocess one 416 image, {label} maps ({kept} boxes kept), CPU 1 thread"
        note = "anchor: the seed's NumPy postprocess_boxes + nms on decoded maps"
        emit(what, ours, anchor, "ours <= 1 ms" if label == "trained-like" else "stress case: < anchor", note)
    raws = raw_maps(-6.0, 2.0, batch=8)
    lbs, sizes = [lb] * 8, [IMAGE_WH] * 8
    ours8 = median_ms(lambda: postprocess(raws, COCO_ANCHORS, STRIDES, lbs, sizes), 100) / 8
    one = median_ms(lambda: postprocess([r[:1] for r in raws], COCO_ANCHORS, STRIDES, [lb], [IMAGE_WH]), 100)
    what = "postprocess per image in a batch of 8 vs one at a time, trained-like maps"
    emit(what, ours8, one, "about 1: linear in the batch", "batched: NMS calls packed over all images")


if __name__ == "__main__":
    main()
