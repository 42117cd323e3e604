"""Training batches from tar shards (local files, and over HTTP) vs from the image folder, same run.

The demo data set's first 1,536 training images (192 px JPEGs; ``.cache/yolov3-demo``, else a
synthetic set drawn here) are written as shards of about 8 MB (``write_shards``, timed). Then one
epoch of training batches (batch 16 at 192 px, augmentation on, shuffled, 2 loader workers) from: the
folder loader (the anchor, ``build_loader``), the shard loader on the local tar files, and the shard
loader on the same files served by ``python -m http.server`` in another process (webdataset reads
them through urllib). Sides alternated, best of 2 epochs each. Prints JSON lines.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from yolov3.data.dataset import DetectionDataset
from yolov3.data.dataset_config import load_dataset
from yolov3.data.loader import build_loader
from yolov3.data.shard_stream import RecordItems, ShardStream, build_shard_loader
from yolov3.data.shards import read_shards_config, write_shards
from yolov3.data.synth import SynthConfig, generate

N, BATCH, SIZE, WORKERS, ROUNDS = 1536, 16, 192, 2, 3
DEMO = Path(".cache/yolov3-demo/synth-192px-7200-seed0/data.yaml")


def data_set(tmp: Path):
    if DEMO.is_file():
        spec, where = load_dataset(DEMO), "demo set"
    else:
        path, _ = generate(tmp / "synth", SynthConfig(n=N + 2, size=SIZE, seed=0), progress=False, workers=2)
        spec, where = load_dataset(path), "synthetic set drawn here"
    spec.train, spec.val, spec.test = spec.train[:N], [], []
    return spec, where


def epoch_seconds(loader) -> tuple[float, float]:
    """``(seconds to the first batch, seconds for the rest of the epoch)``."""
    start = time.perf_counter()
    batches = iter(loader)
    images = len(next(batches)["images"])
    first = time.perf_counter()
    images += sum(len(b["images"]) for b in batches)
    assert images == N, images
    return first - start, time.perf_counter() - first


def serve(folder: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(folder)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("http.server did not start")


def shard_loader(refs, nc: int):
    items = RecordItems([], num_classes=nc, img_size=SIZE, augment=True, encode=False)
    return build_shard_loader(ShardStream(refs, items, BATCH, True, seed=0, workers=WORKERS), WORKERS)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        spec, where = data_set(tmp)
        nc = len(spec.names)
        start = time.perf_counter()
        write_shards(spec, tmp / "shards", 8 * 1024**2)
        write_s = time.perf_counter() - start
        local = read_shards_config(tmp / "shards" / "shards.yaml")
        server, port = serve(tmp / "shards")
        doc = yaml.safe_load((tmp / "shards" / "shards.yaml").read_text())
        for s in doc["train"]["shards"]:
            s["url"] = f"http://127.0.0.1:{port}/{s['url']}"
        (tmp / "http.yaml").write_text(yaml.safe_dump(doc))
        remote = read_shards_config(tmp / "http.yaml")
        try:
            loaders = {
                "folder": build_loader(DetectionDataset(spec.train, nc, SIZE, augment=True), BATCH,
                                       shuffle=True, workers=WORKERS, seed=0),  # fmt: skip
                "local": shard_loader(local.splits["train"], nc),
                "http": shard_loader(remote.splits["train"], nc),
            }
            best = dict.fromkeys(loaders, (float("inf"), float("inf")))
            for epoch in range(ROUNDS):
                for name, loader in loaders.items():
                    loader.set_epoch(epoch)
                    first, rest = epoch_seconds(loader)
                    best[name] = (min(best[name][0], first), min(best[name][1], rest))
        finally:
            server.terminate()
            server.wait()
    rate = {k: (N - BATCH) / rest for k, (_, rest) in best.items()}
    shards = len(local.splits["train"])
    note = (f"{N} images of the {where} ({SIZE} px JPEG), batch {BATCH}, augmentation on, "
            f"{WORKERS} workers; {shards} shards of ~8 MB; best of {ROUNDS} epochs, alternated; "
            "anchor: the folder loader")  # fmt: skip
    for name, how in (("local", "local tar files"), ("http", "HTTP (python -m http.server, urllib)")):
        print(json.dumps({"what": f"training images per second from shards on {how} vs the folder loader "
                                  "(after an epoch's first batch)",
                          "ours": round(rate[name], 1), "anchor": round(rate["folder"], 1),
                          "unit": "images/s", "ratio": round(rate[name] / rate["folder"], 3),
                          "target": ">= 0.9", "note": note}))  # fmt: skip
        print(json.dumps({"what": f"an epoch's first batch from shards on {how} vs the folder loader",
                          "ours": round(best[name][0], 3), "anchor": round(best["folder"][0], 3),
                          "unit": "s", "ratio": round(best[name][0] / best["folder"][0], 3),
                          "note": "the shard loader starts its workers each epoch (the epoch is their plan), "
                                  "the folder loader's persist; " + note}))  # fmt: skip
    print(json.dumps({"what": f"yolov3 data shard: writing {N} images as shards", "ours": round(write_s, 2),
                      "unit": "s", "note": f"{1e3 * write_s / N:.2f} ms an image; {where}"}))  # fmt: skip


if __name__ == "__main__":
    main()
