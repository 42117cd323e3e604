"""The server's allocator settings (``yolov3.device.one_malloc_arena``, called by ``run_server`` with
``keep_freed_memory``): in a fresh process, threads that allocate large blocks get one malloc arena
with it and several without, as glibc's own ``malloc_info`` report counts them. The RSS they keep flat
under load is measured by ``benchmarks/bench_serve_soak.py``.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CHILD = r"""
import ctypes, sys, threading, time
from yolov3.device import keep_freed_memory, one_malloc_arena
if sys.argv[1] == "one":
    assert one_malloc_arena() and keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
barrier = threading.Barrier(6)

def work():
    barrier.wait()  # all alive at once, so glibc cannot hand one thread's arena to the next
    for size in (2**20, 3 * 2**20, 2**16):
        libc.free(libc.malloc(size))
    barrier.wait()

threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
f = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, f)
libc.fclose(f)
"""


def heaps(tmp_path, mode: str) -> int:
    report = tmp_path / f"{mode}.xml"
    subprocess.run([sys.executable, "-c", CHILD, mode, str(report)], check=True, timeout=120)
    return report.read_text().count("<heap nr=")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_one_arena_for_every_thread(tmp_path):
    assert heaps(tmp_path, "one") == 1
    assert heaps(tmp_path, "default") > 1  # one per thread, as a server had
