"""``yolov3 data tile``: every tile's boxes against a literal transcription of the rule (clip to the
tile, keep when at least ``min_visible`` of the box's area is inside), the tiles pasted back give the
picture, the output passes ``data check`` and loads with ``load_dataset``, COCO input gives the same
tiles as YOLO input, the empty-tile rate at its ends, and the options' errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov3.cli import main
from yolov3.data.check import check_dataset
from yolov3.data.convert import open_source
from yolov3.data.dataset_config import load_dataset
from yolov3.data.formats import write
from yolov3.data.tiling import TileSettings, cut_boxes, grid_origins, tile_dataset
from yolov3.data.types import Sample
from yolov3.errors import UserError

W, H, SIZE, OVERLAP = 1000, 700, 320, 0.25  # step 240: x origins 0 240 480 680, y origins 0 240 380
NAMES = ["car", "person"]
BOXES = [  # (x1, y1, x2, y2), class
    ((20, 20, 100, 100), 0),  # inside the first tile
    ((260, 40, 360, 90), 1),  # across x = 320: 60 % in tile (0, 0)
    ((280, 130, 380, 180), 0),  # across x = 320: 40 % in tile (0, 0)
    ((290, 290, 350, 350), 1),  # on the corner (320, 320): 25 % in (0, 0), 50 % in (0, 240)
    ((300, 50, 750, 600), 0),  # larger than a tile: at most 41 % in any, kept by none
    ((950, 650, 1000, 700), 1),  # in the picture's bottom-right corner
    ((560.5, 230.25, 610.75, 260.5), 0),  # fractional corners across y = 240 and x = 560
]


def _reference(box, origin, size, min_visible):
    """The rule written out: None when the box misses the tile, "dropped", or its clipped corners in
    the tile's pixels."""
    (bx1, by1, bx2, by2), (x, y), (tw, th) = box, origin, size
    ix1, iy1, ix2, iy2 = max(bx1, x), max(by1, y), min(bx2, x + tw), min(by2, y + th)
    if ix2 <= ix1 or iy2 <= iy1:
        return None
    if (ix2 - ix1) * (iy2 - iy1) / ((bx2 - bx1) * (by2 - by1)) < min_visible:
        return "dropped"
    return (ix1 - x, iy1 - y, ix2 - x, iy2 - y)


@pytest.fixture
def source(tmp_path):
    """A YOLO data set: train = one 1000 x 700 noise picture with ``BOXES``; val = one 200 x 150."""
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (H, W, 3), np.uint8)
    small = rng.integers(0, 256, (150, 200, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    cv2.imwrite(str(tmp_path / "small.png"), small)
    boxes = np.array([b for b, _ in BOXES], np.float32)
    classes = np.array([c for _, c in BOXES], np.int64)
    n = len(boxes)
    train = [Sample(str(tmp_path / "big.png"), boxes, classes, np.zeros(n, bool), np.zeros(n, bool), W, H)]
    val = [Sample(str(tmp_path / "small.png"), boxes[:1] / 10, classes[:1], width=200, height=150)]
    config = write("yolo", {"train": train, "val": val}, NAMES, tmp_path / "src")
    return config, big


def _by_origin(config: Path):
    spec = load_dataset(config)
    out = {}
    for s in spec.train:
        stem = Path(s.image).stem
        x, y = (int(part[1:]) for part in stem.split("_")[-2:])
        out[(x, y)] = s
    return spec, out


def test_every_tile_holds_the_boxes_the_rule_keeps(source, tmp_path):
    config, _ = source
    settings = TileSettings(SIZE, OVERLAP, min_visible=0.5, empty_rate=1.0)
    path, summary = tile_dataset(open_source(config), tmp_path / "out", settings)
    spec, tiles = _by_origin(path)
    assert sorted(tiles) == sorted((x, y) for y in (0, 240, 380) for x in (0, 240, 480, 680))
    kept = dropped = clipped = 0
    for origin, sample in tiles.items():
        want = []
        for box, cls in BOXES:
            got = _reference(box, origin, (SIZE, SIZE), 0.5)
            dropped += got == "dropped"
            if got not in (None, "dropped"):
                want.append((got, cls))
                clipped += got != tuple(np.subtract(box, origin * 2))
        kept += len(want)
        assert (sample.width, sample.height) == (SIZE, SIZE)
        np.testing.assert_allclose(sample.boxes, np.array([r for r, _ in want], np.float32).reshape(-1, 4),
                                   atol=1e-3)  # fmt: skip
        assert sample.classes.tolist() == [c for _, c in want]
    # the small val picture is copied whole: its one box counts as kept
    assert (summary.kept, summary.dropped, summary.clipped) == (kept + 1, dropped, clipped)
    assert summary.lost == 1 and summary.boxes == len(BOXES) + 1 and summary.whole == 1
    assert summary.tiles == 12 and summary.empty_kept == summary.empty_seen
    # the corner box: 25 % in (0, 0) dropped, exactly 50 % in (0, 240) kept
    corner = tiles[(0, 240)]
    np.testing.assert_allclose(corner.boxes[corner.classes == 1], [[290, 50, 320, 110]], atol=1e-3)
    assert not any(np.allclose(b, [290, 290, 320, 320], atol=1e-3) for b in tiles[(0, 0)].boxes)
    assert spec.names == NAMES and len(spec.val) == 1
    np.testing.assert_allclose(spec.val[0].boxes, [[2, 2, 10, 10]], atol=1e-3)
    assert check_dataset(path).ok
    assert main(["data", "check", str(path)]) == 0


def test_a_box_40_percent_inside_is_dropped_60_percent_kept():
    box = np.array([[288, 100, 368, 140]], np.float32)  # 80 wide across x = 320
    left, right = cut_boxes(box, (0, 0, 320, 320), 0.5), cut_boxes(box, (320, 0, 320, 320), 0.5)
    assert len(left.index) == 0 and left.dropped == 1
    assert right.index.tolist() == [0] and right.clipped.tolist() == [True] and right.dropped == 0
    np.testing.assert_allclose(right.boxes, [[0, 100, 48, 140]])
    assert cut_boxes(box, (0, 0, 320, 320), 0.4).index.tolist() == [0]  # 40 % is enough at 0.4


def test_the_tiles_put_back_are_the_picture(source, tmp_path):
    config, big = source
    path, _ = tile_dataset(open_source(config), tmp_path / "out", TileSettings(SIZE, OVERLAP, empty_rate=1.0))
    canvas = np.zeros_like(big)
    covered = np.zeros(big.shape[:2], bool)
    for (x, y), sample in _by_origin(path)[1].items():
        tile = cv2.imread(sample.image)
        assert tile.shape == (SIZE, SIZE, 3)
        canvas[y : y + SIZE, x : x + SIZE] = tile
        covered[y : y + SIZE, x : x + SIZE] = True
    assert covered.all()
    np.testing.assert_array_equal(canvas, big)


def test_grid_rule_ends_at_the_edge_and_spans_a_short_side():
    assert grid_origins(1000, 700, 320, 0.25) == [(x, y) for y in (0, 240, 380) for x in (0, 240, 480, 680)]
    assert grid_origins(1000, 200, 320, 0.0) == [(0, 0), (320, 0), (640, 0), (680, 0)]


def test_coco_input_gives_the_yolo_tiles(source, tmp_path):
    config, _ = source
    coco = write("coco", open_source(config).splits, NAMES, tmp_path / "coco")
    settings = TileSettings(SIZE, OVERLAP, empty_rate=1.0)
    a, _ = tile_dataset(open_source(config), tmp_path / "a", settings)
    b, summary = tile_dataset(open_source(coco), tmp_path / "b", settings)
    ta, tb = _by_origin(a)[1], _by_origin(b)[1]
    assert sorted(ta) == sorted(tb) and summary.lost == 1
    for origin in ta:
        np.testing.assert_allclose(ta[origin].boxes, tb[origin].boxes, atol=1e-3)
        assert ta[origin].classes.tolist() == tb[origin].classes.tolist()
    assert load_dataset(b).names == NAMES


@pytest.mark.parametrize("rate", [0.0, 1.0, 0.5])
def test_empty_rate(source, tmp_path, rate):
    config, _ = source
    settings = TileSettings(SIZE, OVERLAP, empty_rate=rate, seed=3)
    path, summary = tile_dataset(open_source(config), tmp_path / "a", settings)
    tiles = _by_origin(path)[1]
    empty = [o for o, s in tiles.items() if not len(s.boxes)]
    assert summary.empty_seen > 0 and len(empty) == summary.empty_kept
    assert len(empty) == {0.0: 0, 1.0: summary.empty_seen}.get(rate, len(empty))
    again, _ = tile_dataset(open_source(config), tmp_path / "b", settings)
    assert sorted(_by_origin(again)[1]) == sorted(tiles)  # seeded: the same tiles each run


@pytest.mark.parametrize("option, value", [("--size", "100"), ("--size", "0"), ("--overlap", "0.9"),
                                           ("--overlap", "-0.1"), ("--min-visible", "0"),
                                           ("--min-visible", "1.5"), ("--empty-rate", "1.1"),
                                           ("--empty-rate", "-1")])  # fmt: skip
def test_bad_options_name_the_option(source, tmp_path, capsys, option, value):
    config, _ = source
    argv = ["data", "tile", str(config), "--size", "320", "--out", str(tmp_path / "o"), option, value]
    assert main(argv) == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_command_prints_the_summary_and_refuses_a_used_folder(source, tmp_path, capsys):
    config, _ = source
    argv = ["data", "tile", str(config), "--size", "320", "--overlap", "0.25", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "pictures: 2 read, 1 no larger than a tile copied whole" in out and "1 in no tile" in out
    assert main(argv) == 2
    assert "--out" in capsys.readouterr().err
    with pytest.raises(UserError, match="--size"):
        TileSettings(33).check()


def test_a_short_side_gets_one_tile_spanning_it_and_a_missing_picture_is_skipped(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (200, 700, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "strip.png"), pixels)
    box = np.array([[300, 20, 340, 180]], np.float32)  # 40 x 160 across x = 320
    samples = [Sample(str(tmp_path / "strip.png"), box, np.array([1]), width=700, height=200),
               Sample(str(tmp_path / "gone.png"), box, np.array([0]), width=700, height=200)]  # fmt: skip
    config = write("yolo", {"train": samples[:1]}, NAMES, tmp_path / "src")
    spec = open_source(config)
    spec.train.append(samples[1])  # as a non-strict reader would hand over a picture gone since
    path, summary = tile_dataset(spec, tmp_path / "out", TileSettings(SIZE, OVERLAP, empty_rate=1.0))
    tiles = _by_origin(path)[1]
    assert sorted(tiles) == [(0, 0), (240, 0), (380, 0)]
    assert all((s.width, s.height) == (SIZE, 200) for s in tiles.values())
    np.testing.assert_allclose(tiles[(0, 0)].boxes, [[300, 20, 320, 180]], atol=1e-3)  # 50 % inside
    np.testing.assert_allclose(tiles[(240, 0)].boxes, [[60, 20, 100, 180]], atol=1e-3)
    assert len(tiles[(380, 0)].boxes) == 0  # wholly left of x = 380
    assert summary.pictures == 1 and len(summary.skipped) == 1 and "gone.png" in summary.skipped[0]
