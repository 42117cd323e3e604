"""TorchScript export: ``torch.jit.load`` of the written file reproduces the model (raw and decoded,
other batch and image sizes, fp16 on the CPU); metadata round trip; bad files named."""

from __future__ import annotations

import pytest
import torch

from yolov3.config import InferConfig
from yolov3.darknet.synthetic import randomize
from yolov3.decode import decode_all
from yolov3.errors import UserError
from yolov3.export import ExportSettings, export_model
from yolov3.infer.backends.pytorch import TorchScriptBackend, load_torchscript
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta

IMG = 64
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # still LibTorch's format


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = YOLOv3(2, width=0.125)
    randomize(model, torch.rand(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():  # tame t_w, t_h so that decoded sizes stay near the anchors (exp amplifies)
        for out in (model.out_s, model.out_m, model.out_l):
            out[-1].weight *= 0.2
    return model.eval(), ModelMeta.of_model(model, ["cat", "dog"], IMG)


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape
    return float((got.float() - want).abs().max()) / max(1.0, float(want.abs().max()))


def test_raw_file_runs_alone_at_other_sizes(small, tmp_path):
    model, meta = small
    path = tmp_path / "m.torchscript"
    report = export_model(
        model, meta, path, ExportSettings(format="torchscript", dynamic=True, infer=InferConfig(img_size=IMG))
    )
    assert report.files == [path] and len(report.checks) == 2
    module = torch.jit.load(str(path))  # plain torch: no yolov3 code needed to run it
    for shape in [(1, 3, IMG, IMG), (2, 3, 32, 128)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            got, want = module(x), model(x)
        assert isinstance(got, tuple) and len(got) == 3
        assert max(_rel(g, w) for g, w in zip(got, want)) < 1e-4
    _, stored = load_torchscript(path)
    assert stored.names == ("cat", "dog") and stored.export.outputs == "raw" and stored.export.dynamic is True


def test_decoded_half_file_on_cpu(small, tmp_path):
    model, meta = small
    settings = ExportSettings(
        format="torchscript", outputs="decoded", half=True, infer=InferConfig(img_size=IMG)
    )
    path = export_model(model, meta, tmp_path / "d.torchscript", settings).files[0]
    x = torch.rand(1, 3, IMG, IMG, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = torch.jit.load(str(path))(x.half())
        want = decode_all(model(x), meta.anchors, meta.strides)
    assert got.dtype == torch.float32  # decoded in float32 even from a half network
    assert _rel(got, want) < 0.1
    backend = TorchScriptBackend(path)  # runs as a backend too: decoded rows, its traced size only
    assert backend.outputs == "decoded" and backend.input_size == (IMG, IMG)
    torch.testing.assert_close(backend(x)[0], got)


def test_backend_and_bad_files(small, tmp_path):
    model, meta = small
    path = export_model(
        model, meta, tmp_path / "r.ts", ExportSettings(format="torchscript", infer=InferConfig(img_size=IMG))
    ).files[0]
    backend = TorchScriptBackend(path)
    assert backend.names == ["cat", "dog"] and backend.strides == [8, 16, 32]
    x = torch.rand(1, 3, IMG, IMG)
    with torch.no_grad():
        assert max(_rel(g, w) for g, w in zip(backend(x), model(x))) < 1e-4
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Conv2d(3, 3, 1), torch.rand(1, 3, 8, 8)), str(plain))
    with pytest.raises(UserError, match="plain.pt: a TorchScript file without yolov3 metadata"):
        load_torchscript(plain)
    junk = tmp_path / "junk.torchscript"
    junk.write_bytes(b"junk")
    with pytest.raises(UserError, match="junk.torchscript: not a readable TorchScript file"):
        load_torchscript(junk)
