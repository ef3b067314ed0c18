"""Reading: :class:`VideoFile` opens the file, builds (or loads) the index, and reads frames
through a pool of decoder states and the shared frame cache. See the package docstring."""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
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
from . import _damage
from ._damage import DamageMap
from ._decode import _Decoder, _Renumber, _Reslice
from ._index import (
    _CRC_PROBE_PACKETS,
    _NO_TS,
    _ffv1_slices_intact,
    _Index,
    _matroska_segment_end,
    _sniff_video,
)
from ._pixfmt import CHANNEL_AXIS_TAG, _GifAlpha, _Plan, detach, hint_allocator

_INDEX_KIND = "video-index-v4"
_INDEX_ARRAYS = (
    "pts", "dts", "key", "pos", "size", "dur", "corrupt", "alpha", "slice_crc", "index_gap",
)  # fmt: skip
#: a seek followed by a longer decode run than this uses frame threading
_FRAME_THREADED_RUN = 8
#: longest wait (seconds) for a busy decoder before the pool is looked at again
_WAIT_S = 1.0
#: a decode run starts again after a renumbering (its own or another thread's, at most two per
#: file) or a frame-threading failure (once): more restarts than this mean it cannot settle
_RETRIES = 6


def _nbytes(item) -> int:
    if isinstance(item, np.ndarray):
        return item.nbytes
    return sum(p.buffer_size for p in item.planes)


def _mark(frame, array) -> tuple[int] | bytes:
    """What identifies a decoded frame across numberings: its stamp, or for a frame without
    one a digest of its pixels (``array()`` gives them; only called then)."""
    if frame.pts is not None:
        return (int(frame.pts),)
    return hashlib.blake2b(np.ascontiguousarray(array()).data, digest_size=16).digest()


def _index_gap(container, stream, pos: list, size: list, key: list, corrupt: list) -> list[int]:
    """AVI: ``[gap, lost]``: the byte where the container's index (idx1 or OpenDML, by which
    seeks go) and the chunks a read in order finds first disagree, or -1 (they agree, or not
    an AVI); and, when the read in order lost chunks the index lists (a damaged chunk header
    makes the demuxer skip the chunk), the first frame whose number a count from the start
    can no longer give, or -1.

    A damaged chunk header makes the demuxer skip that chunk in a read in order and renumber
    the packets after it, while a seek stamps them by the index: the same frame would carry
    two numbers depending on how it was reached. Frames are then counted from the start; a
    lost chunk shifts that count (its frame and those predicted from it are not put out, or
    are put out concealed), so frames are refused from the keyframe before the lost chunk on.
    (When the lost chunk held a keyframe, the frames of the group before it still come out
    in order, but FFmpeg's stamps for them no longer say which they are: in the case of
    ``test_an_avi_chunk_lost_to_a_read_in_order_refuses_the_frames_it_would_renumber`` it
    stamps the undamaged file's frame 6 as frame 8. No reading but a count would say which
    frame it is, so it is not handed out.)"""
    if "avi" not in container.format.name:
        return [-1, -1]
    try:
        entries = [(e.pos + 8, e.size) for e in stream.index_entries if e.size > 0]
    except Exception:  # noqa: BLE001 - an index PyAV cannot show is not checked
        return [-1, -1]
    found = [(int(p), int(z)) for p, z in zip(pos, size, strict=True)]
    while found and corrupt[len(found) - 1]:
        found.pop()  # cut short by the end of the file: its index entry says the whole size
    if not entries or min(pos, default=0) < 0 or entries == found:
        return [-1, -1]
    k = next((k for k, (a, b) in enumerate(zip(entries, found, strict=False)) if a != b), None)
    if k is None:  # one is a prefix of the other: a cut-off file, found by the frame count
        return [-1, -1]
    gap = min(entries[k][0], found[k][0]) - 8
    at = {p for p, _ in entries}
    if len(found) >= len(entries) or any(p not in at for p, _ in found):
        return [gap, -1]  # not chunks lost from the data (the index may be the damaged one)
    keys = [j for j in range(k) if key[j]]
    return [gap, keys[-1] if keys else 0]


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
        local = self._source.local_path is not None  # else bytes, a file object or a URL
        if local:
            _check_exists(path)
        if cache_bytes is not None:
            self.cache_bytes = cache_bytes
        try:  # a local path, or a file object with its own cursor (closed with the source)
            container = av.open(self._source.file(), metadata_errors="ignore")
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
            tags = {str(k).upper(): v for k, v in (container.metadata or {}).items()}
            self._info = {
                "channel_axis": tags.get(CHANNEL_AXIS_TAG) == "1",
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
            arrays = _cache.load(path, _INDEX_KIND) if local else None
            if arrays is None or not set(_INDEX_ARRAYS) <= set(arrays):
                before = _cache.stamp(path) if local else None
                arrays = self._scan(container, s)
                if local:
                    _cache.save(path, _INDEX_KIND, arrays, before)
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
        gap, lost = (int(v) for v in arrays["index_gap"][:2])
        #: frames from here on cannot be numbered (an AVI chunk lost in a read in order)
        self._unnumbered = lost if gap >= 0 and lost >= 0 else None
        self._gap = gap
        n = self._readable(arrays, declared, reorder, gap)
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
        if gap >= 0 and self._index.mode in ("pts", "count"):
            # a seek goes by the index, which stamps packets differently from a read in order:
            # frames are counted from the start in every read path
            self._index = self._index.downgraded(
                f"the AVI index does not match the chunks the data holds (from byte {gap} on: "
                f"a chunk header is damaged)"
            )
            refused = ""
            if self._unnumbered is not None:
                refused = (
                    f"; a chunk the index lists is lost in the data, so frames from "
                    f"{self._unnumbered} on cannot be numbered and are refused"
                )
            warnings.warn(
                f"{path}: {self._index.reason}; frames are numbered in the decoder's output "
                f"order and found by decoding from the start (random access is slower)"
                f"{refused}",
                SequenceWarning,
                stacklevel=3,
            )
        try:
            self._plan = _Plan(pix_fmt)
            alpha = bool(arrays["alpha"][0]) if gif_alpha is None else gif_alpha
            if self._info["container"] == "gif" and not alpha:
                self._plan.opaque(path)
            if self._info["channel_axis"]:
                self._plan.keep_channel_axis()
        except Exception as err:
            raise UnsupportedFormatError(
                f"{path}: pixel format {pix_fmt!r} is not supported: {err}"
            ) from err
        self._frame_shape = (self._info["height"], self._info["width"], *self._plan.shape_tail)
        hint_allocator(int(np.prod(self._frame_shape)) * self._plan.dtype.itemsize)
        #: a parked decoder's pictures, estimated (_cache.decoders): about 16 4:2:0 pictures,
        #: 8 frames as we hand them out (measured: 42 MiB for 1080p H.264 with 3 threads)
        self._decoder_bytes = 8 * int(np.prod(self._frame_shape)) * self._plan.dtype.itemsize
        self._slice_crc = bool(arrays["slice_crc"][0])
        #: damaged packets found while decoding, and the frames they spoil (_damage)
        self._damage = DamageMap(path)
        for p in self._cut:
            self._damage.mark(self._index, p, "its data is cut off by the end of the file")
        keys = np.flatnonzero(self._index.key)
        #: packets before the first keyframe: they predict from a keyframe the file does not
        #: hold (its chunk was lost), are never decoded, and spoil the first keyframe's leading
        #: pictures (decoding them gave frames in an order that depended on the read)
        self._lead_in = int(keys[0]) if len(keys) else 0
        if self._lead_in:
            self._damage.mark(
                self._index,
                0,
                "no keyframe comes before it (the file lost the one it predicts from)",
            )
        self._idle: list[_Decoder] = []
        self._busy: set[_Decoder] = set()
        self._pool_lock = threading.Lock()
        self._pool_changed = threading.Condition(self._pool_lock)  # a decoder was released
        #: busy decoders of _read/_read_range: the last frame each hands out, and whether it
        #: reads that frame alone (then it lands in the frame cache)
        self._heading: dict[_Decoder, tuple[int, bool]] = {}
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

    def _readable(self, arrays: dict[str, np.ndarray], declared, reorder: bool, gap: int) -> int:
        """Frames whose packets the file holds whole; a cut-off file is reported.

        ``gap``: where an AVI's index and its chunks disagree (-1: they agree); frames then
        missing from the count the header declares are lost there, not cut off at the end.
        Packets cut short by the end of the file are left out when their frames are the last
        ones shown; when a codec that reorders frames may show one of them before a whole
        packet's frame (a B-frame cut off after the P-frame it precedes, or stamps that cannot
        say), leaving it out would renumber the frames after it: it stays listed and reading
        it raises (``self._cut``, marked damaged once the damage map exists).

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
        listed = len(corrupt)
        if n == listed or not reorder or self._cut_shown_last(arrays, n):
            listed = n
        self._cut = range(n, listed)
        frames, seconds = declared
        truncated = n < len(corrupt)
        size = self._stat.st_size
        at_end = False
        if n and len(arrays["pos"]) and arrays["pos"][n - 1] >= 0:
            # the data stops at the end of the file (no trailer, index or cues after it)
            tail = size - (arrays["pos"][n - 1] + arrays["size"][n - 1])
            at_end = tail < 2 * int(arrays["size"].max()) + 65536
        end = None
        if frames is not None and gap < 0:  # (an AVI index that disagrees: warned at open)
            truncated = truncated or (n < frames and at_end)
        elif seconds is not None and n:
            cut, end = self._coverage(arrays, n, seconds, size, at_end)
            truncated = truncated or cut
        self._truncated = truncated
        self._frames_declared = frames if truncated else None
        cut = (
            f"; {listed} are listed: reading the {listed - n} cut off (shown before whole "
            f"frames) raises an error"
            if self._cut
            else ""
        )
        if truncated and frames is not None and n < frames:
            warnings.warn(
                f"{self.path}: the header declares {frames} frames but only {n} are readable "
                f"(the file is probably truncated); {n} frames are read{cut}",
                SequenceWarning,
                stacklevel=4,
            )
        elif truncated and end is not None:
            warnings.warn(
                f"{self.path}: the header declares {seconds:.6g} s but the {n} readable frames "
                f"end at {end:.6g} s (the file is probably truncated); {n} frames are read{cut}",
                SequenceWarning,
                stacklevel=4,
            )
        elif truncated:
            warnings.warn(
                f"{self.path}: the last frame is cut short (the file is probably truncated); "
                f"{n} frames are read{cut}",
                SequenceWarning,
                stacklevel=4,
            )
        return listed

    def _cut_shown_last(self, arrays, n: int) -> bool:
        """Whether the frames of packets ``n:`` (cut short) are shown after every other
        frame: their presentation stamps say so (decode stamps of an AVI cannot)."""
        pts = arrays["pts"]
        if np.any(pts == _NO_TS) or not n:
            return not n
        if self._info["container"] == "avi" and bool(np.all(np.diff(pts) > 0)):
            return False  # decode stamps: where the cut frames are shown is unknown
        return bool(pts[n:].min() > pts[:n].max())

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
        segment_end = _matroska_segment_end(self._source.file())
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
            "index_gap": np.asarray(
                _index_gap(container, stream, pos, size, key, corrupt), np.int64
            ),
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
    def _strict_judge(self, cc) -> bool:
        """Whether this MPEG-4 file decodes with bug autodetection off (_damage.strict_judge);
        decided once per file from its extradata and first packet."""
        strict = getattr(self, "_strict", None)
        if strict is None:
            first = self._first_packets(cc, 1)
            strict = self._strict = _damage.strict_judge(
                cc.name, bytes(cc.extradata or b"") + b"".join(first[:1])
            )
        return strict

    def _first_packets(self, cc, count: int) -> list[bytes]:
        """The bytes of the stream's first ``count`` packets (fewer if the file has fewer or
        is damaged there)."""
        import av

        out: list[bytes] = []
        try:
            with av.open(self._source.file(), metadata_errors="ignore") as c:
                stream = c.streams.video[self._stream_index]
                for packet in c.demux(stream):
                    if packet.size:
                        out.append(bytes(packet))
                    if len(out) >= count:
                        break
        except (av.FFmpegError, OSError, ValueError):
            pass
        return out

    def _warm_packet(self, cc) -> bytes:
        """The packet FRESH_STATE decoders warm up on (:mod:`._damage`), b"" if none: the
        smallest of the first packets (I- or P-pictures) that a decoder strict about frame ends
        (FFmpeg's bug autodetection off) decodes; the file's first packet when none does (an
        encoder that pads no frame: FFmpeg's decoder learns to accept that, and so do ours).
        Chosen once per file."""
        warm = getattr(self, "_warm", None)
        if warm is None:
            # (none: no warm-up, every run starts from the same fresh state all the same)
            candidates = self._first_packets(cc, _damage.WARM_CANDIDATES)
            good = [b for b in candidates if _damage.reference_picture(b)]
            good = [b for b in sorted(good, key=len) if _damage.ends_properly(cc, b)][:1]
            warm = self._warm = (good or candidates or [b""])[0]
        return warm

    # ---- decoder pool ----------------------------------------------------------------
    def _acquire(
        self, target: int, slices_only: bool = False, last: int | None = None
    ) -> _Decoder | None:
        """An idle decoder for frames ``target`` to ``last`` (default: ``target`` alone): one
        that can decode on without seeking if any; otherwise one whose threading suits the
        run from the keyframe. ``slices_only``: a decoder without frame threads (after a
        frame-threaded one failed).

        Decoder affinity: when a busy decoder is reading earlier frames of the target's GOP
        (the dask chunk before this one), or the target itself alone (napari's read-ahead),
        None is returned once it is released: the caller looks in the frame cache and asks
        again, and that decoder decodes on, instead of a second one decoding the GOP again.
        """
        last = target if last is None else last
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
            if best is None and self._coming(keyframe, target):
                self._pool_changed.wait(_WAIT_S)
                return None
            # a short run pays no frame-threading latency with slice threads; a long run
            # (a long GOP) decodes much faster with frame threads on every core
            long_run = last - keyframe > _FRAME_THREADED_RUN and not slices_only
            kind = "AUTO" if long_run else "SLICE"
            if best is None:  # rather not one parked inside a GOP: a piece may continue it
                fits = [d for d in self._idle if d.thread_type == kind]
                best = min(fits, key=self._parked_in_gop, default=None)
                if best is not None and self._park_another():
                    best = None  # it stays parked where it is; a new decoder seeks
            if best is not None:
                _cache.decoders.unpark(best)
                self._idle.remove(best)
                self._busy.add(best)
                self._heading[best] = (last, last == target)
                return best
        return self._new_decoder(kind, (last, last == target))

    def _park_another(self) -> bool:
        """Whether to open another decoder rather than move an idle one away from where it
        stopped (with the pool lock held): within :attr:`max_idle_decoders` and the shared
        budget of parked decoders. Reads that come back to a GOP (a slider moved back and
        forth) then decode on from the nearest parked decoder."""
        return len(self._idle) + len(self._busy) < self.max_idle_decoders and (
            _cache.decoders.room(self._decoder_bytes)
        )

    def _parked_in_gop(self, dec: _Decoder) -> bool:
        """``dec`` (idle) stopped inside a GOP, where the next dask piece of that GOP goes on
        (with the pool lock held)."""
        pos = dec.position
        return (
            pos is not None
            and 0 < pos < len(self._index)
            and (self._index.keyframe_at_or_before(pos) < pos)
        )

    def _coming(self, keyframe: int, target: int) -> bool:
        """A busy decoder will, once released, hold ``target`` in the cache or be able to
        decode on to it (with the pool lock held)."""
        return any(
            keyframe <= last < target or (alone and last == target)
            for last, alone in self._heading.values()
        )

    def _new_decoder(self, kind: str, heading: tuple[int, bool] | None = None) -> _Decoder:
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
            if heading is not None:
                self._heading[dec] = heading
        return dec

    def _check_decoder(self, dec: _Decoder) -> None:
        if dec.closed or self._closed:  # close() ran while this read waited
            raise SequenceClosedError(
                f"{self.path}: the sequence was closed during the read; open it again to read"
            )

    def _release(self, dec: _Decoder, broken: bool = False) -> None:
        with self._pool_lock:
            self._busy.discard(dec)
            self._heading.pop(dec, None)
            keep = not (broken or self._closed or len(self._idle) >= self.max_idle_decoders)
            if keep:
                self._idle.append(dec)
                evict = _cache.decoders.park(dec, self._decoder_bytes, self)
            self._pool_changed.notify_all()
        if not keep:
            dec.close()
            return
        for other, owner in evict:  # over the shared budget: the least recently parked
            owner._evict(other)

    def _evict(self, dec: _Decoder) -> None:
        """Close idle decoder ``dec`` unless it is the last idle one of this file."""
        with self._pool_lock:
            if dec not in self._idle or len(self._idle) < 2:
                return
            self._idle.remove(dec)
        dec.close()  # (closing unparks it)

    def _renumber(self, why: str, version: int) -> None:
        """The stamps proved unreliable: number frames by the decoder's output from now on."""
        with self._pool_lock:
            if self._index.version != version:
                return  # another thread did it
            # a new index: reads under way keep numbering by the old one to the end and find
            # out (_Decoder.stale); none sees a half-changed numbering
            self._index = idx = self._index.downgraded(why)
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
        return self._plan.shape_tail in ((3,), (4,))

    def _decode(self, dec: _Decoder, index: int):
        """``dec.decode_to(index)`` with dependency errors turned into ours."""
        import av

        if self._unnumbered is not None and index >= self._unnumbered:
            raise SequenceFormatError(
                f"{self.path}: frame {index} cannot be identified: the AVI chunk at byte "
                f"{self._gap} (which its index lists) is lost to a read in order, a damaged "
                f"chunk header, and counting frames from the start gives frames from "
                f"{self._unnumbered} on other numbers than they had; the frames before read "
                f"normally; re-encode or re-export the video from its source to read these"
            )
        try:
            return dec.decode_to(index)
        except _Renumber:
            raise
        except SequenceFormatError as err:
            if dec.stale:  # numbered by an index another thread replaced: read again
                raise _Renumber("the frame numbering changed during the read") from err
            raise
        except (av.FFmpegError, OSError, ValueError, AttributeError, RuntimeError) as err:
            self._check_decoder(dec)
            if dec.stale:
                raise _Renumber("the frame numbering changed during the read") from err
            raise SequenceFormatError(
                f"{self.path}: frame {index} could not be decoded ({type(err).__name__}: {err}); "
                f"the file is damaged"
            ) from err

    def _array(self, frame, index: int) -> np.ndarray:
        """Decoded frame ``index`` as our array; a frame of other dimensions than the video's
        (damaged headers) or one FFmpeg cannot convert is an error of ours, naming it."""
        import av

        h, w = self._frame_shape[:2]
        if (frame.height, frame.width) != (h, w):
            raise SequenceFormatError(
                f"{self.path}: frame {index} decodes to {frame.width} x {frame.height} pixels "
                f"but the video is {w} x {h}; the frame is damaged"
            )
        try:
            return self._plan.to_array(frame)
        except (av.FFmpegError, OSError, ValueError) as err:
            raise SequenceFormatError(
                f"{self.path}: frame {index} cannot be converted to an array "
                f"({type(err).__name__}: {err}); the frame is damaged"
            ) from err

    def _read(self, index: int) -> np.ndarray:
        got: list[np.ndarray] = []
        version = self._decode_run(index, index + 1, lambda k, arr: got.append(arr))
        # the caller gets its own array; the cache keeps the original
        return got[0].copy() if self._remember(index, got[0], version) else got[0]

    def _read_range(self, start: int, stop: int, out: np.ndarray) -> None:
        """A dask chunk: one decoder decodes on through ``start:stop`` (the decoder that
        read the chunk before continues, or one seeks to the keyframe once); not cached."""
        self._decode_run(start, stop, lambda k, arr: out.__setitem__(k - start, arr))

    def _decode_points(self) -> np.ndarray:
        return self._index.keyframes  # where a read can start (all 0 when reads never seek)

    def _cached(self, index: int, version: int) -> np.ndarray | None:
        """Frame ``index`` from the frame cache (the caller's own array), or None."""
        key = (version, index)
        hit = _cache.frames.get(self._cache_owner, key)
        if hit is None or isinstance(hit, np.ndarray):
            return None if hit is None else hit.copy()
        _cache.frames.pop(self._cache_owner, key)  # a decoded frame: converted once, here
        arr = self._array(hit, index)
        return arr.copy() if self._remember(index, arr, version) else arr

    def _decode_run(self, start: int, stop: int, put) -> int:
        """Frames ``start:stop`` in order, each handed to ``put(k, array)``: from the cache
        while the run starts with cached frames, then decoded on by one decoder. Returns
        the index version the frames were numbered with."""
        version = self._index.version
        k, slices_only, retries = start, False, 0
        while True:
            if k >= stop:
                if self._index.version == version:
                    return version
                # renumbered by another thread while this run decoded: the frames it gave
                # were numbered by the old index; the run is done again by the new one
                version, k = self._index.version, start
                retries += 1
                if retries > _RETRIES:  # pragma: no cover - renumbering happens twice at most
                    break
            hit = self._cached(k, version)
            if hit is not None:
                put(k, hit)
                k += 1
                continue
            dec = self._acquire(k, slices_only, stop - 1)
            if dec is None:
                continue  # the decoder reading this GOP was released: the cache, then it
            broken = True
            try:
                with dec.lock:
                    self._check_decoder(dec)
                    dec.keep = lambda i, f, v=version: self._remember(i, f, v)
                    while k < stop:
                        put(k, self._array(self._decode(dec, k), k))
                        k += 1
                    broken = False
            except _Renumber as why:
                self._renumber(str(why), version)
                version, k = self._index.version, start  # frames numbered before: again
                retries += 1
            except _Reslice:
                slices_only = True  # on from frame k without frame threads
                retries += 1
            finally:
                dec.keep = None
                self._release(dec, broken)
            if retries > _RETRIES and k < stop:  # pragma: no cover - (as above)
                break
        raise self._numbering_kept_changing(k)

    def _remember(self, index: int, item, version: int) -> bool:
        """Cache a converted array or a decoded frame (converted when it is asked for; its
        pixels moved out of the decoder's buffer pool, see :func:`_pixfmt.detach`);
        True when ``item`` itself is now held by the cache."""
        if version != self._index.version or self._closed:
            return False
        size = _nbytes(item)
        if not isinstance(item, np.ndarray):
            key = (version, index)
            if not _cache.frames.wants(self._cache_owner, key, size, self.cache_bytes):
                return False
            item = detach(item)  # (the same frame)
        return _cache.frames.put(
            self._cache_owner,
            (version, index),
            item,
            size,
            limit=self.cache_bytes,
            replace=lambda old: not isinstance(old, np.ndarray) and isinstance(item, np.ndarray),
        )

    def iter_frames(self, start=None, stop=None, step=None):
        """Frames ``start:stop:step`` decoded straight through with frame threading.

        The file may be renumbered during the iteration (its stamps prove unreliable, here
        or in another thread: see :meth:`_renumber`). Frames given before keep the numbers
        they were given with only if the new numbering agrees; the first and the last frame
        given are looked up again under it, and if either differs the iteration stops with
        an error (iterating again gives the new numbering throughout) rather than go on with
        a sequence numbered half one way and half the other."""
        self._check_open()
        wanted = range(*slice(start, stop, step).indices(len(self)))
        if not wanted:
            return
        if wanted.step < 0:  # backwards: random access is the only way
            for i in wanted:
                yield self._read(i)
            return
        k, retries = 0, 0
        kind = "AUTO"
        given: list[tuple[int, object]] = []  # (frame, its mark): the first and the last given
        numbered = self._index.version  # the numbering of the frames given so far
        while k < len(wanted):
            version = self._index.version
            dec = self._new_decoder(kind)
            try:
                while k < len(wanted):
                    # the lock is never held across a yield: close() may run between frames
                    with dec.lock:
                        self._check_decoder(dec)
                        while True:
                            now = self._index.version
                            if given and now != numbered:
                                self._check_given(dec, given)
                            frame = self._decode(dec, wanted[k])
                            if dec.idx.version == now:
                                break
                            retries += 1  # renumbered (in another thread) meanwhile: again
                            if retries > _RETRIES:  # pragma: no cover - twice at most
                                raise self._numbering_kept_changing(wanted[k])
                        numbered = now
                        arr = self._array(frame, wanted[k])
                        mark = None  # (numbered by packet or output count: a renumbering
                        if dec.idx.mode in ("pts", "count"):  # gives the same numbers)
                            mark = _mark(frame, lambda a=arr: a)
                    given = [given[0] if given else (wanted[k], mark), (wanted[k], mark)]
                    yield arr
                    k += 1
            except _Renumber as why:
                self._renumber(str(why), version)
                retries += 1
            except _Reslice:
                kind = "SLICE"  # on from frame wanted[k] without frame threads
                retries += 1
            finally:
                with self._pool_lock:
                    self._busy.discard(dec)
                dec.close()
            if retries > _RETRIES and k < len(wanted):  # pragma: no cover - (as above)
                raise self._numbering_kept_changing(wanted[k])

    def _check_given(self, dec: _Decoder, given: list[tuple[int, object]]) -> None:
        """After a renumbering during :meth:`iter_frames`: the first and the last frame it
        gave must be the same frames under the new numbering (the decoder reads on from the
        first to the last, then to the next frame wanted)."""
        for i, mark in dict(given).items():
            if mark is None:
                continue
            try:
                frame = self._decode(dec, i)
            except SequenceFormatError as err:
                raise SequenceFormatError(
                    f"{self.path}: the frame numbering changed during iter_frames() and frame "
                    f"{i}, given before, cannot be read under the new one ({err}); iterate "
                    f"again for frames numbered as indexing numbers them"
                ) from err
            if _mark(frame, lambda f=frame, j=i: self._array(f, j)) != mark:
                raise SequenceFormatError(
                    f"{self.path}: the frame numbering changed during iter_frames() (the "
                    f"file's timestamps proved unreliable) and frame {i}, given before, is "
                    f"another frame under the new numbering; the frames given from frame "
                    f"{given[0][0]} on are numbered differently from indexing: iterate again"
                )

    def _numbering_kept_changing(self, i: int) -> SequenceFormatError:
        return SequenceFormatError(
            f"{self.path}: frame {i} cannot be identified (the frame numbering kept changing "
            f"during the read); the file is damaged"
        )

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
            self._pool_changed.notify_all()
        for dec in decoders:
            dec.close()
        _cache.frames.drop(self._cache_owner)
