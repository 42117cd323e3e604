"""``yolov3.device``: the allocator setting the trainer makes on a CPU."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_is_accepted_by_glibc():
    """mallopt returns 0 for a parameter or value it does not take: both settings must be taken. In a
    fresh process, so that the test process's allocator is left alone."""
    code = "from yolov3.device import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
