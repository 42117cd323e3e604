"""What the commands print besides their results: progress, notes, quiet mode, other libraries' chatter.

- ``Progress``: a redrawn tqdm bar when stderr is a terminal; otherwise (a log file, a pipe, CI) one
  plain line every ``LOG_INTERVAL`` seconds and one at the end, so a log holds lines, not redraws.
- ``note``: a one-line remark on stderr (``note: ...``), e.g. an input size other than the model's.
- ``set_quiet``: ``yolov3 -q``; progress and notes off for the process (warnings and errors stay).
- ``quiet_libraries``: the informational logging of NNCF, ONNX Runtime's quantizer and OpenVINO's
  converter goes to WARNING, so their INFO lines and advice do not reach the terminal.
- ``other_output``: a block whose library calls talk anyway (NNCF resets its logger when imported and
  draws its own progress bars on stdout; ONNX Runtime's quantizer logs advice on the root logger;
  torch warns about CUDA_HOME when NNCF imports its extension loader): their stdout and logging below
  ERROR are held back, and shown only if the block fails.

Imports nothing heavy: the command line uses it before torch is loaded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
LOG_INTERVAL = 10.0  # seconds between plain progress lines when stderr is not a terminal
QUIET_ENV = "YOLOV3_QUIET"  # set by `-q` so that worker processes (torchrun, loaders) stay quiet too
# Loggers of libraries whose INFO lines and advice are not for our users.
CHATTY_LOGGERS = ("nncf", "onnxruntime", "onnxruntime.quantization", "openvino", "root.quantization")


def set_quiet(quiet: bool = True) -> None:
    """Progress and notes off (on) for this process and the processes it starts."""
    if quiet:
        os.environ[QUIET_ENV] = "1"
    else:
        os.environ.pop(QUIET_ENV, None)


def is_quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


def is_terminal(stream: Any = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def note(message: str) -> None:
    """One line for the user on stderr, unless quiet."""
    if not is_quiet():
        print(f"note: {message}", file=sys.stderr, flush=True)


def quiet_libraries() -> None:
    """Other libraries' informational logging to WARNING (their warnings and errors still show)."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def other_output(*loggers: str) -> Iterator[None]:
    """Hold back stdout and the logging below ERROR of the root logger and ``loggers`` inside the block;
    print what was held back if the block raises (module docstring)."""
    held = io.StringIO()
    names = ["", *loggers]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(held):
            yield
    except BaseException:
        sys.stdout.write(held.getvalue())
        raise
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


class Progress:
    """Progress over ``total`` items (None: unknown): see the module docstring. ``enabled=False`` (or
    quiet) shows nothing; ``write`` prints a line above a bar, or plainly without one."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True,
                 initial: int = 0, interval: float = LOG_INTERVAL) -> None:  # fmt: skip
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.enabled = enabled and not is_quiet()
        self.n, self.postfix = initial, ""
        self._start = self._last = time.monotonic()
        self._start_n = self._shown = initial  # _shown: the count the last plain line gave
        self._bar, self._closed = None, False
        if self.enabled and is_terminal():
            from tqdm import tqdm  # only on a terminal

            self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=False,
                             dynamic_ncols=True)  # fmt: skip

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, counting each one."""
        try:
            for item in items:
                yield item
                self.update()
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and not self._closed and time.monotonic() - self._last >= self.interval:
            self._line()

    def set_postfix(self, values: dict[str, Any]) -> None:
        """``key=value`` fields shown after the count."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)

    def write(self, message: str) -> None:
        """A line for the log (above the bar on a terminal); shown even when the bar is disabled,
        but not when quiet."""
        if is_quiet():
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and not self._closed and self.n != self._shown:
            self._line()
        self._closed = True

    def _line(self) -> None:
        now = time.monotonic()
        self._last, self._shown = now, self.n
        rate = (self.n - self._start_n) / max(now - self._start, 1e-9)
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        tail = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done} {self.unit}{share}, {rate:.1f} {self.unit}/s{tail}", file=sys.stderr,
              flush=True)  # fmt: skip


__all__ = ["LOG_INTERVAL", "Progress", "is_quiet", "is_terminal", "note", "other_output", "quiet_libraries",
           "set_quiet"]
