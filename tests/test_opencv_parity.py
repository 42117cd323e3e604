"""Our cfg reader, weights reader, network and decode against an independent Darknet reader:
OpenCV's DNN module (``cv2.dnn.readNetFromDarknet``), on Darknet's own cfgs with 5 classes, random
weights written in Darknet's format, and Darknet's sample photos.

OpenCV's [yolo] output, per layer, is ``(B, H * W * A, 5 + C)``: rows cell by cell (row-major), anchor
by anchor within a cell; columns cx, cy, w, h normalised by the input size, objectness, then class
score = objectness * probability, zeroed unless above 0.2.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch

from yolov3.darknet import DarknetModel, parse_cfg_text
from yolov3.darknet.synthetic import randomize
from yolov3.darknet.weights import load_darknet_weights, save_darknet_weights
from yolov3.decode import decode

C = 5
OPENCV_THRESHOLD = 0.2  # class scores at or below are zeroed (region layer "thresh")


def darknet_text_with_classes(text: str, num_classes: int) -> str:
    """Darknet's way: classes= in every [yolo], filters= of the conv before it (255 = 3 * 85)."""
    text, n = re.subn(r"classes\s*=\s*80", f"classes={num_classes}", text)
    text, m = re.subn(r"filters\s*=\s*255", f"filters={3 * (5 + num_classes)}", text)
    assert n == m >= 2
    return text


def opencv_outputs(cfg_path, weights_path, blob: np.ndarray) -> list[np.ndarray]:
    net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(weights_path))
    if hasattr(net, "enableWinograd"):
        # OpenCV >= 4.7 runs 3x3 convs with Winograd F(6x6, 3x3) by default; through 75 layers it
        # drifts ~1e-2 relative from direct convolution, too loose to serve as a reference.
        net.enableWinograd(False)
    net.setInput(blob)
    outs = net.forward(net.getUnconnectedOutLayersNames())
    return [o.reshape(blob.shape[0], -1, o.shape[-1]) for o in outs]


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("yolov3-tiny", 416), ("yolov3", 320), ("yolov3-spp", 320)])
def test_matches_opencv(darknet_dir, tmp_path, name, size):
    cv2.setNumThreads(1)
    text = darknet_text_with_classes((darknet_dir / "cfg" / f"{name}.cfg").read_text(), C)
    photos = [cv2.imread(str(darknet_dir / "images" / f"{p}.jpg")) for p in ("dog", "person")]
    # Plain resize to size x size, BGR -> RGB, / 255: the same tensor goes to both readers.
    blob = cv2.dnn.blobFromImages(photos, 1 / 255, (size, size), swapRB=True, crop=False)
    x = torch.from_numpy(blob)

    source = randomize(DarknetModel(parse_cfg_text(text)), x, seed=1)
    (tmp_path / "m.cfg").write_text(text)
    save_darknet_weights(source, tmp_path / "m.weights")
    del source
    model = DarknetModel(parse_cfg_text(text))
    load_darknet_weights(model, tmp_path / "m.weights")
    with torch.inference_mode():
        raws = model.eval()(x)
    theirs = opencv_outputs(tmp_path / "m.cfg", tmp_path / "m.weights", blob)

    by_rows = {o.shape[1]: o for o in theirs}
    assert len(by_rows) == len(raws) == len(model.strides)
    for raw, anchors, stride in zip(raws, model.anchors, model.strides, strict=True):
        ours = decode(raw, anchors, stride).flatten(1, 3).numpy()  # (B, H * W * A, 5 + C), same row order
        cv = by_rows[ours.shape[1]]
        boxes = ours[..., :4] / size
        assert 0.001 < np.median(boxes[..., 2:]) < 2  # sane random weights: boxes neither vanish nor explode
        np.testing.assert_allclose(boxes, cv[..., :4], rtol=1e-3, err_msg=f"{name} stride {stride} boxes")
        np.testing.assert_allclose(ours[..., 4], cv[..., 4], rtol=1e-3, err_msg=f"{name} objectness")

        scores = ours[..., 4:5] * ours[..., 5:]
        kept = cv[..., 5:] > 0
        assert cv[..., 5:][kept].min() > OPENCV_THRESHOLD
        assert 0.05 < kept.mean() < 0.95  # the threshold is exercised both ways
        ours_zeroed = np.where(scores > OPENCV_THRESHOLD, scores, 0.0)
        clear = np.abs(scores - OPENCV_THRESHOLD) > 1e-4  # float noise may flip scores at the threshold
        np.testing.assert_allclose(ours_zeroed[clear], cv[..., 5:][clear], rtol=0, atol=1e-4)
