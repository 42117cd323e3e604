"""The one pixel limit (``yolov3.data.images.check_pixels``): importing the Detector leaves PIL's own
decompression-bomb guard as PIL sets it (checked in a fresh interpreter against a second fresh one
that imports PIL alone); every decode path — an image file, image bytes, an upload, a video file's
frames, a live stream — refuses a picture over a small configured limit with an error naming the
source and its size, and takes one at the limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from yolov3.apps.serve.uploads import UploadError
from yolov3.apps.serve.uploads import decode_image as decode_upload
from yolov3.data.images import (
    MAX_PIXELS,
    MAX_PIXELS_ENV,
    PixelLimitError,
    check_pixels,
    decode_image,
    image_size,
    pixel_limit,
    read_image,
)
from yolov3.errors import UserError
from yolov3.infer.sources import open_source
from yolov3.infer.stream import LiveSource

ROOT = Path(__file__).resolve().parents[1]
W, H = 40, 30  # every picture here: 1,200 pixels


def _fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_the_detector_leaves_pils_guard_alone():
    pil_alone = _fresh("import PIL.Image; print(PIL.Image.MAX_IMAGE_PIXELS)")
    after = _fresh("import yolov3.infer.detector, yolov3.infer.sources, yolov3.apps.serve.uploads, "
                   "PIL.Image; print(PIL.Image.MAX_IMAGE_PIXELS)")  # fmt: skip
    assert after == pil_alone != "None"


def test_default_limit_is_pils_own_refusal_size_and_the_variable_changes_it(monkeypatch):
    from PIL import Image

    assert MAX_PIXELS == 2 * Image.MAX_IMAGE_PIXELS  # PIL's DecompressionBombError size at its default
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert pixel_limit() == MAX_PIXELS
    check_pixels(11_648, 8_736, "a 100 MP photo")  # a real camera's largest frames pass
    monkeypatch.setenv(MAX_PIXELS_ENV, "1_000")
    assert pixel_limit() == 1000
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv(MAX_PIXELS_ENV, bad)
        with pytest.raises(UserError, match=f"{MAX_PIXELS_ENV} = '{bad}': expected"):
            pixel_limit()


def test_check_pixels_message_names_source_size_limit_and_setting():
    check_pixels(W, H, "x.png", W * H)
    with pytest.raises(PixelLimitError) as err:
        check_pixels(W, H, "x.png", W * H - 1, "--max-pixels")
    assert str(err.value) == "x.png: 40x30 = 1,200 pixels: over the limit of 1,199 (--max-pixels)"
    assert err.value.path == "x.png" and isinstance(err.value, UserError)


@pytest.fixture()
def limited(monkeypatch):
    """The process limit set one pixel under every picture here."""
    monkeypatch.setenv(MAX_PIXELS_ENV, str(W * H - 1))


@pytest.fixture()
def picture() -> np.ndarray:
    return (np.random.default_rng(0).random((H, W, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp"])
def test_image_files_and_bytes_over_the_limit_are_refused(tmp_path, picture, limited, suffix):
    path = tmp_path / f"big{suffix}"
    cv2.imwrite(str(path), picture)
    for read in (read_image, image_size, lambda p: decode_image(Path(p).read_bytes(), p)):
        with pytest.raises(PixelLimitError, match=r"big\.\w+: 40x30 = 1,200 pixels: over the limit of 1,199"):
            read(path)
    assert read_image(path, max_pixels=W * H).shape == (H, W, 3)  # a caller's own limit


def test_pils_own_guard_is_reported_as_the_limit(tmp_path):
    """A header over PIL's guard (PIL's default: 2 x 89,478,485) never reaches a decoder."""
    path = tmp_path / "bomb.png"  # a 30,000 x 30,000 PNG header: PIL's own writer, pixels cut off
    Image.new("L", (30_000, 30_000)).save(path, compress_level=1)
    path.write_bytes(path.read_bytes()[:100])
    for read in (read_image, image_size):
        with pytest.raises(PixelLimitError, match=r"bomb\.png: over PIL's pixel limit .*900000000 pixels"):
            read(path)


def test_uploads_over_the_limit_get_413(picture, monkeypatch):
    data = cv2.imencode(".png", picture)[1].tobytes()
    with pytest.raises(UploadError) as err:
        decode_upload(data, W * H - 1)
    assert err.value.status == 413
    assert "40x30 = 1,200 pixels: over the limit of 1,199 (--max-pixels)" in str(err.value)
    monkeypatch.setenv(MAX_PIXELS_ENV, str(W * H - 1))  # the server's default: the process limit
    with pytest.raises(UploadError, match="over the limit of 1,199"):
        decode_upload(data, None)
    assert decode_upload(data, W * H).shape == (H, W, 3)


def test_video_frames_over_the_limit_are_an_error_frame(tmp_path, picture, monkeypatch):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (W, H))
    for _ in range(5):
        writer.write(picture)
    writer.release()
    assert [f.error for f in open_source(str(path))] == [None] * 5
    monkeypatch.setenv(MAX_PIXELS_ENV, str(W * H - 1))
    (frame,) = list(open_source(str(path)))  # refused from the stated size: no frame decoded
    assert frame.image is None and frame.path == str(path)
    assert frame.error == "40x30 = 1,200 pixels: over the limit of 1,199 ($YOLOV3_MAX_PIXELS)"


class Camera:
    """A capture that states ``stated`` as its frame size and gives three ``(H, W)`` frames."""

    def __init__(self, stated: tuple[int, int]) -> None:
        self.stated, self.n = stated, 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def get(self, prop: int) -> float:
        sizes = {cv2.CAP_PROP_FRAME_WIDTH: self.stated[0], cv2.CAP_PROP_FRAME_HEIGHT: self.stated[1]}
        return sizes.get(prop, 0.0)

    def read(self):
        self.n += 1
        return (True, np.zeros((H, W, 3), np.uint8)) if self.n <= 3 else (False, None)

    def release(self) -> None:
        pass


def test_streams_over_the_limit_are_refused(limited):
    with pytest.raises(PixelLimitError, match=r"rtsp://cam/x: 40x30 = 1,200 pixels: over the limit"):
        LiveSource("rtsp://cam/x", capture=lambda spec: Camera((W, H))).start()
    # a stream that does not state its size: the first frame ends it, saying why
    frames = list(LiveSource("rtsp://cam/x", keep_all=True, retries=0, capture=lambda spec: Camera((0, 0))))
    assert [f.image for f in frames] == [None]
    assert (
        frames[0].error == f"rtsp://cam/x: 40x30 = 1,200 pixels: over the limit of 1,199 (${MAX_PIXELS_ENV})"
    )
