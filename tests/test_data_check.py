"""data check: a data set with one of each known problem, counts worked out by hand; the CLI's exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolov3.cli import main
from yolov3.data.check import SIZE_LABELS, check_dataset


def image(path: Path, w: int, h: int, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


@pytest.fixture
def messy(tmp_path) -> Path:
    """YOLO set, names cat/dog/bird; every problem ``data check`` should find is planted here."""
    image(tmp_path / "images" / "a.jpg", 100, 100, 10)
    image(tmp_path / "images" / "b.jpg", 100, 100, 20)
    shutil.copy(tmp_path / "images" / "b.jpg", tmp_path / "images" / "d.jpg")  # same bytes as b
    image(tmp_path / "images" / "c.jpg", 200, 100, 30)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n"  # 1: 20x20 px, fine
        "1 0.5 0.5 abc 0.1\n"  # 2: does not parse -> error
        "5 0.5 0.5 0.1 0.1\n"  # 3: class out of range -> error
        "0 0.95 0.5 0.2 0.2\n"  # 4: x 85..105 -> clipped to 85..100 (15x20 px)
        "1 0.5 0.5 0 0.1\n"  # 5: zero width -> dropped
        "0 0.5 0.5 0.2 0.2\n"  # 6: duplicate of line 1
    )
    (labels / "b.txt").write_text("1 0.5 0.5 0.5 0.5\n")  # 50x50 px
    (labels / "c.txt").write_text("1 0.5 0.5 0.02 0.04\n")  # 4x4 px
    # d.jpg has no label file
    (labels / "e.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # no image reads it -> orphan warning
    (labels / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # its image is missing: reported as that
    (labels / "classes.txt").write_text("cat\ndog\nbird\n")  # a labelling tool's class list: not an orphan
    (tmp_path / "train.txt").write_text("images/a.jpg\nimages/b.jpg\nimages/d.jpg\nimages/gone.jpg\n")
    (tmp_path / "val.txt").write_text("images/c.jpg\nimages/b.jpg\n")
    cfg = tmp_path / "data.yaml"
    cfg.write_text(yaml.safe_dump({"train": "train.txt", "val": "val.txt", "names": ["cat", "dog", "bird"]}))
    return cfg


def test_check_finds_every_planted_problem(messy):
    r = check_dataset(messy)
    a = messy.parent / "labels" / "a.txt"
    assert not r.ok
    assert sorted((p.where, p.kind) for p in r.errors) == [(f"{a}:2", "parse"), (f"{a}:3", "class")]
    assert "'abc'" in r.errors[0].message or "'abc'" in r.errors[1].message
    warned = {(Path(p.where).name, p.kind) for p in r.load.warnings}
    assert {("a.txt:4", "clipped"), ("a.txt:5", "dropped"), ("gone.jpg", "missing-image")} <= warned
    assert ("a.jpg", "duplicate-box") in warned
    assert (r.load.clipped, r.load.dropped, r.load.skipped_images, r.duplicate_boxes) == (1, 1, 1, 1)
    orphans = [p for p in r.load.warnings if p.kind == "orphan-label"]
    assert [(p.where, p.message.split(":")[0]) for p in orphans] == [
        (str(messy.parent / "labels"), "1 label file(s) that no image reads")
    ]
    assert "e.txt" in orphans[0].message and "gone.txt" not in orphans[0].message

    train, val = r.splits["train"], r.splits["val"]
    assert (train.images, train.boxes, train.no_boxes) == (3, 4, 1)
    assert (val.images, val.boxes, val.no_boxes) == (2, 2, 0)
    assert train.per_class.tolist() == [3, 1, 0] and val.per_class.tolist() == [0, 2, 0]
    # sqrt(area): 20, 17.3, 20 (a.jpg) and 50 (b.jpg); at 416 (scale 4.16): 83, 72, 83, 208
    assert train.size_hist.tolist() == [0, 0, 3, 1, 0, 0, 0]
    assert train.input_hist.tolist() == [0, 0, 0, 0, 3, 1, 0]
    assert val.size_hist.tolist() == [1, 0, 0, 1, 0, 0, 0]  # 4 px in c.jpg, 50 px in b.jpg

    b, d = (str((messy.parent / "images" / n).resolve()) for n in ("b.jpg", "d.jpg"))
    assert [b, b] in r.duplicate_images and [b, d] in r.duplicate_images
    assert r.cross_split == [b]
    advice = " | ".join(r.advice)
    assert "1 images have no label file" in advice and "labels/d.txt" in advice
    assert "['bird']" in advice and "more than one split" in advice


def test_report_text_and_cli_exit_code(messy, capsys):
    text = check_dataset(messy).format()
    assert f"{messy.parent / 'labels' / 'a.txt'}:3: error: class id 5 out of range" in text
    assert all(label in text for label in SIZE_LABELS)
    assert text.splitlines()[-1].startswith("FAILED: 2 errors")
    assert main(["data", "check", str(messy)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_strict_makes_a_missing_image_an_error(messy):
    r = check_dataset(messy, strict=True)
    assert any(p.kind == "missing-image" for p in r.errors)


def test_clean_set_passes(tmp_path, capsys):
    image(tmp_path / "images" / "train" / "a.jpg", 64, 64, 1)
    image(tmp_path / "images" / "val" / "b.jpg", 64, 64, 2)
    for split, name in (("train", "a"), ("val", "b")):
        (tmp_path / "labels" / split).mkdir(parents=True)
        (tmp_path / "labels" / split / f"{name}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    cfg = tmp_path / "data.yaml"
    cfg.write_text(yaml.safe_dump({"train": "images/train", "val": "images/val", "names": ["x"]}))
    r = check_dataset(cfg)
    assert r.ok and r.problems == [] and r.advice == []
    assert main(["data", "check", str(cfg)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "OK: 0 errors, 0 warnings"


def test_coco_sizes_checked_against_headers(tmp_path):
    image(tmp_path / "images" / "a.jpg", 30, 30, 5)
    doc = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 50, "height": 50},
            {"id": 2, "file_name": "gone.jpg", "width": 50, "height": 50},
        ],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "x"}],
    }
    (tmp_path / "train.json").write_text(json.dumps(doc))
    cfg = tmp_path / "coco.yaml"
    cfg.write_text(yaml.safe_dump({"format": "coco", "train": "train.json", "images": "images"}))
    r = check_dataset(cfg)
    kinds = {p.kind: p for p in r.load.warnings}
    assert "annotations give size 50x50, the image is 30x30" in kinds["size"].message
    assert "gone.jpg" in kinds["missing-image"].where
    assert r.ok and r.splits["train"].images == 1


def test_tiny_boxes_and_no_boxes_advice(tmp_path):
    image(tmp_path / "images" / "a.jpg", 1000, 1000, 1)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.01 0.01\n")  # 10 px -> 4.2 px at 416
    cfg = tmp_path / "data.yaml"
    cfg.write_text(yaml.safe_dump({"train": "images", "names": ["x"]}))
    assert any("under 8 px at the 416 input" in tip for tip in check_dataset(cfg).advice)
    (tmp_path / "labels" / "a.txt").write_text("")
    assert any("no boxes at all" in tip for tip in check_dataset(cfg).advice)
