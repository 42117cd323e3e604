"""``yolov3 val`` end to end on a tiny YOLO-format data set, the trainer's ``evaluate`` call, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from yolov3.cli import main
from yolov3.config import InferConfig
from yolov3.data.dataset_config import load_dataset
from yolov3.errors import UserError
from yolov3.evaluate.evaluator import evaluate, evaluate_detections
from yolov3.infer.results import Detections
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

NAMES = ["cat", "dog", "kite"]


def make_dataset(root: Path, names=NAMES, labels: bool = True, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(
                str(root / "images" / split / f"{i}.jpg"), (rng.random((60, 80, 3)) * 255).astype(np.uint8)
            )
            if labels:
                rows = [f"{rng.integers(0, len(names))} {rng.uniform(.3, .7):.4f} {rng.uniform(.3, .7):.4f} "
                        f"{rng.uniform(.1, .5):.4f} {rng.uniform(.1, .5):.4f}" for _ in range(2)]  # fmt: skip
                (root / "labels" / split / f"{i}.txt").write_text("\n".join(rows) + "\n")
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                    "names": list(names)}))  # fmt: skip
    return data


@pytest.fixture(scope="module")
def model() -> YOLOv3:
    torch.manual_seed(0)
    return YOLOv3(3, width=0.125)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, model) -> Path:
    return save_model(tmp_path_factory.mktemp("w") / "m.pt", model, ModelMeta.of_model(model, NAMES, 64))


def test_val_writes_report_summary_and_plots(tmp_path, weights, capsys) -> None:
    data = make_dataset(tmp_path / "ds")
    out = tmp_path / "val"
    assert (
        main(["val", "--data", str(data), "--weights", str(weights), "--img", "64", "--out", str(out)]) == 0
    )
    text = capsys.readouterr().out
    assert "AP50" in text and "COCO (pycocotools)" in text and "Speed per image" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 4 and summary["instances"] == 8
    assert 0 <= summary["map50"] <= 1 and set(summary["per_class"]) == set(NAMES)
    assert set(summary["coco"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert np.array(summary["confusion_matrix"]).shape == (4, 4)
    for png in ("PR_curve", "F1_curve", "P_curve", "R_curve", "confusion_matrix"):
        assert (out / f"{png}.png").stat().st_size > 1000


def test_val_refuses_unlabelled_data_and_other_classes(tmp_path, weights, capsys) -> None:
    data = make_dataset(tmp_path / "nolabels", labels=False)
    assert main(["val", "--data", str(data), "--weights", str(weights), "--img", "64"]) == 2
    assert "no labels" in capsys.readouterr().err
    data = make_dataset(tmp_path / "two", names=["a", "b"])
    assert main(["val", "--data", str(data), "--weights", str(weights), "--img", "64", "--no-plots"]) == 2
    assert "3 classes" in capsys.readouterr().err


def test_trainer_call_and_perfect_detections(tmp_path, model) -> None:
    spec = load_dataset(make_dataset(tmp_path / "ds"))
    model.train()
    settings = InferConfig.for_map(img_size=64)
    result = evaluate(model, spec.val, spec.names, settings, device="cpu", batch_size=3, coco=False).summary
    assert model.training  # left as it was
    assert isinstance(result["map50"], float) and isinstance(result["map50_95"], float)
    assert result["coco"] is None and result["images"] == 4
    perfect = [Detections(s.boxes, np.ones(len(s.boxes)), s.classes) for s in spec.val]
    summary = evaluate_detections(perfect, spec.val, spec.names).summary
    assert summary["map50"] == 1.0 and summary["map50_95"] == 1.0 and summary["coco"]["AP"] == 1.0
    with pytest.raises(UserError, match="no images"):
        evaluate(model, [], spec.names)
    Path(spec.val[0].image).write_bytes(b"broken")  # unreadable: reported, left out, the rest scored
    result = evaluate(model, spec.val, spec.names, settings, device="cpu", batch_size=3, coco=False).summary
    assert result["images"] == 3


def test_coco_format_data_is_scored_against_its_own_annotation_file(tmp_path, weights) -> None:
    rng = np.random.default_rng(2)
    (tmp_path / "images").mkdir()
    images, anns = [], []
    for i in range(3):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.jpg"), (rng.random((60, 80, 3)) * 255).astype(np.uint8))
        images.append({"id": 10 + i, "file_name": f"{i}.jpg", "width": 80, "height": 60})
        anns.append({"id": i + 1, "image_id": 10 + i, "category_id": [1, 5, 9][i], "bbox": [10, 10, 30, 20],
                     "area": 300.0, "iscrowd": 0})  # fmt: skip
    cats = [{"id": c, "name": n} for c, n in zip([1, 5, 9], NAMES)]
    (tmp_path / "instances_val.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                             "categories": cats}))  # fmt: skip
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"format": "coco", "val": "instances_val.json", "images": "images"}))
    out = tmp_path / "val"
    args = [
        "val",
        "--data",
        str(data),
        "--weights",
        str(weights),
        "--img",
        "64",
        "--out",
        str(out),
        "--no-plots",
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["coco_gt"] == str(tmp_path / "instances_val.json")
    assert summary["instances"] == 3 and summary["coco"]["AP"] >= 0


def test_python_val(tmp_path, weights) -> None:
    import yolov3

    data = make_dataset(tmp_path / "ds")
    result = yolov3.val(
        weights, data, img_size=64, out=tmp_path / "v", plots=False, coco_backend="pycocotools"
    )
    assert result.summary["weights"] == str(weights) and result.summary["images"] == 4
    assert json.loads((tmp_path / "v" / "summary.json").read_text())["map50"] == result.summary["map50"]
    with pytest.raises(UserError, match="split"):
        yolov3.val(weights, data, split="dev")
