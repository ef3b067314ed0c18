"""Damaged video data: which frames a damaged packet spoils, found while decoding, with the
same answer in every read path (indexing in any order, threads, ``iter_frames``, dask).

FFmpeg's decoders conceal damage from whatever they decoded before (the previous picture, the
references they hold, a reused buffer), so a damaged frame, and every frame that predicts from
it, comes out differently after a seek than in a sequential decode. The policy:

* **Damaged packet.** Decoding it fails (decoders other than H.264/HEVC run with
  ``err_detect=explode``, so they fail at the damaged packet instead of concealing it or leaving
  part of the frame undecoded), the frame it decodes to carries FFmpeg's corrupt or
  decode-error flags (H.264/HEVC: error concealment ran on that frame), or its FFV1 slice CRCs
  do not match.
* **Spoiled frames.** A damaged packet spoils its own frame and the frames of every packet
  after it in decode order up to the next keyframe, plus that keyframe's leading pictures
  (packets after it in decode order shown before it, which may predict from the damaged GOP).
  Reading a spoiled frame raises :class:`SequenceFormatError` naming the file, the frame and
  the damaged one. The map is kept per open file, by packet.
* **Nothing handed out early.** A frame is handed out only once every packet before its own
  in decode order has come out of the decoder (or failed), so damage found in a reference that
  is shown later (a P-frame after the B-frames that predict from it) is known in time.
* **Found reliably.** Damage is only established by decoders that report it at the packet
  that holds it: FFmpeg's H.264 (and the other error-resilience decoders) skip error
  concealment and its flags with slice threads, so those decode single-threaded where a reader
  asks for slice threads; MPEG-4 Part 2 and its relatives miss damage with frame threads, so
  they never use them; a frame-threaded decoder that sees any sign of damage hands the read
  to a single-threaded one.
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


def options(codec: str) -> dict[str, str]:
    """Decoder options that turn damage into errors where the decoder would hide it."""
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
        if start < p and NO_TS not in (pts[p], pts[start]) and pts[p] < pts[start]:
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


def next_key_packet(idx, k: int) -> int:
    """The first keyframe packet after packet ``k`` in decode order (``n`` if none)."""
    keys = getattr(idx, "_key_packets", None)
    if keys is None or getattr(idx, "_key_packets_n", -1) != idx.n:
        keys = idx._key_packets = np.flatnonzero(idx.key)
        idx._key_packets_n = idx.n
    j = int(np.searchsorted(keys, k, side="right"))
    return int(keys[j]) if j < len(keys) else idx.n
