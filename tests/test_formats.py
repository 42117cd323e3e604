"""Annotation formats: hand-written files of each format, pycocotools as COCO's reference, every
format converted to every other and back, bad input, and hypothesis properties of the parsers."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolov3.data.convert import convert_dataset as convert
from yolov3.data.dataset_config import load_dataset
from yolov3.data.formats import FORMATS, read, seed_lines, voc, write, yolo
from yolov3.data.formats.common import LabelError, LoadReport, make_sample
from yolov3.errors import UserError

NAMES = ["cat", "dog", "bird"]
# image: (width, height, split, boxes as x1, y1, x2, y2, class in original pixels)
TRUTH = {
    "a.jpg": (64, 48, "train", [[1, 2, 30, 40, 0], [10.5, 3.25, 60, 47, 1]]),
    "b.png": (80, 60, "train", [[0, 0, 80, 60, 2]]),
    "n.jpg": (40, 40, "train", []),  # a negative sample
    "c.jpg": (50, 70, "val", [[5, 5, 20, 20, 1], [0.125, 33.5, 49.875, 70, 0]]),
}
# The same data set written by hand in the seed's line format (the reference the readers start from).
SEED_TRAIN = "imgs/a.jpg 1,2,30,40,0 10.5,3.25,60,47,1\nimgs/b.png 0,0,80,60,2\nimgs/n.jpg\n"
SEED_VAL = "imgs/c.jpg 5,5,20,20,1 0.125,33.5,49.875,70,0\n"


def make_images(folder: Path, sizes: dict[str, tuple[int, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (w, h) in sizes.items():
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def make_seed_set(root: Path) -> Path:
    make_images(root / "imgs", {k: v[:2] for k, v in TRUTH.items()})
    (root / "train.txt").write_text(SEED_TRAIN)
    (root / "val.txt").write_text(SEED_VAL)
    return root


def boxes_by_image(spec) -> dict[str, tuple[str, np.ndarray, list[int], tuple[int, int]]]:
    out = {}
    for split, samples in spec.splits.items():
        for s in samples:
            out[Path(s.image).name] = (split, s.boxes, s.classes.tolist(), (s.width, s.height))
    return out


def assert_matches_truth(spec, atol: float = 0.0) -> None:
    assert spec.names == NAMES
    got = boxes_by_image(spec)
    assert sorted(got) == sorted(TRUTH)
    for name, (w, h, split, boxes) in TRUTH.items():
        g_split, g_boxes, g_classes, g_size = got[name]
        assert (g_split, g_size) == (split, (w, h)), name
        want = np.asarray([b[:4] for b in boxes], np.float32).reshape(-1, 4)
        np.testing.assert_allclose(g_boxes, want, rtol=0, atol=atol, err_msg=name)
        assert g_classes == [b[4] for b in boxes], name


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    """The fixture set in every format: written from the hand-written seed lines by ``convert``."""
    base = tmp_path_factory.mktemp("formats")
    src = make_seed_set(base / "src")
    out = {"seed-src": src}
    for fmt in FORMATS:
        out[fmt] = convert(src, fmt, base / fmt, fmt="seed", names=NAMES).data_yaml
    return out


def test_seed_lines_read_as_written_by_hand(sets):
    assert_matches_truth(read("seed", sets["seed-src"], names=NAMES))


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_back_what_it_wrote(sets, fmt):
    assert_matches_truth(load_dataset(sets[fmt]), atol=1e-3 if fmt == "yolo" else 0.0)


@pytest.mark.parametrize("a,b", list(itertools.permutations(FORMATS, 2)))
def test_round_trip_between_every_pair(sets, tmp_path, a, b):
    # a -> b -> a restores every box: exactly through the pixel formats, within 1e-3 px through YOLO.
    there = convert(sets[a], b, tmp_path / b).data_yaml
    back = convert(there, a, tmp_path / "back").data_yaml
    atol = 1e-3 if "yolo" in (a, b) else 0.0
    assert_matches_truth(load_dataset(there), atol)
    assert_matches_truth(load_dataset(back), atol)


def test_yolo_labels_are_normalised_cx_cy_w_h(sets):
    # a.jpg is 64x48; box (1, 2, 30, 40) -> cx 15.5/64, cy 21/48, w 29/64, h 38/48 (by hand).
    text = (sets["yolo"].parent / "labels" / "train" / "a.txt").read_text().splitlines()
    fields = [float(v) for v in text[0].split()]
    np.testing.assert_allclose(fields, [0, 15.5 / 64, 21 / 48, 29 / 64, 38 / 48], atol=5e-8)
    assert (sets["yolo"].parent / "labels" / "train" / "n.txt").read_text() == ""  # negative: empty file


def test_coco_output_loads_in_pycocotools(sets):
    from pycocotools.coco import COCO

    gt = COCO(str(sets["coco"].parent / "annotations" / "instances_train.json"))
    assert [c["name"] for c in gt.loadCats(gt.getCatIds())] == NAMES
    (img,) = [i for i in gt.loadImgs(gt.getImgIds()) if i["file_name"] == "a.jpg"]
    anns = gt.loadAnns(gt.getAnnIds(imgIds=img["id"]))
    assert [a["bbox"] for a in anns] == [[1, 2, 29, 38], [10.5, 3.25, 49.5, 43.75]]
    assert (img["width"], img["height"]) == (64, 48)


def write_coco_json(path: Path, images: list, anns: list, cats: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def test_coco_sparse_category_ids_and_iscrowd_survive_a_round_trip(tmp_path):
    make_images(tmp_path / "coco" / "val2017", {"000000000042.jpg": (60, 40)})
    cats = [{"id": 90, "name": "toothbrush"}, {"id": 3, "name": "car"}, {"id": 7, "name": "train"}]
    anns = [
        {"id": 1, "image_id": 42, "category_id": 90, "bbox": [1.5, 2.25, 10, 20], "iscrowd": 0},
        {"id": 2, "image_id": 42, "category_id": 3, "bbox": [0, 0, 60, 40], "iscrowd": 1},
    ]
    images = [{"id": 42, "file_name": "000000000042.jpg", "width": 60, "height": 40}]
    src = write_coco_json(tmp_path / "coco" / "annotations" / "instances_val2017.json", images, anns, cats)
    spec = read("coco", src)
    assert spec.names == ["car", "train", "toothbrush"] and spec.category_ids == [3, 7, 90]  # sorted ids
    (s,) = spec.val
    np.testing.assert_array_equal(s.boxes, [[1.5, 2.25, 11.5, 22.25], [0, 0, 60, 40]])
    assert s.classes.tolist() == [2, 0] and s.iscrowd.tolist() == [False, True] and s.image_id == 42

    result = convert(src, "yolo", tmp_path / "y", fmt="coco")
    assert any("iscrowd" in n for n in result.notes)  # YOLO cannot hold the flag: said, box kept
    back = convert(result.data_yaml, "coco", tmp_path / "c").data_yaml
    from pycocotools.coco import COCO

    gt = COCO(str(back.parent / "annotations" / "instances_val.json"))
    assert {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())} == {
        3: "car",
        7: "train",
        90: "toothbrush",
    }
    assert gt.getImgIds() == [42]  # the numeric file stem restores the image id
    direct = convert(src, "coco", tmp_path / "c2", fmt="coco").data_yaml
    again = load_dataset(direct).val[0]
    assert again.iscrowd.tolist() == [False, True]
    np.testing.assert_array_equal(again.boxes, s.boxes)


VOC_XML = """<annotation><filename>p.jpg</filename>
<size><width>30</width><height>20</height><depth>3</depth></size>
<object><name>dog</name><difficult>1</difficult>
  <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>
<object><name>cat</name>
  <bndbox><xmin>5.5</xmin><ymin>3</ymin><xmax>30</xmax><ymax>7</ymax></bndbox></object>
</annotation>
"""


def make_voc(root: Path, xml: str = VOC_XML) -> Path:
    make_images(root / "JPEGImages", {"p.jpg": (30, 20)})
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "p.xml").write_text(xml)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("p\n")
    return root


def test_voc_is_one_based_inclusive_and_keeps_difficult(tmp_path):
    spec = read("voc", make_voc(tmp_path / "VOC"), names=["cat", "dog"])
    (s,) = spec.val
    # xmin = 1 is the first pixel column: continuous x1 = 0; xmax = 10 covers up to x = 10.
    np.testing.assert_array_equal(s.boxes, [[0, 0, 10, 20], [4.5, 2, 30, 7]])
    assert s.classes.tolist() == [1, 0] and s.difficult.tolist() == [True, False]
    out = convert(tmp_path / "VOC", "voc", tmp_path / "out", fmt="voc", names=["cat", "dog"]).data_yaml
    xml = (out.parent / "Annotations" / "p.xml").read_text()
    assert "<xmin>1</xmin>" in xml and "<xmin>5.5</xmin>" in xml and "<difficult>1</difficult>" in xml
    assert load_dataset(out).val[0].difficult.tolist() == [True, False]


def test_voc_names_default_to_the_twenty_voc_classes(tmp_path):
    spec = read("voc", make_voc(tmp_path / "VOC"))
    assert spec.names == voc.VOC_NAMES and spec.val[0].classes.tolist() == [11, 7]


def test_same_file_names_from_different_folders_stay_apart(tmp_path):
    make_images(tmp_path / "x", {"im.jpg": (20, 20)})
    make_images(tmp_path / "y", {"im.jpg": (30, 10)})
    samples = [
        make_sample(tmp_path / "x" / "im.jpg", [[1, 1, 5, 5]], [0], 20, 20),
        make_sample(tmp_path / "y" / "im.jpg", [[2, 2, 9, 9]], [0], 30, 10),
    ]
    for fmt in FORMATS:
        spec = load_dataset(write(fmt, samples, ["a"], tmp_path / fmt))
        got = {(s.width, s.height): s.boxes for s in spec.train}
        assert sorted(got) == [(20, 20), (30, 10)], fmt
        np.testing.assert_allclose(got[20, 20], [[1, 1, 5, 5]], atol=1e-3, err_msg=fmt)
        np.testing.assert_allclose(got[30, 10], [[2, 2, 9, 9]], atol=1e-3, err_msg=fmt)


# ---- bad input ---------------------------------------------------------------------------------


def seed_file(tmp_path: Path, text: str) -> Path:
    make_images(tmp_path / "imgs", {"a.jpg": (64, 48)})
    path = tmp_path / "train.txt"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "line,value",
    [
        ("imgs/a.jpg 1,2,x,4,0", "'x'"),
        ("imgs/a.jpg 1,2,3,4", "1,2,3,4"),
        ("imgs/a.jpg 1,2,3,4,7", "7"),
        ("imgs/a.jpg 1,2,3,4,-1", "-1"),
        ("imgs/a.jpg 1,2,3,4,0.5", "0.5"),
        ("imgs/a.jpg 1,2,nan,4,0", "nan"),
    ],
)
def test_seed_line_errors_name_file_line_and_value(tmp_path, line, value):
    path = seed_file(tmp_path, f"imgs/a.jpg 1,1,5,5,0\n\n{line}\n")
    with pytest.raises(LabelError) as info:
        read("seed", path, names=NAMES)
    assert f"{path}:3:" in str(info.value) and value in str(info.value)
    assert isinstance(info.value, UserError)


def test_clipped_dropped_counted_not_errors(tmp_path):
    path = seed_file(tmp_path, "imgs/a.jpg -5,2,30,40,0 50,10,70,20,1 10,10,10,20,2 70,0,80,10,0 1,1,2,2,0\n")
    spec = read("seed", path, names=NAMES)
    (s,) = spec.train
    np.testing.assert_array_equal(s.boxes, [[0, 2, 30, 40], [50, 10, 64, 20], [1, 1, 2, 2]])
    assert s.classes.tolist() == [0, 1, 0]
    assert (spec.report.clipped, spec.report.dropped, spec.report.errors) == (2, 2, [])
    assert all(f"{path}:1" == p.where for p in spec.report.problems)


def test_missing_image_is_skipped_by_default_and_fatal_when_strict(tmp_path):
    path = seed_file(tmp_path, "imgs/a.jpg 1,1,5,5,0\nimgs/gone.jpg 1,1,5,5,0\n")
    spec = read("seed", path, names=NAMES)
    assert len(spec.train) == 1 and spec.report.skipped_images == 1
    (p,) = spec.report.warnings
    assert "gone.jpg" in p.where and f"{path}:2" in p.message
    with pytest.raises(LabelError, match="gone.jpg"):
        read("seed", path, names=NAMES, strict=True)


def test_yolo_bad_lines_missing_and_empty_label_files(tmp_path):
    make_images(tmp_path / "images", {"a.jpg": (100, 50), "b.jpg": (10, 10), "c.jpg": (10, 10)})
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.2 0.3 0.2 0.4\n1 0.5 0.5 0.1\n")
    (tmp_path / "labels" / "b.txt").write_text("")
    with pytest.raises(LabelError, match=r"a\.txt:2: .*5 fields"):
        read("yolo", tmp_path, names=["x", "y"])
    (tmp_path / "labels" / "a.txt").write_text("0 0.2 0.3 0.2 0.4\n\n2 0.5 0.5 0.1 0.1\n")
    with pytest.raises(LabelError, match=r"a\.txt:3: class id 2 out of range \(expected 0\.\.1\)"):
        read("yolo", tmp_path, names=["x", "y"])
    (tmp_path / "labels" / "a.txt").write_text("0 0.2 0.3 0.2 0.4\n1 0 0 0.2 0.2 0.4 0.4 0.1 0.2\n")
    spec = read("yolo", tmp_path, names=["x", "y"])
    got = {Path(s.image).name: s.boxes.tolist() for s in spec.train}
    # (0.2, 0.3, 0.2, 0.4) on 100x50 -> (10, 5, 30, 25); the segment's bounding box -> (0, 0, 40, 20)
    np.testing.assert_allclose(got["a.jpg"], [[10, 5, 30, 25], [0, 0, 40, 20]], atol=1e-5)
    assert got["b.jpg"] == [] and got["c.jpg"] == []  # empty file, and no file: negatives
    assert spec.report.no_label_file == 1 and spec.report.no_label_example.endswith("labels/c.txt")


def test_coco_and_voc_errors_name_the_annotation(tmp_path):
    make_images(tmp_path / "images", {"a.jpg": (10, 10)})
    images = [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}]
    bad = [{"id": 77, "image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]}]
    src = write_coco_json(tmp_path / "instances_train.json", images, bad, [{"id": 1, "name": "a"}])
    with pytest.raises(LabelError, match=r"annotations\[0\] \(id 77\): category_id 5"):
        read("coco", src)
    xml = VOC_XML.replace("<name>cat</name>", "<name>cow</name>")
    with pytest.raises(LabelError, match=r"p\.xml:5: class name 'cow'"):
        read("voc", make_voc(tmp_path / "VOC", xml), names=["cat", "dog"])


def test_collect_mode_records_every_error_and_keeps_going(tmp_path):
    path = seed_file(tmp_path, "imgs/a.jpg 1,1,5,5,9\nimgs/a.jpg 1,1,5,5,0\nimgs/a.jpg 1,b,5,5,0\n")
    report = LoadReport(collect=True)
    spec = read("seed", path, names=NAMES, report=report)
    assert len(spec.train) == 1
    assert [p.where for p in report.errors] == [f"{path}:1", f"{path}:3"]


# ---- properties -----------------------------------------------------------------------------------

printable = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
numberish = st.one_of(
    st.integers(-5, 1000).map(str),
    st.floats(allow_nan=True).map(str),
    st.sampled_from(["", "x", "1e400", "-0", "0x10", "1,2", "inf", "٣"]),
)
seed_token = st.lists(numberish, min_size=0, max_size=7).map(",".join)


@settings(max_examples=200, deadline=None)
@given(st.one_of(printable, st.lists(seed_token, max_size=4).map(lambda t: " ".join(["im.jpg", *t]))))
def test_malformed_seed_lines_raise_label_error_only(line):
    try:
        path, boxes, classes = seed_lines.parse_line(line, 3, "f:1")
    except LabelError as exc:
        assert str(exc).startswith("f:1: ")
        return
    assert np.isfinite(np.asarray(boxes, float)).all() and all(0 <= c < 3 for c in classes)


@settings(max_examples=200, deadline=None)
@given(st.one_of(printable, st.lists(numberish, max_size=9).map(" ".join)))
def test_malformed_yolo_lines_raise_label_error_only(line):
    try:
        cls, box = yolo.parse_label_line(line, 3, "f:1")
    except LabelError as exc:
        assert str(exc).startswith("f:1: ")
        return
    assert 0 <= cls < 3 and len(box) == 4 and np.isfinite(box).all()


@st.composite
def samples(draw):
    w, h = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
    n = draw(st.integers(0, 6))
    boxes = []
    for _ in range(n):
        x1 = draw(st.floats(0, w - 0.01, allow_subnormal=False))
        y1 = draw(st.floats(0, h - 0.01, allow_subnormal=False))
        x2 = draw(st.floats(x1 + 0.01, w, allow_subnormal=False))
        y2 = draw(st.floats(y1 + 0.01, h, allow_subnormal=False))
        boxes.append([x1, y1, x2, y2])
    # the formats store pixels to 3 decimals: draw values they can hold
    boxes = np.round(np.asarray(boxes, np.float64).reshape(n, 4), 3).astype(np.float32)
    classes = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    difficult = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return make_sample("/data/im.jpg", boxes, classes, w, h, difficult=difficult)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples())
def test_random_boxes_round_trip_through_every_parser(sample):
    names = ["a", "b", "c", "d", "e"]
    keep = (sample.boxes[:, 2] > sample.boxes[:, 0]) & (sample.boxes[:, 3] > sample.boxes[:, 1])
    _, boxes, classes = seed_lines.parse_line(seed_lines.format_line(sample, Path("/data")), 5, "f:1")
    np.testing.assert_array_equal(np.asarray(boxes, np.float32).reshape(-1, 4), sample.boxes)
    assert classes == sample.classes.tolist()

    rows = [yolo.parse_label_line(ln, 5, "f:1") for ln in yolo.format_labels(sample).splitlines()]
    for (cls, (cx, cy, bw, bh)), box, want in zip(rows, sample.boxes, sample.classes):
        got = [
            (cx - bw / 2) * sample.width,
            (cy - bh / 2) * sample.height,
            (cx + bw / 2) * sample.width,
            (cy + bh / 2) * sample.height,
        ]
        np.testing.assert_allclose(got, box, atol=1e-3)
        assert cls == want

    with tempfile.TemporaryDirectory() as d:
        xml = Path(d) / "im.xml"
        xml.write_text(voc.format_xml(sample, "im.jpg", names))
        record = voc.parse_voc_xml(xml, Path(d), LoadReport())
        (s,) = voc.to_samples([record], names, LoadReport(), check_files=False)
    np.testing.assert_array_equal(s.boxes, sample.boxes[keep])
    assert s.difficult.tolist() == sample.difficult[keep].tolist() and (s.width, s.height) == (
        sample.width,
        sample.height,
    )


json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
coco_annotation = st.one_of(
    json_value,
    st.fixed_dictionaries(
        {
            "image_id": st.sampled_from([1, 2, "1", [1], True]) | json_value,
            "category_id": st.sampled_from([1, 4, None, True, [1]]) | json_value,
            "bbox": st.one_of(
                json_value,
                st.lists(st.one_of(st.floats(allow_nan=True), st.text(max_size=2)), min_size=4, max_size=4),
            ),
        },
        optional={"iscrowd": json_value, "id": json_value},
    ),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(coco_annotation, max_size=4))
def test_malformed_coco_annotations_raise_label_error_only(anns):
    with tempfile.TemporaryDirectory() as d:
        doc = {
            "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
            "annotations": anns,
            "categories": [{"id": 1, "name": "x"}],
        }
        path = Path(d) / "instances_train.json"
        path.write_text(json.dumps(doc))
        try:
            samples, _, _ = read_coco_file(path, Path(d))
        except LabelError:
            return
    assert all(np.isfinite(s.boxes).all() and s.classes.tolist() == [0] * len(s.classes) for s in samples)


def read_coco_file(path: Path, images: Path):
    from yolov3.data.formats.coco import read_coco

    return read_coco(path, images, LoadReport(), check_files=False)


@settings(max_examples=100, deadline=None)
@given(st.lists(numberish, min_size=5, max_size=5), st.sampled_from(["cat", "dog", "", "cow"]))
def test_malformed_voc_objects_raise_label_error_only(values, name):
    xmin, ymin, xmax, ymax, difficult = (escape(v) for v in values)
    xml = (
        f"<annotation><size><width>50</width><height>40</height></size><object><name>{name}</name>"
        f"<difficult>{difficult}</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
        f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object></annotation>"
    )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.xml"
        path.write_text(xml)
        try:
            record = voc.parse_voc_xml(path, Path(d), LoadReport())
            samples = voc.to_samples([record], ["cat", "dog"], LoadReport(), check_files=False)
        except LabelError as exc:
            assert str(path) in str(exc)
            return
    (s,) = samples
    assert np.isfinite(s.boxes).all() and ((s.boxes >= 0) & (s.boxes <= [50, 40, 50, 40])).all()


def test_cli_convert(tmp_path, capsys):
    from yolov3.cli import main

    src = make_seed_set(tmp_path / "src")
    (tmp_path / "names.txt").write_text("cat\ndog\nbird\n")
    args = ["data", "convert", "--from", "seed", "--to", "voc", str(src), str(tmp_path / "voc")]
    assert main([*args, "--names", str(tmp_path / "names.txt")]) == 0
    assert "train 3 images, val 1 images" in capsys.readouterr().out
    assert_matches_truth(load_dataset(tmp_path / "voc" / "data.yaml"))
    assert main([*args[:-1], str(tmp_path / "voc2"), "--names", "cat,dog"]) == 2  # class 2 out of range
    assert "class id 2 out of range" in capsys.readouterr().err


def test_seed_lines_cannot_hold_paths_with_spaces(tmp_path):
    sample = make_sample(tmp_path / "my photo.jpg", [[1, 1, 4, 4]], [0], 10, 10)
    with pytest.raises(LabelError, match="path with spaces"):
        seed_lines.format_line(sample, tmp_path)


def test_coco_writer_keeps_boxes_of_samples_built_without_flags(tmp_path):
    # Sample(image, boxes, classes) leaves iscrowd empty: its boxes are ordinary ones, not dropped.
    from pycocotools.coco import COCO

    from yolov3.data.types import Sample

    img = tmp_path / "img" / "a.jpg"
    make_images(img.parent, {"a.jpg": (40, 30)})
    sample = Sample(str(img), np.array([[1, 2, 11, 22]], np.float32), np.array([1], np.int64))
    write("coco", {"train": [sample]}, ["x", "y"], tmp_path / "out")
    gt = COCO(str(tmp_path / "out" / "annotations" / "instances_train.json"))
    anns = gt.loadAnns(gt.getAnnIds())
    # class index 1 -> COCO category id 2 (ids are 1-based when the source had none)
    assert [(a["bbox"], a["category_id"], a["iscrowd"]) for a in anns] == [([1, 2, 10, 20], 2, 0)]


@pytest.mark.parametrize("fmt", ["yolo", "voc", "coco"])
def test_convert_resolves_a_relative_source_folder(tmp_path, monkeypatch, fmt):
    """`yolov3 data convert --from F --to G shapes out` run from the folder above `shapes`: the layout's
    entries (shapes/images/train...) were read relative to shapes again (shapes/shapes/...)."""
    from yolov3.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["data", "synth", "--out", "shapes", "--n", "6", "--size", "64", "-q"]) == 0
    assert main(["data", "convert", "--to", fmt, "shapes/data.yaml", "native"]) == 0  # its own layout
    assert main(["data", "convert", "--from", fmt, "--to", "yolo", "native", "back"]) == 0
    first, second = load_dataset("shapes/data.yaml"), load_dataset("back/data.yaml")
    assert len(second.train) + len(second.val) == len(first.train) + len(first.val)
    count = sum(len(s.boxes) for s in first.train + first.val)
    assert sum(len(s.boxes) for s in second.train + second.val) == count > 0
