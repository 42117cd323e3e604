"""The files of a tracking run: ``yolov3.apps.detect.runner.Writers`` (annotated media, ``results.jsonl``,
``coco_results.json``) plus one MOTChallenge results file per sequence, ``mot/<sequence>.txt``.

Annotated frames go where their source's layout says (``yolov3.apps.track.sequences``): a plain
source's into the output folder as ``yolov3 detect`` writes them (``clip.mp4``, ``000001.jpg``), a
MOTChallenge sequence's into a folder of its own, ``<sequence>/000001.jpg``, so that the frames of two
sequences, named alike, do not overwrite each other. The JSON results of all go to one pair of files;
frames of MOTChallenge sequences get running image ids there (their file names repeat across
sequences), every record carries its ``sequence`` and 0-based ``frame``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TextIO

from yolov3.apps.detect.runner import SaveOptions, Writers
from yolov3.apps.detect.shard import StreamJob
from yolov3.apps.track.results import TrackedDetections
from yolov3.files import make_dir
from yolov3.infer.sources import Frame


class _RunningIds:
    """A job passing rows on to ``job`` without the file-name image id, so the image ids are the
    running number of the frame in the run."""

    def __init__(self, job: StreamJob) -> None:
        self.job, self.src = job, job.src

    def write(self, row: dict[str, Any]) -> None:
        self.job.write({**row, "id": None})


class TrackWriters:
    """Every output file of a tracking run into ``out`` (module docstring)."""

    def __init__(self, out: Path, save: SaveOptions, names: list[str]) -> None:
        self.out, self.save, self.names = out, save, names
        self.stream = StreamJob(out)
        self.media: dict[str | None, Writers] = {}  # folder under out (None: out itself) -> its writers
        self.mot: dict[str, TextIO] = {}

    def _writers(self, folder: str | None) -> Writers:
        if folder not in self.media:
            if folder is None:
                self.media[None] = Writers(self.out, self.save, self.names, self.stream)
            else:
                where = self.out / folder
                if self.save.media or self.save.txt:
                    make_dir(where, "annotated sequence folder")
                self.media[folder] = Writers(where, self.save, self.names, _RunningIds(self.stream))
        return self.media[folder]

    def add_track(self, r: TrackedDetections, frame: Frame, sequence: str, folder: str | None = None) -> None:
        """One frame's tracks: a MOTChallenge line per track in ``mot/<sequence>.txt``, the frame to
        ``Writers`` (into ``out/<folder>`` when given)."""
        if sequence not in self.mot:
            make_dir(self.out / "mot", "MOT results folder")
            self.mot[sequence] = (self.out / "mot" / f"{sequence}.txt").open("w")
        self.mot[sequence].writelines(line + "\n" for line in r.mot_lines())
        self.mot[sequence].flush()
        key = (0, self.stream.count)  # frames in arrival order
        # a plain source's video is written as its sequence, whose name is unique in the run: two
        # videos named alike (clip.mp4, clip.mov) become clip.mp4 and clip_2.mp4, not one file twice
        name = f"{sequence}.mp4" if folder is None and frame.fps is not None else None
        # a copy: ``add`` drops the image, the caller keeps it
        self._writers(folder).add(dataclasses.replace(r), frame, key, name)

    def close(self) -> None:
        for f in self.mot.values():
            f.close()
        for w in self.media.values():
            w.close_video()
        self.stream.close()


__all__ = ["TrackWriters"]
