"""Shared test set-up: small thread pools (two xdist workers share 2 cores) and the shared/ paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "darknet"


@pytest.fixture(scope="session")
def darknet_dir() -> Path:
    """Darknet's cfg files, class names and sample photos (../shared/darknet); skip if absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    return SHARED


@pytest.fixture(autouse=True)
def _loud(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with quiet mode off: ``-q`` (``console.set_quiet``) sets an environment variable
    for the process and the workers it starts, so a test that ran a command with ``-q`` earlier in the
    same pytest worker would silence the next test's progress and notes."""
    monkeypatch.delenv("YOLOV3_QUIET", raising=False)
