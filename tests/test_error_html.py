"""``analysis.html`` (``yolov3.evaluate.error_html``) read back with the standard library's HTML parser:
one error of each kind planted by hand (``test_error_analysis.planted``, its detections pushed in
shuffled order), each gallery must draw that error's box where it was planted, in the image's own
pixels, plus the image's five ground-truth boxes, the missed ones marked."""

from __future__ import annotations

from html.parser import HTMLParser

import cv2
import numpy as np
import pytest
from test_error_analysis import planted

from yolov3.evaluate.error_html import write_error_html
from yolov3.evaluate.error_report import analyze_errors
from yolov3.infer.results import Detections

# (x, y, w, h) of the planted detection of each kind (test_error_analysis.planted's rows)
PLANTED = {"dupe": (0, 0, 100, 98), "cls": (200, 0, 100, 100), "loc": (440, 0, 100, 100),
           "both": (260, 230, 100, 100), "bkg": (600, 400, 50, 50)}  # fmt: skip


class Figures(HTMLParser):
    """Each ``<figure>``'s attributes, its SVG's viewBox and the attributes of its ``<rect>``s."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict] = []
        self.tables: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.figures.append({**a, "rects": []})
        elif tag == "svg" and self.figures and "viewbox" not in self.figures[-1]:
            self.figures[-1]["viewbox"] = a.get("viewbox")
        elif tag == "rect" and a.get("class") in ("det", "gt"):
            self.figures[-1]["rects"].append(a)
        elif tag == "table":
            self.tables.append(a["id"])


@pytest.fixture
def written(tmp_path):
    d, g = planted()
    order = np.random.default_rng(0).permutation(len(d.scores))
    d = Detections(d.boxes[order], d.scores[order], d.class_ids[order])
    image = tmp_path / "a.jpg"
    cv2.imwrite(str(image), np.full((480, 640, 3), 90, np.uint8))
    analysis = analyze_errors([d], [g], ["a", "b", "c", "d"])
    return analysis, image, tmp_path


def test_each_gallery_draws_its_planted_box_and_the_ground_truth(written) -> None:
    analysis, image, tmp_path = written
    page = write_error_html(analysis, [image], tmp_path / "analysis.html")
    parser = Figures()
    parser.feed(page.read_text())
    assert parser.tables == ["overview", "kinds", "by-size", "by-crowd", "per-class"]
    by_kind = {f["data-kind"]: f for f in parser.figures}
    assert sorted(by_kind) == sorted([*PLANTED, "miss"]) and len(parser.figures) == 6
    for kind, fig in by_kind.items():
        assert fig["data-image"] == "0" and fig["viewbox"] == "0 0 640 480"
        dets = [r for r in fig["rects"] if r["class"] == "det"]
        gts = [r for r in fig["rects"] if r["class"] == "gt"]
        assert [r["data-kind"] for r in gts] == ["tp", "pointed", "pointed", "miss", "miss"]
        if kind == "miss":
            assert dets == []
            continue
        assert len(dets) == 1 and dets[0]["data-kind"] == kind
        xywh = tuple(float(dets[0][k]) for k in ("x", "y", "width", "height"))
        assert xywh == pytest.approx(PLANTED[kind], abs=0.05)


def test_gallery_zero_draws_no_image_and_tables_stay(written) -> None:
    analysis, image, tmp_path = written
    page = write_error_html(analysis, [image], tmp_path / "analysis.html", gallery=0)
    parser = Figures()
    parser.feed(page.read_text())
    assert parser.figures == [] and "per-class" in parser.tables
