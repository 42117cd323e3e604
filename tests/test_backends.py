"""Backends: the same image gives the same detections through PyTorch, TorchScript, ONNX Runtime,
OpenCV DNN (ONNX and Darknet files) with the shared post-processing; dispatch and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from yolov3.config import InferConfig
from yolov3.darknet.synthetic import randomize
from yolov3.device import cpu_supports_bf16
from yolov3.errors import UserError
from yolov3.export import ExportSettings, export_model
from yolov3.infer.backends import load_backend
from yolov3.infer.backends.opencv import OpenCVBackend
from yolov3.infer.backends.ort import OnnxRuntimeBackend
from yolov3.infer.backends.pytorch import TorchBackend, TorchScriptBackend
from yolov3.infer.detector import Detector
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

IMG = 96
LEGACY = Path(__file__).parent / "fixtures" / "legacy_v0"


def settings(fmt: str = "onnx", **kw) -> ExportSettings:
    return ExportSettings(fmt, infer=InferConfig(img_size=IMG), **kw)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One small model written as a checkpoint, ONNX (fixed and dynamic), TorchScript and Darknet."""
    torch.manual_seed(0)
    model = YOLOv3(3, width=0.125)
    randomize(model, torch.rand(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():  # box sizes near the anchors, so that NMS has real overlaps to settle
        for out in (model.out_s, model.out_m, model.out_l):
            out[-1].weight *= 0.2
    model.eval()
    meta = ModelMeta.of_model(model, ["red", "green", "blue"], IMG)
    d = tmp_path_factory.mktemp("backends")
    out = {"model": model, "meta": meta, "ckpt": save_model(d / "m.safetensors", model, meta)}
    out["onnx"] = export_model(model, meta, d / "m.onnx", settings()).files[0]
    out["ts"] = export_model(model, meta, d / "m.torchscript", settings("torchscript")).files[0]
    darknet = export_model(model, meta, d / "dk", settings("darknet")).files
    out["cfg"], out["weights"] = (next(f for f in darknet if f.suffix == s) for s in (".cfg", ".weights"))
    return out


def _image() -> np.ndarray:
    """A 100 x 140 RGB image with flat blocks (letterboxed to 96 with padding)."""
    rng = np.random.default_rng(0)
    image = np.full((100, 140, 3), 90, np.uint8)
    for _ in range(6):
        x, y = rng.integers(0, 110), rng.integers(0, 70)
        image[y : y + 30, x : x + 30] = rng.integers(0, 255, 3)
    return image


def _detect(backend) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    det = Detector(
        backend, backend.names, backend.anchors, backend.strides, InferConfig(img_size=IMG), backend.device
    )
    r = det.predict_arrays([_image()])[0]
    order = np.lexsort((r.boxes[:, 0], -r.scores))
    return r.boxes[order], r.scores[order], r.class_ids[order]


def test_same_detections_on_every_backend(files):
    backends = {
        "torch": TorchBackend(files["model"], files["meta"], "cpu", amp="off"),
        "torch (checkpoint file)": load_backend(files["ckpt"], "torch", "cpu", amp="off"),
        "torchscript": TorchScriptBackend(files["ts"]),
        "onnxruntime": load_backend(files["onnx"], "onnxruntime", "cpu"),
        "opencv (onnx)": load_backend(files["onnx"], "opencv", "cpu"),
        "opencv (darknet)": load_backend(files["weights"], "opencv", "cpu", cfg=files["cfg"]),
        "torch (darknet files)": load_backend(files["weights"], "torch", "cpu", cfg=files["cfg"], amp="off"),
    }
    boxes, scores, classes = _detect(backends.pop("torch"))
    assert len(scores) >= 3
    for name, backend in backends.items():
        b, s, c = _detect(backend)
        assert len(s) == len(scores), name
        np.testing.assert_array_equal(c, classes, err_msg=name)
        np.testing.assert_allclose(b, boxes, rtol=1e-3, atol=1e-3, err_msg=name)
        np.testing.assert_allclose(s, scores, rtol=1e-3, err_msg=name)


def test_detector_load_dispatches_to_backends(files):
    det = Detector.load(files["onnx"], backend="opencv", device="cpu", img_size=IMG)
    assert isinstance(det.backend, OpenCVBackend) and det.names == ["red", "green", "blue"]
    det = Detector.load(files["onnx"], device="cpu", img_size=IMG)
    assert isinstance(det.backend, OnnxRuntimeBackend)
    assert len(det.predict_arrays([_image()])) == 1


@pytest.mark.skipif(not cpu_supports_bf16(), reason="no bf16 support on this CPU")
def test_torch_backend_bf16_weights_on_cpu(files):
    backend = TorchBackend(files["model"], files["meta"], "cpu", amp="bf16")
    assert next(backend.model.parameters()).dtype == torch.bfloat16
    x = torch.rand(1, 3, IMG, IMG)
    with torch.no_grad():
        want = files["model"](x)
    for g, w in zip(backend(x), want):
        assert g.dtype == torch.float32
        assert float((g - w).abs().max()) / max(1.0, float(w.abs().max())) < 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_replay_equals_eager(files):
    eager = TorchBackend(files["model"], files["meta"], "cuda", amp="off")
    graphed = TorchBackend(files["model"], files["meta"], "cuda", amp="off", cuda_graph=True)
    for seed in range(2):  # the second call replays the captured graph with new input
        x = torch.rand(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(seed))
        for g, w in zip(graphed(x), eager(x)):
            torch.testing.assert_close(g, w)


def test_bad_backend_requests_are_named(files, tmp_path):
    with pytest.raises(UserError, match="--backend 'tensorrt'"):
        load_backend(files["onnx"], "tensorrt")
    with pytest.raises(UserError, match="missing.onnx: no such file"):
        load_backend(tmp_path / "missing.onnx")
    with pytest.raises(UserError, match="--backend torch cannot run .*m.onnx"):
        load_backend(files["onnx"], "torch", "cpu")
    with pytest.raises(UserError, match="--backend onnxruntime runs .onnx files"):
        load_backend(files["ckpt"], "onnxruntime", "cpu")
    with pytest.raises(UserError, match="--backend opencv runs .onnx exports or Darknet .weights"):
        load_backend(files["ckpt"], "opencv", "cpu")
    with pytest.raises(UserError, match="reads Darknet weights with their --cfg"):
        load_backend(files["weights"], "opencv", "cpu")
    model, meta = files["model"], files["meta"]
    dyn = export_model(model, meta, tmp_path / "dyn.onnx", settings(dynamic=True)).files[0]
    with pytest.raises(UserError, match="symbolic sizes; OpenCV DNN .* export without --dynamic"):
        load_backend(dyn, "opencv", "cpu")
    dec = export_model(model, meta, tmp_path / "dec.onnx", settings(outputs="decoded"))
    with pytest.raises(UserError, match="OpenCV backend needs .*--outputs raw; run this file with --backend"):
        load_backend(dec.files[0], "opencv", "cpu")


@pytest.mark.parametrize("name", ["native.onnx", "native.torchscript"])
def test_exports_written_before_the_typed_meta_still_run(name):
    """Version-0 metadata (flat export settings) in files of the previous version."""
    backend = load_backend(LEGACY / name, device="cpu")
    assert backend.names == ["cat", "dog"] and backend.strides == [8, 16, 32]
    data = np.load(LEGACY / "outputs.npz")
    for i, got in enumerate(backend(torch.from_numpy(data["x"]))):
        np.testing.assert_allclose(got.numpy(), data[f"native_{i}"], rtol=1e-4, atol=1e-4)


def test_training_imports_no_runtime():
    """Training, the loss and the data pipeline load no ONNX Runtime, ONNX or OpenCV DNN backend (cv2
    itself is the data pipeline's image reader)."""
    import subprocess
    import sys

    code = ("import sys, yolov3.engine.trainer, yolov3.loss, yolov3.data.loader; "
            "print(sorted(m for m in ('onnxruntime', 'onnx', 'yolov3.infer.backends.opencv', "
            "'yolov3.infer.backends.ort', 'yolov3.export') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
