"""Detect on a folder (or a list of image paths) with Ray Data and write JSON lines or Parquet.

    pip install 'yolov3[ray]'
    python examples/ray_detect.py photos/ --weights best.pt --out detections/ --concurrency 4
    python examples/ray_detect.py paths.txt --weights best.pt --out detections/ --format parquet --gpus 1

The images are listed here (a folder's, or a ``.txt`` file's lines) and decoded by the actors, so an
unreadable file becomes a row with ``error`` set (``ray.data.read_images`` would fail the whole job on
it). Each actor holds one ``Detector``; Ray schedules the batches (``map_batches``), and on a
cluster (``ray start`` / ``RAY_ADDRESS``) the same script spreads over its machines. Output rows:
``yolov3.apps.ray_data`` (the fields of ``results.jsonl``, plus ``error``). Ray tasks upstream of the actors
(a ``read_*`` source) need CPUs of their own: leave some beside ``concurrency x cpus``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ray

from yolov3.apps.ray_data import RayDetector
from yolov3.data.images import list_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a folder of images, or a .txt file with one image path per line")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True, help="output folder (Ray writes one file per block)")
    p.add_argument("--format", choices=["json", "parquet"], default="json")
    p.add_argument("--concurrency", type=int, default=2, help="actors, one Detector each")
    p.add_argument("--gpus", type=float, default=0, help="GPUs per actor (0: CPU)")
    p.add_argument("--cpus", type=float, default=1, help="CPUs per actor: leave some for reading images")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--img-size", type=int, default=544)
    p.add_argument("--conf-threshold", type=float, default=0.3)
    args = p.parse_args()

    source = Path(args.source)
    if source.is_dir():
        paths = [str(p) for p in list_images(source)]
    else:
        paths = [line.strip() for line in source.read_text().splitlines() if line.strip()]
    ds = ray.data.from_items([{"path": p} for p in paths])
    settings = {"weights": args.weights, "img_size": args.img_size, "conf_threshold": args.conf_threshold,
                "batch_size": args.batch}  # fmt: skip
    rows = ds.map_batches(RayDetector, fn_constructor_kwargs=settings, batch_size=args.batch,
                          concurrency=args.concurrency, num_gpus=args.gpus, num_cpus=args.cpus)  # fmt: skip
    if args.format == "parquet":
        rows.write_parquet(args.out)
    else:
        rows.write_json(args.out)


if __name__ == "__main__":
    main()
