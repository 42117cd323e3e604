"""The Python API: a saved model loads and predicts like the hand-written pipeline; every input kind
(path, RGB array, BGR array, PIL image) gives the same result; results plot and serialise."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import yolov3
from yolov3.config import InferConfig
from yolov3.data.images import ImageError, read_image
from yolov3.data.transforms import letterbox_image
from yolov3.errors import UserError
from yolov3.infer.detector import Detector
from yolov3.infer.draw import class_colour
from yolov3.infer.loop import detect_batches
from yolov3.infer.postprocess import postprocess
from yolov3.infer.results import Detections
from yolov3.infer.sources import Frame
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

NAMES = ["cat", "dog", "kite"]


@pytest.fixture(scope="module")
def model() -> YOLOv3:
    torch.manual_seed(0)
    m = YOLOv3(3, width=0.125).eval()
    with torch.no_grad():  # spread the objectness so that scores differ clearly between anchors
        for out in (m.out_s, m.out_m, m.out_l):
            out[-1].bias.view(3, 8)[:, 4] = torch.tensor([-1.0, 0.5, 2.0])
            out[-1].weight.mul_(8.0)
    return m


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((90, 140, 3)) * 255).astype(np.uint8), (9, 9), 3)
    path = tmp_path_factory.mktemp("img") / "photo.png"  # lossless: the array read back is the same
    cv2.imwrite(str(path), img)
    return str(path)


def test_predict_equals_hand_pipeline(model: YOLOv3, photo: str) -> None:
    det = Detector.from_model(model, NAMES, InferConfig(img_size=96, conf_threshold=0.25, amp="off"))
    r = det.predict(photo)[0]
    image = read_image(photo)
    x, lb = letterbox_image(image, 96)
    with torch.no_grad():
        raws = model(torch.from_numpy(x).permute(2, 0, 1)[None])
    ref = postprocess(
        raws, model.anchors, model.strides, [lb], [(140, 90)], InferConfig(conf_threshold=0.25)
    )[0]
    assert len(ref) > 3
    np.testing.assert_allclose(r.boxes, ref.boxes.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(r.scores, ref.scores.numpy(), rtol=1e-5)
    assert r.class_ids.tolist() == ref.class_ids.tolist()
    assert r.labels == [NAMES[c] for c in ref.class_ids.tolist()]
    assert (r.width, r.height) == (140, 90) and r.path == photo
    assert model.training is False


def test_every_input_kind_gives_the_same_result(model: YOLOv3, photo: str) -> None:
    det = Detector.from_model(
        model, NAMES, InferConfig(img_size=96, conf_threshold=0.25, amp="off"), batch_size=2
    )
    rgb = read_image(photo)
    results = det.predict([photo, rgb, rgb[..., ::-1].copy(), Image.fromarray(rgb)], bgr=False)
    bgr = det.predict(rgb[..., ::-1].copy(), bgr=True)[0]
    base = results[0]
    for r in (results[1], results[3], bgr):
        np.testing.assert_array_equal(r.boxes, base.boxes)
    assert not np.array_equal(results[2].scores, base.scores) or len(base) == 0  # BGR read as RGB differs


def test_plot_and_json(model: YOLOv3, photo: str) -> None:
    r = Detector.from_model(model, NAMES, InferConfig(img_size=96, conf_threshold=0.25, amp="off")).predict(
        photo
    )[0]
    one = Detections(r.boxes[:1], r.scores[:1], r.class_ids[:1], r.names, r.path, r.width, r.height, r.image)
    drawn = one.plot()
    assert drawn.shape == r.image.shape and drawn.dtype == np.uint8
    assert not np.array_equal(drawn, r.image)  # something was drawn
    x1, y1 = (int(v) for v in r.boxes[0, :2])
    colour = class_colour(int(r.class_ids[0]))
    near = drawn[max(y1 - 1, 0) : y1 + 2, max(x1 - 1, 0) : x1 + 2].reshape(-1, 3)
    assert any(np.abs(p.astype(int) - colour).max() < 10 for p in near)  # the class colour, RGB
    bgr = one.plot(bgr=True)
    np.testing.assert_array_equal(bgr[..., ::-1], drawn)
    doc = json.loads(json.dumps(r.to_json()))
    assert len(doc["detections"]) == len(r) and doc["width"] == 140
    for d in doc["detections"]:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 < x2 <= 140 and 0 <= y1 < y2 <= 90 and d["name"] in NAMES


def test_load_round_trip(model: YOLOv3, photo: str, tmp_path) -> None:
    path = save_model(tmp_path / "m.safetensors", model, ModelMeta.of_model(model, NAMES, 96))
    det = yolov3.load(path, device="cpu", img_size=96, amp="off", conf_threshold=0.25)
    assert det.names == NAMES
    batch, _ = det.preprocess([read_image(photo)])
    with torch.no_grad():
        want = model(batch)
    for got, ref in zip(det.forward(batch), want):  # BN folded, channels_last: same maps
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    r = det.predict(photo)[0]
    assert len(r) > 3 and r.names == NAMES
    with pytest.raises(UserError, match="class names"):
        yolov3.load(path, names=["a", "b"], device="cpu")


def test_bad_inputs(model: YOLOv3, tmp_path) -> None:
    det = Detector.from_model(model, NAMES, InferConfig(img_size=96))
    with pytest.raises(ImageError, match="missing.jpg"):
        det.predict(str(tmp_path / "missing.jpg"))
    with pytest.raises(UserError, match="shape"):
        det.predict(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(UserError, match="dtype"):
        det.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(UserError, match=r"img_size \(--img-size\) = 100: expected a positive multiple of 32"):
        Detector.from_model(model, NAMES, InferConfig(img_size=100))
    with pytest.raises(UserError, match="class names"):
        Detector.from_model(model, ["only"])
    assert det.predict([]) == []


def test_json_rounds_as_python_round_does() -> None:
    """``to_json`` rounds whole arrays with NumPy; the reference is Python's ``round`` on each value,
    over random float32 values, exact ties (k / 2**n, which float32 holds exactly: 0.125, 640.125...)
    and decimal near-ties (1.005, 12.345)."""
    rng = np.random.default_rng(0)
    ties = np.array([0.125, 0.375, 2.5, 1.005, 640.125, 12.345, 0.000015, 0.000025], np.float32)
    boxes = np.concatenate([rng.uniform(0, 4000, 4000), np.repeat(ties, 4)]).astype(np.float32).reshape(-1, 4)
    scores = np.concatenate([rng.random(len(boxes) - len(ties)), ties / 1000]).astype(np.float32)
    d = Detections(boxes, scores, np.zeros(len(boxes), np.int64), ["a"])
    doc = d.to_json()["detections"]
    assert [x["box"] for x in doc] == [[round(float(v), 2) for v in b] for b in boxes]
    assert [x["score"] for x in doc] == [round(float(s), 5) for s in scores]


def test_per_call_settings_equal_a_detector_made_with_them(model: YOLOv3, photo: str) -> None:
    """``predict(..., settings=...)`` runs as a detector made with those settings (the reference); the
    detector's own settings are untouched; classes by name resolve as at construction; another input
    size is refused."""
    base = Detector.from_model(model, NAMES, InferConfig(img_size=96, conf_threshold=0.25, amp="off"))
    other = InferConfig(conf_threshold=0.4, iou_threshold=0.3, classes=("dog", "kite"))
    ref = Detector.from_model(model, NAMES, other.replace(img_size=96, amp="off")).predict(photo)[0]
    got = base.predict(photo, settings=other)[0]
    assert 0 < len(got) and set(got.class_ids.tolist()) <= {1, 2}
    np.testing.assert_array_equal(got.boxes, ref.boxes)
    np.testing.assert_array_equal(got.class_ids, ref.class_ids)
    assert base.settings.conf_threshold == 0.25 and base.settings.classes is None
    assert len(base.predict(photo)[0]) > len(got)
    assert base.resolve(other).classes == (1, 2) and base.resolve(other) is base.resolve(other)
    with pytest.raises(UserError, match="img_size 128: this detector runs at 96"):
        base.predict(photo, settings=InferConfig(img_size=128))
    with pytest.raises(UserError, match="no class named 'cow'"):
        base.predict(photo, settings=InferConfig(classes=("cow",)))


def test_detect_batches_reports_unreadable_items_in_order(model: YOLOv3, photo: str, tmp_path) -> None:
    """The one loop: every item gets an outcome, in order; an unreadable file or frame is an error with
    the item, not a crash; readable ones equal ``predict`` one by one; ``workers`` reads ahead alike."""
    det = Detector.from_model(model, NAMES, InferConfig(img_size=96, conf_threshold=0.25, amp="off"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    rgb = read_image(photo)
    items = [photo, str(broken), rgb, Frame("clip.mp4", None, 3, "unreadable video frame"), Frame("f", rgb)]
    for workers in (0, 2):
        out = list(detect_batches(det, items, batch_size=2, workers=workers))
        assert [o.item is i for o, i in zip(out, items)] == [True] * 5
        assert [o.error is None for o in out] == [True, False, True, False, True]
        assert isinstance(out[1].error, ImageError) and "broken.jpg" in str(out[1].error)
        assert out[3].reason == "unreadable video frame" and out[3].detections is None
        want = det.predict(photo)[0]
        for o in (out[0], out[2], out[4]):
            np.testing.assert_array_equal(o.detections.boxes, want.boxes)
        assert [out[0].detections.path, out[2].detections.path, out[4].detections.path] == [photo, None, "f"]
