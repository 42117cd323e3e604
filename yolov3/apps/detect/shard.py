"""One detection job spread over processes (``torchrun``) and resumable after a crash: shards, the
per-process partial files, the run manifest and the merge into the final files.

Layout inside the output folder::

    run.json                          the manifest: weights (path, size, SHA-256), settings, source, outputs
    .parts/r{rank}-a{attempt}.jsonl   one line per image / frame, appended and flushed as it is done
    .parts/done-r{rank}-a{attempt}.json   written by a rank when its shard is finished
    results.jsonl, coco_results.json  made by rank 0 from every part file, in source order

A part line is ``{"key": [file, frame], "id": stem number or null, "record": {...}, "coco": [...]}``
(``record``: ``Detections.to_json()`` plus ``frame`` for video frames, without ``image_id``; ``coco``:
its COCO entries without ``image_id``), ``{"key": ..., "path": ..., "error": ..., "label": ...}`` for a
skipped image / frame (``label``: ``ImageError.label``; "unreadable" when absent), or
``{"key": [file, END], "end": true}`` once a video is complete. ``file`` is the index
into the source's sorted file list, the same on every rank; rank ``r`` of ``N`` takes files
``r, r + N, r + 2N...`` (videos go whole to one rank), so each part file is sorted by key and the
merge is a streaming k-way merge whose memory does not grow with the number of images.

Image ids are given at the merge exactly as a one-process run gives them: the numeric file stem for
images named like ``000123.jpg``, else the running number of the record in source order.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolov3.distributed import DistInfo, broadcast_object, shard_indices
from yolov3.errors import UserError
from yolov3.files import atomic_writer, make_dir
from yolov3.infer.sources import Frame, Source, is_video_file

PARTS = ".parts"
MANIFEST = "run.json"
END = 1 << 62  # the frame number of a video's completion marker: after every real frame
_PART = re.compile(r"r(\d+)-a(\d+)\.jsonl")


def media_names(files: list[Path]) -> list[str]:
    """The annotated-output name of each file (``x.jpg``; ``clip.mp4`` for any video), made unique in
    source order (``x_2.jpg``), so every rank names its files as one process would."""
    used: set[str] = set()
    names = []
    for f in files:
        name = f"{f.stem}.mp4" if is_video_file(f) else f.name
        stem, suffix, n = Path(name).stem, Path(name).suffix, 2
        while name in used:
            name, n = f"{stem}_{n}{suffix}", n + 1
        used.add(name)
        names.append(name)
    return names


def file_digest(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "size", "sha256"}`` of a file (or ``{"path"}`` when it is not a file)."""
    path = Path(path)
    if not path.is_file():
        return {"path": str(path)}
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": h.hexdigest()}


def manifest_of(src: Source, settings: Any, outputs: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """What decides a run's files: ``model`` (weights digest, cfg, names, backend), the ``InferConfig``
    ``settings``, the source (its spec and a digest of its sorted file list) and the ``outputs`` asked."""
    listing = hashlib.sha256("\n".join(str(f) for f in src.files).encode()).hexdigest()
    source = {"spec": src.spec, "files": len(src.files), "list_sha256": listing}
    return {"model": model, "settings": json.loads(json.dumps(asdict(settings))), "source": source,
            "outputs": outputs}  # fmt: skip


def manifest_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``"settings.conf_threshold: 0.3 -> 0.5"`` for every leaf that differs."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += manifest_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


@dataclass
class RankReport:
    """What one rank (or the merge) did: counts, unreadable inputs, summed ms per stage."""

    processed: int = 0
    skipped: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (where, reason, label)
    ms_total: dict[str, float] = field(default_factory=dict)


def read_part(path: Path) -> Iterator[dict[str, Any]]:
    """The lines of a part file; a torn last line (the process was killed mid-write) is dropped."""
    with path.open() as f:
        for line in f:
            if not line.endswith("\n"):
                return
            yield json.loads(line)


def part_files(parts: Path) -> list[Path]:
    return sorted(p for p in parts.glob("r*-a*.jsonl") if _PART.fullmatch(p.name))


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    """The ``run.json`` of a run folder, or a ``UserError`` saying the folder holds no run."""
    path = Path(out) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"--resume {out}: no {MANIFEST} there, so not a folder written by `yolov3 detect`"
                        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"--resume {out}: {MANIFEST} cannot be read ({exc})") from exc


def done_keys(parts: Path) -> set[tuple[int, int]]:
    """Keys already written in ``parts`` (``(file, END)`` marks a complete video)."""
    return {(row["key"][0], row["key"][1]) for p in part_files(parts) for row in read_part(p)}


class Job:
    """This rank's part of a run in ``out``: which frames to do, where to append them, and (rank 0)
    the merge once every rank is done. ``resume``: keep the parts of an earlier run with the same
    manifest and skip what they hold; otherwise start afresh (earlier parts are removed)."""

    def __init__(
        self, out: Path, src: Source, info: DistInfo, manifest: dict[str, Any], resume: bool
    ) -> None:
        if src.whole and (resume or info.enabled):
            raise UserError(f"{src.spec}: a webcam, a stream or an image URL can be neither resumed nor "
                            "split over processes")  # fmt: skip
        self.out, self.src, self.info = out, src, info
        self.parts = out / PARTS
        status = self._prepare(manifest, resume) if info.is_main else None
        status = broadcast_object(status, info)
        if isinstance(status, str):
            raise UserError(status)
        self.attempt: int = status
        self.done = done_keys(self.parts) if resume else set()
        self.file = (self.parts / f"r{info.rank}-a{self.attempt}.jsonl").open("a")

    def _prepare(self, manifest: dict[str, Any], resume: bool) -> int | str:
        """Rank 0: check or write the manifest; the attempt number, or an error message for all."""
        path = self.out / MANIFEST
        if resume:
            try:
                diff = manifest_differences(read_manifest(self.out), manifest)
            except UserError as exc:
                return str(exc)
            if diff:
                return (f"--resume {self.out}: that run used other inputs or settings; " + "; ".join(diff)
                        + ". Use another --out, or the same weights and settings")  # fmt: skip
            make_dir(self.parts, "partial results folder")  # deleted by hand: everything is redone
            attempts = [int(_PART.fullmatch(p.name).group(2)) for p in part_files(self.parts)]
            return max(attempts, default=-1) + 1
        if self.parts.exists():
            shutil.rmtree(self.parts)
        make_dir(self.parts, "partial results folder")
        with atomic_writer(path) as f:
            f.write(json.dumps(manifest, indent=1).encode())
        return 0

    def frames(self) -> Iterator[tuple[tuple[int, int], Frame]]:
        """``(key, frame)`` of this rank's shard in source order, less what is already done."""
        if self.src.whole:
            for frame in self.src:
                yield (0, frame.index), frame
            return
        files = self.src.files
        for i in shard_indices(len(files), self.info):
            if self._is_done(i):
                continue
            video = is_video_file(files[i])
            for frame in Source(self.src.spec, [files[i]]):
                yield (i, frame.index), frame
            if video:
                self.write({"key": [i, END], "end": True})

    def _is_done(self, i: int) -> bool:
        """An image is done once written; a video only once complete (one cut off by a crash is redone
        whole, so that its annotated .mp4 is whole)."""
        return (i, END if is_video_file(self.src.files[i]) else 0) in self.done

    def expected(self) -> int:
        """Frames this rank will do (video lengths as their headers state)."""
        files = self.src.files
        if self.src.whole:
            return len(self.src)
        own = [files[i] for i in shard_indices(len(files), self.info)
               if not self._is_done(i)]  # fmt: skip
        return len(Source(self.src.spec, own)) if own else 0

    def write(self, row: dict[str, Any]) -> None:
        """Append one part line and flush it, so a killed process loses only the image in flight."""
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def finish(self, mine: RankReport, wait_s: float = 0.5) -> tuple[RankReport, RankReport] | None:
        """Close this rank's part; rank 0 waits for every rank's done file, merges, and returns what the
        run's folder now holds (the merged counts and unreadable inputs) and what this attempt did over
        all ranks (its counts and summed ms per stage); other ranks return None."""
        self.file.close()
        with atomic_writer(self.parts / f"done-r{self.info.rank}-a{self.attempt}.json") as f:
            f.write(json.dumps(asdict(mine)).encode())
        if not self.info.is_main:
            return None
        reports = []
        for r in range(self.info.world_size):  # no collective here: shards may take hours apart
            done = self.parts / f"done-r{r}-a{self.attempt}.json"
            while not done.is_file():
                time.sleep(wait_s)
            reports.append(RankReport(**json.loads(done.read_text())))
        merged = merge_parts(part_files(self.parts), self.out)
        attempt = RankReport(sum(r.processed for r in reports), sum(r.skipped for r in reports),
                             [e for r in reports for e in r.errors])  # fmt: skip
        for k in {k for r in reports for k in r.ms_total}:
            attempt.ms_total[k] = sum(r.ms_total.get(k, 0.0) for r in reports)
        return merged, attempt


def merge_parts(parts: list[Path], out: Path) -> RankReport:
    """Every part file -> ``out/results.jsonl`` and ``out/coco_results.json`` in key order (each part
    is sorted, so this streams); a key written twice (a resumed video) counts once. Returns the counts
    and the unreadable inputs, in source order."""
    report = RankReport()
    rows = heapq.merge(*(read_part(p) for p in parts), key=lambda row: tuple(row["key"]))
    last, count, first_coco = None, 0, True
    with atomic_writer(out / "results.jsonl") as jf, atomic_writer(out / "coco_results.json") as cf:
        cf.write(b"[")
        for row in rows:
            key = tuple(row["key"])
            if key == last or row.get("end"):
                continue
            last = key
            if "error" in row:
                report.skipped += 1
                report.errors.append((row["path"], row["error"], row.get("label", "unreadable")))
                continue
            count += 1
            report.processed += 1
            image_id = row["id"] if row["id"] is not None else count
            jf.write((json.dumps({"image_id": image_id, **row["record"]}) + "\n").encode())
            for entry in row["coco"]:
                cf.write(
                    ((", " if not first_coco else "") + json.dumps({"image_id": image_id, **entry})).encode()
                )
                first_coco = False
        cf.write(b"]")
    return report


class StreamJob:
    """The job of a run that writes as it goes in one process, with nothing to shard or resume (a live
    source, ``yolov3 track``): the rows ``Writers`` hands over go straight to ``out/results.jsonl``
    (flushed per frame), with the image ids a merge would give, and to ``out/coco_results.json`` at
    ``close``."""

    def __init__(self, out: Path) -> None:
        self.out, self.src = out, Source(str(out), [])
        self.jsonl = (out / "results.jsonl").open("w")
        self.coco: list[dict[str, Any]] = []
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        self.count += 1
        image_id = row["id"] if row.get("id") is not None else self.count
        self.jsonl.write(json.dumps({"image_id": image_id, **row["record"]}) + "\n")
        self.jsonl.flush()
        self.coco += [{"image_id": image_id, **entry} for entry in row["coco"]]

    def close(self) -> None:
        self.jsonl.close()
        with atomic_writer(self.out / "coco_results.json") as f:
            f.write(json.dumps(self.coco).encode())
