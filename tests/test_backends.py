"""Backends: the same image gives the same detections through PyTorch, TorchScript, ONNX Runtime,
OpenCV DNN (ONNX and Darknet files) with the shared post-processing; dispatch and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolov3.checkpoint import model_meta, save_model
from yolov3.darknet.synthetic import randomize
from yolov3.device import cpu_supports_bf16
from yolov3.errors import UserError
from yolov3.export import (
    ExportSettings,
    OnnxRuntimeBackend,
    OpenCVBackend,
    TorchBackend,
    TorchScriptBackend,
    export_model,
    load_backend,
)
from yolov3.model import YOLOv3
from yolov3.predict import Detector

IMG = 96


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
    meta = model_meta(model, ["red", "green", "blue"], IMG)
    d = tmp_path_factory.mktemp("backends")
    out = {"model": model, "meta": meta, "ckpt": save_model(d / "m.safetensors", model, meta)}
    out["onnx"] = export_model(model, meta, d / "m.onnx", ExportSettings(img_size=IMG)).files[0]
    out["ts"] = export_model(model, meta, d / "m.torchscript", ExportSettings("torchscript", IMG)).files[0]
    darknet = export_model(model, meta, d / "dk", ExportSettings("darknet", IMG)).files
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
    det = Detector(backend, backend.names, backend.anchors, backend.strides, IMG, backend.device)
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
    dyn = export_model(model, meta, tmp_path / "dyn.onnx", ExportSettings(img_size=IMG, dynamic=True)).files[
        0
    ]
    with pytest.raises(UserError, match="symbolic sizes; OpenCV DNN .* export without --dynamic"):
        load_backend(dyn, "opencv", "cpu")
    dec = export_model(model, meta, tmp_path / "dec.onnx", ExportSettings(img_size=IMG, outputs="decoded"))
    with pytest.raises(UserError, match="exported with --outputs decoded; a backend needs --outputs raw"):
        load_backend(dec.files[0], "onnxruntime", "cpu")
