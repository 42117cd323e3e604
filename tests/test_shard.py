"""Detection at scale (``yolov3.apps.detect.shard``): ``torchrun`` detect / val against one process, a rank
killed mid-job then ``--resume``, and resumes refused for another run's folder.

The reference throughout is a plain one-process run over the same images with the same model (what
the issue asks the sharded run to equal); ``speed_ms`` (a timing) is the one field left out of the
comparison. The shard rule and the manifest diff are checked against set arithmetic written here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolov3.apps.detect.shard import manifest_differences, media_names, read_part
from yolov3.cli import main
from yolov3.distributed import DistInfo, shard_indices
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

NAMES = ["cat", "dog", "kite"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
SETTINGS = ["--img", "64", "--amp", "off", "--conf", "0.2", "--device", "cpu"]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    m = YOLOv3(3, width=0.125)
    return save_model(tmp_path_factory.mktemp("w") / "m.safetensors", m, ModelMeta.of_model(m, NAMES, 64))


def make_folder(root: Path, n: int, bad: bool = True, video: bool = False) -> Path:
    """``n`` noise images (some with numeric names, one name twice in a sub-folder), a broken file and
    optionally a short video."""
    rng = np.random.default_rng(3)
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        name = f"{i:06d}.jpg" if i % 2 else f"img{i}.png"
        cv2.imwrite(str(root / name), (rng.random((40 + i, 70, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(root / "sub" / "img0.png"), (rng.random((50, 50, 3)) * 255).astype(np.uint8))
    if bad:
        (root / "broken.jpg").write_bytes(b"not a jpeg")
    if video:
        writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
        for _ in range(4):
            writer.write((rng.random((48, 64, 3)) * 255).astype(np.uint8))
        writer.release()
    return root


def outputs(out: Path) -> tuple[list[dict], list[dict], set[str]]:
    """results.jsonl without timings, coco_results.json, and the names of the files written."""
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("speed_ms")
    coco = json.loads((out / "coco_results.json").read_text())
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and ".parts" not in p.parts}
    return rows, coco, files


def one_process(source: Path, weights: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        "-m",
        "yolov3",
        "detect",
        str(source),
        "--weights",
        str(weights),
        "--out",
        str(out),
    ]
    return subprocess.run([*args, *SETTINGS, *extra], env=env(), capture_output=True, text=True)


def test_shards_are_disjoint_and_cover_every_file() -> None:
    for n in (0, 1, 5, 12):
        for world in (1, 2, 3, 7):
            shards = [set(shard_indices(n, DistInfo(rank=r, world_size=world))) for r in range(world)]
            assert set().union(*shards) == set(range(n))
            assert sum(len(s) for s in shards) == n  # disjoint
            assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced


def test_media_names_are_unique_in_source_order() -> None:
    files = [Path("a/x.jpg"), Path("b/x.jpg"), Path("c/x.jpg"), Path("v/clip.avi"), Path("w/clip.mp4")]
    assert media_names(files) == ["x.jpg", "x_2.jpg", "x_3.jpg", "clip.mp4", "clip_2.mp4"]


def test_manifest_differences_name_each_leaf() -> None:
    old = {"settings": {"conf_threshold": 0.3, "img_size": 64}, "model": {"weights": {"sha256": "a"}}}
    new = {"settings": {"conf_threshold": 0.5, "img_size": 64}, "model": {"weights": {"sha256": "b"}}}
    assert manifest_differences(old, new) == ["model.weights.sha256: 'a' -> 'b'",
                                              "settings.conf_threshold: 0.3 -> 0.5"]  # fmt: skip
    assert manifest_differences(old, old) == []


def test_torn_last_line_is_dropped(tmp_path) -> None:
    part = tmp_path / "r0-a0.jsonl"
    part.write_text('{"key": [0, 0]}\n{"key": [1, 0]}\n{"key": [2,')
    assert [r["key"] for r in read_part(part)] == [[0, 0], [1, 0]]


def test_two_processes_write_what_one_writes(tmp_path, weights) -> None:
    src = make_folder(tmp_path / "imgs", 7, video=True)
    one = one_process(src, weights, tmp_path / "one", "--save-txt")
    assert one.returncode == 0, one.stderr[-2000:]
    args = ["-m", "yolov3", "detect", str(src), "--weights", str(weights), "--out", str(tmp_path / "two")]
    two = subprocess.run(
        [*TORCHRUN, *args, *SETTINGS, "--save-txt"], env=env(), capture_output=True, text=True
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = outputs(tmp_path / "one"), outputs(tmp_path / "two")
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    assert len(a[0]) == 8 + 4 and sum(len(r["detections"]) for r in a[0]) > 0  # 8 images + 4 frames
    # source order: 000001/3/5.jpg (ids = their numbers), broken.jpg (skipped), clip.mp4's 4 frames,
    # img0/2/4/6.png, sub/img0.png: those take the running number of the record
    assert [r["image_id"] for r in a[0]] == [1, 3, 5, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert [r.get("frame") for r in a[0]][3:7] == [0, 1, 2, 3]
    assert {"img0.png", "img0_2.png", "clip.mp4", "labels/000001.txt"} <= a[2]
    # the bad image: reported by the rank that read it, listed in the merged report
    assert "unreadable: " in two.stdout and "broken.jpg" in two.stdout
    assert "12 processed, 1 skipped by 2 processes" in two.stdout
    assert "12 processed, 1 skipped." in one.stdout


def rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the torchrun worker with RANK=rank under ``parent`` (read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process in /proc")
def test_a_rank_killed_mid_job_then_resume_gives_the_same_files(tmp_path, weights) -> None:
    src = make_folder(tmp_path / "imgs", 40, bad=False)
    ref = one_process(src, weights, tmp_path / "ref", "--img", "320")
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "out"
    args = ["-m", "yolov3", "detect", str(src), "--weights", str(weights), "--out", str(out)]
    job = subprocess.Popen([*TORCHRUN, *args, *SETTINGS, "--img", "320"], env=env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    part, deadline, pid = out / ".parts" / "r1-a0.jsonl", time.monotonic() + 120, None
    while time.monotonic() < deadline and (not part.is_file() or len(list(read_part(part))) < 3):
        pid = pid or rank_pid(job.pid, 1)  # found before the kill is due, so the kill lands at once
        time.sleep(0.01)
    pid = pid or rank_pid(job.pid, 1)
    assert pid is not None, "rank 1 not found"
    os.kill(pid, signal.SIGKILL)
    assert job.wait(120) != 0
    done = len(list(read_part(part)))
    assert 3 <= done < 20, "the kill must land mid-shard (rank 1 has 20 images)"
    assert not (out / "results.jsonl").exists()  # no merge after a failed rank
    resumed = subprocess.run([*TORCHRUN, *args[:-2], "--resume", str(out), *SETTINGS, "--img", "320"],
                             env=env(), capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert outputs(out) == outputs(tmp_path / "ref")
    # the resumed attempt did not redo what rank 1 had written
    assert len(list(read_part(out / ".parts" / "r1-a1.jsonl"))) == 20 - done


def test_resume_in_process_after_a_cut_skips_what_is_done(tmp_path, weights) -> None:
    src = make_folder(tmp_path / "imgs", 5, video=True)
    base = ["detect", str(src), "--weights", str(weights), *SETTINGS]
    assert main([*base, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "cut"
    assert main([*base, "--out", str(out)]) == 0
    part = out / ".parts" / "r0-a0.jsonl"
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:4]) + lines[4][:10])  # 4 whole lines, then a torn one
    (out / "results.jsonl").unlink()
    assert main([*base, "--resume", str(out)]) == 0
    assert outputs(out) == outputs(tmp_path / "ref")


def test_resume_of_another_run_is_refused_naming_the_difference(tmp_path, weights, capsys) -> None:
    src = make_folder(tmp_path / "imgs", 2, bad=False)
    base = ["detect", str(src), *SETTINGS]
    out = tmp_path / "out"
    assert main([*base, "--weights", str(weights), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main([*base, "--weights", str(weights), "--resume", str(out), "--conf", "0.5"]) == 2
    assert "settings.conf_threshold: 0.2 -> 0.5" in capsys.readouterr().err
    torch.manual_seed(1)
    m = YOLOv3(3, width=0.125)
    other = save_model(tmp_path / "other.safetensors", m, ModelMeta.of_model(m, NAMES, 64))
    assert main([*base, "--weights", str(other), "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model.weights.sha256" in err and "model.weights.path" in err
    assert main([*base, "--weights", str(weights), "--resume", str(tmp_path / "imgs")]) == 2
    assert "no run.json there" in capsys.readouterr().err
    assert main([*base, "--weights", str(weights), "--resume", str(out), "--save-txt"]) == 2
    assert "outputs.txt: False -> True" in capsys.readouterr().err


def test_torchrun_val_scores_like_one_process(tmp_path) -> None:
    from yolov3.data.synth import SynthConfig, generate

    data, _ = generate(
        tmp_path / "data", SynthConfig(n=12, size=64, seed=4, val_fraction=0.5), progress=False
    )
    torch.manual_seed(0)
    m = YOLOv3(5, width=0.125)
    names = [f"c{i}" for i in range(5)]
    weights = save_model(tmp_path / "m5.safetensors", m, ModelMeta.of_model(m, names, 64))
    broken = sorted((tmp_path / "data" / "images" / "val").glob("*.jpg"))[3]
    size = cv2.imread(str(broken)).shape[1::-1]
    png = cv2.imencode(".png", np.zeros((size[1], size[0], 3), np.uint8))[1].tobytes()
    broken.write_bytes(png[:60])  # a whole header, no pixels: listed, then unreadable (rank 1 of 2)
    args = ["-m", "yolov3", "val", "--data", str(data), "--weights", str(weights), "--img", "64",
            "--amp", "off", "--device", "cpu", "--batch", "2", "--no-plots", "--workers", "1"]  # fmt: skip
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], env=env(),
                         capture_output=True, text=True)  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([*TORCHRUN, *args, "--out", str(tmp_path / "two")], env=env(),
                         capture_output=True, text=True)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "summary.json").read_text())
    b = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert b.pop("processes") == 2 and "processes" not in a
    a.pop("speed_ms"), b.pop("speed_ms")
    assert a == b
    assert a["images"] == 5 and a["detections"] > 0  # one image of 6 left out
    assert broken.name in two.stderr + two.stdout
    assert not (tmp_path / "two2").exists() and not (tmp_path / "one2").exists()


def test_webcam_is_neither_resumed_nor_split(tmp_path) -> None:
    from yolov3.apps.detect.shard import Job
    from yolov3.errors import UserError
    from yolov3.infer.sources import Source

    webcam = Source("0", webcam=0)
    with pytest.raises(UserError, match="webcam"):
        Job(tmp_path, webcam, DistInfo(), {}, resume=True)
    with pytest.raises(UserError, match="webcam"):
        Job(tmp_path, webcam, DistInfo(1, 1, 2), {}, resume=False)


def test_resume_and_another_out_folder_conflict(tmp_path, weights, capsys) -> None:
    src = make_folder(tmp_path / "imgs", 1, bad=False)
    args = ["detect", str(src), "--weights", str(weights), *SETTINGS]
    assert main([*args, "--resume", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 2
    assert "give one" in capsys.readouterr().err


def test_resume_alone_continues_the_run_with_what_run_json_records(tmp_path, weights, capsys) -> None:
    """`--resume OUT` and nothing else (no source, weights or settings repeated): the run's own source,
    weights, settings and outputs; the counts say what this attempt did and what the folder holds."""
    src = make_folder(tmp_path / "imgs", 5)  # 6 images and a broken file
    base = ["detect", str(src), "--weights", str(weights), *SETTINGS, "--save-txt"]
    assert main([*base, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "cut"
    assert main([*base, "--out", str(out)]) == 0
    part = out / ".parts" / "r0-a0.jsonl"
    kept = part.read_text().splitlines(keepends=True)[:3]
    part.write_text("".join(kept))
    (out / "results.jsonl").unlink()
    kept_errors = sum('"error"' in line for line in kept)
    capsys.readouterr()
    assert main(["detect", "--resume", str(out)]) == 0
    assert outputs(out) == outputs(tmp_path / "ref")
    said = capsys.readouterr().out
    now = f"{6 - (3 - kept_errors)} processed, {1 - kept_errors} skipped now; 6 processed, 1 skipped in all"
    assert now in said and "at 64x64" in said


def test_resume_of_a_finished_run_says_so(tmp_path, weights, capsys) -> None:
    src = make_folder(tmp_path / "imgs", 3, bad=False)
    out = tmp_path / "out"
    assert main(["detect", str(src), "--weights", str(weights), *SETTINGS, "--out", str(out)]) == 0
    before = outputs(out)
    capsys.readouterr()
    assert main(["detect", "--resume", str(out)]) == 0
    captured = capsys.readouterr()
    assert "nothing left to do: the run was complete (4 processed, 0 skipped)" in captured.out
    assert "Traceback" not in captured.err and outputs(out) == before


def test_the_readme_resume_form_needs_no_repeated_flags(tmp_path, weights) -> None:
    """The README runs `detect photos/ --weights best.pt --out OUT --no-save`, then resumes with
    `detect photos/ --weights best.pt --resume OUT` (no --no-save, no settings): accepted."""
    src = make_folder(tmp_path / "imgs", 3, bad=False)
    out = tmp_path / "big"
    first = ["detect", str(src), "--weights", str(weights), *SETTINGS, "--out", str(out), "--no-save"]
    assert main(first) == 0
    assert main(["detect", str(src), "--weights", str(weights), "--resume", str(out)]) == 0
    assert not list(out.glob("*.png"))  # still the run's outputs: no annotated images


def test_detect_without_a_source_or_weights_says_what_it_needs(capsys) -> None:
    assert main(["detect", "photo.jpg"]) == 2
    assert "give the SOURCE to detect on and --weights (or --resume OUT" in capsys.readouterr().err
