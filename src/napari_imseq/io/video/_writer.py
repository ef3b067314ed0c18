"""Writing video and animated GIF with PyAV: :class:`VideoWriter`."""

from __future__ import annotations

import os
import warnings
from fractions import Fraction

import numpy as np

from .._base import SequenceWarning
from .._writer_base import UnsupportedWriteError, Writer, to_uint8
from ._pixfmt import CHANNEL_AXIS_TAG

_CONTAINERS = {
    ".mkv": "matroska", ".avi": "avi", ".mov": "mov", ".mp4": "mp4", ".m4v": "mp4",
    ".gif": "gif", ".webm": "webm", ".nut": "nut",
}  # fmt: skip
_DEFAULT_CODEC = {
    ".mkv": "ffv1", ".avi": "ffv1", ".mov": "png", ".nut": "ffv1", ".mp4": "libx264",
    ".m4v": "libx264", ".webm": "libvpx-vp9", ".gif": "gif",
}  # fmt: skip
_CODEC_ALIASES = {"h264": "libx264", "x264": "libx264", "hevc": "libx265", "h265": "libx265",
                  "vp9": "libvpx-vp9", "jpeg": "mjpeg"}  # fmt: skip
_LOSSLESS = ("ffv1", "rawvideo", "png")
#: containers that keep that tag (MOV/MP4 with movflags=use_metadata_tags); AVI and GIF do not
_TAGGED = ("matroska", "webm", "mov", "mp4", "nut")
_EIGHT_BIT_ONLY = ("libx264", "libx265", "libvpx-vp9", "mjpeg", "gif")
_EVEN_SIZE = ("libx264", "libx265", "libvpx-vp9", "mjpeg")


class VideoWriter(Writer):
    """Frames to a video file with PyAV: FFV1 (lossless, default for .mkv/.avi/.mov), H.264
    (.mp4, ``crf``/``preset``), VP9 (.webm), MJPEG or rawvideo (``codec=`` in .avi), GIF.

    FFV1 is written at level 3 with GOP 1 (every frame a keyframe, so a reader reaches any frame
    with one decode), 16 slices with CRCs: gray uint8/uint16 and RGB(A) uint8/uint16 round-trip
    bit-exactly. Lossy codecs take uint8 frames; wider data needs ``display_range=(lo, hi)``
    (or ``"auto"``) and is mapped to 8 bits, which the writer reports as ``lossy``.
    """

    format_name = "video"
    extensions = tuple(_CONTAINERS)

    def _validate_options(self) -> None:
        import av

        opts = dict(self.options)
        ext = next(e for e in _CONTAINERS if self.path.lower().endswith(e))
        self.container_format = _CONTAINERS[ext]
        codec = opts.pop("codec", None) or _DEFAULT_CODEC[ext]
        codec = _CODEC_ALIASES.get(codec.lower(), codec.lower())
        if codec not in av.codecs_available:
            raise UnsupportedWriteError(
                f"{self.path}: codec {codec!r} is not available in this FFmpeg build; use ffv1 "
                f"(lossless), libx264, libvpx-vp9, mjpeg, rawvideo or gif"
            )
        if ext == ".gif" and codec != "gif":
            raise UnsupportedWriteError(f"{self.path}: a .gif file holds GIF frames, not {codec}")
        self.codec = codec
        self.crf = opts.pop("crf", None)
        self.preset = opts.pop("preset", None)
        self.gop = opts.pop("gop", 1 if codec == "ffv1" else None)
        self.display_range = opts.pop("display_range", None)
        if isinstance(self.display_range, str):
            raise UnsupportedWriteError(
                f"{self.path}: display_range={self.display_range!r} must be resolved to (lo, hi) "
                f"before writing; convert(), and imwrite() of an array or Sequence, estimate it "
                f"from a subsample; for a one-pass iterable pass (lo, hi)"
            )
        self.codec_options = {str(k): str(v) for k, v in opts.pop("codec_options", {}).items()}
        if opts:
            raise UnsupportedWriteError(
                f"{self.path}: unknown option(s) {sorted(opts)} for video; known: codec, crf, "
                f"preset, gop, display_range, codec_options"
            )
        self.lossy = codec not in _LOSSLESS or self.display_range is not None
        self._timing()

    def _timing(self) -> None:
        """The stored rate and the time base of the stamps; refuse rates the container cannot
        store with a distinct stamp per frame, and report rounding."""
        if self.fps is None:
            self.fps = 30.0  # a video stream needs a rate; frames without times are 1/30 s apart
        fps = self.fps
        rate = Fraction(fps).limit_denominator(1001000)
        fmt = self.container_format
        self._cfr = fmt == "avi"
        if fmt == "avi":
            tb, lo, hi = 1 / rate if rate else Fraction(1), 1e-6, 1000.0
            why = "FFmpeg's AVI muxer does not keep rates above 1000 fps (it rewrites them)"
        elif fmt in ("matroska", "webm"):
            tb, lo, hi = Fraction(1, 1000), 1e-6, 1000.0
            why = "Matroska/WebM timestamps count milliseconds: faster frames would share one"
        elif fmt == "gif":
            tb, lo, hi = Fraction(1, 100), 100 / 65535, 100.0
            why = "GIF frame delays are whole hundredths of a second, from 1 to 65535"
        else:  # mov, mp4, nut: a time scale that counts every frame in whole ticks
            num = max(rate.numerator, 1)
            scale = num * -(-90000 // num)
            tb, lo, hi = Fraction(1, scale), 1e-6, 1e9
            why = "MOV/MP4 time scales are 32-bit"
            if scale >= 2**31 or rate.denominator * (scale // num) >= 2**31:
                hi = 0.0  # refuse below
        if rate <= 0 or not lo <= fps <= hi:
            raise UnsupportedWriteError(
                f"{self.path}: fps={fps:g} cannot be stored in {fmt}: {why} (it takes "
                f"{lo:.6g} to {hi:g} fps); write .mov/.mp4 (any rate up to 1e9 fps), .tif, "
                f".zarr or .seq for such rates"
            )
        if fmt == "gif":
            delay = 100 / fps
            if abs(delay - round(delay)) > 1e-6:
                warnings.warn(
                    f"{self.path}: GIF frame delays are whole hundredths of a second, so "
                    f"{fps:g} fps ({delay:.4g} per frame) is stored as delays of "
                    f"{int(delay)} and {int(delay) + 1} hundredths, rounded frame by frame "
                    f"({fps:g} fps on average, {100 / (int(delay) + 1):.4g} to "
                    f"{100 / max(int(delay), 1):.4g} fps per frame); use fps=100/k for exact "
                    f"delays",
                    SequenceWarning,
                    stacklevel=4,
                )
        self._rate, self._time_base = rate, tb

    def _check(self, frame: np.ndarray) -> None:
        shape, dtype = frame.shape, frame.dtype
        channels = 1 if frame.ndim == 2 else (shape[2] if frame.ndim == 3 else 0)
        if frame.ndim not in (2, 3) or channels not in (1, 3, 4):
            raise self._refuse(
                f"frames of shape {shape} cannot be stored in video; use 2-D gray or "
                f"(H, W, 3|4) colour frames, or write .tif/.zarr for other shapes"
            )
        if frame.ndim == 3 and channels == 1 and self.container_format not in _TAGGED:
            raise self._refuse(
                f"frames of shape {shape} (a channel axis of 1) would read back from "
                f"{self.container_format.upper()} as 2-D {shape[:2]} frames: this container "
                f"cannot record the axis; pass frames[..., 0] for 2-D gray frames, or write "
                f".mkv, .mov or .mp4 (which keep it), .tif or .zarr"
            )
        codec = self.codec
        if self.display_range is not None:
            if dtype.kind not in "uif":
                raise self._refuse(f"display_range cannot map {dtype} frames")
        elif codec in _EIGHT_BIT_ONLY and dtype != np.uint8:
            raise self._refuse(
                f"{codec} stores 8-bit frames but these are {dtype}; pass display_range=(lo, hi) "
                f"or display_range='auto' (--display-range on the command line) to map them to "
                f"8 bits (lossy), or write FFV1 (.mkv) to keep every bit"
            )
        elif dtype not in (np.uint8, np.uint16):
            raise self._refuse(
                f"{dtype} cannot be stored in {codec}; use .tif or .zarr, or pass display_range= "
                f"to convert to 8 bit"
            )
        if codec == "rawvideo" and channels == 4:
            raise self._refuse("rawvideo here stores gray or RGB; drop alpha or use FFV1 (.mkv)")
        if codec == "rawvideo" and frame.dtype != np.uint8 and self.display_range is None:
            # an AVI header describes 16-bit raw frames only as RGB555 (bit count 16, BI_RGB):
            # gray16 would read back as other pixels, and 48-bit RGB has no raw AVI form
            raise self._refuse(
                f"rawvideo stores 8-bit frames only, but these are {dtype}; write FFV1 (.mkv, "
                f"the default, lossless at 16 bits), PNG in .mov, .tif or .zarr to keep every bit"
            )
        if codec in ("libx264", "libx265", "libvpx-vp9", "mjpeg") and channels == 4:
            raise self._refuse(
                f"{codec} cannot store 4 channels (alpha); drop the alpha channel, or write FFV1 "
                f"(.mkv) which keeps it"
            )
        if codec == "gif" and channels == 4:
            raise self._refuse("GIF output takes gray or RGB frames; drop the alpha channel")
        h, w = shape[:2]
        if codec in _EVEN_SIZE and (h % 2 or w % 2):
            raise self._refuse(
                f"{codec} with 4:2:0 chroma needs an even width and height, but frames are "
                f"{h} x {w}; crop or pad by one pixel, or write FFV1 (.mkv), which takes any size"
            )

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[..., 0]
        if self.display_range is not None:
            frame = to_uint8(frame, self.display_range)
        return frame

    def _open(self, frame: np.ndarray) -> None:
        import av

        channel_axis = frame.ndim == 3 and frame.shape[2] == 1
        frame = self._prepare(frame)
        gray = frame.ndim == 2
        wide = frame.dtype == np.uint16
        alpha = not gray and frame.shape[2] == 4
        if self.codec == "ffv1":
            if gray:
                self.in_fmt = pix_fmt = "gray16le" if wide else "gray"
            elif wide:
                self.in_fmt = pix_fmt = "gbrap16le" if alpha else "gbrp16le"
            else:  # FFV1 codes 8-bit RGB as packed bgr0/bgra (a byte shuffle, lossless)
                self.in_fmt, pix_fmt = ("rgba", "bgra") if alpha else ("rgb24", "bgr0")
        elif self.codec == "rawvideo":
            self.in_fmt = "gray" if gray else "rgb24"  # 8-bit only (_check)
            pix_fmt = self.in_fmt if gray else "bgr24"
        elif self.codec == "gif":
            self.in_fmt, pix_fmt = "pal8", "pal8"
        elif self.codec == "png":
            if gray:
                self.in_fmt, pix_fmt = ("gray16le", "gray16be") if wide else ("gray", "gray")
            elif wide:
                self.in_fmt, pix_fmt = ("rgba64le", "rgba64be") if alpha else ("rgb48le", "rgb48be")
            else:
                self.in_fmt = pix_fmt = "rgba" if alpha else "rgb24"
        else:
            self.in_fmt = "gray" if gray else "rgb24"
            pix_fmt = "yuvj420p" if self.codec == "mjpeg" else "yuv420p"
        rate, self._tb = self._rate, self._time_base
        options = dict(self.codec_options)
        if self.codec == "ffv1":
            # slices form a k x k grid; FFV1 needs every slice at least one pixel wide and high
            slices = str(min(4, *frame.shape[:2]) ** 2)
            options = {"level": "3", "slices": slices, "slicecrc": "1", "coder": "1", **options}
        if self.crf is not None:
            options["crf"] = str(self.crf)
        if self.preset is not None:
            options["preset"] = str(self.preset)
        if self.codec == "libx265":
            options.setdefault("x265-params", "log-level=error")
        container_options = {"loop": "0"} if self.codec == "gif" else {}
        if channel_axis and self.container_format in ("mov", "mp4"):
            container_options["movflags"] = "use_metadata_tags"
        self._out = av.open(
            self.partial, "w", format=self.container_format, options=container_options
        )
        if channel_axis:
            self._out.metadata[CHANNEL_AXIS_TAG] = "1"
        try:
            try:
                s = self._out.add_stream(self.codec, rate=rate, options=options)
            except ValueError as err:  # the muxer refuses the codec: nothing is written yet
                self._out.close()
                os.remove(self.partial)
                raise self._refuse(
                    f"{err}; use .mkv for FFV1, or codec='png'/'rawvideo' in .mov"
                ) from None
            s.pix_fmt = pix_fmt
            s.height, s.width = frame.shape[:2]
            s.codec_context.time_base = self._tb
            s.time_base = self._tb
            if self.gop is not None:
                s.codec_context.gop_size = int(self.gop)
            s.codec_context.thread_count = 0
            self._stream = s
        except Exception:
            self._out.close()
            raise
        if self.codec == "gif":
            self._palette = None
            self._pending: list[tuple[np.ndarray, float]] = []
        self._t0: float | None = None
        self._last_pts = -1
        self._warned: set[str] = set()

    def _pts(self, timestamp: float) -> int:
        """The frame's stamp in the time base: strictly increasing, whatever the input times
        (a reader tells frames apart by their stamps); every change is reported."""
        if self._t0 is None:
            self._t0 = timestamp
        if self._cfr:  # AVI: frame i is at i / fps
            expected = self._t0 + self.count / float(self._rate)
            if abs(timestamp - expected) > 0.5 / float(self._rate):
                self._warn_once(
                    "cfr",
                    f"AVI stores a constant frame rate, so frame {self.count}'s timestamp "
                    f"{timestamp:.9g} s is stored as {expected:.9g} s (start + frame / fps), and "
                    f"so are other timestamps off the rate; write .mkv or .mov to keep them",
                )
            return self.count
        pts = int(round((timestamp - self._t0) / self._tb))
        if pts <= self._last_pts:
            self._warn_once(
                "order",
                f"frame {self.count} has timestamp {timestamp:.9g} s, which is not after the "
                f"previous frame's at the container's resolution ({float(self._tb):g} s); it is "
                f"stored one tick after the previous frame, and so is every such frame",
            )
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"{self.path}: {message}", SequenceWarning, stacklevel=5)

    def _encode(self, vf) -> None:
        import av

        try:
            for packet in self._stream.encode(vf):
                self._out.mux(packet)
        except av.FFmpegError as err:
            if isinstance(err, OSError) and not isinstance(err, NotImplementedError):
                raise  # a disk error: the base writer reports it with the partial file
            raise self._refuse(
                f"FFmpeg's {self.codec} encoder / {self.container_format} muxer refused frame "
                f"{self.count} ({err}); try another codec or container (FFV1 in .mkv takes any "
                f"size and depth)"
            ) from err

    def _write(self, frame: np.ndarray, timestamp: float) -> None:
        import av

        frame = self._prepare(frame)
        if self.codec == "gif":
            self._write_gif(frame, timestamp)
            return
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=self.in_fmt)
        vf.pts = self._pts(timestamp)
        vf.time_base = self._tb
        self._encode(vf)

    # GIF: a palette fitted to the first frames (at most 16 buffered), then streamed
    _GIF_FIT_FRAMES = 16

    def _write_gif(self, frame: np.ndarray, timestamp: float) -> None:
        if self._palette is None:
            self._pending.append((frame, timestamp))
            if len(self._pending) >= self._GIF_FIT_FRAMES:
                self._flush_gif()
            return
        self._encode_gif(frame, timestamp)

    def _flush_gif(self) -> None:
        from PIL import Image

        frames = [f if f.ndim == 3 else np.stack([f] * 3, -1) for f, _ in self._pending]
        montage = np.concatenate([f[::2, ::2] for f in frames], axis=0)
        pal_img = Image.fromarray(montage).quantize(256, method=Image.Quantize.MEDIANCUT)
        self._palette = pal_img
        rgb = np.array(
            pal_img.getpalette()[: 256 * 3] + [0] * (768 - len(pal_img.getpalette()[:768])),
            np.uint8,
        )
        argb = np.zeros((256, 4), np.uint8)
        argb[:, 0] = 255
        argb[:, 1:] = rgb.reshape(256, 3)
        self._argb = argb  # (256, 4) as A, R, G, B: PyAV orders the bytes for FFmpeg
        pending, self._pending = self._pending, []
        for f, t in pending:
            self._encode_gif(f, t)

    def _encode_gif(self, frame: np.ndarray, timestamp: float) -> None:
        import av
        from PIL import Image

        rgb = frame if frame.ndim == 3 else np.stack([frame] * 3, -1)
        idx = np.asarray(
            Image.fromarray(np.ascontiguousarray(rgb)).quantize(
                palette=self._palette, dither=Image.Dither.NONE
            )
        )
        vf = av.VideoFrame.from_ndarray((np.ascontiguousarray(idx), self._argb), format="pal8")
        vf.pts = self._pts(timestamp)
        vf.time_base = self._tb
        self._encode(vf)

    def _finish(self) -> None:
        try:
            if self.codec == "gif" and self._palette is None and self._pending:
                self._flush_gif()
            self._encode(None)
        finally:
            self._out.close()
