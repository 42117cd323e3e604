"""Darknet export: the written cfg + weights, read by OpenCV's own Darknet importer (its [yolo] layers
decode independently of this package) and by the project's loader, reproduce the model; YOLOv3-tiny
(maxpool, two scales) too."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from yolov3.builder import cfg_path
from yolov3.config import InferConfig
from yolov3.darknet import DarknetModel, parse_cfg
from yolov3.darknet.synthetic import randomize
from yolov3.decode import decode_all
from yolov3.export import ExportSettings, export_model
from yolov3.infer.backends.opencv import OpenCVBackend
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, load_model

IMG = 64


def _tame(model: torch.nn.Module, images: torch.Tensor) -> torch.nn.Module:
    """Random weights with trained-like activations and box sizes near the anchors."""
    randomize(model, images)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:  # the output convolutions
                m.weight *= 0.2
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = _tame(YOLOv3(2, width=0.125), torch.rand(2, 3, IMG, IMG))
    meta = ModelMeta.of_model(model, ["ant", "bee"], IMG)
    out = tmp_path_factory.mktemp("darknet")
    report = export_model(model, meta, out, ExportSettings(format="darknet", infer=InferConfig(img_size=IMG)))
    files = {f.suffix: f for f in report.files}
    return model, meta, files, report


def test_opencv_darknet_reader_decodes_the_same_boxes(exported):
    model, meta, files, report = exported
    assert set(files) == {".cfg", ".weights", ".names"} and report.max_error < 1e-3
    assert files[".names"].read_text().split() == ["ant", "bee"]
    net = cv2.dnn.readNetFromDarknet(str(files[".cfg"]), str(files[".weights"]))
    x = torch.rand(1, 3, IMG, IMG, generator=torch.Generator().manual_seed(3))
    net.setInput(x.numpy())
    outs = net.forward(net.getUnconnectedOutLayersNames())  # stride 32, 16, 8 (cfg order)
    got = np.concatenate(outs[::-1])  # (N, 5 + C): cx, cy, w, h / input size, conf, conf * prob
    with torch.no_grad():
        want = decode_all(model(x), meta.anchors, meta.strides)[0].numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got[:, :4] * IMG, want[:, :4], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(got[:, 4], want[:, 4], atol=1e-4)
    scores = want[:, 4:5] * want[:, 5:]
    shown = got[:, 5:] > 0  # OpenCV zeroes class scores under its own threshold
    assert shown.mean() > 0.3
    np.testing.assert_allclose(got[:, 5:][shown], scores[shown], atol=1e-4)


def test_project_loader_reads_the_files_back(exported):
    model, _, files, _ = exported
    loaded, meta = load_model(files[".weights"], cfg=files[".cfg"], names=files[".names"])
    assert meta.names == ("ant", "bee")
    x = torch.rand(2, 3, IMG, 96)
    with torch.no_grad():
        for g, w in zip(loaded(x), model(x)):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_tiny_cfg_model_exports_and_opencv_backend_gives_raw_maps(tmp_path):
    torch.manual_seed(1)
    model = _tame(DarknetModel(parse_cfg(cfg_path("yolov3-tiny")), num_classes=2), torch.rand(2, 3, IMG, IMG))
    meta = ModelMeta.of_model(model, None, IMG)
    report = export_model(
        model, meta, tmp_path, ExportSettings(format="darknet", infer=InferConfig(img_size=IMG))
    )
    files = {f.suffix: f for f in report.files}
    assert "[maxpool]" in files[".cfg"].read_text()
    backend = OpenCVBackend(files[".weights"], cfg=files[".cfg"])
    assert backend.strides == [16, 32] and backend.num_classes == 2
    x = torch.rand(2, 3, IMG, 128)
    with torch.no_grad():
        want = model(x)
    got = backend(x)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        assert float((g - w).abs().max()) / max(1.0, float(w.abs().max())) < 1e-4
