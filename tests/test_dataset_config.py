"""load_dataset: ultralytics data.yaml (every split form), Darknet .data, COCO / VOC / seed configs,
class names from each place and their consistency between splits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolov3.data.dataset_config import load_dataset, parse_names
from yolov3.data.formats.common import LabelError
from yolov3.errors import UserError


def image(path: Path, w: int, h: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))
    return path


def label(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def dump(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def yolo_set(tmp_path) -> Path:
    """data/images/{train,val}, labels beside in data/labels; a 100x50 and a 40x80 image."""
    root = tmp_path / "data"
    image(root / "images" / "train" / "a.jpg", 100, 50)
    image(root / "images" / "train" / "sub" / "b.png", 40, 80)
    image(root / "images" / "val" / "c.jpg", 20, 20)
    label(root / "labels" / "train" / "a.txt", "1 0.5 0.5 0.2 0.4\n")
    label(root / "labels" / "train" / "sub" / "b.txt", "0 0.25 0.5 0.5 0.25\n")
    label(root / "labels" / "val" / "c.txt", "")
    return root


def test_ultralytics_yaml_with_dirs_and_names_dict(yolo_set):
    cfg = dump(
        yolo_set.parent / "d.yaml",
        {
            "path": "data",
            "train": "images/train",
            "val": "images/val",
            "names": {0: "cat", 1: "dog"},
            "nc": 2,
        },
    )
    spec = load_dataset(cfg)
    assert spec.names == ["cat", "dog"] and spec.format == "yolo" and spec.source == str(cfg)
    got = {Path(s.image).name: s for s in spec.train}
    assert sorted(got) == ["a.jpg", "b.png"] and len(spec.val) == 1 and spec.test == []
    a, b = got["a.jpg"], got["b.png"]
    assert (a.width, a.height, b.width, b.height) == (100, 50, 40, 80)  # from the headers
    np.testing.assert_allclose(a.boxes, [[40, 15, 60, 35]], atol=1e-4)  # 0.5*100 +- 0.1*100, ...
    np.testing.assert_allclose(b.boxes, [[0, 30, 20, 50]], atol=1e-4)
    assert a.classes.tolist() == [1] and b.classes.tolist() == [0]
    assert spec.val[0].boxes.shape == (0, 4)


def test_txt_lists_and_lists_of_sources(yolo_set):
    (yolo_set / "train.txt").write_text("./images/train/a.jpg\nimages/train/sub/b.png\n\n")
    cfg = dump(
        yolo_set / "data.yaml",
        {"train": ["train.txt", "images/val"], "val": "images/val/c.jpg", "names": ["cat", "dog"]},
    )
    spec = load_dataset(cfg)
    assert [Path(s.image).name for s in spec.train] == ["a.jpg", "b.png", "c.jpg"]
    assert [Path(s.image).name for s in spec.val] == ["c.jpg"]


def test_darknet_data_and_names(yolo_set):
    (yolo_set / "obj.names").write_text("cat\ndog\n\n")
    (yolo_set / "train.txt").write_text(f"{yolo_set}/images/train/a.jpg\n")
    (yolo_set / "obj.data").write_text(
        "classes = 2\ntrain = train.txt\nvalid = images/val\nnames = obj.names\n"
        "backup = backup/  # Darknet's own key, ignored\n"
    )
    spec = load_dataset(yolo_set / "obj.data")
    assert spec.names == ["cat", "dog"] and len(spec.train) == 1 and len(spec.val) == 1
    np.testing.assert_allclose(spec.train[0].boxes, [[40, 15, 60, 35]], atol=1e-4)
    (yolo_set / "obj.data").write_text("classes = 3\ntrain = train.txt\nnames = obj.names\n")
    with pytest.raises(LabelError, match="classes = 3 but obj.names has 2 names"):
        load_dataset(yolo_set / "obj.data")


def test_names_forms_and_their_errors():
    assert parse_names({1: "b", 0: "a"}, "f") == ["a", "b"]
    assert parse_names(["a", "b"], "f", nc=2) == ["a", "b"]
    for bad, match in [
        ({0: "a", 2: "b"}, "indices must be 0..1"),
        (["a", "a"], "repeat"),
        ("a", "expected a list"),
        (["a", ""], "empty name"),
    ]:
        with pytest.raises(LabelError, match=match):
            parse_names(bad, "f")
    with pytest.raises(LabelError, match="nc: 3 but 2 names"):
        parse_names(["a", "b"], "f", nc=3)


def test_class_out_of_range_names_file_and_line(yolo_set):
    label(yolo_set / "labels" / "train" / "a.txt", "1 0.5 0.5 0.2 0.4\n2 0.5 0.5 0.2 0.4\n")
    cfg = dump(yolo_set / "data.yaml", {"train": "images/train", "names": ["cat", "dog"]})
    with pytest.raises(UserError, match=r"labels/train/a\.txt:2: class id 2 out of range"):
        load_dataset(cfg)


def test_missing_names_are_inferred_with_a_warning(yolo_set):
    spec = load_dataset(dump(yolo_set / "data.yaml", {"train": "images/train"}))
    assert spec.names == ["class0", "class1"]
    assert [p.kind for p in spec.report.warnings] == ["names"]


def coco_json(path: Path, cats: list, files: list[tuple[str, int, int]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [{"id": i + 1, "file_name": f, "width": w, "height": h} for i, (f, w, h) in enumerate(files)]
    anns = [{"id": 1, "image_id": 1, "category_id": cats[0]["id"], "bbox": [1, 2, 3, 4], "iscrowd": 0}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def test_coco_config_images_dict_and_differing_categories(tmp_path):
    image(tmp_path / "train2017" / "a.jpg", 30, 30)
    image(tmp_path / "val2017" / "b.jpg", 30, 30)
    cats = [{"id": 5, "name": "x"}, {"id": 2, "name": "y"}]
    coco_json(tmp_path / "annotations" / "instances_train2017.json", cats, [("a.jpg", 30, 30)])
    coco_json(tmp_path / "annotations" / "instances_val2017.json", cats, [("b.jpg", 30, 30)])
    doc = {
        "format": "coco",
        "train": "annotations/instances_train2017.json",
        "val": "annotations/instances_val2017.json",
        "images": {"train": "train2017", "val": "val2017"},
    }
    spec = load_dataset(dump(tmp_path / "coco.yaml", doc))
    assert spec.names == ["y", "x"] and spec.category_ids == [2, 5]
    np.testing.assert_array_equal(spec.train[0].boxes, [[1, 2, 4, 6]])
    assert spec.train[0].classes.tolist() == [1]
    del doc["images"]  # guessed: root/train2017 beside annotations/
    assert len(load_dataset(dump(tmp_path / "coco.yaml", doc)).val) == 1
    coco_json(
        tmp_path / "annotations" / "instances_val2017.json", [{"id": 5, "name": "x"}], [("b.jpg", 30, 30)]
    )
    with pytest.raises(LabelError, match="differ"):
        load_dataset(dump(tmp_path / "coco.yaml", doc))
    with pytest.raises(LabelError, match="differ"):
        load_dataset(dump(tmp_path / "coco.yaml", {**doc, "val": doc["train"], "names": ["x", "y"]}))


def test_voc_config_with_two_voc_roots(tmp_path):
    for year in ("2007", "2012"):
        root = tmp_path / f"VOC{year}"
        image(root / "JPEGImages" / f"{year}_1.jpg", 20, 10)
        label(
            root / "Annotations" / f"{year}_1.xml",
            f"<annotation><filename>{year}_1.jpg</filename><size>"
            "<width>20</width><height>10</height></size><object><name>dog</name><bndbox><xmin>2</xmin>"
            "<ymin>3</ymin><xmax>4</xmax><ymax>5</ymax></bndbox></object></annotation>",
        )
        label(root / "ImageSets" / "Main" / "trainval.txt", f"{year}_1\n")
    doc = {
        "format": "voc",
        "train": ["VOC2007/ImageSets/Main/trainval.txt", "VOC2012/ImageSets/Main/trainval.txt"],
        "names": ["cat", "dog"],
    }
    spec = load_dataset(dump(tmp_path / "voc.yaml", doc))
    assert [Path(s.image).name for s in spec.train] == ["2007_1.jpg", "2012_1.jpg"]
    np.testing.assert_array_equal(spec.train[1].boxes, [[1, 2, 4, 5]])


def test_seed_config(tmp_path):
    image(tmp_path / "im" / "a.jpg", 30, 20)
    (tmp_path / "ann.txt").write_text("im/a.jpg 1,2,50,18,1\n")
    spec = load_dataset(dump(tmp_path / "s.yaml", {"format": "seed", "val": "ann.txt", "names": ["p", "q"]}))
    np.testing.assert_array_equal(spec.val[0].boxes, [[1, 2, 30, 18]])  # clipped to the 30 px width
    assert spec.report.clipped == 1 and (spec.val[0].width, spec.val[0].height) == (30, 20)


@pytest.mark.parametrize(
    "doc,match",
    [
        ({"names": ["a"]}, "needs at least one of 'train' / 'val'"),
        ({"train": "x", "format": "kitti", "names": ["a"]}, "kitti"),
        ({"train": "nowhere", "names": ["a"]}, "nowhere"),
    ],
)
def test_bad_configs_are_user_errors(tmp_path, doc, match):
    with pytest.raises(UserError, match=match):
        load_dataset(dump(tmp_path / "d.yaml", doc))


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset(tmp_path / "nope.yaml")


def test_roboflow_parent_paths_fall_back_like_ultralytics(yolo_set):
    # Roboflow exports put data.yaml in the data set root but write 'train: ../train/images'.
    cfg = dump(
        yolo_set / "data.yaml", {"train": "../images/train", "val": "../images/val", "names": ["a", "b"]}
    )
    spec = load_dataset(cfg)
    assert len(spec.train) == 2 and len(spec.val) == 1


def test_a_folder_is_pointed_to_its_config_and_a_coco_json_reads_directly(tmp_path):
    with pytest.raises(UserError, match="is a folder"):
        load_dataset(tmp_path)
    image(tmp_path / "val2017" / "b.jpg", 30, 30)
    path = coco_json(
        tmp_path / "annotations" / "instances_val2017.json", [{"id": 1, "name": "x"}], [("b.jpg", 30, 30)]
    )
    spec = load_dataset(path)
    assert spec.names == ["x"] and len(spec.val) == 1 and spec.format == "coco"


@pytest.mark.parametrize("with_path", [False, True])
def test_relative_config_path_from_another_working_directory(yolo_set, monkeypatch, with_path):
    # `yolov3 data check data/data.yaml` from the folder above: `path:` (or its absence) is relative
    # to the config's own folder, never joined twice.
    doc = {"train": "images/train", "val": "images/val", "names": ["a", "b"]}
    dump(yolo_set / "data.yaml", {"path": ".", **doc} if with_path else doc)
    monkeypatch.chdir(yolo_set.parent)
    spec = load_dataset("data/data.yaml")
    assert len(spec.train) == 2 and len(spec.val) == 1
    assert all(Path(s.image).is_file() for s in spec.train + spec.val)
