"""``yolov3 detect``: a video in, a video with the same frame count out; folders, globs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolov3.cli import main
from yolov3.infer.sources import open_source
from yolov3.model import YOLOv3
from yolov3.modelfile import ModelMeta, save_model

NAMES = ["cat", "dog", "kite"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    m = YOLOv3(3, width=0.125)
    return save_model(tmp_path_factory.mktemp("w") / "m.safetensors", m, ModelMeta.of_model(m, NAMES, 64))


def make_video(path: Path, frames: int, size=(96, 64)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8))
    writer.release()
    return path


def count_frames(path: Path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def detect(*args: str) -> int:
    return main(["detect", *args, "--img", "64", "--amp", "off", "--conf", "0.2"])


def test_video_in_video_out(tmp_path, weights) -> None:
    video = make_video(tmp_path / "clip.mp4", 6)
    assert count_frames(video) == 6
    out = tmp_path / "out"
    assert detect(str(video), "--weights", str(weights), "--out", str(out), "--save-txt") == 0
    assert count_frames(out / "clip.mp4") == 6
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (96, 64)
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == list(range(6))
    assert len(list((out / "labels").glob("*.txt"))) == 6
    json.loads((out / "coco_results.json").read_text())


def test_folder_with_a_bad_image(tmp_path, weights, capsys) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    cv2.imwrite(str(folder / "000123.jpg"), (rng.random((50, 70, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "b.png"), (rng.random((40, 30, 3)) * 255).astype(np.uint8))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert detect(str(folder), "--weights", str(weights), "--out", str(out), "--save-txt", "--save-conf") == 0
    text = capsys.readouterr()
    assert "broken.jpg" in text.out + text.err and "2 processed, 1 skipped" in text.out
    assert {p.name for p in out.iterdir()} >= {"000123.jpg", "b.png", "results.jsonl", "coco_results.json"}
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert records[0]["image_id"] == 123 and (records[0]["width"], records[0]["height"]) == (70, 50)
    coco = json.loads((out / "coco_results.json").read_text())
    assert len(coco) == sum(len(r["detections"]) for r in records)
    assert {c["category_id"] for c in coco} <= {1, 2, 3}
    for line in (out / "labels" / "000123.txt").read_text().splitlines():
        c, *vals = line.split()
        assert int(c) in (0, 1, 2) and len(vals) == 5 and all(0 <= float(v) <= 1 for v in vals)
    # a glob over the same folder finds the same two good images
    assert detect(str(folder / "*.png"), "--weights", str(weights), "--out", str(tmp_path / "g")) == 0
    assert len((tmp_path / "g" / "results.jsonl").read_text().splitlines()) == 1


def test_tile_listing_names_each_skip_for_what_it_is(tmp_path, weights, capsys) -> None:
    """With --tile, a picture smaller than the tile is listed as such (not as unreadable), a broken
    file as unreadable, and the large picture is detected; the labels survive the part files' merge."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(2)
    cv2.imwrite(str(folder / "big.png"), (rng.random((150, 200, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "small.png"), (rng.random((40, 90, 3)) * 255).astype(np.uint8))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert detect(str(folder), "--weights", str(weights), "--out", str(out), "--tile", "64", "--no-save") == 0
    lines = capsys.readouterr().out.splitlines()
    small = [x for x in lines if "small.png" in x and not x.startswith("skipped ")]  # the final listing
    broken = [x for x in lines if "broken.jpg" in x and not x.startswith("skipped ")]
    assert not any("unreadable" in x for x in lines if "small.png" in x)
    why = "90x40 is smaller than the tile (64x64); detect it without --tile, or with a tile no larger than"
    assert small == [f"smaller than the tile: {folder / 'small.png'}: {why} its shorter side"]
    assert len(broken) == 1 and broken[0].startswith("unreadable: ")
    assert any("1 processed, 2 skipped" in x for x in lines)
    (folder / "big.png").unlink()  # every picture skipped: an error that says so, not "unreadable"
    assert detect(str(folder), "--weights", str(weights), "--out", str(tmp_path / "no"), "--tile", "64") == 1
    assert "nothing detected: every input was skipped (listed above)" in capsys.readouterr().err


def test_bad_sources_and_names(tmp_path, weights, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert detect(str(tmp_path / "empty"), "--weights", str(weights)) == 2
    assert "no images or videos" in capsys.readouterr().err
    assert detect(str(tmp_path / "nothing*.jpg"), "--weights", str(weights)) == 2
    assert "matches no image" in capsys.readouterr().err
    assert detect(str(tmp_path / "absent.jpg"), "--weights", str(weights)) == 2
    assert "no such file" in capsys.readouterr().err
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    names = tmp_path / "two.names"
    names.write_text("cat\ndog\n")
    assert detect(str(img), "--weights", str(weights), "--names", str(names)) == 2
    assert "2 class names" in capsys.readouterr().err
    (tmp_path / "only_bad").mkdir()
    (tmp_path / "only_bad" / "x.jpg").write_bytes(b"junk")
    assert detect(str(tmp_path / "only_bad"), "--weights", str(weights), "--out", str(tmp_path / "o")) == 1


def test_bad_settings_and_output_folder_are_named(tmp_path, weights, capsys) -> None:
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    cases = [("--conf", "-1", "conf_threshold (--conf-threshold) = -1.0: expected a score in [0, 1]"),
             ("--iou-threshold", "0", "iou_threshold (--iou-threshold) = 0.0: expected an IoU in (0, 1]"),
             ("--max-det", "0", "max_det (--max-det) = 0: expected a positive whole number"),
             ("--img", "100", "img_size (--img-size) = 100: expected a positive multiple of 32"),
             ("--line-width", "0", "line_width (--line-width) = 0: expected a whole number of pixels >= 1"),
    ]  # fmt: skip
    for option, value, words in cases:
        assert main(["detect", str(img), "--weights", str(weights), option, value]) == 2
        assert words in capsys.readouterr().err
    blocker = tmp_path / "some_file"
    blocker.write_text("")
    assert detect(str(img), "--weights", str(weights), "--out", str(blocker / "sub")) == 2
    err = capsys.readouterr().err
    assert f"cannot create the output folder (--out) {blocker / 'sub'}: a file is in the way" in err
    assert "Traceback" not in err


def test_source_kinds(tmp_path) -> None:
    assert open_source("0").kind == "webcam"
    video = make_video(tmp_path / "v.avi", 3)
    src = open_source(str(video))
    assert src.kind == "video" and len(src) == 3
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2] and frames[0].image.shape == (64, 96, 3)


def test_folder_mixing_images_and_a_video(tmp_path, weights) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.full((40, 60, 3), 90, np.uint8))
    make_video(folder / "b.mp4", 3)
    out = tmp_path / "out"
    assert detect(str(folder), "--weights", str(weights), "--out", str(out)) == 0
    assert (out / "a.jpg").is_file() and count_frames(out / "b.mp4") == 3
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert ["frame" in r for r in records] == [False, True, True, True]


def test_python_detect(tmp_path, weights) -> None:
    import yolov3
    from yolov3.apps.detect.runner import SaveOptions

    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.full((30, 50, 3), 200, np.uint8))
    save = SaveOptions(media=False)
    report = yolov3.detect(img, weights, tmp_path / "o", img_size=64, amp="off", save=save, progress=False)
    assert (report.processed, report.skipped) == (1, 0) and set(report.speed_ms) >= {"inference", "nms"}
    assert not (tmp_path / "o" / "x.png").exists() and (tmp_path / "o" / "results.jsonl").is_file()


def test_detect_takes_image_urls_and_streams(tmp_path, weights, capsys) -> None:
    """`yolov3 track` took stream URLs and `yolov3 detect` refused them: an image URL is fetched and
    detected as the file would be; an http(s) video is read frame by frame; a missing URL is an error
    naming it (served here by Python's own HTTP server on loopback)."""
    import functools
    import http.server
    import threading

    site = tmp_path / "site"
    site.mkdir()
    noise = (np.random.default_rng(2).random((48, 64, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(site / "photo.jpg"), noise)
    make_video(site / "clip.mp4", 5)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert detect(f"{url}/photo.jpg", "--weights", str(weights), "--out", str(tmp_path / "u")) == 0
        assert detect(str(site / "photo.jpg"), "--weights", str(weights), "--out", str(tmp_path / "f")) == 0
        got, want = [[json.loads(x) for x in (tmp_path / d / "results.jsonl").read_text().splitlines()]
                     for d in ("u", "f")]  # fmt: skip
        assert [r["detections"] for r in got] == [r["detections"] for r in want]
        assert (tmp_path / "u" / "photo.jpg").is_file()
        assert detect(f"{url}/clip.mp4", "--weights", str(weights), "--out", str(tmp_path / "s")) == 0
        frames = [json.loads(x)["frame"] for x in (tmp_path / "s" / "results.jsonl").read_text().splitlines()]
        assert frames == list(range(5))
        capsys.readouterr()
        assert detect(f"{url}/absent.jpg", "--weights", str(weights), "--out", str(tmp_path / "x")) == 2
        assert f"{url}/absent.jpg: cannot fetch" in capsys.readouterr().err
    finally:
        server.shutdown()
