"""``audit.html`` (``yolov3.evaluate.audit_html``) in a real browser: ``yolov3.audit`` runs the ``yolov3
val`` test's tiny random model over its tiny data set, and headless Chromium (Debian's, driven by
Playwright, as ``test_analyze_browser.py``) opens the page from disk with every network request refused.

- The counts table shows the records per kind of the returned records; the records table lists the
  first of them in order.
- The gallery shows the worst images (ranking order, at most ``gallery``), and each draws exactly its
  records (one ``rect.issue`` each, a dashed ``rect.fix`` more per bad box) and its labels (counted
  from the records and the data set, not from the page's code), every rectangle inside the picture.
- The page asks the network for nothing and throws no JavaScript error.
"""

from __future__ import annotations

import pytest
from serve_helpers import offline_page
from test_val_cli import make_dataset, model, weights  # noqa: F401 (fixtures)

from yolov3.data.dataset_config import load_dataset
from yolov3.evaluate.audit import KINDS
from yolov3.label_audit import audit

GALLERY = 3


@pytest.fixture(scope="module")
def audited(tmp_path_factory, weights):  # noqa: F811
    root = tmp_path_factory.mktemp("audit")
    data = make_dataset(root / "ds", n=5)
    records = audit(weights, data, img_size=64, device="cpu", out=root / "out", gallery=GALLERY, workers=1)
    return records, load_dataset(data).val, root / "out"


@pytest.fixture(scope="module")
def page(audited):
    with offline_page(audited[2] / "audit.html") as p:
        yield p


def test_tables_show_the_records(audited, page) -> None:  # noqa: ANN001
    records = audited[0]
    rows = page.eval_on_selector_all("#kinds tbody tr",
                                     "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert [int(c) for c in rows[0][1:]] == [sum(r.kind == k for r in records) for k in KINDS]
    listed = page.eval_on_selector_all("#records tbody tr", "rows => rows.map(r => r.cells[1].textContent)")
    assert listed == [r.kind for r in records[:50]]


def test_gallery_draws_each_images_records_and_labels(audited, page) -> None:  # noqa: ANN001
    records, samples, _ = audited
    worst = list(dict.fromkeys(r.image for r in records))[:GALLERY]
    figures = page.query_selector_all("#gallery figure")
    assert [int(f.get_attribute("data-image")) for f in figures] == worst and worst
    for fig, image in zip(figures, worst):
        mine = [r for r in records if r.image == image]
        assert len(fig.query_selector_all("rect.issue")) == len(mine)
        assert len(fig.query_selector_all("rect.fix")) == sum(r.kind == "bad_box" for r in mine)
        assert len(fig.query_selector_all("rect.gt")) == len(samples[image].classes)
        kinds = sorted(e.get_attribute("data-kind") for e in fig.query_selector_all("rect.issue"))
        assert kinds == sorted(r.kind for r in mine)
        pic = fig.query_selector("svg").bounding_box()
        for rect in fig.query_selector_all("rect"):
            b = rect.bounding_box()
            assert pic["x"] - 2 <= b["x"] and b["x"] + b["width"] <= pic["x"] + pic["width"] + 2


def test_page_is_offline_and_error_free(page) -> None:  # noqa: ANN001
    assert page.asked == [] and page.errors == []
