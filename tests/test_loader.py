"""build_loader / collate: the batch contract, batch encoding = per-item encoding, determinism across
worker counts and epochs, multi-scale, distributed sampling and bad images inside workers."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
from test_dataset import C, write_images

from yolov3.data.dataset import DetectionDataset
from yolov3.data.loader import MULTI_SCALE_SIZES, build_loader
from yolov3.data.types import Sample

KEYS = {"images", "labels", "bboxes", "boxes", "paths", "orig_sizes", "letterboxes", "skipped"}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    sizes = [(60 + 7 * i, 90 - 5 * i) for i in range(10)]
    return write_images(tmp_path_factory.mktemp("ld"), sizes, seed=3, suffix=".jpg")


def batches(loader, epochs=1):
    out = []
    for _ in range(epochs):
        out += list(loader)
    return out


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x["paths"] == y["paths"] and x["orig_sizes"] == y["orig_sizes"]
        torch.testing.assert_close(x["images"], y["images"], rtol=0, atol=0)
        for p, q in zip(x["labels"] + x["bboxes"] + x["boxes"], y["labels"] + y["bboxes"] + y["boxes"]):
            torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_batch_contract_and_equality_with_stacked_items(samples):
    ds = DetectionDataset(samples, C, img_size=64, augment=True, seed=9)
    loader = build_loader(ds, batch_size=4, shuffle=False, workers=0, seed=9)
    got = batches(loader)
    assert [len(b["paths"]) for b in got] == [4, 4, 2]
    b = got[0]
    assert set(b) == KEYS
    assert b["images"].shape == (4, 3, 64, 64) and b["images"].dtype == torch.float32
    assert [t.shape for t in b["labels"]] == [(4, 8, 8, 3, 5 + C), (4, 4, 4, 3, 5 + C), (4, 2, 2, 3, 5 + C)]
    assert [t.shape for t in b["bboxes"]] == [(4, 150, 4)] * 3
    assert all(t.is_contiguous() and t.dtype == torch.float32 for t in b["labels"] + b["bboxes"])
    # the collate's batch encoding equals the dataset's own per-item encoding (tested against the seed)
    for k, batch in enumerate(got):
        for j in range(len(batch["paths"])):
            item = ds[(4 * k + j, 64, 0)]
            torch.testing.assert_close(batch["images"][j], item["image"], rtol=0, atol=0)
            torch.testing.assert_close(batch["boxes"][j], item["boxes"], rtol=0, atol=0)
            for t, ref in zip(batch["labels"] + batch["bboxes"], item["labels"] + item["bboxes"]):
                torch.testing.assert_close(t[j], ref, rtol=0, atol=0)
            assert batch["letterboxes"][j] == item["letterbox"]


def test_deterministic_whatever_the_workers(samples):
    ds = DetectionDataset(samples, C, img_size=64, augment=True)
    kwargs = dict(batch_size=3, shuffle=True, seed=4, multi_scale=False)
    single = batches(build_loader(ds, workers=0, **kwargs), epochs=2)
    multi = batches(build_loader(ds, workers=2, **kwargs), epochs=2)
    assert_batches_equal(single, multi)
    order = [p for b in single for p in b["paths"]]
    assert order[:10] != order[10:] and sorted(order[:10]) == sorted(order[10:])  # a new order each epoch
    other_seed = batches(build_loader(ds, workers=0, **{**kwargs, "seed": 5}))
    assert [p for b in other_seed for p in b["paths"]] != order[:10]
    again = build_loader(ds, workers=0, **kwargs)
    again.set_epoch(1)
    assert_batches_equal(batches(again), single[len(single) // 2 :])


def test_multi_scale_sizes_per_batch(samples):
    ds = DetectionDataset(samples, C, img_size=64)
    loader = build_loader(ds, batch_size=1, shuffle=True, workers=0, seed=0, multi_scale=True)
    sizes = [b["images"].shape[-1] for b in batches(loader, epochs=2)]
    assert set(sizes) <= set(MULTI_SCALE_SIZES) and len(set(sizes)) > 3
    loader2 = build_loader(ds, batch_size=1, shuffle=True, workers=0, seed=0, multi_scale=True)
    assert sizes == [b["images"].shape[-1] for b in batches(loader2, epochs=2)]
    assert all(b["labels"][0].shape[1] == b["images"].shape[-1] // 8 for b in batches(loader2))


def test_bad_image_never_kills_a_worker(samples, tmp_path):
    bad = [Sample(str(tmp_path / "gone.jpg")), *samples[:5], Sample(str(tmp_path / "gone2.png"))]
    ds = DetectionDataset(bad, C, img_size=64)
    got = batches(build_loader(ds, batch_size=2, shuffle=True, workers=2, seed=0), epochs=2)
    assert [len(b["paths"]) for b in got] == [2, 2, 2, 1] * 2
    assert not any("gone" in p for b in got for p in b["paths"])


def test_distributed_sampler_splits_the_data(samples):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        ds = DetectionDataset(samples, C, img_size=64)
        loader = build_loader(ds, batch_size=4, shuffle=True, workers=0, seed=0, distributed=True)
        assert isinstance(loader.batch_sampler.sampler, torch.utils.data.DistributedSampler)
        paths = [p for b in batches(loader) for p in b["paths"]]
        assert sorted(paths) == sorted(s.image for s in samples)
    finally:
        dist.destroy_process_group()


def test_empty_targets_batch(tmp_path):
    s = write_images(tmp_path, [(64, 64), (64, 64)], seed=1)
    for x in s:
        x.boxes, x.classes, x.iscrowd = np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)
    b = next(iter(build_loader(DetectionDataset(s, C, img_size=64), 2, False, 0)))
    assert (
        all(not t.any() for t in b["labels"] + b["bboxes"]) and [x.shape for x in b["boxes"]] == [(0, 5)] * 2
    )
