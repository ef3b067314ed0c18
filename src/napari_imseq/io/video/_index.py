"""The container index: which packets the video stream holds, and how frames are numbered
and found (:class:`_Index`); content sniffing and the byte-level checks the index scan makes
(FFV1 slice CRCs, the Matroska segment size)."""

from __future__ import annotations

import copy
import zlib

import numpy as np

_NO_TS = np.iinfo(np.int64).min
_INDEX_ARRAYS = ("pts", "dts", "key", "pos", "size", "dur", "corrupt", "alpha", "slice_crc")
#: containers whose packet "pts" may be decode stamps (monotone even when frames reorder)
_DECODE_STAMP_CONTAINERS = ("avi",)


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
        if isinstance(path, str):
            with open(path, "rb") as f:
                head = f.read(4096)
        else:  # a file object of a source (bytes, URL ...): closed with the source
            path.seek(0)
            head = path.read(4096)
    except (OSError, ValueError):
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
        #: whether a keyframe has leading pictures (the packet after it in decode order is
        #: shown before it: an open GOP); None when the stamps cannot say (decode stamps only,
        #: missing or repeated stamps)
        self.open_gops: bool | None = None
        if have_pts and unique and not (container in _DECODE_STAMP_CONTAINERS and monotone):
            keys = np.flatnonzero(key[:-1])
            self.open_gops = bool(np.any(pts[keys + 1] < pts[keys]))
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

    def downgraded(self, why: str) -> _Index:
        """A new index that numbers frames by the decoder's output (the stamps proved
        unreliable). An index's numbering never changes once made: a decoder numbers a whole
        read with the index it opened with, and finds out by identity that it was replaced
        (the reader's :meth:`_renumber`)."""
        new = copy.copy(self)  # (arrays and the lookup are shared: never changed in place)
        new.reason = why
        new.version = self.version + 1
        new.verified = set()
        new._set_mode("packet" if not self.delay else "sequential")
        return new

    def __len__(self) -> int:
        return self.n

    def keyframe_at_or_before(self, i: int) -> int:
        keys = self.keyframes  # (read once)
        k = int(np.searchsorted(keys, i, side="right")) - 1
        return int(keys[max(k, 0)])

    def next_keyframe(self, i: int) -> int:
        keys = self.keyframes  # (as above)
        k = int(np.searchsorted(keys, i, side="right"))
        return int(keys[k]) if k < len(keys) else self.n

    def position_of(self, packet) -> int | None:
        p = packet.pos
        return self.by_pos.get(int(p)) if p is not None and p >= 0 else None
