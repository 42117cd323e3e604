"""``decode_image`` (``yolov3/apps/serve/uploads.py``): an upload decodes to exactly the array
``yolov3.data.images.read_image`` gives for the same file (the reference: ``yolov3 detect``'s reader),
EXIF orientation included; truncated files of each format are refused, never filled in."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from yolov3.apps.serve.uploads import UploadError, decode_image
from yolov3.data.images import read_image

LIMIT = 10_000_000


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    rng = np.random.default_rng(0)
    im = cv2.GaussianBlur((rng.random((90, 120, 3)) * 255).astype(np.uint8), (0, 0), 2)
    cv2.rectangle(im, (10, 10), (60, 40), (255, 0, 0), -1)
    return im  # RGB


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp", ".tif"])
def test_upload_decodes_to_what_read_image_reads(tmp_path, picture, suffix):
    path = tmp_path / f"a{suffix}"
    Image.fromarray(picture).save(path)
    assert np.array_equal(decode_image(path.read_bytes(), LIMIT), read_image(path))


def test_exif_orientation_is_applied_as_read_image_does(tmp_path, picture):
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show rotated 90 degrees clockwise
    Image.fromarray(picture).save(path, exif=exif)
    got = decode_image(path.read_bytes(), LIMIT)
    assert got.shape == (120, 90, 3) and np.array_equal(got, read_image(path))


def test_bytes_after_the_end_marker_are_accepted(tmp_path, picture):
    path = tmp_path / "padded.jpg"
    Image.fromarray(picture).save(path)
    padded = path.read_bytes() + b"\x00" * 500  # some writers append; the slow path decides
    assert np.array_equal(decode_image(padded, LIMIT), read_image(path))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_truncated_files_are_refused(picture, fmt):
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, fmt)
    data = buf.getvalue()
    for cut in (len(data) // 2, len(data) - 8):
        with pytest.raises(UploadError) as err:
            decode_image(data[:cut], LIMIT)
        assert err.value.status == 400 and str(err.value), (fmt, cut)


def test_pixel_limit_is_checked_before_decoding(picture, tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(picture).save(path)
    with pytest.raises(UploadError) as err:
        decode_image(path.read_bytes(), 120 * 90 - 1)
    assert err.value.status == 413 and "120x90" in str(err.value)
    assert decode_image(path.read_bytes(), 120 * 90).shape == (90, 120, 3)


@pytest.mark.parametrize(
    "body", [b"", b"hello world", b"\xff\xd8\xff" + b"\x00" * 50, Path(__file__).read_bytes()]
)
def test_not_an_image(body):
    with pytest.raises(UploadError) as err:
        decode_image(body, LIMIT)
    assert err.value.status == 400
