"""Reading a data set in a forked child while the parent imports torch and builds its model.

``yolov3 train --data D`` spends its first seconds importing torch, on one core. ``start(D)``, called
before those imports, forks a child that runs ``load_dataset(D)`` meanwhile (on a million-image
folder: listing and ``stat``-ing two million files to check the split index, ``yolov3.data.index``);
``take(D)`` later returns what it read, or None when nothing was started for ``D`` or the child
failed: the caller then loads it itself, so an error is raised (and worded) as without a child.

The data set comes back through a pipe as a protocol-5 pickle whose arrays travel out of band and
are rebuilt in place, without a second copy. It is written by this process's own child and read
once, never stored: not the untrusted pickle the project refuses to load from files.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import struct
import sys
import threading

import numpy as np

from yolov3.data import index
from yolov3.data.dataset_config import DatasetSpec, load_dataset
from yolov3.data.shards import is_shards_config

_LEN = struct.Struct("<Q")
_pending: dict[str, tuple[int, int]] = {}  # absolute data path -> (child pid, read end of its pipe)
_exited: list[int] = []  # children whose data set was taken, not yet collected


def start(path: str | os.PathLike) -> None:
    """Begin ``load_dataset(path)`` in a forked child (nothing when one is running for it, where
    ``os.fork`` is missing, or when this process has other threads). Call it before importing torch:
    the child needs none of it."""
    key = os.path.abspath(path)
    if key in _pending or not hasattr(os, "fork") or not os.path.isfile(path) or is_shards_config(path):
        return  # a missing file is load_dataset's error to word; shards are streamed, not read ahead
    if not _forkable():
        return
    _reap()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else the child would write the parent's buffered output a second time
    read_end, write_end = os.pipe()
    try:  # a 1 MB pipe: 16x fewer hand-overs between the two processes for 100 MB of arrays
        import fcntl

        fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass  # the default pipe: slower, the same bytes
    pid = os.fork()
    if pid == 0:  # the child: load, send, and leave without running the parent's exit handlers
        os.close(read_end)
        try:
            _send(write_end, path)
        finally:
            os._exit(0)
    os.close(write_end)
    if not _pending:
        atexit.register(_discard)
    _pending[key] = (pid, read_end)


def _forkable() -> bool:
    """No other thread runs: one might hold a lock (stdout's, say) that the child would wait on forever."""
    return threading.active_count() == 1


def _send(fd: int, path: str | os.PathLike) -> None:
    index.MAP_FILES = True  # a 125 MB index read into fresh memory costs this VM 0.2-0.7 s of page faults
    try:
        buffers: list[pickle.PickleBuffer] = []
        head = pickle.dumps(load_dataset(path), protocol=5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
    except BaseException:  # the parent loads it itself and reports whatever went wrong
        head, raws = b"", []
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    with open(fd, "wb") as out:
        out.write(_LEN.pack(len(raws)) + b"".join(_LEN.pack(r.nbytes) for r in raws) + _LEN.pack(len(head)))
        out.write(head)
        for r in raws:
            out.write(r)


def take(path: str | os.PathLike) -> DatasetSpec | None:
    """What the child started for ``path`` read (waiting for it), or None."""
    got = _pending.pop(os.path.abspath(path), None)
    if got is None:
        return None
    pid, fd = got
    try:
        with open(fd, "rb", buffering=0) as f:
            (count,) = _LEN.unpack(_read(f, _LEN.size))
            table = _read(f, _LEN.size * count)
            sizes = [_LEN.unpack_from(table, k * _LEN.size)[0] for k in range(count)]
            (head_size,) = _LEN.unpack(_read(f, _LEN.size))
            head = _read(f, head_size).tobytes()
            buffers = [_read(f, n) for n in sizes]
    except (OSError, EOFError):
        head = b""
    finally:  # not waited for: a child of a few hundred MB takes a while to exit
        _exited.append(pid)
        _reap()
    return pickle.loads(head, buffers=buffers) if head else None


def _reap() -> None:
    """Collect the children in ``_exited`` that have exited (the others stay listed)."""
    for pid in list(_exited):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _exited.remove(pid)


def _read(f, size: int) -> np.ndarray:  # noqa: ANN001 (an unbuffered binary file)
    buf = np.empty(size, np.uint8)  # NumPy asks for huge pages: 4x fewer page faults than a bytearray
    view, done = memoryview(buf), 0
    while done < size:
        n = f.readinto(view[done:])
        if not n:
            raise EOFError(f"the child's data set ended after {done} of {size} bytes")
        done += n
    return buf


def _discard() -> None:
    """Stop children whose data set was never taken (the run ended before it needed it)."""
    for pid, fd in _pending.values():
        os.close(fd)
        try:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        except OSError:
            pass
    _pending.clear()
