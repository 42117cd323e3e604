"""yolov3.data.images: header sizes against OpenCV's full decode; the reader's colour order and errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from yolov3.data.images import ImageError, image_size, list_images, read_image
from yolov3.errors import UserError


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".tif", ".webp"])
def test_image_size_matches_opencv_decode(tmp_path, suffix):
    path = tmp_path / f"im{suffix}"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8))
    h, w = cv2.imread(str(path)).shape[:2]  # the independent reference: a full decode
    assert image_size(path) == (w, h) == (53, 37)


def test_exif_rotation_gives_the_decoded_size(tmp_path):
    # Orientation 6 (camera turned 90 degrees): OpenCV's imread rotates the pixels; the header size
    # must be the rotated one so normalised labels match the decoded array.
    path = tmp_path / "rotated.jpg"
    im = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(path, exif=exif.tobytes())
    h, w = cv2.imread(str(path)).shape[:2]
    assert (w, h) == (20, 40)
    assert image_size(path) == (20, 40)
    assert read_image(path).shape == (40, 20, 3)


def test_read_image_is_rgb_uint8(tmp_path):
    path = tmp_path / "red.png"
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(path), bgr)
    rgb = read_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 6, 3)
    assert (rgb[..., 0] == 255).all() and (rgb[..., 1:] == 0).all()


def test_grey_and_alpha_images_become_three_channels(tmp_path):
    grey, rgba = tmp_path / "g.png", tmp_path / "a.png"
    cv2.imwrite(str(grey), np.full((5, 7), 9, np.uint8))
    cv2.imwrite(str(rgba), np.full((5, 7, 4), 9, np.uint8))
    assert read_image(grey).shape == read_image(rgba).shape == (5, 7, 3)


@pytest.mark.parametrize("content", [None, b"", b"not an image at all"])
def test_bad_images_raise_image_error_naming_the_path(tmp_path, content):
    path = tmp_path / "bad.jpg"
    if content is not None:
        path.write_bytes(content)
    for fn in (image_size, read_image):
        with pytest.raises(ImageError) as info:
            fn(path)
        assert str(path) in str(info.value) and info.value.path == str(path)
        assert isinstance(info.value, UserError)
    reason = "not found" if content is None else "not a readable image"
    assert reason in str(info.value)


def test_truncated_jpeg_header_reads_but_garbage_does_not(tmp_path):
    good = tmp_path / "g.jpg"
    cv2.imwrite(str(good), np.zeros((30, 40, 3), np.uint8))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:10])  # SOI + part of APP0: no size in it
    with pytest.raises(ImageError):
        image_size(cut)


def test_list_images_sorted_by_suffix_skipping_hidden(tmp_path):
    for name in ["b.JPG", "a.png", "sub/c.jpeg", ".hidden.jpg", "notes.txt", ".cache/d.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    got = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert got == ["a.png", "b.JPG", "sub/c.jpeg"]
    with pytest.raises(ImageError):
        list_images(tmp_path / "nope")


def test_a_truncated_jpeg_is_refused_before_libjpeg_fills_it_in(tmp_path, capfd):
    """libjpeg decodes a JPEG cut short with grey rows and prints "Premature end of JPEG file" to the
    terminal; the reader refuses it (naming the file) before the decoder sees it."""
    whole = tmp_path / "whole.jpg"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(whole), (rng.random((120, 160, 3)) * 255).astype(np.uint8))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 2 // 3])
    assert cv2.imread(str(cut)) is not None  # what OpenCV alone does: a grey-filled picture
    capfd.readouterr()
    with pytest.raises(ImageError, match="truncated JPEG") as info:
        read_image(cut)
    assert info.value.path == str(cut)
    assert "Premature end" not in capfd.readouterr().err
    assert read_image(whole).shape == (120, 160, 3)
    padded = tmp_path / "padded.jpg"  # some writers pad after the end marker: still whole
    padded.write_bytes(whole.read_bytes() + b"\0" * 16)
    np.testing.assert_array_equal(read_image(padded), read_image(whole))
