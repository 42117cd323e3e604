"""``RayDetector`` (``yolov3.apps.ray_data``): the rows it gives, alone and inside Ray Data on a local
2-CPU Ray instance, equal ``yolov3 detect``'s ``results.jsonl`` on the same images (the reference: the
one-process runner; ``speed_ms`` and ``image_id`` are left out, Ray keeping no global order)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolov3.apps.ray_data import RayDetector
from yolov3.cli import main
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

NAMES = ["cat", "dog", "kite"]
SETTINGS = {"img_size": 64, "amp": "off", "conf_threshold": 0.2, "device": "cpu"}


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> tuple[Path, list[Path], dict[str, dict]]:
    """Weights, the images (one unreadable) and ``detect``'s rows by image path."""
    root = tmp_path_factory.mktemp("ray")
    torch.manual_seed(0)
    m = YOLOv3(3, width=0.125)
    weights = save_model(root / "m.safetensors", m, ModelMeta.of_model(m, NAMES, 64))
    rng = np.random.default_rng(5)
    (root / "imgs").mkdir()
    paths = []
    for i in range(6):
        paths.append(root / "imgs" / f"p{i}.png")
        cv2.imwrite(str(paths[-1]), (rng.random((40 + 3 * i, 60, 3)) * 255).astype(np.uint8))
    (root / "imgs" / "zz_broken.jpg").write_bytes(b"junk")
    flags = ["--img", "64", "--amp", "off", "--conf", "0.2", "--device", "cpu", "--no-save"]
    assert (
        main(["detect", str(root / "imgs"), "--weights", str(weights), "--out", str(root / "o"), *flags]) == 0
    )
    rows = [json.loads(x) for x in (root / "o" / "results.jsonl").read_text().splitlines()]
    assert sum(len(r["detections"]) for r in rows) > 0
    return weights, [*paths, root / "imgs" / "zz_broken.jpg"], {r["image"]: r for r in rows}


def strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("speed_ms", "image_id", "error")}


def test_paths_and_decoded_images_give_detects_rows(case) -> None:
    weights, paths, expected = case
    fn = RayDetector(weights, batch_size=3, **SETTINGS)
    rows = fn.rows({"path": np.array([str(p) for p in paths])})
    assert len(rows) == len(paths)
    for row in rows[:-1]:
        assert row["error"] is None and strip(row) == strip(expected[row["image"]])
    assert "zz_broken.jpg" in rows[-1]["error"] and rows[-1]["detections"] == []
    images = np.empty(2, dtype=object)  # Ray's numpy batches hold images of different sizes this way
    images[:] = [cv2.imread(str(p))[..., ::-1].copy() for p in paths[:2]]
    rows = fn.rows({"image": images, "path": np.array([str(p) for p in paths[:2]])})
    assert [strip(r) for r in rows] == [strip(expected[str(p)]) for p in paths[:2]]


def test_bad_batch_is_named(case) -> None:
    from yolov3.errors import UserError

    with pytest.raises(UserError, match="columns \\['x'\\]"):
        RayDetector(case[0], **SETTINGS).rows({"x": np.zeros(1)})


def test_inside_ray_data_on_two_cpus(case, tmp_path) -> None:
    ray = pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    weights, paths, expected = case
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.from_items([{"path": str(p)} for p in paths])
        rows_ds = ds.map_batches(RayDetector, fn_constructor_kwargs={"weights": str(weights), **SETTINGS},
                                 batch_size=2, concurrency=2, num_cpus=1)  # fmt: skip
        rows_ds.write_parquet(str(tmp_path / "pq"))
        rows = pq.read_table(tmp_path / "pq").to_pylist()
    finally:
        ray.shutdown()
    got = {r["image"]: r for r in rows}
    assert set(got) == {str(p) for p in paths}
    for p in paths[:-1]:
        row = got[str(p)]
        assert row["error"] is None
        assert strip(row) == strip(expected[str(p)])
    assert "zz_broken.jpg" in got[str(paths[-1])]["error"]
