"""Sliced inference (``yolov3.infer.slicing``) against an oracle detector that sees the true boxes cut
by each tile, as a real detector would: every object reported once, with its whole box."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolov3.cli import main
from yolov3.config import ConfigError, InferConfig
from yolov3.data.images import MAX_PIXELS_ENV, PixelLimitError
from yolov3.errors import UserError
from yolov3.infer import slicing
from yolov3.infer.detector import Detector
from yolov3.infer.loop import detect_batches
from yolov3.infer.slicing import TILE_IOS_THRESHOLD, cut_flags, merge_tiles, tile_grid
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

W, H, TILE = 1000, 700, 256
# (x1, y1, x2, y2, class): on inner tile edges (x 256, 461; y 256, 461) and corners, on the picture's
# edges and corner, one class-1 box on top of a class-0 one; each no wider than the tiles' overlap
OBJECTS = np.array([
    [236, 20, 276, 60, 0],  # across x = 256 (tile 0's right edge)
    [441, 441, 481, 481, 0],  # on the corner of tiles (205, 205) and (410, 410)
    [430, 236, 470, 276, 1],  # across y = 256 and x = 461
    [960, 300, 1000, 340, 0],  # on the picture's right edge
    [970, 670, 1000, 700, 1],  # in the picture's corner
    [0, 640, 30, 700, 0],  # bottom-left corner
    [600, 600, 640, 640, 0],  # across x = 615 and y = 614 (the last row's overlap)
    [600, 600, 640, 640, 1],  # the same box, another class: kept apart
    [100, 100, 140, 140, 0],  # inside one tile only
], np.float64)


class Oracle(Detector):
    """Reports the true boxes clipped to what each input shows (a tile is found by where its view
    starts in the picture); cut pieces score higher than whole boxes, so the merge must prefer whole."""

    def __init__(self, picture: np.ndarray, objects: np.ndarray, settings: InferConfig) -> None:
        super().__init__(lambda x: [], ["a", "b"], [], [8, 16, 32], settings, "cpu", batch_size=4)
        self.picture, self.objects, self.seen = picture, objects, []

    def predict_arrays(self, images, paths=None, settings=None):
        if self.resolve(settings).tile is not None:
            return super().predict_arrays(images, paths, settings)
        return [self._oracle(im) for im in images]

    def _oracle(self, view: np.ndarray):
        from yolov3.infer.results import Detections

        assert np.shares_memory(view, self.picture)  # a view, never a copy
        offset = view.__array_interface__["data"][0] - self.picture.__array_interface__["data"][0]
        y, x = divmod(offset, self.picture.strides[0])
        x //= self.picture.strides[1]
        h, w = view.shape[:2]
        self.seen.append((x, y, w, h))
        b = self.objects[:, :4] - [x, y, x, y]
        clipped = np.clip(b, 0, [w, h, w, h])
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        whole = (clipped == b).all(axis=1)
        scores = np.where(whole, 0.8, 0.9)[keep].astype(np.float32)
        return Detections(clipped[keep].astype(np.float32), scores, self.objects[keep, 4].astype(np.int64),
                          self.names, None, w, h, view, {"inference": 1.0})  # fmt: skip


def picture() -> np.ndarray:
    return np.zeros((H, W, 3), np.uint8)


def by_box(d) -> list[tuple]:
    return sorted(tuple(b) + (c,) for b, c in zip(d.boxes.tolist(), d.class_ids.tolist()))


@pytest.mark.parametrize("merge", ["nms", "nmm"])
@pytest.mark.parametrize("full", [False, True])
def test_each_object_once_with_its_whole_box(merge, full) -> None:
    pic = picture()
    settings = InferConfig(img_size=TILE, tile=TILE, tile_merge=merge, tile_full=full)
    det = Oracle(pic, OBJECTS, settings)
    (d,) = det.predict_arrays([pic], ["big.jpg"])
    assert by_box(d) == sorted(tuple(o[:4]) + (int(o[4]),) for o in OBJECTS.tolist())
    assert (d.width, d.height, d.path) == (W, H, "big.jpg") and d.image is pic
    assert np.all(np.diff(d.scores) <= 0) and "merge" in d.speed
    tiles = [s for s in det.seen if s[2:] == (TILE, TILE)]
    assert len(tiles) == 5 * 4 and ((0, 0, W, H) in det.seen) == full


def test_a_picture_of_many_tiles_shows_its_own_progress(monkeypatch, capsys) -> None:
    """At ``PROGRESS_TILES`` tiles or more a picture counts its tiles (a plain line off a terminal);
    below, nothing is printed."""
    pic = picture()
    settings = InferConfig(img_size=TILE, tile=TILE)
    Oracle(pic, OBJECTS, settings).predict_arrays([pic], ["big.jpg"])
    assert "tiles of" not in capsys.readouterr().err
    monkeypatch.setattr(slicing, "PROGRESS_TILES", 20)  # the picture's 5 x 4 tiles
    Oracle(pic, OBJECTS, settings).predict_arrays([pic], ["big.jpg"])
    assert "tiles of big.jpg: 20/20 tile (100%)" in capsys.readouterr().err


def test_without_cut_marking_nms_would_keep_pieces() -> None:
    """The reference the merge is measured against: plain per-class NMS at IoU 0.45 over the mapped
    boxes keeps the cut pieces (their IoU with the whole box is small), so objects come out twice."""
    import torchvision

    pic = picture()
    det = Oracle(pic, OBJECTS, InferConfig(img_size=TILE, tile=TILE))
    boxes, scores, ids = [], [], []
    for x, y in tile_grid(W, H, TILE, 0.2):
        d = det._oracle(pic[y : y + TILE, x : x + TILE])
        boxes.append(d.boxes + np.float32([x, y, x, y])), scores.append(d.scores), ids.append(d.class_ids)
    keep = torchvision.ops.batched_nms(torch.as_tensor(np.concatenate(boxes)), torch.as_tensor(
        np.concatenate(scores)), torch.as_tensor(np.concatenate(ids)), 0.45)  # fmt: skip
    assert len(keep) > len(OBJECTS)


def test_tile_coordinates_round_trip_exactly() -> None:
    rng = np.random.default_rng(0)
    origins = tile_grid(W, H, TILE, 0.2)
    objects = []
    for x, y in origins[::3]:  # a box well inside each of some tiles, in quarter pixels
        x1, y1 = rng.integers(8, 150, 2) / 4 * 4 + rng.integers(0, 4, 2) / 4
        objects.append([x + x1, y + y1, x + x1 + 37.25, y + y1 + 41.5, 0])
    objects = np.array(objects)
    pic = picture()
    (d,) = Oracle(pic, objects, InferConfig(img_size=TILE, tile=TILE)).predict_arrays([pic])
    assert by_box(d) == sorted(tuple(o[:4]) + (0,) for o in objects.tolist())


@pytest.mark.parametrize("size", [(1000, 700), (256, 256), (257, 999), (4096, 300)])
@pytest.mark.parametrize("overlap", [0.0, 0.2, 0.5, 0.85])
def test_grid_covers_the_picture_to_its_edges(size, overlap) -> None:
    w, h = size
    origins = tile_grid(w, h, TILE, overlap)
    covered = np.zeros((h, w), bool)
    for x, y in origins:
        assert 0 <= x <= w - TILE and 0 <= y <= h - TILE
        covered[y : y + TILE, x : x + TILE] = True
    assert covered.all()
    xs, ys = sorted({x for x, _ in origins}), sorted({y for _, y in origins})
    assert xs[-1] + TILE == w and ys[-1] + TILE == h and xs[0] == ys[0] == 0
    assert len(origins) == len(xs) * len(ys) and len(set(origins)) == len(origins)
    step = round(TILE * (1 - overlap))
    assert all(b - a == step for a, b in zip(xs[:-2], xs[1:-1])) and all(0 < b - a <= step for a, b in
                                                                     zip(xs, xs[1:]))  # fmt: skip


def test_bad_settings_are_named() -> None:
    for bad in ({"tile": 100}, {"tile": 0}, {"tile": 16}, {"tile_overlap": 0.9}, {"tile_overlap": -0.1},
                {"tile_overlap": float("nan")}, {"tile_merge": "wbf"}):  # fmt: skip
        with pytest.raises(ConfigError, match=next(iter(bad))):
            InferConfig(**bad)
    assert InferConfig(tile=32, tile_overlap=0.0, tile_merge="nmm").tile == 32


def test_picture_smaller_than_the_tile() -> None:
    pic = np.zeros((200, 1000, 3), np.uint8)
    det = Oracle(pic, OBJECTS, InferConfig(img_size=TILE, tile=TILE))
    with pytest.raises(UserError, match=r"wide\.jpg: 1000x200 is smaller than the tile \(256x256\)"):
        det.predict_arrays([pic], ["wide.jpg"])


def test_the_loop_reports_a_picture_too_small_as_its_error() -> None:
    pic = picture()
    det = Oracle(pic, OBJECTS, InferConfig(img_size=TILE, tile=TILE))
    small = np.zeros((100, 300, 3), np.uint8)
    outcomes = list(detect_batches(det, [small, pic, small[:, :10]], batch_size=2))
    assert [o.detections is None for o in outcomes] == [True, False, True]
    assert "300x100 is smaller than the tile (256x256)" in outcomes[0].reason
    assert len(outcomes[1].detections) == len(OBJECTS)


def test_fixed_input_size_must_be_the_tile() -> None:
    def backend(x):
        return []

    backend.input_size = (416, 416)
    backend.source = "m.onnx"
    with pytest.raises(UserError, match=r"--tile 256: m.onnx takes 416x416 input only"):
        Detector(backend, ["a"], [], [8], InferConfig(tile=256))
    assert Detector(backend, ["a"], [], [8], InferConfig(tile=416)).img_size == 416


def test_pixel_limit(monkeypatch) -> None:
    monkeypatch.setenv(MAX_PIXELS_ENV, str(W * H - 1))
    pic = picture()
    (o,) = detect_batches(Oracle(pic, OBJECTS, InferConfig(img_size=TILE, tile=TILE)), [pic])
    assert isinstance(o.error, PixelLimitError) and "1000x700 = 700,000 pixels: over the limit" in o.reason


def test_detect_cli_with_tiles(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = YOLOv3(3, width=0.125)
    weights = save_model(tmp_path / "m.safetensors", m, ModelMeta.of_model(m, ["cat", "dog", "kite"], 64))
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "big.jpg"), (rng.random((200, 300, 3)) * 255).astype(np.uint8))
    out = tmp_path / "out"
    args = ["detect", str(tmp_path / "big.jpg"), "--weights", str(weights), "--out", str(out), "--img", "64",
            "--amp", "off", "--conf", "0.05", "--tile", "128", "--tile-merge", "nmm", "--tile-full"]
    assert main(args) == 0
    (record,) = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert (record["width"], record["height"]) == (300, 200) and (out / "big.jpg").exists()
    for d in record["detections"]:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 < x2 <= 300 and 0 <= y1 < y2 <= 200


def test_serve_with_tiles(tmp_path: Path) -> None:
    """The server slices as the API does (the same answer as ``Detector.predict``), and refuses a
    picture smaller than the tile alone, with 400."""
    pytest.importorskip("starlette", reason="the serve extra is not installed")
    from serve_helpers import photo, save_tiny_model
    from starlette.testclient import TestClient

    from yolov3.apps.serve import ServeOptions
    from yolov3.apps.serve.app import create_app

    weights = save_tiny_model(tmp_path / "tiny.pt")
    settings = InferConfig(img_size=128, conf_threshold=0.2, amp="off", tile=128, tile_merge="nmm")
    big, small = photo(tmp_path / "big.jpg", size=(320, 200)), photo(tmp_path / "small.jpg", size=(100, 90))
    ref = Detector.load(weights, device="cpu", settings=settings).predict(big)[0].to_json()
    app = create_app(lambda: Detector.load(weights, device="cpu", settings=settings), ServeOptions())
    with TestClient(app) as client:
        for _ in range(600):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        got = client.post("/v1/detect", content=big.read_bytes())
        assert got.status_code == 200 and got.json()["detections"] == ref["detections"] and ref["detections"]
        refused = client.post("/v1/detect", files={"image": ("small.jpg", small.read_bytes())})
        assert refused.status_code == 400
        assert "100x90 is smaller than the tile (128x128); detect it with ?tile=0" in refused.text


def random_boxes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clusters of jittered boxes (so many overlap), float32 scores without ties, two classes."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(50, 450, (n // 4, 2)).repeat(4, axis=0) + rng.normal(0, 6, (n // 4 * 4, 2))
    wh = rng.uniform(10, 60, (len(centres), 2))
    boxes = np.concatenate([centres - wh / 2, centres + wh / 2], axis=1).astype(np.float32)
    scores = rng.permutation(len(boxes)).astype(np.float32) / len(boxes) + 0.01
    return boxes, scores, rng.integers(0, 2, len(boxes))


@pytest.mark.parametrize("seed", range(5))
def test_merge_of_whole_boxes_is_torchvision_batched_nms(seed) -> None:
    import torchvision

    boxes, scores, ids = random_boxes(200, seed)
    settings = InferConfig(tile=256, iou_threshold=0.45, max_det=1000)
    got = merge_tiles(boxes, scores, ids, np.zeros(len(boxes), bool), settings)
    keep = torchvision.ops.batched_nms(torch.as_tensor(boxes).double(), torch.as_tensor(scores).double(),
                                       torch.as_tensor(ids), 0.45).numpy()  # fmt: skip
    np.testing.assert_array_equal(got[0], boxes[keep])
    np.testing.assert_array_equal(got[1], scores[keep])
    np.testing.assert_array_equal(got[2], ids[keep])


def slow_merge(boxes, scores, ids, cut, iou_threshold, merge="nmm") -> list[tuple]:
    """SAHI's greedy NMM (and the NMS variant), written out: best box left takes each same-class box
    matching it (IoU, or intersection over the smaller area > 0.5 where one is cut); ``nmm`` keeps
    their union, ``nms`` the best whole box of the group no smaller than the leader (the leader if
    whole), else the leader."""
    left = sorted(range(len(boxes)), key=lambda i: -scores[i])
    out = []
    while left:
        i, rest = left[0], left[1:]
        group = [i]
        for j in rest:
            (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = boxes[i].tolist(), boxes[j].tolist()
            inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
            a, b = (ax2 - ax1) * (ay2 - ay1), (bx2 - bx1) * (by2 - by1)
            ios = inter / min(a, b) if cut[i] or cut[j] else 0.0
            if ids[j] == ids[i] and (inter / (a + b - inter) > iou_threshold or ios > TILE_IOS_THRESHOLD):
                group.append(j)
        g = boxes[group]
        area = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes[group].tolist()]
        whole = [m for m, a in zip(group, area) if not cut[m] and a >= area[0]]  # best first, as built
        kept = g[:, :2].min(0).tolist() + g[:, 2:].max(0).tolist() if merge == "nmm" else (
            boxes[whole[0] if whole else i].tolist())  # fmt: skip
        out.append((*kept, float(scores[i]), int(ids[i])))
        left = [k for k in rest if k not in group]
    return sorted(out, key=lambda r: -r[4])


@pytest.mark.parametrize("merge", ["nmm", "nms"])
@pytest.mark.parametrize("seed", range(5))
def test_merge_against_a_slow_reference(seed, merge) -> None:
    boxes, scores, ids = random_boxes(120, seed)
    cut = np.random.default_rng(seed).random(len(boxes)) < 0.3
    got = merge_tiles(boxes, scores, ids, cut, InferConfig(tile=256, tile_merge=merge, max_det=1000))
    rows = [(*b, s, c) for b, s, c in zip(got[0].tolist(), got[1].tolist(), got[2].tolist())]
    want = slow_merge(boxes, scores, ids, cut, 0.45, merge)
    assert len(want) < len(boxes) * 0.8  # the clusters did merge
    np.testing.assert_allclose(np.array(rows), np.array(want), rtol=1e-6)


def test_merge_of_many_boxes_in_blocks_against_the_slow_reference(monkeypatch) -> None:
    """More boxes than a block of candidate pairs (``PAIR_BLOCK`` made small), spread over a wide
    picture, several classes, max_det cutting the tail: the same as the reference."""
    monkeypatch.setattr(slicing, "PAIR_BLOCK", 64)
    boxes, scores, ids = random_boxes(800, 7)
    boxes = boxes * np.float32(4)  # over 2,000 px, boxes up to 240 px
    ids = np.random.default_rng(7).integers(0, 4, len(boxes))
    cut = np.random.default_rng(8).random(len(boxes)) < 0.3
    got = merge_tiles(boxes, scores, ids, cut, InferConfig(tile=256, max_det=300))
    rows = [(*b, s, c) for b, s, c in zip(got[0].tolist(), got[1].tolist(), got[2].tolist())]
    want = slow_merge(boxes, scores, ids, cut, 0.45, "nms")[:300]
    np.testing.assert_allclose(np.array(rows), np.array(want), rtol=1e-6)


def test_a_cut_box_gives_way_to_the_whole_box_not_to_a_smaller_one_inside_it() -> None:
    """A cut piece (best score) and, inside it, a small whole box: the small one is not the rest of
    the object, so the piece stays; with the object's whole box there too, that one is kept."""
    piece, small, full = [100, 100, 130, 140], [110, 110, 120, 120], [100, 100, 150, 140]
    settings = InferConfig(tile=256, max_det=10)
    boxes, scores = np.array([piece, small], np.float32), np.array([0.9, 0.5], np.float32)
    got = merge_tiles(boxes, scores, np.zeros(2, int), np.array([True, False]), settings)
    np.testing.assert_array_equal(got[0], [piece])
    boxes, scores = np.array([piece, small, full], np.float32), np.array([0.9, 0.5, 0.4], np.float32)
    got = merge_tiles(boxes, scores, np.zeros(3, int), np.array([True, False, False]), settings)
    np.testing.assert_array_equal(got[0], [full])
    np.testing.assert_array_equal(got[1], np.float32([0.9]))  # the leader's score


def test_cut_flags_inner_edges_only() -> None:
    """A tile at (100, 100) of side 128: its left and top edges lie inside any picture; its right and
    bottom (x, y = 228) are inner in a 400 x 400 picture and the picture's own in a 228 x 228 one."""
    boxes = np.array([[101, 150, 120, 160], [102.5, 150, 120, 160], [150, 101, 160, 110],
                      [200, 150, 227, 160], [150, 200, 160, 228], [150, 150, 160, 160]], np.float32)
    np.testing.assert_array_equal(cut_flags(boxes, (100, 100), 128, (228, 228)), [1, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(cut_flags(boxes, (100, 100), 128, (400, 400)), [1, 0, 1, 1, 1, 0])
    assert not cut_flags(boxes - 100, (0, 0), 128, (128, 128)).any()  # a tile that is the picture


@pytest.mark.parametrize(("w", "h", "tile", "overlap"), [
    (1920, 1080, 192, 0.2), (1000, 700, 256, 0.2), (4000, 3000, 416, 0.2), (2000, 1500, 320, 0.25),
    (640, 480, 480, 0.0), (1000, 1000, 256, 0.5),
])  # fmt: skip
def test_grid_is_sahis_where_its_overlap_rounding_agrees(w, h, tile, overlap) -> None:
    """SAHI's own slices (``get_slice_bboxes``: step ``tile - int(overlap * tile)``, the last row and
    column moved back to the edge) are our grid wherever ``round(tile * (1 - overlap))`` is that step."""
    sahi = pytest.importorskip("sahi.slicing")
    assert tile - int(overlap * tile) == round(tile * (1 - overlap))
    want = sahi.get_slice_bboxes(h, w, slice_height=tile, slice_width=tile, overlap_height_ratio=overlap,
                                 overlap_width_ratio=overlap, auto_slice_resolution=False)  # fmt: skip
    assert [(x, y, x + tile, y + tile) for x, y in tile_grid(w, h, tile, overlap)] == [tuple(b) for b in want]
