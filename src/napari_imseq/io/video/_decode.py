"""One decoder state (:class:`_Decoder`): a container opened for decoding, moved by seeking
and decoding forward, that recognises each decoded frame by the file's frame numbering."""

from __future__ import annotations

import os
import threading
from collections import deque

import numpy as np

from .._base import SequenceFormatError
from . import _damage
from ._index import _ffv1_slices_intact

#: seeks that land after the target (or somewhere unknown) before a read starts from the top
_SEEK_ATTEMPTS = 3
#: decode every frame again from this many frames before the target: more than the lag between
#: the packet going in and the frame coming out (H.264/HEVC reorder up to 16 frames, plus one
#: frame per frame-decoding thread; FFmpeg starts at most 16)
_SKIP_MARGIN = 16 + min(16, os.cpu_count() or 1) + 4


class _Renumber(Exception):
    """The decoder's output contradicts the frame numbering: the index must fall back."""


class _Reslice(Exception):
    """A frame-threaded decoder failed: the read is done again with slice threads only."""


class _Decoder:
    """One container opened for decoding, used by one thread at a time.

    Packets are demuxed and decoded one at a time, so every loop step consumes a packet (or
    a decoded frame already waiting): a read ends when the stream does, whatever the
    timestamps say. Where a seek landed is checked, never assumed.
    """

    def __init__(self, owner, thread_type: str):  # owner: the VideoFile read through it
        self.owner = owner
        self.lock = threading.Lock()
        self.closed = False
        self.keep = None  # callback(index, frame) for frames decoded on the way to a target
        self.container = None
        # packet mode decodes with slice threads only: without frame threads a decoder without
        # delay outputs each frame with its packet
        self.thread_type = thread_type
        self.dirty = False  # the codec saw damage: its state is not trusted across a seek
        #: the frame numbering this decoder reads by: the owner's index when the read began
        #: (a reopen on the way keeps it; another thread's renumbering replaces the owner's)
        self.idx = owner._index
        self._open()
        self._prime()

    # ---- state -------------------------------------------------------------------------
    def _open(self) -> None:
        """(Re)open the container: the decoder is then at the start of the file."""
        import av

        if self.container is not None:
            self.container.close()
            self._close_file()
        # the path, or a file object of this decoder's own (bytes, a file object, a URL)
        self._file = self.owner._source.file()
        self.container = av.open(self._file, metadata_errors="ignore")
        self.stream = self.container.streams.video[self.owner._stream_index]
        cc = self.stream.codec_context
        idx = self.idx
        wanted = "SLICE" if idx.mode == "packet" else self.thread_type
        if cc.name == "h264" and idx.open_gops is not False:
            # FFmpeg's frame-threaded H.264 decoder hands out a damaged leading picture of an
            # open GOP without its corrupt flag in about one decode in four (measured with
            # plain PyAV: 110 of 400 decodes; 0 of 400 for a damaged picture of a closed GOP):
            # frame threads only where the stamps prove every GOP closed
            wanted = "SLICE"
        # threads and options under which the decoder reports damage where it is (_damage)
        cc.thread_type, cc.thread_count = _damage.threads(cc.name, wanted)
        options = _damage.options(cc.name, idx.mode == "pts" and idx.open_gops is False)
        if options:
            cc.options = options
        self.flags = _damage.trusts_flags(cc.name)
        self.skipping = "DEFAULT"
        # FRESH_STATE codecs: a fresh codec context per GOP (_damage), and the one of the GOP
        # before for a keyframe's leading pictures
        self.fresh = cc.name in _damage.FRESH_STATE and idx.mode != "sequential"
        if self.fresh and self.owner._strict_judge(cc):
            cc.options = {**options, "bug": "0"}  # one verdict in any state (_damage)
            self.fresh = False
        self.lead_codec = self.lead_key = self.lead_skips = None
        self.codec = self._fresh_codec() if self.fresh else cc
        self._run(0)

    def _fresh_codec(self):
        """A new codec context for a FRESH_STATE codec (see :mod:`._damage`), with the stream's
        parameters and settings, that decoded the file's warm-up packet WARM_UP times and
        dropped what it decoded: the same state for every GOP in every read path, and strict
        about frame ends as a sequential decode is after its first frames."""
        import av

        cc = self.stream.codec_context
        new = _damage.new_codec(cc)
        warm = self.owner._warm_packet(cc)
        for _ in range(_damage.WARM_UP if warm else 0):
            try:
                new.decode(av.Packet(warm))
            except av.FFmpegError:
                pass  # (a damaged file: the same state for every run all the same)
        new.flush_buffers()
        self.skipping = None
        return new

    def _next_gop(self, packet, p: int) -> bool:
        """FRESH_STATE codecs, before packet ``p`` is decoded: keyframe ``p`` starts a fresh
        codec context, and the one of the GOP before decodes ``p`` and its leading pictures
        (they predict from both GOPs); True when ``p`` is done (a leading picture)."""
        import av

        idx = self.idx
        if p == self.run_key:
            return False
        if idx.key[p] and _damage.intra_vop(bytes(packet)):
            self._drain_lead()
            old, self.codec = self.codec, self._fresh_codec()
            nxt = p + 1
            if nxt < idx.n and not idx.key[nxt] and _damage.leading(idx, nxt):
                self.lead_codec, self.lead_key, self.lead_skips = old, p, self.skipping
                try:
                    for frame in old.decode(packet):
                        if frame.pts != idx.pts[p]:
                            self._out(frame, p)  # the GOP before's last reference
                except av.FFmpegError as err:
                    self.owner._damage.mark_leading(
                        idx, p, f"its keyframe does not decode after the GOP before: {err}"
                    )
            else:
                for frame in self._flush(old):
                    self._out(frame, None)
            return False
        if self.lead_codec is None:
            return False
        if not _damage.leading(idx, p):
            self._drain_lead()
            return False
        try:
            frames = self.lead_codec.decode(packet)
        except av.FFmpegError as err:
            self.error = err
            self.owner._damage.mark(idx, p, f"FFmpeg cannot decode it: {err}")
            return True
        if self.lead_skips != "NONREF":  # (a skipped frame may never come out: see _feed)
            self.unseen[p] = self.serial
            self.serial += 1
        for frame in frames:
            self._out(frame, p)
        return True

    def _drain_lead(self) -> None:
        """The leading pictures are done: what the GOP before's codec holds comes out (its
        copy of the keyframe is dropped: the fresh codec context decodes that one)."""
        if self.lead_codec is not None:
            lead, k = self.lead_codec, self.lead_key
            self.lead_codec = self.lead_key = None
            for frame in self._flush(lead):
                if frame.pts != self.idx.pts[k]:
                    self._out(frame, None)

    @staticmethod
    def _flush(codec) -> list:
        import av

        try:
            return list(codec.decode(None))
        except av.FFmpegError:  # the frames of a damaged GOP: not handed out anyway
            return []

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
        # damage (_damage): packets decoded whose frame has not come out yet (-> feed serial),
        # the packet of each pending frame, the run's first packet, a count lost to a failure
        self.unseen: dict[int, int] = {}
        self.serial = 0
        self.src: dict[int, int | None] = {}
        self.run_key: int | None = landed
        self.tainted: int | None = None  # count mode: the packet that failed

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
        from .. import _cache

        _cache.decoders.unpark(self)  # (a no-op unless it was parked)
        with self.lock:
            if not self.closed:
                self.closed = True
                self.pending.clear()
                self.container.close()
                self._close_file()

    def _close_file(self) -> None:
        if not isinstance(self._file, str):
            self._file.close()

    @property
    def stale(self) -> bool:
        """The owner's frame numbering was replaced (:meth:`_Index.downgraded`) since this
        decoder's read began: what it numbered by the old one is not used."""
        return self.idx is not self.owner._index

    @property
    def position(self) -> int | None:
        """The index of the next frame this decoder hands out, when known."""
        if self.stale:
            return None
        if self.pending:
            return self.pending[0][0]
        if self.eof:
            return None
        mode = self.idx.mode
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
        idx = self.idx
        packet = self._demux()
        p = None
        if packet is not None and packet.size:
            p = self.next_packet
            if p is None:
                p = idx.position_of(packet)
            self.next_packet = None if p is None else p + 1
            if p is not None and p >= idx.n:
                packet = None  # past the frames the index lists (a cut-off last packet)
            elif idx.mode == "pts" and p is not None and packet.pts not in (None, idx.pts[p]):
                # an AVI whose index lost an entry stamps packets after a seek by the index
                raise _Renumber(
                    f"packet {p} is stamped {packet.pts} after a seek but {idx.pts[p]} when "
                    f"read in order"
                )
        if packet is None or not packet.size:
            self.eof = True
            packet = None  # drain the decoder
        elif p is not None and p < self.feed_from:
            return True
        elif p is not None and p < self.owner._lead_in and idx.mode != "sequential":
            # before the first keyframe (damaged): not decoded; counted outputs start at the
            # keyframe, as after a seek to it
            if idx.mode == "count" and self.count_next is not None:
                self.count_next = max(self.count_next, self.owner._lead_in)
            return True
        if self.run_key is None and p is not None:
            self.run_key = p  # where the run started (a seek's keyframe)
        if packet is not None and self.owner._slice_crc:
            self._check_slices(packet, p)
        if self.fresh and packet is not None and p is not None:
            if self._leading(p):
                return True  # (never used after a seek: kept out of the fresh codec context)
            if self._next_gop(packet, p):
                return True
        elif self.fresh and packet is None:
            self._drain_lead()
        try:
            frames = self.codec.decode(packet)
        except av.FFmpegError as err:
            self.error = err
            if self._frame_threaded():
                # frame threads report an error late, with frames of other packets still in
                # flight that are then lost: which frame failed is only known without them
                raise _Reslice(str(err)) from err
            self.dirty = True
            if p is not None and not self._leading(p):
                self.owner._damage.mark(idx, p, f"FFmpeg cannot decode it: {err}")
            if p is not None and p in self.owner._cut:
                # the last packets, cut short by the end of the file (marked damaged at open):
                # only frames of earlier packets, held back by the decoder, come out after them
                return True
            if idx.mode == "count" and p is not None:
                # outputs are counted again from the next keyframe; until then none is used
                self.tainted = p
                self.verify = None
                return True
            if idx.mode in ("count", "sequential"):  # outputs can no longer be counted
                raise SequenceFormatError(
                    f"{self.owner.path}: the video cannot be decoded past packet {p}: {err}; "
                    f"the file is damaged there"
                ) from err
            return True
        if idx.mode == "packet" and packet is not None and len(frames) > 1:
            raise _Renumber("one packet decoded to several frames")
        if p is not None and self.skipping != "NONREF" and not self._leading(p):
            # (a packet fed while non-reference frames are skipped, or a leading picture after
            # a seek, may never come out: such frames are not handed out, and no frame waits
            # for them)
            self.unseen[p] = self.serial
            self.serial += 1
        for frame in frames:
            self._out(frame, p if packet is not None else None)
        return True

    def _frame_threaded(self) -> bool:
        import av

        return bool(self.codec.thread_type & av.codec.context.ThreadType.FRAME)

    def _leading(self, q: int) -> bool:
        """Packet ``q`` is a leading picture of the keyframe this run started from (shown
        before it, so it may predict from a GOP this run never decoded)."""
        k, idx = self.run_key, self.idx
        if not k or not k < q < idx.n or _damage.NO_TS in (idx.pts[q], idx.pts[k]):
            return False
        return bool(idx.pts[q] < idx.pts[k]) and q < _damage.next_key_packet(idx, k)

    def _settled(self, q: int | None) -> bool:
        """Every packet before ``q`` in decode order has come out of the decoder (or failed,
        or is long overdue: a frame the decoder skips)."""
        if q is None or not self.unseen:
            return True
        due = self.serial - _damage.STALE
        for u, s in list(self.unseen.items()):
            if s < due:
                del self.unseen[u]
            elif u < q:
                return False
        return True

    def _settle(self, q: int | None, target: int) -> None:
        """Decode on until frame of packet ``q`` may be handed out (see :mod:`._damage`)."""
        while not self._settled(q):
            if self.idx.mode == "pts":
                self._skip_nonref(target)
            if not self._feed():
                self.unseen.clear()
                return

    def _spoiled(self, q: int | None) -> bool:
        return bool(self.owner._damage) and self.owner._damage.of_packet(q) is not None

    def _check_slices(self, packet, p: int | None) -> None:
        """FFV1 with slice CRCs: a packet that fails them marks its frame, and the frames up
        to the next keyframe that carry its coder state on, as damaged (never returned)."""
        if _ffv1_slices_intact(bytes(packet)):
            return
        idx = self.idx
        if p is None:
            raise SequenceFormatError(
                f"{self.owner.path}: a damaged FFV1 packet (slice CRC mismatch) could not be "
                f"placed in the frame index; the file is damaged"
            )
        self.owner._damage.mark(idx, p, "its FFV1 slice CRC does not match")

    def _out(self, frame, p: int | None) -> None:
        idx = self.idx
        if self.stale:  # another thread renumbered the file during this run
            raise _Renumber("the frame numbering changed during the read")
        if idx.mode == "pts":
            i = idx.lookup.get(frame.pts) if frame.pts is not None else None
            if i is None:
                raise _Renumber(f"a decoded frame carries timestamp {frame.pts}, not in the index")
            q = _damage.packet_of_frame(idx, i)
        elif idx.mode == "packet":
            if p is None:
                raise _Renumber("the decoder held frames back")
            i = q = p
        else:
            # count mode: a frame carries its packet's (decode) stamp
            q = idx.lookup.get(frame.pts) if idx.mode == "count" and frame.pts is not None else None
            if self.tainted is not None and q is not None and q > self.tainted and idx.key[q]:
                self.count_next, self.tainted = q, None  # counted again from a keyframe
            i = self.count_next
            self.count_next += 1
            if self.verify is not None:
                self._check_gop(i, frame.pts)
        concealed = frame.is_corrupt and self.flags
        if q is not None:
            self.unseen.pop(q, None)
            if self._leading(q):
                frame = None  # predicted from a GOP this run never decoded: never used
            elif concealed:
                self.dirty = True
                if self._frame_threaded():
                    raise _Reslice(f"frame {i} came out concealed")
                self.owner._damage.mark(idx, q, "FFmpeg concealed errors in it")
        elif concealed and idx.mode == "sequential" and not self._frame_threaded():
            self.tainted = i  # frames decoded from the start: none is used after this one
        if self.tainted is not None or self._spoiled(q):
            frame = None  # concealed by the decoder from other frames: not this frame's pixels
        self.src[i] = q
        self.pending.append((i, frame))

    def _check_gop(self, i: int, tag) -> None:
        """Count mode: the frames of a GOP reached by a seek must be exactly its own packets."""
        idx = self.idx
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
        if self.dirty:
            # FFmpeg's decoders carry error state across a flush (an MPEG-4 keyframe decoded
            # after a seek from damaged data comes out flagged): start from a fresh decoder
            self.dirty = False
            self._open()
            self._prime()
        self.container.seek(int(ts), backward=True, any_frame=False, stream=self.stream)
        self.skipping = None  # the codec context was flushed; set skip_frame again
        if self.fresh:
            self.codec = self._fresh_codec()  # (the seek flushed only the stream's own)

    def _rewind(self) -> None:
        """Back to the first packet: verified by its byte position, else by reopening."""
        idx = self.idx
        if idx.by_pos and not self.stale:
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

        idx = self.idx
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
            keys = idx.keyframes  # once: another thread may renumber the file (downgrade)
            k = int(keys[max(int(np.searchsorted(keys, k, side="left")) - 1, 0)])
        self._rewind()

    def _earlier(self) -> None:
        """Pts mode: the seek overshot the target; go one keyframe further back."""
        idx = self.idx
        self.attempts = getattr(self, "attempts", 0) + 1
        keys = idx.keyframes  # once: another thread may renumber the file (downgrade)
        j = int(np.searchsorted(keys, self.seek_key, side="left")) - 1
        if j <= 0 or self.attempts >= _SEEK_ATTEMPTS:
            self._rewind()
            return
        self.seek_key = int(keys[j])
        self._seek(idx.frame_pts[self.seek_key])
        self._run(None)

    def _skip_nonref(self, target: int) -> None:
        """Pts mode: frames well before the target that no frame references are not decoded."""
        far = self.last is not None and self.last < target - _SKIP_MARGIN
        want = "NONREF" if far else "DEFAULT"
        if self.skipping != want:
            self.codec.skip_frame = want
            self.skipping = want

    def _missing(self, target: int, why: str) -> Exception:
        if self._frame_threaded():
            # a frame-threaded decoder may drop frames of other packets when one fails
            return _Reslice(f"frame {target} is missing: {why}")
        q = _damage.packet_of_frame(self.idx, target)
        if self._spoiled(q):
            return self.owner._damage.error(self.idx, target, q)
        err = SequenceFormatError(
            f"{self.owner.path}: frame {target} cannot be decoded: {why} (the index lists "
            f"{self.idx.n} frames; the file is damaged or truncated there)"
        )
        err.__cause__ = self.error
        return err

    def decode_to(self, target: int):
        """Decode until frame ``target`` and return it (the av.VideoFrame)."""
        if self.stale:  # renumbered since this decoder's last read: number by the new index
            self.idx = self.owner._index
            self._open()
        idx = self.idx
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
                self.pending.popleft()
                self._late(i, self.src.pop(i, None), self.last)  # raises unless damage explains it
                continue  # (read again when asked for: _check_late)
                continue
            if i > target and (late := self._check_late(target)) is not None:
                q, frame = late  # the target came out after frame i
                self.last = target
                if frame is None or self._spoiled(q):
                    raise self.owner._damage.error(idx, target, q)
                return frame
            if i > target:  # the decoder gave no frame for the target
                raise self._missing(target, f"the decoder went from frame {self.last} to {i}")
            self.pending.popleft()
            self.last = i
            q = self.src.pop(i, None)
            if self.skipping == "NONREF" and i != target:
                frame = None  # decoded on the way, among skipped frames: not kept
            if i == target or (self.keep is not None and frame is not None):
                self._settle(q, target)  # damage in an earlier packet is known before it is used
                self._late_behind(i)  # and a frame before it that came out after it
                if self._spoiled(q):
                    frame = None
            if i == target:
                self._finish_gop()
                if frame is None:
                    raise self.owner._damage.error(idx, i, q)
                return frame
            if self.keep is not None and frame is not None:
                self.keep(i, frame)

    def _late(self, i: int, q: int | None, before: int) -> None:
        """Frame ``i`` (packet ``q``) came out after frame ``before`` > ``i``. Damage found
        between their packets in decode order (or spoiling one of them) explains it: the
        decoder reordered damaged data (or the parser stamped it). Frame ``i`` is then still
        the frame of its stamp (its packet was decoded when fed; damage after it is known by
        then and spoils it if it predicts from it) and is handed out when asked for
        (:meth:`_check_late`), in every read path. Otherwise the decoder's order is the
        file's and differs from the timestamps': the file is renumbered."""
        damage, idx = self.owner._damage, self.idx
        b = _damage.packet_of_frame(idx, before) if idx.mode == "pts" else None
        if q is not None and b is not None and damage.between(min(q, b), max(q, b)):
            return
        raise _Renumber("the decoder's frame order differs from the timestamps' order")

    def _late_behind(self, i: int) -> None:
        """Frames before frame ``i`` that came out after it while it settled: see :meth:`_late`
        (frame ``i`` is not handed out before the decoder's order is known)."""
        for j in [j for j, _ in self.pending if j < i]:
            self.pending.remove(next(e for e in self.pending if e[0] == j))
            self._late(j, self.src.pop(j, None), i)

    def _check_late(self, target: int) -> tuple[int | None, object] | None:
        """Pts mode, a frame after ``target`` came out first: decode on until the target's
        packet, already fed, has come out too (or is overdue). Its frame then waits behind
        later ones: see :meth:`_late` (a renumbering, or (packet, frame) of the target); a
        frame is never called missing where the decoder only put it out later."""
        idx = self.idx
        q = _damage.packet_of_frame(idx, target) if idx.mode == "pts" else None
        if q is None:
            return None
        at = next((k for k, (j, _) in enumerate(self.pending) if j == target), None)
        if at is None:
            # not out yet: wait for it if it was fed (a frame that settled an earlier one may
            # already have brought it out behind a later frame: then it is pending above)
            if q not in self.unseen:
                return None
            self._settle(q + 1, target)
            at = next((k for k, (j, _) in enumerate(self.pending) if j == target), None)
        if at is None:
            return None
        frame = self.pending[at][1]
        del self.pending[at]
        q = self.src.pop(target, q)
        self._late(target, q, self.pending[0][0])
        return q, frame

    def _finish_gop(self) -> None:
        """Count mode: decode on to the end of a GOP that has not proved closed yet."""
        while self.verify is not None:
            if not self._feed():
                raise _Renumber("the stream ended inside a GOP that could not be checked")
            while self.pending:
                i, frame = self.pending.popleft()
                self.last = i
                q = self.src.pop(i, None)
                if self.keep is not None and frame is not None and self._settled(q):
                    if not self._spoiled(q):
                        self.keep(i, frame)
