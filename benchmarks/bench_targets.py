"""Target encoding: the vectorised encoder vs the seed's literal loop (images/s, one core).

20 random boxes per image, 80 classes, input 416, the seed's anchors. The anchor is the slow literal
transcription kept in tests/seed_reference.py (the seed's own float64 output, no final cast), measured
in the same run. Prints one JSON line.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch

from yolov3.data.targets import TargetEncoder, preprocess_true_boxes

ROOT = Path(__file__).resolve().parents[1]


def load_reference():
    spec = importlib.util.spec_from_file_location("seed_reference", ROOT / "tests" / "seed_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_images(
    n: int, boxes_per_image: int = 20, size: int = 416, num_classes: int = 80
) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    images = []
    for _ in range(n):
        wh = np.exp(rng.uniform(np.log(4), np.log(size), (boxes_per_image, 2)))
        c = rng.uniform(0, size, (boxes_per_image, 2))
        xyxy = np.concatenate([np.clip(c - wh / 2, 0, size - 1), np.clip(c + wh / 2, 1, size - 1)], 1).round()
        cls = rng.integers(0, num_classes, (boxes_per_image, 1))
        images.append(np.concatenate([xyxy, cls], 1).astype(np.int64))
    return images


def rate(fn, images, min_seconds: float) -> float:
    """Images per second of ``fn`` over repeated passes, best of three rounds."""
    best = 0.0
    for _ in range(3):
        done, start = 0, time.process_time()
        while time.process_time() - start < min_seconds / 3:
            for boxes in images:
                fn(boxes)
            done += len(images)
        best = max(best, done / (time.process_time() - start))
    return best


def main() -> None:
    torch.set_num_threads(1)
    ref = load_reference()
    seed_loop, SEED_ANCHORS, SEED_STRIDES = ref.seed_preprocess_true_boxes, ref.SEED_ANCHORS, ref.SEED_STRIDES
    images = make_images(200)
    ours = rate(lambda b: preprocess_true_boxes(b, 80, 416), images, 6.0)
    anchor = rate(
        lambda b: seed_loop(b, 80, 416, SEED_ANCHORS, SEED_STRIDES, as_float32=False), images[:50], 6.0
    )
    encoder = TargetEncoder.create(
        80, 416, SEED_ANCHORS * np.array(SEED_STRIDES)[:, None, None], SEED_STRIDES
    )
    batches = [images[i : i + 16] for i in range(0, len(images), 16)]
    batched = 16 * rate(encoder.encode_batch, batches, 6.0)
    common = {"anchor": round(anchor, 1), "unit": "images/s", "target": ">= 20"}
    note = "one core, CPU time, best of 3; anchor = the seed's loop transcribed in tests/seed_reference.py"
    for what, value in [
        ("target encoding, one image per call (preprocess_true_boxes), 20 boxes, C=80, 416", ours),
        ("target encoding, batch of 16 per call (TargetEncoder.encode_batch, the collate's path)", batched),
    ]:
        print(
            json.dumps(
                {
                    "what": what,
                    "ours": round(value, 1),
                    **common,
                    "ratio": round(value / anchor, 2),
                    "note": note,
                }
            )
        )


if __name__ == "__main__":
    main()
