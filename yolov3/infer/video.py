"""Annotated videos as browsers play them: H.264 in MP4, ``yuv420p``, the index at the front.

OpenCV's ``VideoWriter`` in the pip wheels writes MPEG-4 Part 2 (``mp4v``) into ``.mp4``, which
Chromium and Firefox refuse to play. ``VideoWriter`` here encodes with the H.264 encoder bundled in
PyAV's wheels (FFmpeg's ``libx264``; ``libopenh264`` where a build has only that), in 4:2:0 chroma
(the only layout browsers decode) with ``movflags=+faststart`` (the ``moov`` index written before the
frames, so a browser starts playing before the whole file has arrived).

4:2:0 needs an even width and height: a frame with an odd side is padded by one row or column
repeating its last one, so nothing of the picture is lost (``size`` says what the file holds).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import Colorspace

from yolov3.errors import UserError

ENCODERS = ("libx264", "libopenh264")  # H.264 encoders, the better first
PIXEL_FORMAT = "yuv420p"
BT709, LIMITED_RANGE = 1, 1  # FFmpeg's AVCOL_SPC / _PRI / _TRC_BT709 and AVCOL_RANGE_MPEG
# libx264: constant quality (crf 23 is its default), a preset that keeps up with detection on a CPU.
X264_OPTIONS = {"crf": "23", "preset": "veryfast"}


def h264_encoder() -> str:
    """The first of ``ENCODERS`` that this PyAV build has; ``UserError`` when it has none."""
    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):  # an unknown codec raises UnknownCodecError (ValueError)
            continue
        return name
    raise UserError(f"this PyAV build ({av.__version__}) has no H.264 encoder ({', '.join(ENCODERS)}): "
                    "reinstall the wheel from PyPI (pip install --force-reinstall av)")  # fmt: skip


class VideoWriter:
    """An H.264 MP4 file at ``path``: ``fps`` frames per second of ``size = (width, height)`` BGR
    uint8 frames (the frame size of the first frame; odd sides are padded to even). ``write`` each
    frame, then ``close`` (or use it as a context manager); errors name the file."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        width, height = (int(v) for v in size)
        if width < 1 or height < 1 or not fps > 0:
            raise UserError(f"{self.path}: cannot write a video of {width}x{height} at {fps} fps")
        self.frame_size = (width, height)  # what write() takes
        self.size = (width + width % 2, height + height % 2)  # what the file holds
        self.fps = Fraction(fps).limit_denominator(1001)  # 29.97002997 -> 30000/1001
        self.frames = 0
        encoder = h264_encoder()
        try:
            self.path.open("wb").close()  # FFmpeg opens the file only at the first frame: fail here
            self.container = av.open(str(self.path), mode="w", format="mp4",
                                     container_options={"movflags": "+faststart"})  # fmt: skip
        except (av.error.FFmpegError, OSError) as exc:
            raise UserError(f"{self.path}: cannot create the video file: {exc}") from exc
        try:
            options = X264_OPTIONS if encoder == "libx264" else {}
            self.stream = self.container.add_stream(encoder, rate=self.fps, options=options)
            self.stream.width, self.stream.height = self.size
            self.stream.pix_fmt = PIXEL_FORMAT
            # Converted with BT.709's matrix (write) and said so in the stream, so players that read
            # the tags and players that assume HD's default show the same colours.
            cc = self.stream.codec_context
            cc.colorspace = cc.color_primaries = cc.color_trc = BT709
            cc.color_range = LIMITED_RANGE
        except (av.error.FFmpegError, ValueError) as exc:
            self.container.close()
            raise UserError(f"{self.path}: cannot set up the {encoder} encoder: {exc}") from exc

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 BGR frame of the size given when opened."""
        h, w = frame_bgr.shape[:2]
        if (w, h) != self.frame_size or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise UserError(f"{self.path}: frame {self.frames} is {frame_bgr.shape}; the video was opened "
                            f"for {self.frame_size[0]}x{self.frame_size[1]} BGR frames")  # fmt: skip
        if (w, h) != self.size:
            frame_bgr = cv2.copyMakeBorder(frame_bgr, 0, self.size[1] - h, 0, self.size[0] - w,
                                           cv2.BORDER_REPLICATE)  # fmt: skip
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr, dtype=np.uint8), format="bgr24")
        frame = frame.reformat(format=PIXEL_FORMAT, dst_colorspace=Colorspace.ITU709)
        frame.pts, frame.time_base = self.frames, 1 / self.fps
        self._mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (the index moved to the front). Closing twice is a no-op."""
        if self.container is None:
            return
        try:
            self._mux(self.stream.encode(None))
        finally:
            container, self.container = self.container, None
            try:
                container.close()
            except (av.error.FFmpegError, OSError) as exc:
                raise UserError(f"{self.path}: cannot finish the video file: {exc}") from exc

    def _mux(self, packets: list) -> None:
        try:
            self.container.mux(packets)
        except (av.error.FFmpegError, OSError) as exc:
            raise UserError(f"{self.path}: cannot write frame {self.frames}: {exc}") from exc

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ENCODERS", "VideoWriter", "h264_encoder"]
