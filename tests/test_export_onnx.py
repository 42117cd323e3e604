"""ONNX export: parity with the PyTorch model through onnxruntime, dynamic shapes, fp16, in-graph NMS
against a slow greedy-NMS reference written here, refused settings, and foreign-file interface checks."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from yolov3.config import EXPORT_FORMATS, ConfigError, InferConfig
from yolov3.darknet.synthetic import randomize
from yolov3.decode import decode_all
from yolov3.errors import UserError
from yolov3.export import ExportCheckError, ExportSettings, export_model
from yolov3.export import formats as formats_module
from yolov3.infer.backends.onnxfile import inspect_onnx
from yolov3.infer.backends.ort import OnnxRuntimeBackend
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta

IMG = 64


@pytest.fixture(scope="module")
def small():
    """A randomised width-1/8 YOLOv3 with 3 classes (activations like a trained net) and its meta."""
    torch.manual_seed(0)
    model = YOLOv3(3, width=0.125)
    randomize(model, torch.rand(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1)))
    return model.eval(), ModelMeta.of_model(model, ["a", "b", "c"], IMG)


def _run(path, x: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x.numpy()})


def _close(got: np.ndarray, want: torch.Tensor, tol: float) -> None:
    want = want.detach().float().numpy()
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max()))
    assert np.abs(got.astype(np.float32) - want).max() / scale < tol


@pytest.fixture(scope="module")
def raw_dynamic(small, tmp_path_factory):
    model, meta = small
    path = tmp_path_factory.mktemp("onnx") / "raw.onnx"
    report = export_model(model, meta, path, ExportSettings(dynamic=True, infer=InferConfig(img_size=IMG)))
    return path, report


def test_raw_export_matches_model_at_other_batch_and_sizes(small, raw_dynamic):
    model, _ = small
    path, report = raw_dynamic
    assert len(report.checks) == 2 and report.max_error < 1e-3
    for shape in [(1, 3, IMG, IMG), (3, 3, 96, 32)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            want = model(x)
        got = _run(path, x)
        assert len(got) == 3
        for g, w in zip(got, want):
            _close(g, w, 1e-4)


def test_graph_is_standard_ops_with_metadata(raw_dynamic):
    path, _ = raw_dynamic
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert "Resize" in ops and "BatchNormalization" not in ops  # upsample as Resize, BN folded
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    iface = inspect_onnx(path)
    assert iface.input_name == "images" and iface.output_names == ["raw_8", "raw_16", "raw_32"]
    assert iface.input_shape == ["batch", 3, "height", "width"]
    assert iface.meta.names == ("a", "b", "c") and iface.meta.strides == (8, 16, 32)


def test_decoded_outputs_equal_decode_of_model(small, tmp_path):
    model, meta = small
    path = export_model(
        model, meta, tmp_path / "d.onnx", ExportSettings(outputs="decoded", infer=InferConfig(img_size=IMG))
    ).files[0]
    x = torch.rand(1, 3, IMG, IMG, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = decode_all(model(x), meta.anchors, meta.strides)
    (got,) = _run(path, x)
    assert got.shape == (1, (8 * 8 + 4 * 4 + 2 * 2) * 3, 5 + 3)
    _close(got, want, 1e-4)


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _slow_nms(decoded: np.ndarray, size: tuple[int, int], conf: float, iou: float, max_det: int) -> list:
    """The seed's detection path, literally: per candidate argmax class, score = conf * prob, keep
    score > conf, box clipped to the (h, w) image, then per image and class greedy NMS (IoU > iou)."""
    rows = []
    clip = lambda v, hi: min(max(v, 0.0), hi)  # noqa: E731
    for b, image in enumerate(decoded.astype(np.float64)):
        cands = []
        for cx, cy, w, h, obj, *probs in image.tolist():
            c = int(np.argmax(probs))
            score = obj * probs[c]
            if score > conf:
                box = [clip(cx - w / 2, size[1]), clip(cy - h / 2, size[0])]
                cands.append((score, c, box + [clip(cx + w / 2, size[1]), clip(cy + h / 2, size[0])]))
        for c in sorted({c for _, c, _ in cands}):
            kept: list = []
            for score, _, box in sorted((t for t in cands if t[1] == c), key=lambda t: -t[0]):
                if all(_iou(box, k[2]) <= iou for k in kept) and len(kept) < max_det:
                    kept.append((score, c, box))
            rows += [[b, *box, score, c] for score, c, box in kept]
    return rows


def test_nms_in_graph_matches_slow_greedy_reference(small, tmp_path):
    model, meta = small
    settings = ExportSettings(
        nms=True, dynamic=True, infer=InferConfig(img_size=IMG, conf_threshold=0.25, iou_threshold=0.4)
    )
    path = export_model(model, meta, tmp_path / "n.onnx", settings).files[0]
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "NonMaxSuppression" in ops
    x = torch.rand(2, 3, IMG, 96, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        decoded = decode_all(model(x), meta.anchors, meta.strides).numpy()
    want = np.array(_slow_nms(decoded, (IMG, 96), 0.25, 0.4, 300), dtype=np.float32)
    (got,) = _run(path, x)
    assert len(want) > 5 and got.shape == want.shape  # the random net does detect things
    key = lambda r: (r[0], r[6], -round(r[5], 4), *[round(v, 1) for v in r[1:5]])  # noqa: E731 (ties)
    got, want = np.array(sorted(got.tolist(), key=key)), np.array(sorted(want.tolist(), key=key))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_half_export_runs_on_cpu_and_stays_close(small, tmp_path):
    model, meta = small
    report = export_model(
        model, meta, tmp_path / "h.onnx", ExportSettings(half=True, infer=InferConfig(img_size=IMG))
    )
    x = torch.rand(1, 3, IMG, IMG, generator=torch.Generator().manual_seed(5))
    got = _run(report.files[0], x.half())
    assert got[0].dtype == np.float16
    with torch.no_grad():
        want = model(x)
    for g, w in zip(got, want):
        _close(g, w, 5e-2)


def test_the_check_fails_when_the_file_differs(small, tmp_path, monkeypatch):
    """A file that does not reproduce the model is refused (the check can fail)."""
    model, meta = small
    other = YOLOv3(3, width=0.125).eval()  # same interface, other weights
    real = formats_module.export_onnx
    monkeypatch.setattr(formats_module, "export_onnx", lambda m, *a, **k: real(other, *a, **k))
    with pytest.raises(ExportCheckError, match="raw_8.*differs from PyTorch.*the file was removed"):
        export_model(model, meta, tmp_path / "bad.onnx", ExportSettings(infer=InferConfig(img_size=IMG)))
    assert not (tmp_path / "bad.onnx").exists()


def test_the_formats_the_settings_accept_are_the_exporter_table():
    """``config.EXPORT_FORMATS`` (what ``ExportSettings`` and ``yolov3 export --format`` accept, kept in
    the settings layer below export) names exactly the exporters ``export_model`` dispatches to."""
    assert EXPORT_FORMATS == tuple(formats_module.EXPORTERS) == formats_module.FORMATS
    assert all(callable(e.write) for e in formats_module.EXPORTERS.values())


@pytest.mark.parametrize(
    ("settings", "flag"),
    [
        (ExportSettings(format="darknet", half=True), "--half"),
        (ExportSettings(format="darknet", dynamic=True), "--dynamic"),
        (ExportSettings(format="darknet", nms=True), "--nms"),
        (ExportSettings(format="darknet", outputs="decoded"), "--outputs decoded"),
        (ExportSettings(format="torchscript", nms=True), "--nms"),
        (ExportSettings(opset=13), "--opset 13"),
        (ExportSettings(nms=True, outputs="raw"), "--nms with --outputs raw"),
    ],
)
def test_settings_a_format_cannot_hold_are_refused_by_name(small, tmp_path, settings, flag):
    model, meta = small
    with pytest.raises(UserError) as err:
        export_model(model, meta, tmp_path / "x", settings)
    assert str(err.value).startswith(flag)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("format", "tflite", "format (--format) = 'tflite': expected one of onnx, torchscript, darknet, "
         "openvino"),
        ("batch", 0, "batch (--batch) = 0: expected a whole number >= 1"),
        ("outputs", "boxes", "outputs (--outputs) = 'boxes': expected raw or decoded"),
        ("calib_images", 0, "calib_images (--calib-images) = 0: expected a whole number >= 1"),
        ("int8_max_drop", -1.0, "int8_max_drop (--int8-max-drop) = -1.0: expected mAP@0.5 points >= 0"),
    ],
)  # fmt: skip
def test_values_out_of_range_are_refused_when_the_settings_are_made(field, value, words):
    with pytest.raises(ConfigError) as err:
        ExportSettings(**{field: value})
    assert str(err.value) == words


def _foreign(path, inputs, outputs) -> None:
    """A minimal ONNX file (Identity nodes) with the given interface, as another tool might write."""
    nodes = [helper.make_node("Identity", [inputs[0].name], [o.name]) for o in outputs]
    graph = helper.make_graph(nodes, "foreign", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _vi(name: str, shape: list, dtype=TensorProto.FLOAT):  # noqa: ANN001
    return helper.make_tensor_value_info(name, dtype, shape)


@pytest.mark.parametrize(
    ("inputs", "outputs", "message"),
    [
        ([_vi("images", [1, 3, 640, 640])], [_vi("output0", [1, 84, 8400])],
         r"output 'output0' has shape \[1, 84, 8400\]; expected raw maps .* --outputs raw"),
        ([_vi("a", [1, 3, 64, 64]), _vi("b", [1, 2])], [_vi("o", [1, 255, 8, 8])], r"2 inputs \['a', 'b'\]"),
        ([_vi("images", [1, 1, 64, 64])], [_vi("o", [1, 255, 8, 8])],
         r"input 'images' has shape \[1, 1, 64, 64\]"),
        ([_vi("images", [1, 3, 64, 64], TensorProto.UINT8)], [_vi("o", [1, 255, 8, 8])],
         "element type UINT8"),
        ([_vi("images", [1, 3, 64, 64])],
         [_vi("p", [1, 255, 8, 8]), _vi("q", [1, 30, 4, 4]), _vi("r", [1, 255, 2, 2])],
         r"channel counts \[30, 255\]"),
        ([_vi("images", [1, 3, 64, 64])], [_vi("o", [1, 255, 8, 8])], r"1 outputs \['o'\]"),
    ],
)  # fmt: skip
def test_foreign_onnx_interface_is_checked_with_a_clear_message(tmp_path, inputs, outputs, message):
    path = tmp_path / "foreign.onnx"
    _foreign(path, inputs, outputs)
    with pytest.raises(UserError, match=message):
        inspect_onnx(path)


def test_foreign_raw_onnx_without_metadata_runs_with_coco_anchors(small, raw_dynamic, tmp_path):
    """A raw-map file with no yolov3 metadata (as another exporter writes): classes from the channel
    count, COCO anchors, strides from the map sizes; outputs in any order."""
    model, _ = small
    proto = onnx.load(str(raw_dynamic[0]))
    del proto.metadata_props[:]
    outs = list(proto.graph.output)
    del proto.graph.output[:]
    proto.graph.output.extend(outs[::-1])  # stride 32 first, as Darknet-derived exporters write
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    backend = OnnxRuntimeBackend(tmp_path / "foreign.onnx", names=["x", "y", "z"])
    assert backend.num_classes == 3 and backend.names == ["x", "y", "z"] and backend.strides == [8, 16, 32]
    x = torch.rand(1, 3, IMG, IMG)
    with torch.no_grad():
        want = model(x)
    for g, w in zip(backend(x), want):
        _close(g.numpy(), w, 1e-4)
    with pytest.raises(UserError, match="2 class names .* 3 classes"):
        OnnxRuntimeBackend(tmp_path / "foreign.onnx", names=["x", "y"])


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx at all")
    with pytest.raises(UserError, match="bad.onnx: not a readable ONNX model"):
        inspect_onnx(bad)
    with pytest.raises(UserError, match="no such file"):
        inspect_onnx(tmp_path / "missing.onnx")


def test_cli_exports_a_checkpoint_and_names_refused_settings(small, tmp_path, capsys):
    from yolov3.cli import main
    from yolov3.modelfile import save_model

    model, meta = small
    weights = save_model(tmp_path / "m.safetensors", model, meta)
    assert main(["export", "--weights", str(weights), "--img", str(IMG), "--nms", "--conf", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "checked input (1, 3, 64, 64)" in out and "exported onnx (nms outputs)" in out
    iface = inspect_onnx(tmp_path / "m.onnx")
    assert iface.outputs == "nms" and iface.meta.export.conf_threshold == 0.2
    assert main(["export", "--weights", str(weights), "--format", "darknet", "--dynamic"]) == 2
    assert "--dynamic: not available with --format darknet" in capsys.readouterr().err
    assert main(["export", "--weights", str(weights), "--img", "100"]) == 2
    assert "img_size (--img-size) = 100: expected a positive multiple of 32" in capsys.readouterr().err


def test_match_detections_hand_cases():
    from yolov3.export.check import match_detections

    row = lambda b, x, s, c: [b, x, 0.0, x + 10, 10.0, s, c]  # noqa: E731
    want = torch.tensor([row(0, 0, 0.9, 1), row(0, 50, 1.0, 1), row(0, 80, 1.0, 1)])
    same = np.array([row(0, 80, 1.0, 1), row(0, 0, 0.9, 1), row(0, 50, 1.0, 1)], np.float32)
    assert match_detections(same, want, 1e-4) == 0.0  # order does not matter
    tie_swap = np.array([row(0, 0, 0.9, 1), row(0, 50, 1.0, 1), row(0, 120, 1.0, 1)], np.float32)
    assert match_detections(tie_swap, want, 1e-4) == 0.0  # which tied box survived: not a defect
    moved = np.array([row(0, 5, 0.9, 1), row(0, 50, 1.0, 1), row(0, 80, 1.0, 1)], np.float32)
    assert match_detections(moved, want, 1e-4) == 2 / 6  # an untied box moved: one miss each way
    other_class = np.array([row(0, 0, 0.9, 2), row(0, 50, 1.0, 1), row(0, 80, 1.0, 1)], np.float32)
    assert match_detections(other_class, want, 1e-4) == 2 / 6
    assert match_detections(np.zeros((0, 7), np.float32), want, 1e-4) == 1.0
