"""Tar shards (WebDataset layout) of a data set: ``write_shards`` and the ``shards.yaml`` that lists them.

One sample per key, in the split's order: ``{key}.{ext}`` the image file's bytes unchanged (``ext``
its suffix: jpg, png...) and ``{key}.json`` its labels::

    {"boxes": [[x1, y1, x2, y2], ...],   # absolute pixels of the image (float32 values, exact)
     "classes": [0, 2, ...], "difficult": [...], "iscrowd": [...],
     "width": W, "height": H, "source": "images/train/000001.jpg"}

``key`` is the sample's index in its split, 8 digits (the order the folder reader gives). A shard is
``{split}-{n:06d}.tar``, closed once it holds ``shard_size`` bytes, written to a temporary file and
renamed (a reader never sees half a shard). ``shards.yaml`` (``ShardsConfig``)::

    format: yolov3-shards
    version: 1
    names: [circle, square]
    nc: 2
    train:
      samples: 5760
      shards: [{url: train-000000.tar, samples: 2880}, {url: train-000001.tar, samples: 2880}]

A ``url`` is a path (relative to the yaml's folder) or ``http(s)://...``; ``--base-url`` at writing
time lists the shards under the server that will serve the folder.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from yolov3.config_io import load_yaml
from yolov3.data.formats.common import DatasetSpec
from yolov3.data.types import Sample
from yolov3.errors import UserError
from yolov3.files import atomic_writer, make_dir

SHARDS_FORMAT = "yolov3-shards"
SHARDS_VERSION = 1
SPLITS = ("train", "val", "test")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


class ShardError(UserError):
    """A shards.yaml or shard that cannot be used (names the file or URL and the value)."""


@dataclass(frozen=True)
class ShardRef:
    """One tar shard: where it is and how many samples it holds."""

    url: str
    samples: int


@dataclass
class ShardsConfig:
    """A parsed ``shards.yaml``: class names and, per split, its shards in order."""

    names: list[str]
    splits: dict[str, list[ShardRef]] = field(default_factory=dict)
    source: str = ""

    def samples(self, split: str) -> int:
        return sum(s.samples for s in self.splits.get(split, []))


def parse_size(text: str | int) -> int:
    """``"1GB"`` / ``"500MB"`` / ``"64k"`` / ``1000000`` -> bytes (powers of 1024)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise UserError(f"--shard-size {text!r}: expected a size such as 1GB, 500MB or 64KB")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def is_shards_config(path: str | os.PathLike) -> bool:
    """True for a YAML file whose ``format`` is ``yolov3-shards`` (read only when it is a YAML file)."""
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        with path.open() as f:
            head = f.read(4096)
    except OSError:
        return False
    return re.search(rf"^format:\s*['\"]?{SHARDS_FORMAT}\b", head, re.MULTILINE) is not None


def _resolve(url: str, base: Path) -> str:
    return url if re.match(r"^[a-z][a-z0-9+.-]*://", url) else str(base / url)


def read_shards_config(path: str | os.PathLike) -> ShardsConfig:
    """Parse ``shards.yaml``; relative URLs become paths beside it. ``ShardError`` names the key."""
    path = Path(path)
    cfg = load_yaml(path)
    version = cfg.get("version")
    if not isinstance(version, int) or version > SHARDS_VERSION:
        raise ShardError(f"{path}: version {version!r}; this yolov3 reads shards.yaml version "
                         f"{SHARDS_VERSION} or older (written by a newer yolov3? upgrade)")  # fmt: skip
    names = cfg.get("names")
    if not isinstance(names, list) or not names:
        raise ShardError(f"{path}: names: expected the list of class names, got {names!r}")
    if cfg.get("nc") is not None and cfg["nc"] != len(names):
        raise ShardError(f"{path}: nc: {cfg['nc']} but {len(names)} names")
    out = ShardsConfig([str(n) for n in names], source=str(path))
    for split in SPLITS:
        entry = cfg.get(split)
        if entry is None:
            continue
        try:
            refs = [ShardRef(_resolve(str(s["url"]), path.parent), int(s["samples"]))
                    for s in entry["shards"]]  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ShardError(
                f"{path}: {split}: expected shards: [{{url: ..., samples: N}}, ...] ({exc!r})"
            ) from exc
        out.splits[split] = refs
    if not out.splits:
        raise ShardError(f"{path}: no split (train / val / test) listed")
    return out


def _reachable(url: str, timeout: float = 10.0) -> str | None:
    """None when the shard's first byte can be read, else why not."""
    if not re.match(r"^https?://", url):
        return None if os.path.isfile(url) else "no such file"
    request = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1)
        return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def check_reachable(config: ShardsConfig, splits: Iterable[str]) -> None:
    """Read the first byte of every shard of ``splits`` (in parallel); ``ShardError`` naming the first
    that cannot be read, and how many could not."""
    urls = [s.url for split in splits for s in config.splits.get(split, [])]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        why = list(pool.map(_reachable, urls))
    bad = [(u, w) for u, w in zip(urls, why, strict=True) if w is not None]
    if bad:
        more = f" ({len(bad)} of {len(urls)} shards cannot be read)" if len(bad) > 1 else ""
        raise ShardError(f"{config.source}: shard {bad[0][0]} is unreachable: {bad[0][1]}{more}")


# ----- writing --------------------------------------------------------------------------------------


def sample_labels(sample: Sample, root: Path | None = None) -> dict:
    """The ``.json`` member of a sample (module docstring)."""
    source = Path(sample.image)
    if root is not None and source.is_relative_to(root):
        source = source.relative_to(root)
    boxes = np.asarray(sample.boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return {
        "boxes": [[float(v) for v in box] for box in boxes],
        "classes": [int(c) for c in np.asarray(sample.classes).reshape(-1)],
        "difficult": [bool(v) for v in np.asarray(sample.difficult, bool).reshape(-1)[:n]],
        "iscrowd": [bool(v) for v in np.asarray(sample.iscrowd, bool).reshape(-1)[:n]],
        "width": int(sample.width),
        "height": int(sample.height),
        "source": str(source),
    }


def _records(samples: list[Sample], root: Path | None) -> Iterator[dict]:
    for index, sample in enumerate(samples):
        path = Path(sample.image)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror}); run yolov3 data check") from exc
        ext = path.suffix.lower().lstrip(".") or "jpg"
        labels = json.dumps(sample_labels(sample, root)).encode()
        yield {"__key__": f"{index:08d}", ext: data, "json": labels}


def write_split(samples: list[Sample], out: Path, split: str, shard_size: int,
                root: Path | None = None) -> list[ShardRef]:  # fmt: skip
    """Write ``samples`` as ``out/{split}-{n:06d}.tar`` shards of about ``shard_size`` bytes each."""
    import webdataset as wds  # it imports torch: `yolov3 data check --help` must not pay for it

    refs: list[ShardRef] = []
    records = _records(samples, root)
    pending = next(records, None)
    while pending is not None:
        name = f"{split}-{len(refs):06d}.tar"
        count, size = 0, 0
        with atomic_writer(out / name) as f:
            writer = wds.TarWriter(f, encoder=False, mtime=0.0)
            while pending is not None and (count == 0 or size < shard_size):
                writer.write(pending)
                size += sum(len(v) + 1024 for k, v in pending.items() if k != "__key__")  # + tar headers
                count += 1
                pending = next(records, None)
            writer.close()  # the tar's end blocks (the file itself is the atomic writer's to close)
        refs.append(ShardRef(name, count))
    return refs


def write_shards(spec: DatasetSpec, out: str | os.PathLike, shard_size: int = 1024**3,
                 splits: Iterable[str] = SPLITS, base_url: str | None = None) -> Path:  # fmt: skip
    """Write every non-empty split of ``splits`` as tar shards into ``out`` and ``out/shards.yaml``;
    return the yaml's path. ``base_url``: list the shards as ``{base_url}/{name}``."""
    out = make_dir(out, "shard folder (--out)")
    root = Path(spec.source).parent if spec.source else None
    doc: dict = {"format": SHARDS_FORMAT, "version": SHARDS_VERSION, "names": list(spec.names),
                 "nc": len(spec.names)}  # fmt: skip
    for split in splits:
        if split not in SPLITS:
            raise UserError(f"--splits: {split!r} is not one of {list(SPLITS)}")
        samples = getattr(spec, split)
        if not samples:
            continue
        refs = write_split(samples, out, split, shard_size, root)
        prefix = base_url.rstrip("/") + "/" if base_url else ""
        doc[split] = {"samples": sum(r.samples for r in refs),
                      "shards": [{"url": prefix + r.url, "samples": r.samples} for r in refs]}  # fmt: skip
    if not any(s in doc for s in SPLITS):
        raise UserError(f"{spec.source}: no sample in the splits {list(splits)}; nothing to write")
    path = out / "shards.yaml"
    with atomic_writer(path) as f:
        f.write(yaml.safe_dump(doc, sort_keys=False).encode())
    return path


__all__ = [
    "ShardError", "ShardRef", "ShardsConfig", "check_reachable", "is_shards_config", "parse_size",
    "read_shards_config", "write_shards",
]  # fmt: skip
