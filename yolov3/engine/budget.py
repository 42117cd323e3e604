"""Training on a clock (``--time``) and stopping when validation stops improving (``--patience``).

``Budget`` holds a wall-clock budget for the whole run, validation and the final checkpoint included.
The trainer asks it three things: how far through its training time the run is (the learning-rate
schedule anneals on that fraction as well as on the step count, whichever is further, so the lr
reaches its end value at the deadline whatever the machine's speed); whether to stop now (the time
left no longer covers one more step plus the last validation and checkpoint); and whether an
intermediate validation fits (all validations together take at most ``VAL_SHARE`` of the budget; the
last one always runs). The clock is injectable, so tests drive it without sleeping. The time used is
saved in every checkpoint: a resumed run continues the same budget.

``Patience`` counts validations without a better mAP@0.5.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

VAL_SHARE = 0.15  # of the budget, for all intermediate validations together
SAFETY = 1.25  # times the longest validation / checkpoint measured, kept in reserve


class Budget:
    """``seconds`` for the whole run (0: no budget); ``used`` seconds spent by earlier processes of
    the run; ``clock``: monotonic seconds. All times below are "time used by the run", in seconds."""

    def __init__(
        self, seconds: float, used: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = float(seconds)
        self.clock = clock
        self._before = float(used)
        self._start = clock()
        self.warm_end: float | None = None  # time used when the warmup steps were done
        self.val_spent = 0.0  # intermediate validations so far, this process
        self.longest_val = 0.0
        self.longest_save = 0.0
        self.step_seconds = 0.0  # the slowest recent optimiser step

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def used(self) -> float:
        return self._before + self.clock() - self._start

    def val_estimate(self, images: int, batch: int) -> float:
        """Seconds a validation of ``images`` is expected to take before one was timed: each at half
        the time of a training image (inference only), plus a few seconds to set up; 0 without images."""
        return 3.0 + 0.5 * self.step_seconds / max(batch, 1) * images if images else 0.0

    def reserve(self, val_estimate: float) -> float:
        """Time kept for the last validation (measured, else ``val_estimate``) and the checkpoints."""
        return SAFETY * (max(self.longest_val, val_estimate) + 2 * self.longest_save) + self.step_seconds

    def progress(self, val_estimate: float) -> float:
        """Fraction of the training time after warmup that will have been used at the end of the
        step about to run (0 before warmup ends; 1 for the last step before only the reserve is left,
        so that step runs at the schedule's end value)."""
        if not self.enabled or self.warm_end is None:
            return 0.0
        end = self.seconds - self.reserve(val_estimate)
        span = max(end - self.warm_end, 1e-9)
        return min(max((self.used() + self.step_seconds - self.warm_end) / span, 0.0), 1.0)

    def must_stop(self, val_estimate: float) -> bool:
        return self.enabled and self.used() + self.reserve(val_estimate) >= self.seconds

    def may_validate(self, val_estimate: float) -> bool:
        """An intermediate validation fits: all of them together stay within ``VAL_SHARE``."""
        if not self.enabled:
            return True
        cost = max(self.longest_val, val_estimate)
        return self.val_spent + cost <= VAL_SHARE * self.seconds and not self.must_stop(val_estimate + cost)

    @contextlib.contextmanager
    def timing(self, kind: str) -> Iterator[None]:
        """Measure a ``validation``, a ``save`` or a ``step``; what was measured sets the reserve."""
        t0 = self.clock()
        yield
        spent = self.clock() - t0
        if kind == "validation":
            self.val_spent += spent
            self.longest_val = max(self.longest_val, spent)
        elif kind == "save":
            self.longest_save = max(self.longest_save, spent)
        else:
            self.step_seconds = spent if spent > self.step_seconds else 0.9 * self.step_seconds + 0.1 * spent


@dataclass
class Patience:
    """Stop after ``limit`` validations in a row without a better mAP@0.5 (``limit`` 0: never)."""

    limit: int = 0
    best: float = -1.0
    best_epoch: int = 0
    stale: int = 0

    def update(self, map50: float | None, epoch: int) -> bool:
        """Record one validation's mAP@0.5; True when the run should stop."""
        if map50 is None:
            return False
        if map50 > self.best:
            self.best, self.best_epoch, self.stale = map50, epoch, 0
        else:
            self.stale += 1
        return self.limit > 0 and self.stale >= self.limit


__all__ = ["SAFETY", "VAL_SHARE", "Budget", "Patience"]
