"""A model file decides how it runs: typed as a new user types them (no --img-size, no repeated
flags), the commands run a model trained at a non-default size (96 px here) at that size, read from the
file itself — the checkpoint's meta, an export's static shape or meta, a Darknet cfg's width — and give
what the explicit-size commands give. Every file ``yolov3 export`` writes runs in ``detect`` / ``val``
(decoded and NMS-in-graph exports too), compared with the checkpoint run by PyTorch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import yolov3
from yolov3.cli import main
from yolov3.infer.detector import Detector

SIZE = 96  # the size the fixture's model is trained at: neither the seed's 544 nor Darknet's 416
LOW = ["--conf", "0.02", "--amp", "off"]  # enough boxes from a briefly trained model; float32 everywhere


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A YOLOv3-tiny trained for a few epochs at 96 px on a synthetic data set, through the CLI."""
    root = tmp_path_factory.mktemp("defaults")
    data = root / "shapes" / "data.yaml"
    assert main(["data", "synth", "--out", str(root / "shapes"), "--n", "64", "--seed", "0", "--size", "96",
                 "-q"]) == 0  # fmt: skip
    assert main(["train", "--data", str(data), "--model", "yolov3-tiny", "--img-size", str(SIZE), "--epochs",
                 "10", "--batch", "8", "--workers", "0", "--amp", "off", "--project", str(root / "runs"),
                 "--name", "t", "-q"]) == 0  # fmt: skip
    best = root / "runs" / "t" / "weights" / "best.pt"
    return {"root": root, "data": data, "best": best, "val": root / "shapes" / "images" / "val"}


def records(out: Path) -> list[dict]:
    """``results.jsonl`` without the timings."""
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("speed_ms", None)
    return rows


def boxes_of(out: Path) -> dict[str, np.ndarray]:
    """Per image: ``(N, 6)`` x1, y1, x2, y2, score, class, highest score first."""
    found = {}
    for r in records(out):
        rows = [[*d["box"], d["score"], d["class_id"]] for d in r["detections"]]
        found[Path(r["image"]).name] = np.array(rows, np.float64).reshape(-1, 6)
    return found


def assert_same_boxes(a: dict[str, np.ndarray], b: dict[str, np.ndarray], atol: float = 0.05) -> None:
    """The same images with the same boxes, scores and classes, to float noise between runtimes: each box
    of ``a`` pairs with one of ``b`` (near-equal scores may swap order); at most 2 % may not (a score a
    hair either side of the threshold)."""
    assert a.keys() == b.keys()
    total = sum(len(v) for v in a.values())
    assert total > 0, "the comparison needs some boxes"
    unmatched = 0
    for name in a:
        left = list(b[name])
        for row in a[name]:
            close = (k for k, r in enumerate(left) if np.all(np.abs(r - row) <= atol + 1e-3 * np.abs(r)))
            hit = next(close, None)
            if hit is None:
                unmatched += 1
            else:
                left.pop(hit)
        unmatched += len(left)
    assert unmatched <= 0.02 * total, f"{unmatched} of {total} boxes differ"


def test_val_without_a_size_reproduces_the_training_size(trained, tmp_path, capsys) -> None:
    data, best = str(trained["data"]), str(trained["best"])
    assert main(["val", "--data", data, "--weights", best, "--amp", "off", "--out", str(tmp_path / "a"),
                 "--no-plots"]) == 0  # fmt: skip
    bare = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert "note:" not in capsys.readouterr().err
    assert main(["val", "--data", data, "--weights", best, "--amp", "off", "--img-size", str(SIZE),
                 "--out", str(tmp_path / "b"), "--no-plots"]) == 0  # fmt: skip
    explicit = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert bare["img_size"] == explicit["img_size"] == SIZE
    assert (bare["map50"], bare["map50_95"]) == (explicit["map50"], explicit["map50_95"])
    # the mAP the training run reported for the epoch best.pt holds
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    assert bare["map50"] == pytest.approx(ckpt["metrics"]["val/map50"], abs=1e-3)
    capsys.readouterr()
    assert main(["val", "--data", data, "--weights", best, "--amp", "off", "--img-size", "160",
                 "--out", str(tmp_path / "c"), "--no-plots"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"note: input size 160: {best} was trained at {SIZE}" in err and len(err.splitlines()) <= 2


def test_detect_without_a_size_equals_the_explicit_size(trained, tmp_path, capsys) -> None:
    args = ["detect", str(trained["val"]), "--weights", str(trained["best"]), *LOW, "--no-save"]
    assert main([*args, "--out", str(tmp_path / "bare")]) == 0
    assert f"at {SIZE}x{SIZE}" in capsys.readouterr().out
    assert main([*args, "--img-size", str(SIZE), "--out", str(tmp_path / "explicit")]) == 0
    assert records(tmp_path / "bare") == records(tmp_path / "explicit")
    assert sum(len(r["detections"]) for r in records(tmp_path / "bare")) > 0
    # the Python API and the server's detector take the same default
    assert yolov3.load(trained["best"]).img_size == SIZE


def test_every_onnx_export_runs_at_its_own_size(trained, tmp_path, capsys) -> None:
    """Raw (fixed size and batch), decoded and NMS-in-graph exports, all written without a size, run in
    ``detect`` with no size given and find the boxes the checkpoint finds."""
    best, folder = str(trained["best"]), str(trained["val"])
    detect = ["detect", folder, *LOW, "--no-save"]
    assert main([*detect, "--weights", best, "--out", str(tmp_path / "pt")]) == 0
    want = boxes_of(tmp_path / "pt")
    exports = {"raw": [], "decoded": ["--outputs", "decoded", "--dynamic"],
               "nms": ["--nms", "--conf", "0.02"]}  # fmt: skip
    for kind, extra in exports.items():
        onnx_file = tmp_path / f"{kind}.onnx"
        assert main(["export", "--weights", best, "--format", "onnx", *extra, "--out", str(onnx_file)]) == 0
        assert main([*detect, "--weights", str(onnx_file), "--out", str(tmp_path / kind)]) == 0, kind
        assert_same_boxes(boxes_of(tmp_path / kind), want)
    from yolov3.infer.backends.onnxfile import inspect_onnx

    assert inspect_onnx(tmp_path / "raw.onnx").input_shape == [1, 3, SIZE, SIZE]
    capsys.readouterr()
    # a size the fixed file cannot take: one line naming the file, no traceback
    assert main([*detect, "--weights", str(tmp_path / "raw.onnx"), "--img-size", "128"]) == 2
    err = capsys.readouterr().err
    assert "raw.onnx takes 96x96 input only" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_val_on_fixed_batch_decoded_and_nms_exports(trained, tmp_path, capsys) -> None:
    """``val`` runs batches of 8 through a batch-1 file, and scores decoded and NMS exports; the NMS file
    keeps only boxes above its baked threshold, which the note says."""
    data, best = str(trained["data"]), str(trained["best"])

    def val(weights: str, out: str) -> dict:
        assert main(["val", "--data", data, "--weights", weights, "--amp", "off", "--out",
                     str(tmp_path / out), "--no-plots", "--no-coco"]) == 0  # fmt: skip
        return json.loads((tmp_path / out / "summary.json").read_text())

    want = val(best, "pt")
    for kind, extra in {"raw": [], "decoded": ["--outputs", "decoded"]}.items():
        onnx_file = tmp_path / f"{kind}.onnx"
        assert main(["export", "--weights", best, "--format", "onnx", *extra, "--out", str(onnx_file)]) == 0
        got = val(str(onnx_file), kind)
        assert got["img_size"] == SIZE and got["map50"] == pytest.approx(want["map50"], abs=0.01), kind
    nms = tmp_path / "nms.onnx"
    assert main(["export", "--weights", best, "--format", "onnx", "--nms", "--conf", "0.05", "--out",
                 str(nms)]) == 0  # fmt: skip
    capsys.readouterr()
    got = val(str(nms), "nms")
    assert "keeps boxes scoring above 0.05" in capsys.readouterr().err
    assert 0 <= got["map50"] <= want["map50"] + 0.01


def test_torchscript_openvino_and_darknet_files_carry_their_size(trained, tmp_path) -> None:
    best = str(trained["best"])
    ts = tmp_path / "m.torchscript"
    assert main(["export", "--weights", best, "--format", "torchscript", "--out", str(ts)]) == 0
    assert Detector.load(ts, device="cpu").img_size == SIZE
    assert main(["convert", best, str(tmp_path / "dn")]) == 0
    (cfg,) = (tmp_path / "dn").glob("*.cfg")
    (weights,) = (tmp_path / "dn").glob("*.weights")
    assert Detector.load(weights, cfg=cfg, device="cpu").img_size == SIZE  # the cfg's [net] width
    pytest.importorskip("openvino")
    xml = tmp_path / "m.xml"
    assert main(["export", "--weights", best, "--format", "openvino", "--out", str(xml)]) == 0
    assert Detector.load(xml, device="cpu").img_size == SIZE
    assert Detector.load(xml, device="cpu", img_size=128).img_size == 128  # an IR reshapes: allowed


def test_int8_defaults_to_the_recorded_size_and_stays_quiet(trained, tmp_path, capfd) -> None:
    pytest.importorskip("nncf")
    xml = tmp_path / "q.xml"
    assert main(["export", "--weights", str(trained["best"]), "--format", "openvino", "--int8", "--data",
                 str(trained["data"]), "--calib-images", "8", "--int8-max-drop", "100", "--out",
                 str(xml)]) == 0  # fmt: skip
    assert Detector.load(xml, device="cpu").img_size == SIZE
    onnx_file = tmp_path / "q.onnx"  # ONNX Runtime's quantizer advises pre-processing on the root logger
    assert main(["export", "--weights", str(trained["best"]), "--format", "onnx", "--int8", "--data",
                 str(trained["data"]), "--calib-images", "8", "--int8-max-drop", "100", "--out",
                 str(onnx_file)]) == 0  # fmt: skip
    assert Detector.load(onnx_file, device="cpu").img_size == SIZE
    out, err = capfd.readouterr()
    for chatter in ("INFO:nncf", "pre-processing", "CUDA_HOME", "Statistics collection"):
        assert chatter not in out + err, chatter


def test_classes_by_list_comma_or_name(trained, tmp_path) -> None:
    args = ["detect", str(trained["val"]), "--weights", str(trained["best"]), *LOW, "--no-save"]
    for name, given in {"spaced": ["0", "2"], "comma": ["0,2"], "names": ["circle", "Triangle"]}.items():
        assert main([*args, "--classes", *given, "--out", str(tmp_path / name)]) == 0
    assert records(tmp_path / "spaced") == records(tmp_path / "comma") == records(tmp_path / "names")
    classes = {d["class_id"] for r in records(tmp_path / "names") for d in r["detections"]}
    assert classes <= {0, 2}
    assert main([*args, "--classes", "hexagon"]) == 2


def test_best_pt_holds_no_optimizer_state(trained, capsys) -> None:
    best = torch.load(trained["best"], map_location="cpu", weights_only=True)
    last = torch.load(trained["best"].with_name("last.pt"), map_location="cpu", weights_only=True)
    assert "optimizer" not in best and "rng" not in best and "optimizer" in last
    assert os.path.getsize(trained["best"]) < 0.6 * os.path.getsize(trained["best"].with_name("last.pt"))
    assert main(["train", "--resume", str(trained["best"])]) == 2
    assert "holds the weights only" in capsys.readouterr().err


def test_written_files_follow_the_umask(trained) -> None:
    """The atomic writer's temporary file is private (0600); the files it becomes must not be."""
    mask = os.umask(0o022)
    os.umask(mask)
    want = 0o666 & ~mask
    for path in (trained["best"], trained["best"].with_name("last.pt")):
        assert path.stat().st_mode & 0o777 == want, path
