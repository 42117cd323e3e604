"""Tar shards (``yolov3 data shard``, ``yolov3.data.shard_stream``) against independent references.

What is written is read back with Python's ``tarfile`` and compared, sample by sample, with the files
and the folder reader's labels. Training batches from shards served by a local HTTP server equal the
folder loader's, and so does the loss, with shuffling off on both sides (with it on, the folder loader
permutes every index while the shards permute shards and a buffer: the same samples, another order).
Under torchrun with 2 processes (2 loader workers each) every sample of an epoch is seen exactly once;
a resumed epoch's batches are the uninterrupted epoch's; a truncated shard warns and the rest is read.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from yolov3.cli import main
from yolov3.data.dataset import DetectionDataset
from yolov3.data.dataset_config import load_dataset
from yolov3.data.loader import build_loader
from yolov3.data.shard_read import ShardWarning, read_shard
from yolov3.data.shard_stream import RecordItems, ShardStream, batch_order, build_shard_loader
from yolov3.data.shards import ShardError, read_shards_config, write_shards
from yolov3.data.synth import SynthConfig, generate
from yolov3.engine import builders
from yolov3.errors import UserError
from yolov3.loss import YoloLoss
from yolov3.model import YOLOv3

SHARD_SIZE = 12_000  # bytes: about 4 of the 64 px samples a shard, so 8 train images make 2-3 shards


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """``(data.yaml, shards folder)``: 10 synthetic images (8 train, 2 val) and their shards."""
    root = tmp_path_factory.mktemp("shards")
    yaml_path, _ = generate(root / "data", SynthConfig(n=10, size=64, seed=4, max_objects=3), progress=False)
    write_shards(load_dataset(yaml_path), root / "shards", SHARD_SIZE)
    return yaml_path, root / "shards"


@pytest.fixture(scope="module")
def http_shards(data) -> str:
    """The shards folder served by a local HTTP server; the URL of a shards.yaml listing them by URL."""
    folder = data[1]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    doc = yaml.safe_load((folder / "shards.yaml").read_text())
    for split in ("train", "val"):
        for s in doc[split]["shards"]:
            s["url"] = f"http://127.0.0.1:{server.server_address[1]}/{s['url']}"
    path = folder.parent / "http-shards.yaml"
    path.write_text(yaml.safe_dump(doc))
    yield str(path)
    server.shutdown()


def test_shards_hold_the_image_bytes_and_labels_of_the_folder(data):
    yaml_path, folder = data
    spec = load_dataset(yaml_path)
    config = read_shards_config(folder / "shards.yaml")
    assert config.names == spec.names and len(config.splits["train"]) >= 2
    for split in ("train", "val"):
        members: dict[str, bytes] = {}
        for ref in config.splits[split]:
            with tarfile.open(ref.url) as tar:  # the reference reader: Python's tarfile
                names = tar.getnames()
                assert len(names) == 2 * ref.samples
                members.update({n: tar.extractfile(n).read() for n in names})
        samples = getattr(spec, split)
        assert len(members) == 2 * len(samples) == 2 * config.samples(split)
        for i, sample in enumerate(samples):
            assert members[f"{i:08d}.jpg"] == Path(sample.image).read_bytes()
            labels = json.loads(members[f"{i:08d}.json"])
            assert np.array_equal(np.asarray(labels["boxes"], np.float32).reshape(-1, 4), sample.boxes)
            assert labels["classes"] == sample.classes.tolist()
            assert (labels["width"], labels["height"]) == (sample.width, sample.height)
        got = [r for ref in config.splits[split] for r in read_shard(ref, len(config.names))]
        assert [r.index for r in got] == list(range(len(samples)))
        assert all(np.array_equal(r.sample.boxes, s.boxes) for r, s in zip(got, samples, strict=True))
    shards = load_dataset(folder / "shards.yaml")  # what val and data check read: a split when used
    assert list.__len__(shards.train) == 0 and len(shards.val) == len(spec.val)
    for a, b in zip(shards.val, spec.val, strict=True):
        assert Path(a.image).read_bytes() == Path(b.image).read_bytes()
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.classes, b.classes)


def test_data_shard_command_writes_the_splits_asked_for(data, tmp_path, capsys):
    assert main(["data", "shard", str(data[0]), "--out", str(tmp_path / "s"), "--shard-size", "4KB",
                 "--splits", "val", "--base-url", "http://host:8000/s"]) == 0  # fmt: skip
    doc = yaml.safe_load((tmp_path / "s" / "shards.yaml").read_text())
    assert (doc["format"], doc["version"], doc["nc"]) == ("yolov3-shards", 1, 5) and "train" not in doc
    assert [s["url"] for s in doc["val"]["shards"]] == ["http://host:8000/s/val-000000.tar",
                                                       "http://host:8000/s/val-000001.tar"]  # fmt: skip
    assert "val: 2 samples in 2 shard(s)" in capsys.readouterr().out
    assert main(["data", "shard", str(data[0]), "--out", str(tmp_path / "t"), "--shard-size", "lots"]) == 2


def _batches(loader, n: int) -> list[dict]:
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            break
    return out


def test_http_shards_give_the_folder_batches_and_loss_without_shuffling(data, http_shards):
    yaml_path, _ = data
    spec, nc = load_dataset(yaml_path), 5
    common = dict(num_classes=nc, img_size=64, augment=True, hsv=True, seed=7)  # augmentation on, both sides
    folder = build_loader(DetectionDataset(spec.train, **common), 3, shuffle=False, workers=0, seed=7)
    refs = read_shards_config(http_shards).splits["train"]
    stream = ShardStream(refs, RecordItems([], encode=False, **common), 3, shuffle=False, seed=7)
    shards = build_shard_loader(stream, 0, seed=7)
    assert len(shards) == len(folder) == 3
    model = YOLOv3(nc, width=0.125).eval()
    crit = YoloLoss(model.anchors, model.strides, nc)
    for a, b in zip(_batches(folder, 3), _batches(shards, 3), strict=True):
        assert torch.equal(a["images"], b["images"])
        for x, y in zip(a["labels"] + a["bboxes"], b["labels"] + b["bboxes"], strict=True):
            assert torch.equal(x, y)
        with torch.no_grad():
            raws = model(a["images"])
            la, lb = crit(raws, a["labels"], a["bboxes"]), crit(raws, b["labels"], b["bboxes"])
        assert float(la["total"]) == float(lb["total"]) > 0


def test_resume_mid_epoch_continues_each_worker_at_its_sample(data):
    refs = read_shards_config(data[1] / "shards.yaml").splits["train"]
    items = RecordItems([], num_classes=5, img_size=64, augment=True, encode=False)
    stream = ShardStream(refs, items, 2, shuffle=True, seed=1, workers=2, buffer=3)
    loader = build_shard_loader(stream, 2, seed=1)
    loader.set_epoch(1)
    full = list(loader)
    assert len(full) == len(loader) == 4
    assert sorted(p for b in full for p in b["paths"]) == sorted({p for b in full for p in b["paths"]})
    rest = list(loader.from_batch(3))
    assert [b["paths"] for b in rest] == [b["paths"] for b in full[3:]]
    assert all(torch.equal(a["images"], b["images"]) for a, b in zip(rest, full[3:], strict=True))
    assert batch_order([3, 2]) == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]  # PyTorch's turn-taking


def test_truncated_shard_warns_naming_it_and_the_rest_is_read(data, tmp_path):
    folder = tmp_path / "cut"
    for f in data[1].iterdir():
        (folder / f.name).parent.mkdir(exist_ok=True)
        (folder / f.name).write_bytes(f.read_bytes())
    config = read_shards_config(folder / "shards.yaml")
    first = config.splits["train"][0]
    raw = Path(first.url).read_bytes()
    Path(first.url).write_bytes(raw[: len(raw) // 2])  # the shard's second half is gone
    with pytest.warns(ShardWarning, match=rf"{first.url} ends early.*samples lost"):
        kept = list(read_shard(first, 5))
    assert 0 < len(kept) < first.samples
    items = RecordItems([], num_classes=5, img_size=64, encode=False)
    loader = build_shard_loader(ShardStream(config.splits["train"], items, 2, shuffle=False), 0)
    with pytest.warns(ShardWarning):
        batches = list(loader)
    assert sum(len(b["paths"]) for b in batches) == config.samples("train")  # the lost ones replaced
    lost = [s for b in batches for s in b["skipped"]]
    assert len(lost) == first.samples - len(kept) and all(first.url in s for s in lost)


def test_unreachable_url_and_wrong_class_count_are_clear_errors(data, tmp_path):
    doc = yaml.safe_load((data[1] / "shards.yaml").read_text())
    for split in ("train", "val"):
        for s in doc[split]["shards"]:
            s["url"] = str(data[1] / s["url"])  # absolute: the yaml below is written elsewhere
    good = doc["train"]["shards"][1]["url"]
    doc["train"]["shards"][1]["url"] = "http://127.0.0.1:9/nowhere-000001.tar"
    bad = tmp_path / "shards.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ShardError, match=r"shard http://127.0.0.1:9/nowhere-000001\.tar is unreachable"):
        builders.load_spec(str(bad))
    doc["train"]["shards"][1]["url"] = good + ".missing"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ShardError, match=r"000001\.tar\.missing is unreachable: no such file"):
        load_dataset(bad)
    doc["train"]["shards"][1]["url"] = good
    doc["names"], doc["nc"] = ["circle", "square"], 2  # the labels hold class ids up to 4
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ShardError, match=r"class id [2-4] but the data set has 2 classes"):
        len(load_dataset(bad).train)  # a split is read when first used
    items = RecordItems([], num_classes=2, img_size=64, encode=False)
    stream = ShardStream(read_shards_config(bad).splits["train"], items, 2, shuffle=True, workers=2)
    loader = build_shard_loader(stream, 2)
    with pytest.raises(ShardError, match=r"class id [2-4] but the data set has 2 classes") as raised:
        list(loader)  # raised in a loader worker, it comes out with its own message
    assert "Traceback" not in str(raised.value)
    doc["version"] = 99
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ShardError, match="version 99"):
        load_dataset(bad)


DDP_SCRIPT = """
import json, os, sys
from yolov3.data.shard_stream import RecordItems, ShardStream, build_shard_loader
from yolov3.data.shards import read_shards_config
from yolov3.distributed import env_dist_info
info = env_dist_info()
refs = read_shards_config(sys.argv[1]).splits["train"]
items = RecordItems([], num_classes=5, img_size=64, augment=True, encode=False)
stream = ShardStream(refs, items, 2, shuffle=True, seed=5, rank=info.rank, world=info.world_size,
                     workers=2, buffer=2)
loader = build_shard_loader(stream, 2, seed=5)
loader.set_epoch(3)
paths = [p for b in loader for p in b["paths"]]
with open(os.path.join(sys.argv[2], f"rank{info.rank}.json"), "w") as f:
    json.dump({"paths": paths, "len": len(loader)}, f)
"""


@pytest.mark.slow
def test_torchrun_two_processes_see_every_sample_once(data, tmp_path):
    script = tmp_path / "epoch.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(data[1] / "shards.yaml"), str(tmp_path)]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["len"] == ranks[1]["len"]  # the same number of steps on both ranks
    seen = [p.rsplit("#", 1)[1] for r in ranks for p in r["paths"]]
    assert sorted(seen) == [f"{i:08d}.jpg" for i in range(8)]  # all 8 training samples, each once


@pytest.mark.slow
def test_training_from_shards_resumes_to_the_uninterrupted_weights(data, tmp_path, monkeypatch):
    """A run stopped after 2 of its epoch's 4 steps and resumed (its workers start at their shards and
    offsets, from the checkpoint's batch count) ends with the weights of a run never stopped."""
    from yolov3.engine.trainer import Trainer, train

    opts = dict(data=str(data[1] / "shards.yaml"), img_size=64, width=0.125, epochs=1, batch=2,
                device="cpu", amp="off", workers=2, seed=3, deterministic=True, warmup_epochs=0.5,
                val_interval=5, project=str(tmp_path))  # fmt: skip
    train(**opts, name="whole")
    real = Trainer.train_batch

    def stop_at_step_3(self, batch, i, n):
        if i == 2:
            raise KeyboardInterrupt  # fit() saves last.pt (epoch 0, 2 batches done) and re-raises
        return real(self, batch, i, n)

    monkeypatch.setattr(Trainer, "train_batch", stop_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(**opts, name="cut")
    monkeypatch.setattr(Trainer, "train_batch", real)
    saved = torch.load(tmp_path / "cut/weights/last.pt", weights_only=True)
    assert (saved["epoch"], saved["epoch_step"], saved["step"], saved["epoch_samples"]) == (0, 2, 2, 4)
    with pytest.raises(UserError, match="2 batches held 4 samples, with these settings they hold 6"):
        train(resume=str(tmp_path / "cut"), batch=3)  # another batch cuts the epoch elsewhere
    train(resume=str(tmp_path / "cut"))
    a = torch.load(tmp_path / "whole/weights/last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut/weights/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for name, p in a["model"].items():
        assert torch.equal(p, b["model"][name]), name
