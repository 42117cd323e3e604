"""The split index (``yolov3.data.index``, ``yolov3.data.formats.yolo_index``) against the plain YOLO reader.

The independent reference is a fresh read by the format's own reader (the index turned off with
``$YOLOV3_INDEX_MIN``): after adding, deleting or editing a label file or an image, the indexed split
must give the same samples (paths, sizes, boxes, classes, dtypes) and the same load report, and only
the changed rows may be read again. Also: a torn index is rebuilt with a note, two processes building
at once leave a whole index, an index of a newer version is a clear error, and training from the
index gives the same first-batch loss as training from the list.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from yolov3.data import index as index_mod
from yolov3.data.check import check_dataset
from yolov3.data.dataset_config import load_dataset
from yolov3.data.formats import yolo_index as index_build
from yolov3.data.formats import yolo_scan
from yolov3.data.formats.common import LabelError
from yolov3.data.formats.yolo import label_path_for
from yolov3.data.formats.yolo_index import INDEX_MIN_ENV
from yolov3.data.images import list_images
from yolov3.data.index import INDEX_SUFFIX, IndexVersionError, PackedSamples, index_path_for, read_index

N = 24


def _image(path: Path, w: int, h: int, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def _label(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A YOLO set of ``N`` train images in two folders (sizes vary; one without a label file, one
    with a box sticking out, one empty label file, a PNG, a JPEG turned by its EXIF orientation) and
    4 val images; indexed from 1 image up."""
    monkeypatch.setenv(INDEX_MIN_ENV, "1")
    for i in range(N):
        sub = f"d{i % 2}"
        _image(tmp_path / "images" / "train" / sub / f"{i:03d}.jpg", 32 + 8 * (i % 3), 40, i)
        if i == 5:
            continue  # no label file: a negative, counted in the report
        text = "" if i == 7 else f"{i % 3} 0.5 0.5 0.25 0.5\n1 0.3 0.4 0.1 0.2\n"
        if i == 9:
            text += "2 0.95 0.5 0.2 0.2\n"  # sticks out: clipped, with a warning
        _label(tmp_path / "labels" / "train" / sub / f"{i:03d}.txt", text)
    rotated = Image.new("RGB", (36, 20), (90, 90, 90))
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: turned 90 degrees, so 20 x 36 as decoded
    rotated.save(tmp_path / "images" / "train" / "d1" / "015.jpg", exif=exif)
    (tmp_path / "images" / "train" / "d1" / "013.jpg").unlink()
    _image(tmp_path / "images" / "train" / "d1" / "013.png", 50, 30, 13)  # a PNG
    for i in range(4):
        _image(tmp_path / "images" / "val" / f"v{i}.jpg", 48, 48, 200 + i)
        _label(tmp_path / "labels" / "val" / f"v{i}.txt", "0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b, c]\n")
    return tmp_path


def _fresh(cfg: Path, **kw):
    old = os.environ.get(INDEX_MIN_ENV)
    os.environ[INDEX_MIN_ENV] = str(10**12)
    try:
        return load_dataset(cfg, **kw)
    finally:
        os.environ[INDEX_MIN_ENV] = old or ""


def _rows(samples) -> list[tuple]:
    return [(s.image, s.width, s.height, s.boxes.dtype.str, s.boxes.tolist(), s.classes.dtype.str,
             s.classes.tolist(), s.difficult.tolist(), s.iscrowd.tolist()) for s in samples]  # fmt: skip


def _report(spec) -> tuple:
    r = spec.report
    return r.summary(), [str(p) for p in r.problems], r.no_label_file, r.no_label_example, r.clipped


def _same_as_fresh(data: Path):
    spec = load_dataset(data / "data.yaml")
    ref = _fresh(data / "data.yaml")
    assert isinstance(spec.train, PackedSamples)
    assert _rows(spec.train) == _rows(ref.train) and _rows(spec.val) == _rows(ref.val)
    assert _report(spec) == _report(ref)
    return spec


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many rows each index update read."""
    counts: list[int] = []
    real = index_build.read_rows

    def counting(listing, rows, *a, **k):
        counts.append(len(rows))
        return real(listing, rows, *a, **k)

    monkeypatch.setattr(index_build, "read_rows", counting)
    return counts


def _touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_first_build_equals_the_reader_and_the_second_start_reads_nothing(data, reads):
    spec = _same_as_fresh(data)
    assert spec.report.no_label_file == 1 and spec.report.clipped == 1
    sizes = {Path(s.image).name: (s.width, s.height) for s in spec.train}
    assert sizes["015.jpg"] == (20, 36) and sizes["013.png"] == (50, 30)
    assert (data / "images" / f"train{INDEX_SUFFIX}").is_file()
    assert reads == [N, 4]
    _same_as_fresh(data)
    assert reads == [N, 4]  # nothing changed: nothing read


def test_adding_an_image_and_its_label(data, reads):
    _same_as_fresh(data)
    _image(data / "images" / "train" / "d1" / "100.jpg", 64, 24, 99)
    _label(data / "labels" / "train" / "d1" / "100.txt", "2 0.5 0.5 0.5 0.5\n")
    spec = _same_as_fresh(data)
    assert len(spec.train) == N + 1 and reads == [N, 4, 1]


def test_adding_a_label_file(data, reads):
    _same_as_fresh(data)
    _label(data / "labels" / "train" / "d1" / "005.txt", "1 0.5 0.5 0.2 0.2\n")
    spec = _same_as_fresh(data)
    assert spec.report.no_label_file == 0 and reads == [N, 4, 1]


def test_deleting_an_image(data, reads):
    _same_as_fresh(data)
    (data / "images" / "train" / "d0" / "004.jpg").unlink()
    spec = _same_as_fresh(data)
    assert len(spec.train) == N - 1 and reads == [N, 4]


def test_deleting_a_label_file(data, reads):
    _same_as_fresh(data)
    (data / "labels" / "train" / "d0" / "002.txt").unlink()
    spec = _same_as_fresh(data)
    assert spec.report.no_label_file == 2 and reads == [N, 4, 1]


def test_editing_a_label_file(data, reads):
    _same_as_fresh(data)
    label = data / "labels" / "train" / "d1" / "003.txt"
    label.write_text("2 0.25 0.25 0.5 0.5\n")
    _touch_later(label)
    spec = _same_as_fresh(data)
    edited = [s for s in spec.train if s.image.endswith("003.jpg")]
    assert edited[0].classes.tolist() == [2] and reads == [N, 4, 1]


def test_editing_an_image(data, reads):
    _same_as_fresh(data)
    image = data / "images" / "train" / "d0" / "000.jpg"
    _image(image, 80, 20, 7)  # another size: the boxes in pixels change with it
    _touch_later(image)
    spec = _same_as_fresh(data)
    assert (spec.train[0].width, spec.train[0].height) == (80, 20) and reads == [N, 4, 1]


def test_a_list_file_source_reordered_and_shortened(data, reads):
    images = sorted(str(p.relative_to(data)) for p in (data / "images" / "train").rglob("*.*"))
    (data / "train.txt").write_text("\n".join(images) + "\n")
    (data / "data.yaml").write_text("train: train.txt\nval: images/val\nnames: [a, b, c]\n")
    _same_as_fresh(data)
    assert (data / f"train.txt{INDEX_SUFFIX}").is_file()
    (data / "train.txt").write_text("\n".join(images[::-2]) + "\n")
    spec = _same_as_fresh(data)
    assert len(spec.train) == len(images[::-2]) and reads == [N, 4]


def test_a_broken_image_and_a_bad_line_are_reported_as_the_reader_reports_them(data):
    (data / "images" / "train" / "d1" / "011.jpg").write_bytes(b"not a jpeg")
    _label(data / "labels" / "train" / "d0" / "012.txt", "0 0.5 0.5 0.2\n")  # 4 fields
    with pytest.raises(LabelError, match="012.txt:1"):
        load_dataset(data / "data.yaml")
    with pytest.raises(LabelError, match="012.txt:1"):
        _fresh(data / "data.yaml")
    (data / "labels" / "train" / "d0" / "012.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    spec = _same_as_fresh(data)
    assert spec.report.skipped_images == 1 and len(spec.train) == N - 1


def test_a_class_id_out_of_range_is_the_readers_error(data):
    _same_as_fresh(data)  # the index holds class 2; a data.yaml of two classes must refuse it
    (data / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    with pytest.raises(LabelError) as got:
        load_dataset(data / "data.yaml")
    with pytest.raises(LabelError) as ref:
        _fresh(data / "data.yaml")
    assert str(got.value) == str(ref.value) and "out of range" in str(got.value)
    ours, theirs = check_dataset(data / "data.yaml"), _check_fresh(data / "data.yaml")
    assert [str(p) for p in ours.problems] == [str(p) for p in theirs.problems]


def _check_fresh(cfg: Path):
    os.environ[INDEX_MIN_ENV] = str(10**12)
    try:
        return check_dataset(cfg)
    finally:
        os.environ[INDEX_MIN_ENV] = "1"


def test_a_torn_index_is_rebuilt_with_a_note(data, capsys):
    _same_as_fresh(data)
    path = data / "images" / f"train{INDEX_SUFFIX}"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    capsys.readouterr()
    _same_as_fresh(data)
    err = capsys.readouterr().err
    assert f"index {path} is unreadable" in err and "rebuilding" in err
    assert len(read_index(path)) == N


def test_an_index_of_a_newer_version_is_a_clear_error(data):
    _same_as_fresh(data)
    path = data / "images" / f"train{INDEX_SUFFIX}"
    arrays, ours = read_index(path), index_mod.INDEX_VERSION
    index_mod.INDEX_VERSION = 99  # as a newer yolov3 would write it
    try:
        index_mod.write_index(path, arrays)
    finally:
        index_mod.INDEX_VERSION = ours
    with pytest.raises(IndexVersionError, match=r"version 99, written by a newer yolov3.*delete the file"):
        load_dataset(data / "data.yaml")


def test_an_index_of_version_1_is_rebuilt_with_a_note(data, capsys, reads):
    _same_as_fresh(data)
    path = data / "images" / f"train{INDEX_SUFFIX}"
    old = read_index(path)
    fields = {f: getattr(old, f) for f in index_mod.FIELDS if f != "paths"}
    with open(path, "wb") as f:  # version 1's layout: the same arrays in an .npz
        np.savez(f, version=np.int64(1), paths=np.frombuffer(old.paths, np.uint8), **fields)
    capsys.readouterr()
    _same_as_fresh(data)
    assert "written by an older yolov3 (version 1; this one writes version 2): rebuilding it" in (
        capsys.readouterr().err
    )
    assert reads == [N, 4, N] and len(read_index(path)) == N


def test_a_flipped_byte_is_found_by_the_checksum(data, capsys):
    _same_as_fresh(data)
    path = data / "images" / f"train{INDEX_SUFFIX}"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x10  # inside the last array (the classes)
    path.write_bytes(raw)
    capsys.readouterr()
    _same_as_fresh(data)
    assert "checksum does not match" in capsys.readouterr().err


def test_a_read_only_folder_keeps_its_index_in_the_cache(data, tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("YOLOV3_INDEX_CACHE", str(cache))
    images = data / "images"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == images else real(p, mode))
    _same_as_fresh(data)
    assert index_path_for(images / "train").parent == cache and len(list(cache.iterdir())) == 2
    assert not list(images.glob(f"*{INDEX_SUFFIX}"))


def _build_in_child(cfg: str, go, out) -> None:
    go.wait()
    spec = load_dataset(cfg)
    out.put(_rows(spec.train))


def test_two_processes_building_at_once_leave_a_whole_index(data):
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=(str(data / "data.yaml"), go, out)) for _ in range(2)]
    for p in procs:
        p.start()
    go.set()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ref = _rows(_fresh(data / "data.yaml").train)
    assert results == [ref, ref]
    assert not [p for p in (data / "images").iterdir() if p.name.endswith(".tmp")]
    _same_as_fresh(data)  # the index left behind is whole and current


def test_training_from_the_index_gives_the_same_first_batch_loss(data, tmp_path, monkeypatch):
    from yolov3.config import DataConfig, ModelConfig, TrainConfig
    from yolov3.engine import trainer as trainer_mod
    from yolov3.loss import YoloLoss

    losses: list[float] = []
    real = YoloLoss.forward

    def first_loss(self, raws, labels, bboxes):
        out = real(self, raws, labels, bboxes)
        losses.append(float(sum(v.detach() for v in out.values())))
        raise KeyboardInterrupt  # one batch is all this test needs

    monkeypatch.setattr(YoloLoss, "forward", first_loss)
    for name, minimum in (("indexed", "1"), ("plain", str(10**12))):
        monkeypatch.setenv(INDEX_MIN_ENV, minimum)
        train = TrainConfig(epochs=1, batch=4, device="cpu", amp="off", project=str(tmp_path), name=name)
        data_cfg = DataConfig(path=str(data / "data.yaml"), img_size=64, workers=0)
        cfgs = (ModelConfig(width=0.125), data_cfg, train)
        with pytest.raises((KeyboardInterrupt, trainer_mod.TrainingStopped)):
            trainer_mod.train(*cfgs)
    assert len(losses) == 2 and losses[0] == losses[1]


def _check_view(r) -> tuple:
    stats = {k: (st.images, st.boxes, st.no_boxes, st.per_class.tolist(), st.size_hist.tolist(),
                 st.input_hist.tolist()) for k, st in r.splits.items()}  # fmt: skip
    return stats, r.duplicate_images, r.cross_split, r.duplicate_boxes, [str(p) for p in r.problems], r.advice


def test_data_check_on_the_index_says_what_it_says_on_the_reader(data):
    train = data / "images" / "train"
    os.link(train / "d0" / "000.jpg", train / "d1" / "050.jpg")  # a hard link: the same bytes
    (train / "d1" / "051.jpg").write_bytes((train / "d0" / "002.jpg").read_bytes())  # a copy
    (data / "images" / "val" / "v9.jpg").write_bytes((train / "d0" / "004.jpg").read_bytes())  # leaked
    _label(data / "labels" / "train" / "d0" / "006.txt", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n")  # twice
    _label(data / "labels" / "train" / "d1" / "orphan.txt", "0 0.5 0.5 0.2 0.2\n")
    ours = check_dataset(data / "data.yaml")
    ref = _check_fresh(data / "data.yaml")
    assert isinstance(load_dataset(data / "data.yaml").train, PackedSamples)
    assert _check_view(ours) == _check_view(ref)
    assert ours.duplicate_boxes == 1 and len(ours.cross_split) == 1 and len(ours.duplicate_images) == 3
    assert any(p.kind == "orphan-label" and "orphan.txt" in p.message for p in ours.problems)


def test_a_build_in_worker_processes_equals_the_reader(data, monkeypatch):
    monkeypatch.setattr(index_build, "PARALLEL_MIN", 2)
    monkeypatch.setattr(index_build, "CHUNK", 5)  # several tasks, the last one short
    _same_as_fresh(data)


def _plain_stat(path: Path, regular: bool = False) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1, -1)
    return (-1, -1, -1) if regular and not path.is_file() else (st.st_size, st.st_mtime_ns, st.st_ino)


@pytest.mark.parametrize("where", ["here", "workers", "whole paths"])
def test_the_listing_equals_plain_stats_of_each_file(data, monkeypatch, where):
    train = data / "images" / "train"
    (train / "d0" / "gone.jpg").symlink_to(train / "nowhere.jpg")  # a dangling link: (-1, -1, -1)
    (data / "labels" / "train" / "d1" / "017.txt").unlink()
    (data / "labels" / "train" / "d1" / "017.txt").mkdir()  # a folder where the label file would be
    (train / "d1" / "deeper").mkdir()
    _image(train / "d1" / "deeper" / "a.b.jpg", 16, 16, 1)  # a second dot: the label is a.b.txt
    _label(data / "labels" / "train" / "d1" / "deeper" / "a.b.txt", "0 0.5 0.5 0.5 0.5\n")
    (train / "top.jpg").write_bytes((train / "d0" / "000.jpg").read_bytes())  # before and after folders
    (train / "zz.jpg").write_bytes((train / "d0" / "000.jpg").read_bytes())
    if where == "workers":
        monkeypatch.setattr(yolo_scan, "SMALL", 1)
        monkeypatch.setattr(yolo_scan, "STAT_CHUNK", 3)
    elif where == "whole paths":
        monkeypatch.setattr(yolo_scan, "_AT_DIR", False)
    for listing, sources in (
        (yolo_scan.scan_folder(train), None),
        (yolo_scan.stat_listed([str(p) for p in sorted(train.rglob("*.jpg"))[::-1]]), "list"),
    ):
        paths = [listing.prefix + p for p in listing.path_list()]
        if sources is None:  # the reference order: yolov3.data.images.list_images
            assert paths == [str(p) for p in list_images(train)] and "gone.jpg" in " ".join(paths)
        want_img = [_plain_stat(Path(p)) for p in paths]
        want_lbl = [_plain_stat(label_path_for(p), regular=True) for p in paths]
        assert listing.image_stat.tolist() == [list(t) for t in want_img]
        assert listing.label_stat.tolist() == [list(t) for t in want_lbl]
        missing = [Path(p).stem for p, t in zip(paths, want_lbl) if t == (-1, -1, -1)]
        assert (-1, -1, -1) in want_img and sorted(missing) == ["005", "017", "gone", "top", "zz"]


@pytest.mark.parametrize("rank", [0, 1])
def test_under_torchrun_rank_0_builds_while_the_others_wait(data, monkeypatch, rank):
    from yolov3.distributed import DistInfo
    from yolov3.engine import builders

    events: list[str] = []
    keys = {"rank 0's index": (1, 2, 3)}

    def broadcast(obj, info):  # rank 0 sends; the others get what it sent
        events.append("broadcast")
        return obj if info.is_main else keys

    monkeypatch.setattr(builders, "broadcast_object", broadcast)
    real = builders.load_dataset
    trusted = []

    def load(path):
        events.append("load")
        trusted.append(dict(index_build._TRUSTED))
        return real(path)

    monkeypatch.setattr(builders, "load_dataset", load)
    builders.load_spec(str(data / "data.yaml"), DistInfo(rank=rank, local_rank=rank, world_size=2))
    assert events == (["load", "broadcast"] if rank == 0 else ["broadcast", "load"])
    assert trusted == [{} if rank == 0 else keys] and index_build._TRUSTED == {}


def _rank_0_keys(data: Path) -> dict:
    from yolov3.engine.builders import split_index_keys

    keys = split_index_keys(load_dataset(data / "data.yaml"))
    assert sorted(Path(k).name for k in keys) == [f"train{INDEX_SUFFIX}", f"val{INDEX_SUFFIX}"]
    return keys


def test_the_other_ranks_read_rank_0s_index_without_listing_the_folders(data, monkeypatch, reads):
    keys = _rank_0_keys(data)
    listed = []
    real = index_build.scan_folder
    monkeypatch.setattr(index_build, "scan_folder", lambda f: listed.append(f) or real(f))
    (data / "labels" / "train" / "d0" / "002.txt").unlink()  # after rank 0's read: not seen by the others
    with index_build.trusting(keys):
        spec = load_dataset(data / "data.yaml")
    assert listed == [] and reads == [N, 4]
    (data / "labels" / "train" / "d0" / "002.txt").write_text("2 0.5 0.5 0.25 0.5\n1 0.3 0.4 0.1 0.2\n")
    _touch_later(data / "labels" / "train" / "d0" / "002.txt")
    assert _rows(spec.train) == _rows(_fresh(data / "data.yaml").train)  # rank 0's rows, as it read them


def test_an_index_saved_again_since_is_listed_as_usual(data, monkeypatch, reads):
    keys = _rank_0_keys(data)
    _image(data / "images" / "train" / "d1" / "100.jpg", 64, 24, 99)
    load_dataset(data / "data.yaml")  # another job updates the train index meanwhile
    listed = []
    real = index_build.scan_folder
    monkeypatch.setattr(index_build, "scan_folder", lambda f: listed.append(f) or real(f))
    with index_build.trusting(keys):
        spec = load_dataset(data / "data.yaml")
    assert len(spec.train) == N + 1 and [Path(f).name for f in listed] == ["train"]  # val: trusted
    assert _rows(spec.train) == _rows(_fresh(data / "data.yaml").train)


def test_the_index_does_not_depend_on_how_the_folder_is_named(data, reads, monkeypatch):
    _same_as_fresh(data)  # absolute paths
    monkeypatch.chdir(data.parent)
    relative = Path(data.name)
    spec = _same_as_fresh(relative)  # the same folders named from another working directory
    assert spec.train[0].image.startswith(f"{data.name}/images/train/") and reads == [N, 4]


def test_anchors_and_guessed_names_from_the_index_arrays_equal_the_readers(data, monkeypatch):
    from yolov3.anchors import box_sizes, fit_anchors

    _label(data / "labels" / "train" / "d1" / "009.txt", "0 0.5 0.5 0.2 0.2\n")  # no row read again
    spec, ref = load_dataset(data / "data.yaml"), _fresh(data / "data.yaml")
    assert spec.train.overrides == {} and spec.train.box_table() is not None  # the arrays' path
    made = []
    monkeypatch.setattr(PackedSamples, "sample", lambda self, row: made.append(row))  # none may be made
    np.testing.assert_array_equal(box_sizes(spec.train, 416), box_sizes(ref.train, 416))
    ours, theirs = fit_anchors(spec.train, 416, 6, 3, seed=1), fit_anchors(ref.train, 416, 6, 3, seed=1)
    assert ours.anchors == theirs.anchors and ours.mean_iou == theirs.mean_iou and made == []
    monkeypatch.undo()
    monkeypatch.setenv(INDEX_MIN_ENV, "1")
    (data / "data.yaml").write_text("train: images/train\nval: images/val\n")  # no names: guessed
    spec = _same_as_fresh(data)
    assert spec.names == ["class0", "class1", "class2"]


def test_a_mapped_index_reads_as_a_read_one(data, monkeypatch):
    _same_as_fresh(data)
    path = data / "images" / f"train{INDEX_SUFFIX}"
    read = read_index(path)
    monkeypatch.setattr(index_mod, "MAP_FILES", True)
    mapped = read_index(path)
    for field in index_mod.FIELDS[1:]:
        np.testing.assert_array_equal(getattr(mapped, field), getattr(read, field))
    assert mapped.paths == read.paths and mapped.boxes.flags.writeable  # private: writes stay here
    mapped.boxes[0] = -1
    assert read_index(path).boxes[0].tolist() != [-1, -1, -1, -1]
