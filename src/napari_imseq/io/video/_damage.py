"""Damaged video data: which frames a damaged packet spoils, found while decoding, with the
same answer in every read path (indexing in any order, threads, ``iter_frames``, dask).

FFmpeg's decoders conceal damage from whatever they decoded before (the previous picture, the
references they hold, a reused buffer), so a damaged frame, and every frame that predicts from
it, comes out differently after a seek than in a sequential decode. The policy:

* **Damaged packet.** Decoding it fails (decoders other than H.264/HEVC run with
  ``err_detect=explode``, so they fail at the damaged packet instead of concealing it or leaving
  part of the frame undecoded; H.264 too where the stamps prove every GOP closed, see
  :func:`options`), the frame it decodes to carries FFmpeg's corrupt or decode-error flags
  (H.264/HEVC: error concealment ran on that frame), or its FFV1 slice CRCs do not match.
* **Spoiled frames.** A damaged packet spoils its own frame and the frames of every packet
  after it in decode order up to the next keyframe, plus that keyframe's leading pictures
  (packets after it in decode order shown before it, which may predict from the damaged GOP).
  Reading a spoiled frame raises :class:`SequenceFormatError` naming the file, the frame and
  the damaged one. The map is kept per open file, by packet.
* **Nothing handed out early.** A frame is handed out only once every packet before its own
  in decode order has come out of the decoder (or failed), so damage found in a reference that
  is shown later (a P-frame after the B-frames that predict from it) is known in time.
* **Order checked before use.** A frame that comes out of the decoder after a later frame is
  found before either is handed out (a frame is not called missing while its packet may still
  come out). Damage between the two in decode order explains it (H.264 reorders damaged
  data differently, a parser stamps a damaged MPEG-4 B-VOP wrongly): the late frame is still
  the frame of its stamp, handed out when asked for (or refused if damage spoils it). Without
  damage the decoder's order is the file's (damaged composition stamps) and the file is
  renumbered by it, the same in every read path.
* **Found reliably.** Damage is only established by decoders that report it at the packet
  that holds it: FFmpeg's H.264 (and the other error-resilience decoders) skip error
  concealment and its flags with slice threads, so those decode single-threaded where a reader
  asks for slice threads; MPEG-4 Part 2 and its relatives miss damage with frame threads, so
  they never use them; a frame-threaded decoder that sees any sign of damage hands the read
  to a single-threaded one.
* **One verdict whatever was decoded before.** MPEG-4 Part 2 judges a frame's end by the
  frames its decoder decoded before (FFmpeg's ``padding_bug_score``): streams of a recent
  libavcodec decode with bug autodetection off (:func:`strict_judge`), others every GOP in a
  fresh codec context in a defined, strict state (:data:`FRESH_STATE`). H.263 keeps the same
  score and is not covered (its AVI packets are all flagged keyframes).
* **Healthy files are never flagged.** After a seek to a keyframe of an open GOP, its leading
  pictures predict from a GOP the decoder never saw: their errors are not damage and their
  frames are never used (reading them decodes from the keyframe before).
"""

from __future__ import annotations

import threading

import numpy as np

from .._base import SequenceFormatError

NO_TS = np.iinfo(np.int64).min
#: decoders with FFmpeg's error resilience (error concealment, the corrupt flag): their slice
#: threads skip concealment and its flags, so damage would pass unseen
_ER_CODECS = frozenset(
    {"h264", "hevc", "mpeg4", "h263", "h263p", "h263i", "flv", "msmpeg4v1", "msmpeg4v2",
     "msmpeg4", "wmv1", "wmv2", "wmv3", "vc1", "mpeg1video", "mpeg2video", "rv10", "rv20"}
)  # fmt: skip
#: decoders whose corrupt flags belong to the frame they are on (H.264/HEVC run concealment per
#: picture); MPEG-4 Part 2 and its relatives put them on whichever frame comes out next
_FLAGS_PER_FRAME = frozenset({"h264", "hevc"})
#: decoders that miss damage with frame threads which they report without
_NO_FRAME_THREADS = _ER_CODECS - _FLAGS_PER_FRAME
#: decoders whose verdict on a frame's end depends on the frames they decoded before (unless
#: :func:`strict_judge` turns the bug autodetection off for a file): FFmpeg's
#: H.263-family decoder keeps a running ``padding_bug_score`` (no flush resets it) and accepts
#: junk bits after a frame's last macroblock while it is above -2, rejects them below. Every
#: GOP decodes in a fresh codec context warmed up the same way (:data:`WARM_UP`), in every read
#: path; a keyframe's leading pictures in the codec context of the GOP before (it holds their
#: other reference), which decodes the keyframe too (a failure there spoils them only)
FRESH_STATE = frozenset({"mpeg4"})  # (H.263 in AVI flags every packet a keyframe: not here)
#: decodes of the warm-up packet (one that ends properly) that bring a fresh FRESH_STATE
#: decoder to the strictness a sequential decode has after its first frames (measured: 3, not
#: 2, make it reject a keyframe with junk after its end)
WARM_UP = 3
#: the first packets among which FRESH_STATE decoders find the one they warm up on
WARM_CANDIDATES = 16
#: libavcodec builds from which FFmpeg's MPEG-4 decoder autodetects no bug of the encoder
#: (lavc_build >= 3752552, Lavc 57.67.104): their files decode the same with bug detection off
_LAVC_CLEAN = (57, 67, 104)


def strict_judge(codec: str, headers: bytes) -> bool:
    """An MPEG-4 Part 2 stream written by a recent libavcodec (its VOL user data, in the
    extradata or first packet ``headers``): its decoder runs with FFmpeg's bug autodetection
    off (``bug=0``), which changes no pixel of such a file and makes the end-of-frame check
    strict whatever was decoded before: no fresh codec context per GOP is needed. Other
    encoders (XviD, DivX, old libavcodec) may need the autodetected workarounds, and headers
    that do not start with a start code say nothing reliable about the stream."""
    import re

    if codec != "mpeg4" or re.search(rb"XviD|DivX|FFmpe", headers):
        return False
    if not headers.startswith(b"\x00\x00\x01"):
        # not a clean stream start (a damaged container read as a raw MPEG-4 stream, its
        # headers in the first packet): measured, bug=0 then decoded every frame of such a
        # file to one grey picture while the autodetecting decoder read them all
        return False
        return False
    found = re.findall(rb"Lavc(\d+)\.(\d+)\.(\d+)", headers)
    return bool(found) and all(tuple(map(int, v)) >= _LAVC_CLEAN for v in found)


def new_codec(cc, **extra):
    """A codec context like ``cc`` (a stream's), created fresh: none of its state."""
    import av

    new = av.CodecContext.create(cc.name, "r")
    new.extradata = cc.extradata
    new.width, new.height = cc.width, cc.height
    new.codec_tag = cc.codec_tag
    new.thread_type, new.thread_count = cc.thread_type, cc.thread_count
    new.options = {**options(cc.name), **extra}
    return new


def ends_properly(cc, data: bytes) -> bool:
    """Packet ``data`` decodes with a decoder that never accepts junk after a frame's end."""
    import av

    codec = new_codec(cc, bug="0")
    try:
        codec.decode(av.Packet(data))
        codec.decode(None)
    except av.FFmpegError:
        return False
    return True


def intra_vop(data: bytes) -> bool:
    """An MPEG-4 Part 2 packet whose picture is an I-VOP (a container may flag other packets
    as keyframes: a fresh codec context starts only at a real one)."""
    at = data.find(b"\x00\x00\x01\xb6")
    return 0 <= at and at + 4 < len(data) and data[at + 4] >> 6 == 0


def reference_picture(data: bytes) -> bool:
    """An MPEG-4 Part 2 packet whose picture is an I- or P-VOP (a B-VOP decoded alone, with
    no reference, is skipped: it would warm nothing); any H.263 picture."""
    at = data.find(b"\x00\x00\x01\xb6")
    if at < 0 or at + 4 >= len(data):
        return b"\x00\x00\x01" not in data[:4]  # H.263: no MPEG-4 start codes
    return data[at + 4] >> 6 in (0, 1)


#: decoders that keep their own checks (FFV1 slice CRCs are checked by the reader, PNG chunk
#: CRCs by the decoder with ``crccheck``) or have nothing to check
_OWN_CHECKS = frozenset({"ffv1", "png", "apng", "rawvideo", "gif"})
#: packets after which a packet that has not come out of the decoder counts as dropped by it
#: (a frame skipped on purpose, a frame the decoder does not output): far more than a
#: decoder's delay (16 reordered frames plus one per frame thread)
STALE = 16 + 2 * 16 + 8


def threads(codec: str, wanted: str) -> tuple[str, int]:
    """(thread_type, thread_count) for a decoder of ``codec`` asked for ``wanted`` threading
    ("SLICE": start fast after a seek; "AUTO": frame and slice threads for a long run)."""
    if codec in _NO_FRAME_THREADS or (wanted == "SLICE" and codec in _ER_CODECS):
        return "SLICE", 1  # single-threaded: damage is reported where it is
    return wanted, 0


def options(codec: str, closed_gops: bool = False) -> dict[str, str]:
    """Decoder options that turn damage into errors where the decoder would hide it
    (``closed_gops``: frames numbered by stamps that prove every GOP closed)."""
    if codec == "h264" and closed_gops:
        # FFmpeg's H.264 decoder drops a slice whose header it cannot parse (measured: a
        # ref_pic_list_modification that overflows, "abs_diff_pic_num overflow") without
        # concealment, error or flag; the frame then holds whatever its pooled buffer held,
        # which depends on the read order. Explode makes it an error at that packet. Not for
        # open GOPs: after a seek to their keyframe, explode fails healthy trailing pictures
        # whose reference lists name pictures of the GOP before (measured: 29 of 95 frames of
        # a healthy x264 open-gop file); not without stamps (count, sequential modes: an error
        # there ends the readable file)
        return {"err_detect": "explode"}
    if codec in ("png", "apng"):
        # a chunk whose CRC does not match is an error, not pixels decoded from bad bytes
        return {"err_detect": "crccheck+explode"}
    if codec in _OWN_CHECKS or codec in _FLAGS_PER_FRAME:
        return {}  # their frames carry the flags; failing them would lose frame counts
    return {"err_detect": "explode"}


def trusts_flags(codec: str) -> bool:
    """Whether a decoded frame's corrupt flags say that this frame was concealed."""
    return codec in _FLAGS_PER_FRAME


class DamageMap:
    """Damaged packets of one open file and the packets they spoil (shared by its decoders)."""

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self.cause: np.ndarray | None = None  # per packet: the damaged packet, or -1
        self.why: dict[int, str] = {}

    def __bool__(self) -> bool:
        return self.cause is not None

    def mark(self, idx, p: int, why: str) -> None:
        """Packet ``p`` is damaged: spoil it and what predicts from it."""
        key, pts = idx.key, idx.pts
        n = len(key)
        end = next_key_packet(idx, p)
        start = int(p if key[p] else np.flatnonzero(key[: p + 1])[-1]) if key[: p + 1].any() else 0
        if leading(idx, p):
            # a leading picture of an open GOP's keyframe: only the leading pictures after it
            # may predict from it (the keyframe and its trailing pictures never do)
            spoiled = [np.flatnonzero(pts[p:end] < pts[start]) + p]
        else:
            spoiled = [np.arange(p, end)]
            if end < n and pts[end] != NO_TS:  # and the next keyframe's leading pictures
                stop = next_key_packet(idx, end)
                spoiled.append(np.flatnonzero(pts[end + 1 : stop] < pts[end]) + end + 1)
        with self.lock:
            if self.cause is None:
                self.cause = np.full(n, -1, np.int64)
            for q in np.concatenate(spoiled):
                if self.cause[q] < 0:
                    self.cause[q] = p
            self.why.setdefault(p, why)

    def mark_leading(self, idx, k: int, why: str) -> None:
        """Keyframe packet ``k`` decodes (in a fresh codec context) but not after the GOP
        before it: its leading pictures, which predict from both, are spoiled."""
        stop = next_key_packet(idx, k)
        lead = [q for q in range(k + 1, stop) if leading(idx, q)]
        with self.lock:
            if self.cause is None:
                self.cause = np.full(len(idx.key), -1, np.int64)
            for q in lead:
                if self.cause[q] < 0:
                    self.cause[q] = k
            self.why.setdefault(k, why)

    def between(self, lo: int, hi: int) -> bool:
        """Some packet from ``lo`` to ``hi`` (decode order) is damaged or spoiled."""
        return self.cause is not None and bool((self.cause[lo : hi + 1] >= 0).any())

    def of_packet(self, q: int | None) -> int | None:
        """The damaged packet that spoils packet ``q``, or None."""
        if self.cause is None or q is None or not 0 <= q < len(self.cause):
            return None
        c = int(self.cause[q])
        return None if c < 0 else c

    def error(self, idx, i: int, q: int | None) -> SequenceFormatError:
        """The error for reading spoiled frame ``i`` (from packet ``q``)."""
        p = self.of_packet(q)
        if p is None:
            why = "it follows damaged data in its group of pictures"
        else:
            what = self.why.get(p, "")
            src = frame_of_packet(idx, p)
            name = f"frame {src}" if src is not None else f"packet {p}"
            why = (
                f"{what}" if src == i or p == q else f"it is predicted from damaged {name} ({what})"
            )
        return SequenceFormatError(
            f"{self.path}: frame {i} is damaged ({why}); FFmpeg would show pixels concealed from "
            f"other frames, which differ with the order of reading. The frames outside the damaged "
            f"group of pictures read normally; re-encode or re-export the video from its source "
            f"to read this one"
        )


def leading(idx, p: int) -> bool:
    """Packet ``p`` is a leading picture of its keyframe (after it in decode order, shown
    before it: it may predict from the GOP before)."""
    keys, pts = _key_packets(idx), idx.pts
    j = int(np.searchsorted(keys, p, side="right")) - 1
    if j < 0 or keys[j] == p:
        return False
    start = int(keys[j])
    return NO_TS not in (pts[p], pts[start]) and bool(pts[p] < pts[start])


def frame_of_packet(idx, q: int) -> int | None:
    """The frame index of packet ``q`` where the numbering says it without decoding."""
    if idx.mode == "packet":
        return q
    if idx.mode == "pts" and idx.lookup:
        return idx.lookup.get(int(idx.pts[q]))
    return None


def packet_of_frame(idx, i: int) -> int | None:
    """The packet of frame ``i`` where the numbering says it without decoding."""
    if idx.mode == "packet":
        return i
    if idx.mode == "pts":
        order = getattr(idx, "_packet_order", None)
        if order is None or len(order) != idx.n:
            order = idx._packet_order = np.argsort(idx.pts, kind="stable")
        return int(order[i])
    return None


def _key_packets(idx) -> np.ndarray:
    """The keyframe packets in decode order (cached on the index)."""
    keys = getattr(idx, "_key_packets", None)
    if keys is None or getattr(idx, "_key_packets_n", -1) != idx.n:
        keys = idx._key_packets = np.flatnonzero(idx.key)
        idx._key_packets_n = idx.n
    return keys


def next_key_packet(idx, k: int) -> int:
    """The first keyframe packet after packet ``k`` in decode order (``n`` if none)."""
    keys = _key_packets(idx)
    j = int(np.searchsorted(keys, k, side="right"))
    return int(keys[j]) if j < len(keys) else idx.n
