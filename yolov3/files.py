"""Writing files and folders safely: one atomic writer, folders whose errors name them, run folders.

Every file a reader may see half-written (checkpoints, exported models, Darknet ``.weights``) goes
through ``atomic_writer``: a temporary file beside the target, flushed and fsync'ed, then renamed over
it, so a crash, a full disk or Ctrl-C leaves either the old file or the new one, never a torn one.
The file gets the mode a plain ``open(path, "w")`` would give (0666 less the user's umask), not the
temporary file's private 0600.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from yolov3.errors import UserError


class WriteError(UserError):
    """A file or folder that cannot be written; the message names it and says why."""


def _reason(exc: OSError) -> str:
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return "a file is in the way of a folder on that path"
    return exc.strerror or str(exc)


def make_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create folder ``path`` (and its parents) or raise ``WriteError`` naming it; ``what`` says what
    the folder is for."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create the {what} {path}: {_reason(exc)}") from exc
    return path


def writable_dir(path: str | os.PathLike, what: str) -> Path:
    """``make_dir``, then prove that a file can be written there (permissions, read-only mounts)."""
    path = make_dir(path, f"{what} folder")
    probe = path / ".write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WriteError(f"cannot write the {what} folder {path} ({_reason(exc)}); choose another place "
                         "(see --help) or fix its permissions") from exc  # fmt: skip
    return path


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only if the block finishes (see the module
    docstring). An ``OSError`` (unwritable folder, full disk) becomes ``WriteError`` naming ``path``;
    whatever was at ``path`` before is untouched, and the temporary file is removed."""
    path = Path(path)
    tmp = None
    try:
        make_dir(path.parent, "folder")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {_reason(exc)}; what was there before (if anything) is "
                         "intact") from exc  # fmt: skip
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def umask() -> int:
    """This process's umask, read without changing it where Linux shows it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and put back at once
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def next_run_dir(project: str | os.PathLike, name: str = "exp", exist_ok: bool = False,
                 create: bool = True) -> Path:  # fmt: skip
    """``project/name``; when it exists and not ``exist_ok``, the first free of ``name2``, ``name3``...
    (a trailing number of ``name`` is replaced, so ``exp2`` is followed by ``exp3``). Created unless
    ``create`` is False (a caller that writes nothing before its inputs are checked)."""
    base = Path(project)
    path = base / name
    if path.exists() and not exist_ok:
        stem, n = re.sub(r"\d+$", "", name) or name, 2
        while (base / f"{stem}{n}").exists():
            n += 1
        path = base / f"{stem}{n}"
    return make_dir(path, "run folder") if create else path


__all__ = ["WriteError", "atomic_writer", "make_dir", "next_run_dir", "umask", "writable_dir"]
