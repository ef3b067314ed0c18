"""Frame-exact video and animated GIF reading through PyAV (FFmpeg).

Frame ``i`` is the ``i``-th frame a plain sequential decode of the file yields.

* **Index.** On open the packets of the video stream are demuxed, not decoded: their
  timestamps, keyframe flags and byte positions make the index (cached on disk, keyed by path,
  size and modification time). How a decoded frame is recognised is chosen per file and
  checked while decoding (:class:`_Index`): by presentation stamp, by the packet it came from
  (codecs without delay, whatever the stamps), by counting outputs from keyframes whose GOP
  proves closed (AVI decode stamps), or by counting from the start. Decoding loops consume a
  packet per step, so every read ends.
* **Random access.** A read takes an idle decoder state (its own container), preferring one
  that is already positioned earlier in the same GOP as the target so that it decodes forward
  without seeking; otherwise it seeks to the keyframe at or before the target, decodes forward,
  and checks which frame came out first (re-seeking earlier on an overshoot). Decoder states
  are never shared between threads at the same time. Random access uses slice threading only,
  so a jump pays no frame-threading latency; recent frames stay in the frame cache that all
  open files share (:data:`napari_imseq.io._cache.frames`, bounded in bytes).
* **Sequential reads** (:meth:`VideoFile.iter_frames`) use a fresh decoder with frame and
  slice threading.
* **Pixels.** Gray stays gray in its own depth (``gray`` -> uint8, ``gray10/12/16`` -> uint16
  with unscaled samples); planar 16-bit RGB (``gbrp16le``) -> uint16 RGB; alpha is kept (a GIF
  is RGBA only when its headers allow transparency); 8-bit YUV -> uint8 RGB; YUV above 8 bits
  -> uint16 RGB (``rgb48``).
"""

from __future__ import annotations

import os
import threading
import warnings
import zlib
from collections import deque
from fractions import Fraction
from typing import Any

import numpy as np

from .. import _cache
from .._base import (
    Sequence,
    SequenceClosedError,
    SequenceFormatError,
    SequenceWarning,
    UnsupportedFormatError,
    _check_exists,
)

_NO_TS = np.iinfo(np.int64).min
_INDEX_KIND = "video-index-v3"
_INDEX_ARRAYS = ("pts", "dts", "key", "pos", "size", "dur", "corrupt", "alpha", "slice_crc")
#: containers whose packet "pts" may be decode stamps (monotone even when frames reorder)
_DECODE_STAMP_CONTAINERS = ("avi",)
#: seeks that land after the target (or somewhere unknown) before a read starts from the top
_SEEK_ATTEMPTS = 3
#: decode every frame again from this many frames before the target: more than the lag between
#: the packet going in and the frame coming out (H.264/HEVC reorder up to 16 frames, plus one
#: frame per frame-decoding thread; FFmpeg starts at most 16)
_SKIP_MARGIN = 16 + min(16, os.cpu_count() or 1) + 4
#: decoders told to check their codec's own CRCs and fail on a mismatch
_CRC_CHECKED = ("png", "apng")
#: a seek followed by a longer decode run than this uses frame threading
_FRAME_THREADED_RUN = 8


def _sniff_video(head: bytes) -> bool:
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return True
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return True
    return head.startswith(
        (
            b"\x1a\x45\xdf\xa3",  # Matroska / WebM (EBML)
            b"GIF87a",
            b"GIF89a",
            b"\x00\x00\x01\xba",  # MPEG program stream
            b"\x00\x00\x01\xb3",  # MPEG video elementary stream
            b"FLV",
            b"OggS",
            b"\x30\x26\xb2\x75\x8e\x66\xcf\x11",  # ASF / WMV
            b"\x06\x0e\x2b\x34",  # MXF
            b"nut/multimedia container",
            b"YUV4MPEG2",
        )
    )


#: bytes reversed bit by bit: an MSB-first CRC computed with zlib's LSB-first CRC-32
_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
#: FFV1 version 3 slice trailer: 3 bytes slice size, 1 byte error status, 4 bytes CRC
_FFV1_TRAILER = 8
#: packets the index scan checks for FFV1 slice CRCs before concluding the file has none
_CRC_PROBE_PACKETS = 8


def _ffv1_slices_intact(data: bytes) -> bool:
    """True when ``data`` (one FFV1 version 3 packet) splits into slices whose CRCs all match.

    Each slice ends with its size and a CRC-32 (polynomial 0x04C11DB7, MSB first, initial
    value 0) chosen so that the CRC over the slice including it is 0; the slices are found
    from the end of the packet backwards. FFmpeg's decoder, on a mismatch, conceals the slice
    with the previously decoded picture, so the pixels depend on what was decoded before.
    """
    end = len(data)
    if not end:
        return False
    while end > 0:
        if end < _FFV1_TRAILER:
            return False
        size = int.from_bytes(data[end - _FFV1_TRAILER : end - 5], "big") + _FFV1_TRAILER
        if size > end:
            return False
        # zlib's CRC-32 of the bit-reversed bytes, started from 0 and not inverted at the end,
        # is the bit-reversed MSB-first CRC: 0 exactly when the MSB-first CRC is 0
        if zlib.crc32(data[end - size : end].translate(_BIT_REVERSED), 0xFFFFFFFF) != 0xFFFFFFFF:
            return False
        end -= size
    return True


def _ebml_vint(b: bytes, at: int, keep_marker: bool) -> tuple[int, int] | None:
    """(value, length) of the EBML variable-length integer at ``b[at]``; an element size
    whose value bits are all 1 (unknown size) is -1."""
    if at >= len(b) or not b[at]:
        return None
    length = 9 - b[at].bit_length()
    if at + length > len(b):
        return None
    value = int.from_bytes(b[at : at + length], "big")
    if keep_marker:
        return value, length
    value &= (1 << (7 * length)) - 1
    return (-1 if value == (1 << (7 * length)) - 1 else value), length


def _matroska_segment_end(path: str) -> int | None:
    """The byte where the Matroska/WebM Segment declares its end, or None (another format,
    or a segment of unknown size, as live recordings write it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    at = 0
    for expected in (0x1A45DFA3, 0x18538067):  # the EBML header, then the Segment
        ident = _ebml_vint(head, at, keep_marker=True)
        if ident is None or ident[0] != expected:
            return None
        size = _ebml_vint(head, at + ident[1], keep_marker=False)
        if size is None or size[0] < 0:
            return None
        at += ident[1] + size[1]
        if expected == 0x1A45DFA3:
            at += size[0]
    return at + size[0]


def _nbytes(item) -> int:
    if isinstance(item, np.ndarray):
        return item.nbytes
    return sum(p.buffer_size for p in item.planes)


class _Plan:
    """How decoded frames of one pixel format become numpy arrays, decided without decoding."""

    def __init__(self, pix_fmt: str):
        import av

        fmt = av.VideoFormat(pix_fmt)
        self.pix_fmt = pix_fmt
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

    def to_array(self, frame) -> np.ndarray:
        """A new array (never a view on the decoder's buffers)."""
        if self.kind == "opaque":
            rgba = frame.to_ndarray(format="rgba")
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
        arr = frame.to_ndarray(format=self.target)
        # a converted frame is a new buffer already; an unconverted one is the decoder's
        return arr.copy() if frame.format.name == self.target else arr


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


class _Renumber(Exception):
    """The decoder's output contradicts the frame numbering: the index must fall back."""


class _Reslice(Exception):
    """A frame-threaded decoder failed: the read is done again with slice threads only."""


class _Index:
    """Packets of the video stream in decode order, and how frames are numbered and found.

    ``mode`` says how a decoded frame is recognised (see docs/reading.md):

    * ``"pts"``: frame ``i`` has the ``i``-th smallest presentation stamp; a decoded frame is
      recognised by its stamp (packets with unique stamps that a reordering decoder can produce).
    * ``"packet"``: frame ``i`` comes from packet ``i`` (decoders without delay output one frame
      per packet, in decode order); a decoded frame is recognised by the packet it came from,
      whatever the timestamps say (repeated, backwards or missing stamps).
    * ``"count"``: frame ``i`` is the ``i``-th decoder output; after a seek to keyframe ``k``
      outputs are counted from ``k``. AVI packets of reordering codecs carry decode stamps only;
      counting from a keyframe is exact when its GOP is closed, which each GOP proves once from
      the stamps the decoded frames carry (they must be exactly the GOP's own packets).
    * ``"sequential"``: frame ``i`` is the ``i``-th output counted from the start of the file;
      reads never seek (they decode on, or start again from the beginning).
    """

    #: presentation positions further than this from decode positions are no reordering a
    #: decoder does (H.264/HEVC reorder at most 16 frames): such stamps are not trusted
    MAX_REORDER = 34

    def __init__(self, pts, dts, key, pos, *, container: str, delay: bool, reorder: bool):
        self.pts, self.dts, self.key, self.pos = pts, dts, key, pos
        n = self.n = len(pts)
        self.delay = delay
        have_pts = n > 0 and not np.any(pts == _NO_TS)
        unique = have_pts and len(np.unique(pts)) == n
        monotone = have_pts and bool(np.all(np.diff(pts) > 0))
        if unique and not monotone:
            order = np.argsort(pts, kind="stable")
            displaced = int(np.max(np.abs(order - np.arange(n))))
        else:
            displaced = 0
        self.reason = None
        if not delay and unique and monotone:
            mode = "pts"  # decode order is presentation order: stamps and packets agree
        elif not delay:
            mode = "packet"
            if have_pts:
                self.reason = "packet timestamps repeat or go backwards"
        elif not unique:
            mode = "sequential"
            self.reason = "packet timestamps are missing or repeat"
        elif displaced > self.MAX_REORDER:
            mode = "sequential"
            self.reason = f"packet timestamps are {displaced} frames out of decode order"
        elif container in _DECODE_STAMP_CONTAINERS and monotone and reorder:
            mode = "count"  # decode stamps of a codec that may reorder
        else:
            mode = "pts"
        ts = pts if have_pts else np.where(dts == _NO_TS, np.arange(n), dts)
        self.has_times = have_pts or not np.any(dts == _NO_TS)
        self.frame_pts = np.sort(ts) if mode in ("pts", "count", "sequential") else ts.copy()
        self.times = self.frame_pts
        self.lookup = {int(t): i for i, t in enumerate(self.frame_pts)} if unique else {}
        # where a seek lands is recognised by the byte position of the first packet
        valid = pos[pos >= 0]
        self.by_pos = (
            {int(p): k for k, p in enumerate(pos)}
            if len(valid) == n and len(np.unique(valid)) == n
            else {}
        )
        both = (pts != _NO_TS) & (dts != _NO_TS)
        self.seek_ts = np.where(both, np.minimum(pts, dts), np.where(pts == _NO_TS, dts, pts))
        self.verified: set[int] = set()  # count mode: keyframes whose GOP proved closed
        self.version = 0
        self._set_mode(mode)

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == "pts":
            order = np.argsort(self.pts, kind="stable")
            keys = np.flatnonzero(self.key[order])
        elif mode in ("packet", "count") and self.by_pos:
            keys = np.flatnonzero(self.key)
        else:
            keys = np.zeros(0, np.int64)  # no seeking: reads start from the beginning
        self.keyframes = (keys if len(keys) and keys[0] == 0 else np.r_[0, keys]).astype(np.int64)

    def downgrade(self, why: str) -> None:
        """Number frames by the decoder's output from here on (the stamps proved unreliable)."""
        self.reason = why
        self.version += 1
        self._set_mode("packet" if not self.delay else "sequential")

    def __len__(self) -> int:
        return self.n

    def keyframe_at_or_before(self, i: int) -> int:
        k = int(np.searchsorted(self.keyframes, i, side="right")) - 1
        return int(self.keyframes[max(k, 0)])

    def next_keyframe(self, i: int) -> int:
        k = int(np.searchsorted(self.keyframes, i, side="right"))
        return int(self.keyframes[k]) if k < len(self.keyframes) else self.n

    def position_of(self, packet) -> int | None:
        p = packet.pos
        return self.by_pos.get(int(p)) if p is not None and p >= 0 else None


class _Decoder:
    """One container opened for decoding, used by one thread at a time.

    Packets are demuxed and decoded one at a time, so every loop step consumes a packet (or
    a decoded frame already waiting): a read ends when the stream does, whatever the
    timestamps say. Where a seek landed is checked, never assumed.
    """

    def __init__(self, owner: VideoFile, thread_type: str):
        self.owner = owner
        self.lock = threading.Lock()
        self.closed = False
        self.keep = None  # callback(index, frame) for frames decoded on the way to a target
        self.container = None
        # packet mode decodes with slice threads only: without frame threads a decoder without
        # delay outputs each frame with its packet
        self.thread_type = thread_type
        self._open()
        self._prime()

    # ---- state -------------------------------------------------------------------------
    def _open(self) -> None:
        """(Re)open the container: the decoder is then at the start of the file."""
        import av

        if self.container is not None:
            self.container.close()
        self.container = av.open(self.owner.path, metadata_errors="ignore")
        self.stream = self.container.streams.video[self.owner._stream_index]
        cc = self.stream.codec_context
        cc.thread_type = "SLICE" if self.owner._index.mode == "packet" else self.thread_type
        cc.thread_count = 0
        if cc.name in _CRC_CHECKED:
            # a chunk whose CRC does not match is an error, not pixels decoded from bad bytes
            cc.options = {"err_detect": "crccheck+explode"}
        self.skipping = "DEFAULT"
        self.version = self.owner._index.version
        self._run(0)

    def _run(self, landed: int | None, lookahead=None) -> None:
        """A new decode run from packet ``landed`` (None: unknown, found from the frames).

        ``lookahead`` is a packet already taken from the current demuxer, decoded first."""
        if lookahead is None:
            self.packets = self.container.demux(self.stream)
        self.lookahead = lookahead
        self.pending: deque = deque()  # (index, frame) decoded and not handed out yet
        self.next_packet = landed  # position of the next packet demuxed
        self.count_next = landed  # count/sequential modes: index of the next output
        self.feed_from = 0  # packet mode: packets before this one need no decoding
        self.last: int | None = None  # index of the last frame handed out in this run
        self.first = landed is None  # the next output is the first after a seek
        self.eof = False
        self.error: Exception | None = None
        self.verify = None  # count mode: (keyframe, next keyframe, expected tags, seen tags)

    def _prime(self) -> None:
        """Decode the first frame, as a sequential decode does, before any seek.

        Decoders learn from the stream's first packets things that later packets do not
        repeat: FFmpeg's H.264 decoder, for one, reads the encoder version from x264's SEI in
        the first packet and switches bug workarounds on it. A decoder that seeks before seeing
        it decodes later frames differently from a sequential decode. The frame stays pending.
        """
        try:
            for _ in range(64):  # a decoder's delay is far shorter; bounded anyway
                if self.pending or not self._feed():
                    break
        except Exception:  # a damaged start: reads will report it when they get there
            self._open()

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.pending.clear()
                self.container.close()

    @property
    def position(self) -> int | None:
        """The index of the next frame this decoder hands out, when known."""
        if self.version != self.owner._index.version:
            return None
        if self.pending:
            return self.pending[0][0]
        if self.eof:
            return None
        mode = self.owner._index.mode
        if mode in ("count", "sequential"):
            return self.count_next
        if mode == "packet":
            return None if self.next_packet is None else max(self.next_packet, self.feed_from)
        return None if self.last is None else self.last + 1

    # ---- feeding -----------------------------------------------------------------------
    def _demux(self):
        import av

        if self.lookahead is not None:
            packet, self.lookahead = self.lookahead, None
            return packet
        try:
            return next(self.packets, None)
        except (av.FFmpegError, OSError) as err:  # damaged data: the stream ends here
            self.error = err
            return None

    def _feed(self) -> bool:
        """Demux one packet and decode it; False when the stream is exhausted."""
        import av

        if self.eof:
            return False
        idx = self.owner._index
        packet = self._demux()
        p = None
        if packet is not None and packet.size:
            p = self.next_packet
            if p is None:
                p = idx.position_of(packet)
            self.next_packet = None if p is None else p + 1
            if p is not None and p >= idx.n:
                packet = None  # past the frames the index lists (a cut-off last packet)
        if packet is None or not packet.size:
            self.eof = True
            packet = None  # drain the decoder
        elif p is not None and p < self.feed_from:
            return True
        if packet is not None and self.owner._slice_crc:
            self._check_slices(packet, p)
        try:
            frames = self.stream.decode(packet)
        except av.FFmpegError as err:
            self.error = err
            if self.stream.codec_context.thread_type & av.codec.context.ThreadType.FRAME:
                # frame threads report an error late, with frames of other packets still in
                # flight that are then lost: which frame failed is only known without them
                raise _Reslice(str(err)) from err
            if idx.mode in ("count", "sequential"):  # outputs can no longer be counted
                raise SequenceFormatError(
                    f"{self.owner.path}: the video cannot be decoded past packet {p}: {err}; "
                    f"the file is damaged there"
                ) from err
            return True
        if idx.mode == "packet" and packet is not None and len(frames) > 1:
            raise _Renumber("one packet decoded to several frames")
        for frame in frames:
            self._out(frame, p if packet is not None else None)
        return True

    def _check_slices(self, packet, p: int | None) -> None:
        """FFV1 with slice CRCs: a packet that fails them marks its frame, and the frames up
        to the next keyframe that carry its coder state on, as damaged (never returned)."""
        if _ffv1_slices_intact(bytes(packet)):
            return
        idx = self.owner._index
        i = p if idx.mode == "packet" or packet.pts is None else idx.lookup.get(packet.pts, p)
        if i is None:
            raise SequenceFormatError(
                f"{self.owner.path}: a damaged FFV1 packet (slice CRC mismatch) could not be "
                f"placed in the frame index; the file is damaged"
            )
        self.owner._damaged[i] = idx.next_keyframe(i) if not idx.key[i] else i + 1

    def _out(self, frame, p: int | None) -> None:
        idx = self.owner._index
        if self.version != idx.version:  # another thread renumbered the file during this run
            raise _Renumber("the frame numbering changed during the read")
        if idx.mode == "pts":
            i = idx.lookup.get(frame.pts) if frame.pts is not None else None
            if i is None:
                raise _Renumber(f"a decoded frame carries timestamp {frame.pts}, not in the index")
        elif idx.mode == "packet":
            if p is None:
                raise _Renumber("the decoder held frames back")
            i = p
        else:
            i = self.count_next
            self.count_next += 1
            if self.verify is not None:
                self._check_gop(i, frame.pts)
        if self.owner._damaged and self.owner._damaged_at(i) is not None:
            frame = None  # concealed by the decoder from other frames: not this frame's pixels
        self.pending.append((i, frame))

    def _check_gop(self, i: int, tag) -> None:
        """Count mode: the frames of a GOP reached by a seek must be exactly its own packets."""
        idx = self.owner._index
        start, end, expected, seen = self.verify
        if i >= end:
            return
        if (i == start and tag != idx.pts[start]) or tag not in expected or tag in seen:
            raise _Renumber(
                f"the GOP at frame {start} is open (after a seek it does not decode to its own "
                f"packets)"
            )
        seen.add(tag)
        if len(seen) == len(expected):
            idx.verified.add(start)
            self.verify = None

    # ---- moving ------------------------------------------------------------------------
    def _seek(self, ts: int) -> None:
        self.container.seek(int(ts), backward=True, any_frame=False, stream=self.stream)
        self.skipping = None  # the codec context was flushed; set skip_frame again

    def _rewind(self) -> None:
        """Back to the first packet: verified by its byte position, else by reopening."""
        idx = self.owner._index
        if idx.by_pos and self.version == idx.version:
            try:
                self._seek(int(np.min(idx.seek_ts)))
                self._run(None)
                packet = self._demux()
                if packet is not None and idx.position_of(packet) == 0:
                    self._run(0, lookahead=packet)
                    return
            except Exception:  # noqa: BLE001 - reopening below always works
                pass
        self._open()

    def _reposition(self, target: int) -> None:
        """Seek to a keyframe at or before ``target`` and know where the seek landed."""
        import av

        idx = self.owner._index
        k = idx.keyframe_at_or_before(target)
        if idx.mode == "pts":
            if k == 0:
                self._rewind()
                return
            self._seek(idx.frame_pts[k])
            self._run(None)
            self.seek_key = k
            return
        for _ in range(_SEEK_ATTEMPTS):
            if k == 0:
                break
            try:
                self._seek(idx.seek_ts[k])
            except av.FFmpegError:
                break
            self._run(None)
            packet = self._demux()
            landed = None if packet is None else idx.position_of(packet)
            if landed is not None and landed <= target and idx.key[landed]:
                self._run(landed, lookahead=packet)
                if idx.mode == "packet":
                    self.feed_from = k
                elif landed and landed not in idx.verified:
                    end = idx.next_keyframe(landed)
                    expected = {int(t) for t in idx.pts[landed:end]}
                    self.verify = (landed, end, expected, set())
                return
            # landed after the target or somewhere unknown: aim one keyframe earlier
            j = int(np.searchsorted(idx.keyframes, k, side="left")) - 1
            k = int(idx.keyframes[max(j, 0)])
        self._rewind()

    def _earlier(self) -> None:
        """Pts mode: the seek overshot the target; go one keyframe further back."""
        idx = self.owner._index
        self.attempts = getattr(self, "attempts", 0) + 1
        j = int(np.searchsorted(idx.keyframes, self.seek_key, side="left")) - 1
        if j <= 0 or self.attempts >= _SEEK_ATTEMPTS:
            self._rewind()
            return
        self.seek_key = int(idx.keyframes[j])
        self._seek(idx.frame_pts[self.seek_key])
        self._run(None)

    def _skip_nonref(self, target: int) -> None:
        """Pts mode: frames well before the target that no frame references are not decoded."""
        far = self.last is not None and self.last < target - _SKIP_MARGIN
        want = "NONREF" if far else "DEFAULT"
        if self.skipping != want:
            self.stream.codec_context.skip_frame = want
            self.skipping = want

    def _missing(self, target: int, why: str) -> Exception:
        import av

        if self.stream.codec_context.thread_type & av.codec.context.ThreadType.FRAME:
            # a frame-threaded decoder may drop frames of other packets when one fails
            return _Reslice(f"frame {target} is missing: {why}")
        err = SequenceFormatError(
            f"{self.owner.path}: frame {target} cannot be decoded: {why} (the index lists "
            f"{self.owner._index.n} frames; the file is damaged or truncated there)"
        )
        err.__cause__ = self.error
        return err

    def decode_to(self, target: int):
        """Decode until frame ``target`` and return it (the av.VideoFrame)."""
        idx = self.owner._index
        if self.version != idx.version:
            self._open()
        pos = self.position
        if pos is None or not (idx.keyframe_at_or_before(target) <= pos <= target):
            self.attempts = 0
            self._reposition(target)
        while True:
            while not self.pending:
                if idx.mode == "pts":
                    self._skip_nonref(target)
                if not self._feed():
                    if self.first and idx.mode == "pts":
                        self._earlier()  # the seek found nothing to decode
                        continue
                    raise self._missing(target, "the stream ends before it")
            i, frame = self.pending[0]
            if self.first:
                self.first = False
                if i > target:  # pts mode: the seek landed after the target
                    self.pending.clear()
                    self._earlier()
                    continue
            if self.last is not None and i <= self.last:
                raise _Renumber("the decoder's frame order differs from the timestamps' order")
            if i > target:  # the decoder gave no frame for the target
                raise self._missing(target, f"the decoder went from frame {self.last} to {i}")
            self.pending.popleft()
            self.last = i
            if i == target:
                self._finish_gop()
                if frame is None:
                    raise self.owner._damage_error(i)
                return frame
            if self.keep is not None and frame is not None:
                self.keep(i, frame)

    def _finish_gop(self) -> None:
        """Count mode: decode on to the end of a GOP that has not proved closed yet."""
        while self.verify is not None:
            if not self._feed():
                raise _Renumber("the stream ended inside a GOP that could not be checked")
            while self.pending:
                i, frame = self.pending.popleft()
                self.last = i
                if self.keep is not None and frame is not None:
                    self.keep(i, frame)


class VideoFile(Sequence):
    """A video (any container and codec FFmpeg opens) or an animated GIF."""

    format_name = "video"
    extensions = (
        ".avi", ".mkv", ".mp4", ".m4v", ".mov", ".webm", ".gif", ".mpg", ".mpeg", ".wmv",
        ".flv", ".ogv", ".mxf", ".nut", ".ts", ".m2ts", ".3gp", ".h264", ".264", ".hevc",
        ".y4m", ".mj2",
    )  # fmt: skip

    #: most bytes of decoded frames this file keeps (None: the budget shared by all open files,
    #: :func:`napari_imseq.io._cache.set_frame_cache_budget`)
    cache_bytes: int | None = None
    #: idle decoder states kept open for reuse
    max_idle_decoders = 4

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return _sniff_video(head)

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        stream: int = 0,
        cache_bytes: int | None = None,
        gif_alpha: bool | None = None,
    ):
        super().__init__(path, stream=stream, gif_alpha=gif_alpha)
        import av

        path = self.path
        _check_exists(path)
        if cache_bytes is not None:
            self.cache_bytes = cache_bytes
        try:
            container = av.open(path, metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as err:
            hint = "check the file, or that it is a video at all"
            if path.lower().endswith((".mp4", ".mov", ".m4v", ".3gp", ".mj2")):
                hint = (
                    "an MP4/MOV cut off before its index (the 'moov' box written at the end of "
                    "a recording) cannot be read; " + hint
                )
            raise SequenceFormatError(
                f"{path}: not a video FFmpeg can open ({err}); {hint}"
            ) from err
        try:
            videos = container.streams.video
            if not videos:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise SequenceFormatError(
                    f"{path}: the file has no video stream (streams: {', '.join(kinds)}); "
                    f"there are no frames to show"
                )
            if stream >= len(videos):
                raise SequenceFormatError(
                    f"{path}: video stream {stream} requested but the file has {len(videos)}"
                )
            s = videos[stream]
            self._stream_index = stream
            cc = s.codec_context
            if cc is None or cc.codec is None:
                raise UnsupportedFormatError(
                    f"{path}: the video stream's codec is unknown to this FFmpeg build (or its "
                    f"header is damaged); no frame can be decoded"
                )
            codec = cc.codec
            self._info = {
                "container": container.format.name,
                "codec": cc.name,
                "codec_long_name": getattr(codec, "long_name", cc.name),
                "pixel_format": cc.pix_fmt,
                "width": cc.width,
                "height": cc.height,
                "time_base": s.time_base,
                "average_rate": s.average_rate,
                "guessed_rate": s.guessed_rate,
                "base_rate": s.base_rate,
                "stated_frames": s.frames,
                "start_time": s.start_time,
                "stream_duration": s.duration,
                "container_duration": container.duration,
                "streams": [st.type for st in container.streams],
            }
            arrays = _cache.load(path, _INDEX_KIND)
            if arrays is None or not set(_INDEX_ARRAYS) <= set(arrays):
                arrays = self._scan(container, s)
                _cache.save(path, _INDEX_KIND, arrays)
            declared = self._declared(container, s)
            pix_fmt = cc.pix_fmt
            if pix_fmt is None or not cc.width or not cc.height:
                # the container does not say: decode the first frame once to find out
                frame = next(container.decode(s), None)
                if frame is None:
                    raise SequenceFormatError(f"{path}: the video stream decodes to no frame")
                pix_fmt = frame.format.name
                self._info.update(pixel_format=pix_fmt, width=frame.width, height=frame.height)
            # codecs that may hold frames back (and reorder them) are told apart from those
            # that output each frame with its packet
            delay = codec is None or bool(codec.delay) or bool(codec.reorder)
            reorder = codec is None or bool(codec.reorder)
        except av.FFmpegError as err:
            raise SequenceFormatError(
                f"{path}: the video could not be read ({err}); the file is damaged"
            ) from err
        finally:
            container.close()
        n = self._readable(arrays, declared)
        self._index = _Index(
            arrays["pts"][:n],
            arrays["dts"][:n],
            arrays["key"][:n].astype(bool),
            arrays["pos"][:n],
            container=self._info["container"],
            delay=delay,
            reorder=reorder,
        )
        if len(self._index) == 0:
            raise SequenceFormatError(f"{path}: the video stream holds no frames")
        try:
            self._plan = _Plan(pix_fmt)
            alpha = bool(arrays["alpha"][0]) if gif_alpha is None else gif_alpha
            if self._info["container"] == "gif" and not alpha:
                self._plan.opaque(path)
        except Exception as err:
            raise UnsupportedFormatError(
                f"{path}: pixel format {pix_fmt!r} is not supported: {err}"
            ) from err
        self._frame_shape = (self._info["height"], self._info["width"], *self._plan.shape_tail)
        self._slice_crc = bool(arrays["slice_crc"][0])
        #: FFV1 frames found damaged while decoding: first frame -> end of the frames it spoils
        self._damaged: dict[int, int] = {}
        self._idle: list[_Decoder] = []
        self._busy: set[_Decoder] = set()
        self._pool_lock = threading.Lock()
        self._cache_owner = object()  # this file's entries in the shared frame cache

    @staticmethod
    def _declared(container, stream) -> tuple[int | None, float | None]:
        """(frames, seconds) the headers declare for the stream: a frame count (AVI, MP4/MOV)
        or else a duration (Matroska's per-track DURATION, a single stream's duration)."""
        if stream.frames:
            return int(stream.frames), None
        seconds = None
        tag = (stream.metadata or {}).get("DURATION")  # Matroska: per track
        if tag:
            try:
                h, m, sec = tag.split(":")
                seconds = int(h) * 3600 + int(m) * 60 + float(sec)
            except ValueError:
                seconds = None
        elif len(container.streams) == 1 and container.duration:
            seconds = container.duration / 1e6
        return None, seconds

    def _readable(self, arrays: dict[str, np.ndarray], declared) -> int:
        """Frames whose packets the file holds whole; a cut-off file is reported.

        A frame count in the header is compared with the frames found. A duration (Matroska)
        is compared with the time the readable frames cover (stamp plus duration of the last):
        when the Matroska segment declares its size, frames are missing only if bytes are
        missing too and the frames end before the duration (by more than half a tick); with
        a segment of unknown size (a live recording) the data must run to the end of the file
        and the frames end more than a frame before the duration. Durations are never turned
        into frame counts (stamps may be irregular): ``frames_declared`` stays None then."""
        corrupt = arrays["corrupt"]
        n = len(corrupt)
        while n and corrupt[n - 1]:
            n -= 1  # a last packet cut short by the end of the file
        frames, seconds = declared
        truncated = n < len(corrupt)
        size = os.path.getsize(self.path)
        at_end = False
        if n and len(arrays["pos"]) and arrays["pos"][n - 1] >= 0:
            # the data stops at the end of the file (no trailer, index or cues after it)
            tail = size - (arrays["pos"][n - 1] + arrays["size"][n - 1])
            at_end = tail < 2 * int(arrays["size"].max()) + 65536
        end = None
        if frames is not None:
            truncated = truncated or (n < frames and at_end)
        elif seconds is not None and n:
            cut, end = self._coverage(arrays, n, seconds, size, at_end)
            truncated = truncated or cut
        self._truncated = truncated
        self._frames_declared = frames if truncated else None
        if truncated and frames is not None and n < frames:
            warnings.warn(
                f"{self.path}: the header declares {frames} frames but only {n} are readable "
                f"(the file is probably truncated); {n} frames are read",
                SequenceWarning,
                stacklevel=4,
            )
        elif truncated and end is not None:
            warnings.warn(
                f"{self.path}: the header declares {seconds:.6g} s but the {n} readable frames "
                f"end at {end:.6g} s (the file is probably truncated); {n} frames are read",
                SequenceWarning,
                stacklevel=4,
            )
        elif truncated:
            warnings.warn(
                f"{self.path}: the last frame is cut short (the file is probably truncated); "
                f"{n} frames are read",
                SequenceWarning,
                stacklevel=4,
            )
        return n

    def _coverage(self, arrays, n: int, seconds: float, size: int, at_end: bool):
        """(cut, end in seconds) for a stream that declares a duration, not a frame count."""
        tb = float(self._info["time_base"] or 0)
        ts, dur = arrays["pts"][:n], arrays["dur"][:n]
        ok = ts != _NO_TS
        if not tb or not ok.any():
            return False, None
        ts, dur = ts[ok], dur[ok]
        end = float(np.max(ts + np.maximum(dur, 0))) * tb
        missing = seconds - end
        segment_end = _matroska_segment_end(self.path)
        if segment_end is not None:  # the bytes say whether the file is whole
            return bool(segment_end > size and missing > tb / 2), end
        # the last frame's duration may be unknown: it can be as long as any gap
        gaps = np.diff(np.unique(ts))
        frame = tb if np.all(dur > 0) else float(gaps.max() if len(gaps) else 0) * tb
        return bool(at_end and missing > max(frame, tb / 2)), end

    @staticmethod
    def _scan(container, stream) -> dict[str, np.ndarray]:
        pts, dts, key, pos, size, dur, corrupt = [], [], [], [], [], [], []
        gif = _GifAlpha() if container.format.name == "gif" else None
        # FFV1 version 3 with slice CRCs: known from the first packets that check out whole
        probe = _CRC_PROBE_PACKETS if stream.codec_context.name == "ffv1" else 0
        slice_crc = False
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's flush packet
            if len(pts) < probe and not slice_crc:
                slice_crc = _ffv1_slices_intact(bytes(packet))
            pts.append(_NO_TS if packet.pts is None else packet.pts)
            dts.append(_NO_TS if packet.dts is None else packet.dts)
            key.append(packet.is_keyframe)
            pos.append(-1 if packet.pos is None else packet.pos)
            size.append(packet.size)
            dur.append(packet.duration or 0)
            corrupt.append(packet.is_corrupt)
            if gif is not None:
                gif.packet(bytes(packet))
        return {
            "alpha": np.asarray([gif is None or gif.alpha], bool),
            "slice_crc": np.asarray([slice_crc], bool),
            "pts": np.asarray(pts, np.int64),
            "dts": np.asarray(dts, np.int64),
            "key": np.asarray(key, bool),
            "pos": np.asarray(pos, np.int64),
            "size": np.asarray(size, np.int64),
            "dur": np.asarray(dur, np.int64),
            "corrupt": np.asarray(corrupt, bool),
        }

    # ---- damage ----------------------------------------------------------------------
    def _damaged_at(self, i: int) -> int | None:
        """The damaged frame that spoils frame ``i`` (itself or an earlier one in its GOP)."""
        for start, end in list(self._damaged.items()):
            if start <= i < end:
                return start
        return None

    def _damage_error(self, i: int) -> SequenceFormatError:
        start = self._damaged_at(i)
        why = (
            "its FFV1 slice CRC does not match"
            if start == i
            else f"it continues the coder state of damaged frame {start}"
        )
        return SequenceFormatError(
            f"{self.path}: frame {i} is damaged ({why}); the decoder would show pixels "
            f"concealed from other frames. The other frames are read normally"
        )

    # ---- decoder pool ----------------------------------------------------------------
    def _acquire(self, target: int, slices_only: bool = False) -> _Decoder:
        """An idle decoder for ``target``: one that can decode on without seeking if any;
        otherwise one whose threading suits the run from the keyframe to the target.
        ``slices_only``: a decoder without frame threads (after a frame-threaded one failed)."""
        with self._pool_lock:
            self._check_open()
            keyframe = self._index.keyframe_at_or_before(target)
            best, best_pos = None, -1
            for dec in self._idle:
                pos = dec.position
                if slices_only and dec.thread_type != "SLICE":
                    continue
                if pos is not None and keyframe <= pos <= target and pos > best_pos:
                    best, best_pos = dec, pos
            # a short run pays no frame-threading latency with slice threads; a long run
            # (a long GOP) decodes much faster with frame threads on every core
            long_run = target - keyframe > _FRAME_THREADED_RUN and not slices_only
            kind = "AUTO" if long_run else "SLICE"
            if best is None:
                best = next((d for d in self._idle if d.thread_type == kind), None)
            if best is not None:
                self._idle.remove(best)
                self._busy.add(best)
                return best
        return self._new_decoder(kind)

    def _new_decoder(self, kind: str) -> _Decoder:
        import av

        try:
            dec = _Decoder(self, kind)
        except (av.FFmpegError, OSError) as err:
            raise SequenceFormatError(
                f"{self.path}: the video could not be opened for decoding ({err}); the file "
                f"changed or is damaged"
            ) from err
        with self._pool_lock:
            if self._closed:
                dec.close()
                self._check_open()
            self._busy.add(dec)
        return dec

    def _check_decoder(self, dec: _Decoder) -> None:
        if dec.closed or self._closed:  # close() ran while this read waited
            raise SequenceClosedError(
                f"{self.path}: the sequence was closed during the read; open it again to read"
            )

    def _release(self, dec: _Decoder, broken: bool = False) -> None:
        with self._pool_lock:
            self._busy.discard(dec)
            keep = not (broken or self._closed or len(self._idle) >= self.max_idle_decoders)
            if keep:
                self._idle.append(dec)
        if not keep:
            dec.close()

    def _renumber(self, why: str, version: int) -> None:
        """The stamps proved unreliable: number frames by the decoder's output from now on."""
        idx = self._index
        with self._pool_lock:
            if idx.version != version:
                return  # another thread did it
            idx.downgrade(why)
            idle, self._idle = self._idle, []
        for dec in idle:
            dec.close()
        _cache.frames.drop(self._cache_owner)
        how = "by packet" if idx.mode == "packet" else "by decoding from the start"
        warnings.warn(
            f"{self.path}: {why}; frames are now numbered in the decoder's output order and "
            f"found {how} (random access is slower)",
            SequenceWarning,
            stacklevel=4,
        )

    # ---- protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._frame_shape

    @property
    def dtype(self) -> np.dtype:
        return self._plan.dtype

    @property
    def bit_depth(self) -> int:
        return self._plan.bits

    @property
    def rgb(self) -> bool:
        return bool(self._plan.shape_tail)

    def _decode(self, dec: _Decoder, index: int):
        """``dec.decode_to(index)`` with dependency errors turned into ours."""
        import av

        try:
            return dec.decode_to(index)
        except (SequenceFormatError, _Renumber):
            raise
        except (av.FFmpegError, OSError, ValueError, AttributeError, RuntimeError) as err:
            self._check_decoder(dec)
            raise SequenceFormatError(
                f"{self.path}: frame {index} could not be decoded ({type(err).__name__}: {err}); "
                f"the file is damaged"
            ) from err

    def _read(self, index: int) -> np.ndarray:
        version = self._index.version
        key = (version, index)
        hit = _cache.frames.get(self._cache_owner, key)
        if isinstance(hit, np.ndarray):
            return hit.copy()
        if hit is not None:  # a decoded frame not converted yet: take it out to convert
            _cache.frames.pop(self._cache_owner, key)
            arr = self._plan.to_array(hit)
        else:
            slices_only = False
            for _ in range(3):
                dec = self._acquire(index, slices_only)
                broken = True
                try:
                    with dec.lock:
                        self._check_decoder(dec)
                        dec.keep = lambda i, f, v=version: self._remember(i, f, v)
                        frame = self._decode(dec, index)
                        arr = self._plan.to_array(frame)
                        broken = False
                        break
                except _Renumber as why:
                    self._renumber(str(why), version)
                    version = self._index.version
                except _Reslice:
                    slices_only = True
                finally:
                    dec.keep = None
                    self._release(dec, broken)
            else:  # pragma: no cover - a second renumbering or reslicing cannot happen
                raise SequenceFormatError(f"{self.path}: frame {index} cannot be identified")
        # the caller gets its own array; the cache keeps the original
        return arr.copy() if self._remember(index, arr, version) else arr

    def _remember(self, index: int, item, version: int) -> bool:
        """Cache a converted array or a decoded frame (converted when it is asked for);
        True when ``item`` itself is now held by the cache."""
        if version != self._index.version or self._closed:
            return False
        return _cache.frames.put(
            self._cache_owner,
            (version, index),
            item,
            _nbytes(item),
            limit=self.cache_bytes,
            replace=lambda old: not isinstance(old, np.ndarray) and isinstance(item, np.ndarray),
        )

    def iter_frames(self, start=None, stop=None, step=None):
        """Frames ``start:stop:step`` decoded straight through with frame threading."""
        self._check_open()
        wanted = range(*slice(start, stop, step).indices(len(self)))
        if not wanted:
            return
        if wanted.step < 0:  # backwards: random access is the only way
            for i in wanted:
                yield self._read(i)
            return
        k = 0
        kind = "AUTO"
        while k < len(wanted):
            version = self._index.version
            dec = self._new_decoder(kind)
            try:
                while k < len(wanted):
                    # the lock is never held across a yield: close() may run between frames
                    with dec.lock:
                        self._check_decoder(dec)
                        arr = self._plan.to_array(self._decode(dec, wanted[k]))
                    yield arr
                    k += 1
            except _Renumber as why:
                self._renumber(str(why), version)
            except _Reslice:
                kind = "SLICE"  # on from frame wanted[k] without frame threads
            finally:
                with self._pool_lock:
                    self._busy.discard(dec)
                dec.close()

    def _format_metadata(self) -> dict[str, Any]:
        info = self._info
        tb: Fraction = info["time_base"]
        idx = self._index
        times = idx.times.astype(np.float64) * float(tb) if tb and idx.has_times else None
        avg = float(info["average_rate"]) if info["average_rate"] else None
        nominal = float(info["guessed_rate"]) if info["guessed_rate"] else None
        duration = None
        if info["stream_duration"] and tb:
            duration = float(info["stream_duration"] * tb)
        elif info["container_duration"]:
            duration = info["container_duration"] / 1e6
        ts_fps = None
        if times is not None and len(times) > 1:
            d = np.diff(np.sort(times))
            d = d[d > 0]
            ts_fps = float(1 / np.median(d)) if len(d) else None
        numbering = {
            "pts": "presentation time",
            "packet": "packet (decode) order",
            "count": "decoder output counted from closed keyframes",
            "sequential": "decoder output counted from the start",
        }[idx.mode]
        return {
            "fps": avg or nominal or ts_fps,
            "average_fps": avg,
            "nominal_fps": nominal,
            "timestamp_fps": ts_fps,
            "timestamps": times,
            "codec": info["codec"],
            "pixel_format": info["pixel_format"],
            "container": info["container"],
            "duration": duration,
            "frame_count": len(idx),
            "frames_declared": self._frames_declared,
            "truncated": self._truncated,
            "converted_to": None if not self._plan.converted else self._plan.target,
            "source": {
                "codec_long_name": info["codec_long_name"],
                "time_base": str(tb),
                "stated_frames": info["stated_frames"],
                "start_time": info["start_time"],
                "keyframes": len(idx.keyframes),
                "frame_numbering": numbering,
                "numbering_reason": idx.reason,
                "streams": info["streams"],
            },
        }

    def _close(self) -> None:
        with self._pool_lock:
            decoders = self._idle + list(self._busy)
            self._idle.clear()
        for dec in decoders:
            dec.close()
        _cache.frames.drop(self._cache_owner)


# ---- writing -------------------------------------------------------------------------------
from .._writer import UnsupportedWriteError, Writer, to_uint8  # noqa: E402

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
        self._out = av.open(
            self.partial, "w", format=self.container_format, options=container_options
        )
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
