"""Reading the data set in a forked child while train imports torch (``yolov3.data.prefetch``).

The reference is ``load_dataset`` run in this process: what the child sends back must give the same
samples and load report, through the index and without it. A child that fails gives None, so the
caller's own load raises the error as it would have; a child never taken is stopped at exit. And
``yolov3 train`` must start the child before it imports torch, or it overlaps nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolov3.data import prefetch
from yolov3.data.dataset_config import load_dataset
from yolov3.data.formats.common import LabelError
from yolov3.data.formats.yolo_index import INDEX_MIN_ENV
from yolov3.data.index import PackedSamples
from yolov3.engine import builders

_real_forkable = prefetch._forkable


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """12 train images in two folders (one label sticks out: clipped, a warning; one has none), 3 val.
    ``start`` forks beside the idle threads earlier tests in this process may have left (it refuses
    to beside any thread, which ``test_nothing_is_started...`` checks with the real test)."""
    monkeypatch.setattr(prefetch, "_forkable", lambda: True)
    for split, n in (("train", 12), ("val", 3)):
        for i in range(n):
            img = tmp_path / "images" / split / f"d{i % 2}" / f"{i:02d}.jpg"
            img.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(img), np.full((24 + 8 * (i % 3), 40, 3), 10 * i, np.uint8))
            if i == 4:
                continue
            lbl = tmp_path / "labels" / split / f"d{i % 2}" / f"{i:02d}.txt"
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text(f"{i % 2} 0.5 0.5 0.3 0.4\n" + ("1 0.95 0.5 0.2 0.2\n" if i == 7 else ""))
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    return tmp_path / "data.yaml"


def _view(spec) -> tuple:
    rows = [
        (s.image, s.width, s.height, s.boxes.tolist(), s.classes.tolist()) for s in [*spec.train, *spec.val]
    ]
    r = spec.report
    return rows, spec.names, r.summary(), [str(p) for p in r.problems], r.no_label_file, r.clipped


@pytest.mark.parametrize("indexed", [True, False])
def test_the_childs_data_set_equals_one_read_here(data, monkeypatch, indexed):
    monkeypatch.setenv(INDEX_MIN_ENV, "1" if indexed else str(10**12))
    ref = load_dataset(data)  # (builds the indexes, which the child then maps)
    prefetch.start(data)
    got = prefetch.take(str(data))  # another spelling of the same path
    assert isinstance(got.train, PackedSamples) == indexed
    assert _view(got) == _view(ref) and got.report.clipped == 1 and got.report.no_label_file == 1
    assert prefetch.take(data) is None  # taken once
    for _ in range(200):  # and the child, once it has exited, is collected (no zombie left)
        prefetch._reap()
        if not prefetch._exited:
            break
        time.sleep(0.05)
    assert not prefetch._exited


def test_a_failing_child_gives_none_and_the_callers_load_raises(data, monkeypatch):
    monkeypatch.setenv(INDEX_MIN_ENV, "1")
    (data.parent / "labels" / "train" / "d0" / "02.txt").write_text("0 0.5 0.5\n")  # 3 fields
    prefetch.start(data)
    assert prefetch.take(data) is None
    prefetch.start(data)
    with pytest.raises(LabelError, match=r"02.txt:1"):
        builders.load_spec(str(data))


def test_load_spec_takes_the_childs_data_set(data, monkeypatch):
    prefetch.start(data)
    read_here = []
    monkeypatch.setattr(builders, "load_dataset", lambda path: read_here.append(path))
    spec = builders.load_spec(str(data))
    assert read_here == [] and len(spec.train) == 12


def test_a_child_never_taken_is_stopped_at_exit(data):
    prefetch.start(data)
    ((pid, _),) = prefetch._pending.values()
    prefetch._discard()
    assert not prefetch._pending
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no such child any more


def test_nothing_is_started_for_a_missing_file_shards_or_beside_another_thread(tmp_path, data, monkeypatch):
    prefetch.start(tmp_path / "nope.yaml")
    (tmp_path / "shards.yaml").write_text("format: yolov3-shards\n")
    prefetch.start(tmp_path / "shards.yaml")
    monkeypatch.setattr(prefetch, "_forkable", _real_forkable)  # the real test, not the fixture's
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        prefetch.start(data)  # a fork now could copy a lock that thread holds
    finally:
        stop.set()
        other.join()
    assert not prefetch._pending


def test_train_starts_the_child_before_importing_torch(data):
    code = (
        "import sys\n"
        "from yolov3.data import prefetch\n"
        "def start(path):\n"
        "    print('torch' in sys.modules, path)\n"
        "    raise SystemExit(0)\n"
        "prefetch.start = start\n"
        "from yolov3.cli import main\n"
        f"main(['train', '--data', {str(data)!r}, '--epochs', '1'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", str(data)]
