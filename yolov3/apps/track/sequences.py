"""What ``yolov3 track SOURCE`` tracks as one sequence: a new tracker for each, and each named for its
MOTChallenge results file (``mot/<name>.txt``).

MOTChallenge layout (what ``yolov3 data synth --video`` writes)::

    ROOT/<name>/img1/000001.jpg ...   the frames; another folder when seqinfo.ini's ``imDir`` says so
    ROOT/<name>/seqinfo.ini           optional: ``frameRate`` (else 30 fps), ``imDir``
    ROOT/<name>/gt/gt.txt             optional: the ground truth ``yolov3 track --eval`` scores against

A folder is a *sequence* when it holds its image folder (``img1`` or ``imDir``). SOURCE may be a
ROOT (a folder with sequences among its subfolders: each is tracked in name order and nothing else in
the root is, e.g. ``videos/`` beside them), one sequence folder, or its image folder; the sequence is
named after its folder (``seq-00``, also for ``seq-00/img1``). A frame's number is the number in its
file name when every name is a distinct number from 1 (``000001.jpg`` is frame 1, as in ``gt.txt``),
else its place in name order; an unreadable or missing frame does not shift the others.

Anything else is a plain source, as ``yolov3.infer.sources`` and ``yolov3.infer.stream`` read it:
each video or stream is a sequence named after its file (``clip.mp4`` -> ``clip``; a second
``clip.mp4`` elsewhere -> ``clip_2``), and a folder or glob of images is one sequence named after
the folder, its frames numbered in name order.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from yolov3.data.images import ImageError, is_image_file, list_images, read_image
from yolov3.errors import UserError
from yolov3.infer.sources import Frame, is_video_file

IMAGE_DIR = "img1"  # MOTChallenge's image folder, unless seqinfo.ini's imDir names another
DEFAULT_FPS = 30.0  # the frame rate of a sequence whose seqinfo.ini does not give one


@dataclass(frozen=True)
class Sequence:
    """One MOTChallenge sequence: ``name`` (its folder's), ``folder``, its ``images`` in name order,
    ``numbers`` (each image's 0-based frame number), ``frame_rate`` (fps) and ``gt`` (the ground
    truth file, None when there is none)."""

    name: str
    folder: Path
    images: tuple[Path, ...]
    numbers: tuple[int, ...]
    frame_rate: float
    gt: Path | None


@dataclass
class SequenceFrame:
    """A ``Frame`` with the sequence it belongs to: ``sequence`` (its name), ``number`` (0-based, in
    its sequence), ``frame_rate`` (fps) and ``folder``: the subfolder of the output folder for its
    annotated image (a MOTChallenge sequence's name), or None to write it into the output folder."""

    frame: Frame
    sequence: str
    number: int
    frame_rate: float
    folder: str | None = None


def safe_name(text: str, fallback: str = "images") -> str:
    """``text`` with anything but letters, digits, ``.`` and ``-`` as ``_`` (a file name part)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or fallback


def read_seqinfo(path: Path) -> dict[str, str]:
    """The ``[Sequence]`` keys of a ``seqinfo.ini`` (lower-case), ``{}`` when there is no file."""
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable seqinfo.ini ({exc})") from None
    return dict(parser["Sequence"]) if parser.has_section("Sequence") else {}


def image_dir(folder: Path) -> Path:
    """Where a sequence folder keeps its frames: ``imDir`` of its seqinfo.ini, else ``img1``."""
    return folder / read_seqinfo(folder / "seqinfo.ini").get("imdir", IMAGE_DIR)


def is_sequence(folder: Path) -> bool:
    return folder.is_dir() and image_dir(folder).is_dir()


def load_sequence(folder: Path) -> Sequence:
    """The ``Sequence`` in ``folder`` (a sequence folder); ``UserError`` if it has no frames or its
    frame rate is not a positive number."""
    info = read_seqinfo(folder / "seqinfo.ini")
    rate = info.get("framerate")
    try:
        fps = float(rate) if rate is not None else DEFAULT_FPS
    except ValueError:
        fps = -1.0
    if not fps > 0:
        raise UserError(f"{folder / 'seqinfo.ini'}: frameRate={rate!r}; expected frames a second, > 0")
    images = tuple(list_images(image_dir(folder), recursive=False))
    if not images:
        raise UserError(f"{image_dir(folder)}: no images in this sequence's image folder")
    stems = [p.stem for p in images]
    named = [int(s) for s in stems] if all(s.isdigit() for s in stems) else []
    usable = named and min(named) >= 1 and len(set(named)) == len(named)  # 1-based, one file a frame
    numbers = [n - 1 for n in named] if usable else range(len(images))
    gt = folder / "gt" / "gt.txt"
    return Sequence(safe_name(folder.name, "sequence"), folder, images, tuple(numbers), fps,
                    gt if gt.is_file() else None)  # fmt: skip


def find_sequences(spec: str | os.PathLike | int) -> list[Sequence] | None:
    """The MOTChallenge sequences ``spec`` names (a root, a sequence folder or its image folder; module
    docstring), in name order; None when ``spec`` is not in that layout (a plain source)."""
    path = Path(str(spec))
    if not path.is_dir():
        return None
    parent = path.resolve().parent
    if is_sequence(parent) and image_dir(parent).resolve() == path.resolve():
        return [load_sequence(parent)]  # seq-00/img1: the sequence seq-00
    if is_sequence(path):
        return [load_sequence(path)]
    subfolders = [d for d in sorted(path.iterdir()) if not d.name.startswith(".")]
    return [load_sequence(d) for d in subfolders if is_sequence(d)] or None


def untracked_media(root: Path, sequences: list[Sequence]) -> list[Path]:
    """Images and videos under ``root`` outside every sequence's folder (what a root's
    ``videos/`` holds): they are not tracked."""
    inside = {s.folder.resolve() for s in sequences}
    out = []
    for entry in sorted(root.iterdir()):
        if entry.resolve() in inside:
            continue
        for p in [entry] if entry.is_file() else sorted(entry.rglob("*")):
            if p.is_file() and (is_video_file(p) or is_image_file(p)):
                out.append(p)
    return out


def sequence_frames(sequences: Iterable[Sequence]) -> Iterator[SequenceFrame]:
    """Every frame of each sequence in turn, read as RGB (an unreadable one with ``error`` set)."""
    for s in sequences:
        for path, number in zip(s.images, s.numbers):
            try:
                frame = Frame(str(path), read_image(path))
            except ImageError as exc:
                frame = Frame(str(path), error=exc.reason)
            yield SequenceFrame(frame, s.name, number, s.frame_rate, s.name)


def plain_frames(frames: Iterable[Frame], spec: str) -> Iterator[SequenceFrame]:
    """The frames of a plain source (module docstring) with their sequence: each video / stream (by
    its path) is one, named after it; the images are one, named after ``spec``."""
    names: dict[str, str] = {}  # a video's path -> its sequence name, unique in the run
    count = 0  # images read so far: the frame number of the next
    for frame in frames:
        if frame.fps is None and frame.index >= 0:
            key = spec
            name = names.get(key) or safe_name(Path(str(spec).rstrip("/")).name)  # a glob's name too
        else:
            key = frame.path
            name = names.get(key) or Path(frame.path).stem.replace(":", "")  # webcam:0 -> webcam0
        if key not in names:
            base, n = name, 2
            while name in names.values():
                name, n = f"{base}_{n}", n + 1
            names[key] = name
        number = frame.index if frame.fps is not None else count
        count += frame.fps is None and frame.image is not None
        yield SequenceFrame(frame, names[key], number, frame.fps or DEFAULT_FPS)


__all__ = [
    "DEFAULT_FPS", "IMAGE_DIR", "Sequence", "SequenceFrame", "find_sequences", "load_sequence",
    "plain_frames", "safe_name", "sequence_frames", "untracked_media",
]  # fmt: skip
