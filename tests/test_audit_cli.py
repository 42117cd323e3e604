"""``yolov3 data audit`` and ``yolov3.audit`` end to end on the ``yolov3 val`` test's tiny random model
and data set: the three files agree with the records (``proposals.json`` loaded by pycocotools), the
page draws one box per record, ``--folds 2`` trains two models on a clock and scores each fold out of
sample, and bad input (another class count, an empty split, ``--folds 1``) is a clear error."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from pycocotools.coco import COCO
from test_val_cli import NAMES, make_dataset, model, weights  # noqa: F401 (fixtures)

import yolov3
from yolov3.cli import main
from yolov3.data.dataset_config import load_dataset
from yolov3.evaluate.audit import FLAG_SCORE, KINDS
from yolov3.label_audit import fold_of


def test_audit_writes_issues_proposals_and_page(tmp_path, weights, capsys) -> None:  # noqa: F811
    data = make_dataset(tmp_path / "ds")
    out = tmp_path / "audit"
    argv = ["data", "audit", "--data", str(data), "--weights", str(weights), "--img", "64", "--out", str(out)]
    assert main(argv) == 0
    assert "labels flagged" in capsys.readouterr().out
    lines = [json.loads(s) for s in (out / "issues.jsonl").read_text().splitlines()]
    assert lines and all(r["kind"] in KINDS and 0 <= r["score"] <= 1 for r in lines)
    order = dict.fromkeys(r["image"] for r in lines)
    worst = [max(r["score"] for r in lines if r["image"] == i) for i in order]
    assert worst == sorted(worst, reverse=True)  # images ranked by their worst record
    coco = COCO(str(out / "proposals.json"))
    flagged = [r for r in lines if r["score"] >= FLAG_SCORE]
    assert len(coco.getAnnIds()) == len(flagged) and len(coco.getImgIds()) == 4
    assert {a["action"] for a in coco.loadAnns(coco.getAnnIds())} <= {"add", "relabel", "move", "delete"}
    page = (out / "audit.html").read_text()
    figures = re.findall(r'<figure data-image="(\d+)" data-records="(\d+)">(.*?)</figure>', page, re.S)
    assert figures and "http" not in page.replace('xmlns="http', "")
    for image, n, body in figures:
        assert body.count('class="issue"') == int(n) == sum(r["image"] == int(image) for r in lines)


def test_api_returns_the_records_and_folds_score_out_of_sample(tmp_path, weights) -> None:  # noqa: F811
    data = make_dataset(tmp_path / "ds", n=4)
    out = tmp_path / "folds"
    records = yolov3.audit(weights, data, folds=2, time=0.02, epochs=1, batch=2, out=out, device="cpu")
    fold = fold_of(4, 2)
    for k in range(2):
        listed = (out / "folds" / f"fold{k}" / "train.txt").read_text().split()
        own = {f"{i}.jpg" for i, f in enumerate(fold) if f == k}
        assert len(listed) == 2 and not own & {p.rsplit("/", 1)[-1] for p in listed}
        assert list((out / "folds" / f"fold{k}" / "train" / "weights").glob("*.pt"))
        trained_on = load_dataset(out / "folds" / f"fold{k}" / "data.yaml").train
        assert [len(s.classes) for s in trained_on] == [2, 2]  # the labels came along
    assert [json.loads(s)["score"] for s in (out / "issues.jsonl").read_text().splitlines()] == [
        r.score for r in records]  # fmt: skip


@pytest.mark.parametrize("case", ["classes", "empty", "folds", "clock"])
def test_bad_input_is_a_clear_error(tmp_path, weights, capsys, case) -> None:  # noqa: F811
    if case == "empty":
        for split in ("train", "val"):
            (tmp_path / "images" / split).mkdir(parents=True)
        data = tmp_path / "data.yaml"
        data.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "images/train", "val": "images/val",
                                        "names": NAMES}))  # fmt: skip
    else:
        data = make_dataset(tmp_path / "ds", names=["a", "b"] if case == "classes" else NAMES)
    extra = {"folds": ["--folds", "1"], "clock": ["--folds", "2"]}.get(case, [])
    argv = ["data", "audit", "--data", str(data), "--weights", str(weights), "--img", "64",
            "--out", str(tmp_path / "o"), *extra]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    want = {"classes": ["3 classes", "2 class names", str(data)], "folds": ["--folds 1", "2 or more"],
            "clock": ["--folds 2", "--time"],
            "empty": ["split 'val' is empty", str(data)]}[case]  # fmt: skip
    assert all(w in err for w in want), err
    assert not (tmp_path / "o" / "issues.jsonl").exists()
