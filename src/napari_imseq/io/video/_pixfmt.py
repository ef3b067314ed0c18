"""How decoded frames of each pixel format become numpy arrays (:class:`_Plan`), and whether a
GIF can show transparency at all (:class:`_GifAlpha`)."""

from __future__ import annotations

import threading

import numpy as np

from .._base import SequenceFormatError

#: glibc returns a freed block above this size straight to the system (and raises its dynamic
#: thresholds only for blocks up to it): DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, minus headroom
_MMAP_THRESHOLD_MAX = (32 << 20) - (1 << 16)
_hinted = 0  # the largest block handed to hint_allocator so far


def hint_allocator(frame_bytes: int) -> None:
    """Let the C allocator keep freed frame buffers for the next frames.

    A reader that keeps each frame while the next one is made (any ``for f in frames:`` loop)
    frees a frame-sized block after allocating the next. glibc's default thresholds then hand
    the freed memory back to the system and take it again page by page: 1.5 s of page faults on
    a 3 s read of 750 1080p frames. glibc raises its thresholds itself once a program frees a
    large block; one block of four frames, allocated and freed without touching a page, does
    that here. Nothing changes where the thresholds were set explicitly
    (``MALLOC_MMAP_THRESHOLD_``, ``GLIBC_TUNABLES``) or on other allocators.
    """
    global _hinted
    size = min(_MMAP_THRESHOLD_MAX, 4 * frame_bytes)
    if frame_bytes < (128 << 10) or size <= _hinted:  # below glibc's default threshold
        return
    _hinted = size
    np.empty(size, np.uint8)  # malloc'ed (mmap) and freed at once


#: container tag that says frames (H, W, 1) were written, so that they read back as (H, W, 1)
#: and not as the 2-D gray frames the codec stores (written by _writer, read by _reader)
CHANNEL_AXIS_TAG = "IMSEQ_CHANNEL_AXIS"


def detach(frame):
    """``frame`` itself, its pixels moved to buffers of its own (out of its decoder's pool).

    A decoder's frames live in its buffer pool: a frame held (in the frame cache) keeps its
    buffer out of the pool, the decoder allocates another, and a buffer given back is kept by
    the pool until the decoder closes. Frames the cache held and dropped would so stay
    allocated while the file is open (measured: 42 MiB more growth at the default 64 MiB
    budget). FFmpeg's ``av_frame_make_writable`` copies a frame's data into new buffers when
    they are shared and keeps every field of the frame, those PyAV does not show included
    (the chroma location, which the conversion to RGB reads: a new frame with the pixels
    copied converts differently); a DLPack reference to a plane, held across the call, makes
    the buffers shared. Formats without DLPack export (palettes) move only when the decoder
    still references them. No view on the frame's planes may be alive: their memory goes."""
    try:
        hold = np.from_dlpack(frame.planes[0])  # a second reference: the buffers are shared
    except (TypeError, ValueError, AttributeError, NotImplementedError, BufferError):
        hold = None
    try:
        frame.make_writable()
    except Exception:  # noqa: BLE001 - (out of memory in FFmpeg) the frame stays as it was
        pass
    del hold
    return frame


class _Plan:
    """How decoded frames of one pixel format become numpy arrays, decided without decoding."""

    def __init__(self, pix_fmt: str):
        import av

        fmt = av.VideoFormat(pix_fmt)
        self.pix_fmt = pix_fmt
        # one swscale context per thread, reused frame after frame (``frame.to_ndarray(format=)``
        # builds and initialises a new one for every frame: about a third of a 1080p read)
        self._local = threading.local()
        comps = fmt.components
        bits = max(c.bits for c in comps) if comps else 8
        has_alpha = any(c.is_alpha for c in comps)
        name = fmt.name
        self.kind = "reformat"
        self.converted = False
        if name in ("gray", "gray8", "y8"):
            self.kind, self.dtype, self.bits, self.shape_tail = "gray8", np.dtype(np.uint8), 8, ()
        elif name.startswith("gray") and not name.startswith("grayf") and bits <= 16:
            self.kind, self.dtype, self.bits, self.shape_tail = (
                "gray16",
                np.dtype(np.uint16),
                bits,
                (),
            )
            self.endian = ">" if fmt.is_big_endian else "<"
        elif name.startswith(("gbrp", "gbrap")) and not name.startswith(("gbrpf", "gbrapf")):
            self.kind = "gbrp"
            self.dtype = np.dtype(np.uint8 if bits <= 8 else np.uint16)
            self.bits = bits
            self.alpha = name.startswith("gbrap")
            self.shape_tail = (4,) if self.alpha else (3,)
            self.endian = ">" if fmt.is_big_endian else "<"
        elif name in ("rgb48le", "rgb48be", "bgr48le", "bgr48be"):
            self.target, self.dtype, self.bits, self.shape_tail = (
                "rgb48le",
                np.dtype(np.uint16),
                16,
                (3,),
            )
        elif name in ("rgba64le", "rgba64be", "bgra64le", "bgra64be"):
            self.target, self.dtype, self.bits, self.shape_tail = (
                "rgba64le",
                np.dtype(np.uint16),
                16,
                (4,),
            )
        elif has_alpha and bits > 8:
            self.target, self.dtype, self.bits = "rgba64le", np.dtype(np.uint16), 16
            self.shape_tail = (4,)
            self.converted = not fmt.is_rgb
        elif has_alpha or fmt.has_palette:
            # palette (GIF) and alpha formats keep their transparency
            self.target, self.dtype, self.bits, self.shape_tail = (
                "rgba",
                np.dtype(np.uint8),
                8,
                (4,),
            )
            self.converted = not fmt.is_rgb
        elif bits > 8:
            # YUV above 8 bits: RGB in 16 bits so no precision is lost in the conversion
            self.target, self.dtype, self.bits, self.shape_tail = (
                "rgb48le",
                np.dtype(np.uint16),
                16,
                (3,),
            )
            self.converted = True
        else:
            self.target, self.dtype, self.bits, self.shape_tail = (
                "rgb24",
                np.dtype(np.uint8),
                8,
                (3,),
            )
            self.converted = not fmt.is_rgb

    @staticmethod
    def _plane(frame, k: int, dtype: np.dtype) -> np.ndarray:
        p = frame.planes[k]
        arr = np.frombuffer(p, dtype=dtype)
        rows = arr[: p.height * (p.line_size // dtype.itemsize)].reshape(p.height, -1)
        return rows[:, : p.width]

    def opaque(self, path: str) -> None:
        """Frames known to be opaque (a GIF without transparency): RGB, alpha checked."""
        if self.shape_tail == (4,) and self.dtype == np.uint8:
            self.kind, self.target, self.shape_tail = "opaque", "rgba", (3,)
            self.path = path

    def _convert(self, frame, target: str):
        """``frame`` in pixel format ``target`` (``frame`` itself when it is in it already),
        through this thread's swscale context: the same conversion as a fresh one makes."""
        reformatter = getattr(self._local, "reformatter", None)
        if reformatter is None:
            from av.video.reformatter import VideoReformatter

            reformatter = self._local.reformatter = VideoReformatter()
        # threads=1: a context with swscale's slice threads hangs when freed in a forked child
        # (threading's after-fork cleanup frees other threads' locals; subprocess with
        # preexec_fn, multiprocessing); the decoders' threads keep the cores busy anyway
        return reformatter.reformat(frame, format=target, threads=1)

    def keep_channel_axis(self) -> None:
        """Gray frames come out as (H, W, 1): the file was written from such frames (our
        writer's tag, see _writer.CHANNEL_AXIS_TAG)."""
        if self.shape_tail == ():
            self.shape_tail = (1,)

    def to_array(self, frame) -> np.ndarray:
        """A new array (never a view on the decoder's buffers)."""
        arr = self._to_array(frame)
        return arr[..., None] if self.shape_tail == (1,) else arr

    def _to_array(self, frame) -> np.ndarray:
        if self.kind == "opaque":
            rgba = self._convert(frame, "rgba").to_ndarray()
            if rgba[..., 3].min() < 255:
                raise SequenceFormatError(
                    f"{self.path}: a frame has transparent pixels although the GIF's headers "
                    f"declare none; open it with gif_alpha=True to keep the alpha channel"
                )
            return np.ascontiguousarray(rgba[..., :3])
        if self.kind == "gray8":
            return np.array(self._plane(frame, 0, self.dtype))
        if self.kind == "gray16":
            return self._plane(frame, 0, np.dtype(self.endian + "u2")).astype(np.uint16)
        if self.kind == "gbrp":
            dt = np.dtype(np.uint8) if self.dtype == np.uint8 else np.dtype(self.endian + "u2")
            g, b, r = (self._plane(frame, k, dt) for k in range(3))
            planes = [r, g, b] + ([self._plane(frame, 3, dt)] if self.alpha else [])
            return np.stack(planes, axis=-1).astype(self.dtype, copy=False)
        converted = self._convert(frame, self.target)
        arr = converted.to_ndarray()
        # a converted frame is a new buffer already; an unconverted one is the decoder's
        return arr if converted is not frame else arr.copy()


class _GifAlpha:
    """Whether a GIF's decoded frames can show transparency, from its block headers only.

    FFmpeg's GIF decoder paints each frame over the previous one; pixels become transparent
    only where the canvas starts transparent (the first frame declares a transparent colour,
    or there is no global palette and the first image leaves part of the screen uncovered) or
    where a frame with a transparent colour is disposed to the background. Packets are the
    demuxer's (one frame each, the first one with the file header).
    """

    def __init__(self):
        self.alpha = False
        self.first = True
        self.screen = None

    def packet(self, data: bytes) -> None:
        if self.alpha:
            return
        try:
            self._parse(data)
        except IndexError:  # a damaged block: keep alpha, never drop it wrongly
            self.alpha = True
        self.first = False

    def _parse(self, data: bytes) -> None:
        k = 0
        no_global = False
        if data[:3] == b"GIF":
            self.screen = (data[6] | data[7] << 8, data[8] | data[9] << 8)
            flags = data[10]
            no_global = not flags & 0x80
            k = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        transparent, disposal = False, 0
        while k < len(data):
            block = data[k]
            if block == 0x21:  # extension: label, then sub-blocks
                if data[k + 1] == 0xF9:
                    transparent = bool(data[k + 3] & 1)
                    disposal = (data[k + 3] >> 2) & 7
                k += 2
                while data[k]:
                    k += data[k] + 1
                k += 1
            elif block == 0x2C:  # image descriptor
                x, y = data[k + 1] | data[k + 2] << 8, data[k + 3] | data[k + 4] << 8
                w, h = data[k + 5] | data[k + 6] << 8, data[k + 7] | data[k + 8] << 8
                covers = (
                    self.screen is not None
                    and (x, y) == (0, 0)
                    and w >= self.screen[0]
                    and h >= self.screen[1]
                )
                if self.first and (transparent or (no_global and not covers)):
                    self.alpha = True
                if transparent and disposal == 2:
                    self.alpha = True
                return
            else:
                return
