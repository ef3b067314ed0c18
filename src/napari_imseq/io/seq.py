"""Norpix StreamPix ``.seq`` files (see docs/seq-format.md in the shared knowledge base).

Uncompressed files are read with one positional read per frame straight into the output
array. JPEG/PNG compressed files get an offset table, from ``NAME.seq.idx`` when it is present
and agrees with the data, else from a single scan of the frame size prefixes (cached on disk).
"""

from __future__ import annotations

import os
import stat
import struct
import time
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _cache
from ._base import (
    FrameIndexError,
    Sequence,
    SequenceFormatError,
    SequenceWarning,
    UnsupportedFormatError,
    check_frame_size,
    open_regular,
)
from ._writer_base import Writer

MAGIC = 0xFEED
HEADER_SIZE = 1024
_JPEG_SOI = b"\xff\xd8"
#: timestamps of frames smaller than this are read in blocks of this many bytes
_TS_BLOCK = 1 << 20
_PNG_SIG = b"\x89PNG"

# image format code -> (channels in storage, colour order, compression or None)
_FORMATS: dict[int, tuple[int, str, str | None]] = {
    100: (1, "mono", None),
    101: (1, "bayer", None),
    200: (3, "BGR", None),
    400: (3, "RGB", None),
    500: (4, "BGRx", None),
    102: (1, "mono", "jpeg"),
    103: (1, "bayer", "jpeg"),
    201: (3, "RGB", "jpeg"),
    1: (1, "mono", "png"),
    2: (3, "RGB", "png"),
}
_FORMAT_NAMES = {
    0: "unknown", 100: "mono", 101: "mono Bayer", 102: "mono JPEG", 103: "Bayer JPEG",
    200: "BGR", 201: "colour JPEG", 300: "planar", 400: "RGB", 500: "BGRx",
    600: "YUV422", 610: "YUV422 (20)", 620: "YUV422 PPACKED", 700: "UVY422", 800: "UVY411",
    900: "UVY444", 905: "BGR555 packed", 906: "BGR565 packed", 1: "mono PNG", 2: "colour PNG",
}  # fmt: skip
_COMPRESSIONS = {
    0: "none", 1: "JPEG", 2: "RLE", 3: "Huffman", 4: "LZ", 5: "RLE fast", 6: "Huffman fast",
    7: "LZ fast", 8: "H.264", 9: "wavelet",
}  # fmt: skip


def _timestamp_dtype(version: int) -> np.dtype:
    if version >= 5:
        return np.dtype([("s", "<i4"), ("ms", "<u2"), ("us", "<u2")])
    return np.dtype([("s", "<i4"), ("ms", "<u2")])


def _seconds(ts: np.ndarray) -> np.ndarray:
    t = ts["s"].astype(np.float64) + ts["ms"].astype(np.float64) / 1e3
    if "us" in ts.dtype.names:
        t += ts["us"].astype(np.float64) / 1e6
    return t


def _payload_dims(data: bytes, compression: str) -> tuple[int, int] | None:
    """(height, width) from a PNG IHDR or a JPEG SOF marker, without decoding; None when the
    header cannot be found (the decoder then reports the damage)."""
    if compression == "png":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            w, h = struct.unpack_from(">II", data, 16)
            return h, w
        return None
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack_from(">HH", data, pos + 5)
            return h, w
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return None


class SeqFile(Sequence):
    """A Norpix StreamPix ``.seq`` recording."""

    format_name = "norpix-seq"
    extensions = (".seq",)

    magic = (struct.pack("<I", MAGIC),)

    def __init__(self, path: str | os.PathLike, *, use_idx: bool = True):
        super().__init__(path, use_idx=use_idx)
        path = self.path
        fh = self._source.handle()  # a path, bytes, a file object or a URL
        try:
            header = fh.read(HEADER_SIZE, 0)
        finally:
            fh.close()
        self._file_size = self._stat.st_size
        if len(header) < 4 or struct.unpack_from("<I", header)[0] != MAGIC:
            found = header[:4].hex() if header else "an empty file"
            raise SequenceFormatError(
                f"{path}: not a Norpix StreamPix SEQ file (expected magic 0xFEED in the first 4 "
                f"bytes, found {found}); open it with the reader for its real format"
            )
        if len(header) < HEADER_SIZE:
            raise SequenceFormatError(
                f"{path}: the SEQ header is cut short ({len(header)} of {HEADER_SIZE} bytes); "
                f"the file is truncated or not a complete recording"
            )
        self._parse_header(header)
        self._fh = self._source.handle()
        if self.compression is None:
            self._layout_uncompressed()
        else:  # the sidecar index and the offset cache exist for local files only
            self._layout_compressed(use_idx and self._source.local_path is not None)

    # ---- header ------------------------------------------------------------------------
    def _parse_header(self, h: bytes) -> None:
        i32 = lambda off: struct.unpack_from("<i", h, off)[0]  # noqa: E731
        self.version = i32(28)
        (
            self.width, self.height, self.storage_bits, self.real_bits, self.image_size,
            self.image_format, self.allocated_frames, _origin, self.true_image_size,
            self.header_fps, desc_format, _ref_frame, _fixed_size, _flags, self.bayer_pattern,
            _time_offset, _ext_header, self.compression_code, ref_s, ref_ms, ref_us,
            _gop, _bitrate, jpeg_quality, _h264_decode, _index_offset, self.oldest_frame_index,
            alignment,
        ) = struct.unpack_from("<9Id7IIiHHIIIIqii", h, 548)  # fmt: skip
        raw_desc = h[36:548]
        if desc_format == 1:
            desc = raw_desc.split(b"\0", 1)[0].decode("latin-1")
        else:
            desc = raw_desc.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        self.description = desc
        self._header_extra = {
            "version": self.version,
            "name": h[4:28].decode("utf-16-le", errors="replace").rstrip("\0"),
            "header_size": i32(32),
            "image_format": self.image_format,
            "image_format_name": _FORMAT_NAMES.get(self.image_format, "unknown"),
            "compression_format": self.compression_code,
            "allocated_frames": self.allocated_frames,
            "true_image_size": self.true_image_size,
            "image_size": self.image_size,
            "storage_bit_depth": self.storage_bits,
            "real_bit_depth": self.real_bits,
            "bayer_pattern": self.bayer_pattern,
            "oldest_frame_index": self.oldest_frame_index,
            "reference_time": (ref_s, ref_ms, ref_us),
            "jpeg_quality": jpeg_quality,
            "bytes_alignment": alignment,
            "description": desc,
        }  # fmt: skip
        path = self.path
        if self.width == 0 or self.height == 0:
            raise SequenceFormatError(
                f"{path}: the SEQ header gives an image of {self.width} x {self.height} pixels; "
                f"the header is damaged"
            )
        if self.image_format not in _FORMATS:
            name = _FORMAT_NAMES.get(self.image_format, "unknown")
            raise UnsupportedFormatError(
                f"{path}: SEQ image format {self.image_format} ({name}) is not supported; "
                f"supported codes are {sorted(_FORMATS)} (mono, Bayer, BGR, RGB, BGRx, JPEG, PNG)"
            )
        channels, self.colour_order, compression = _FORMATS[self.image_format]
        if self.compression_code == 1:
            compression = compression or "jpeg"
        elif self.compression_code != 0:
            name = _COMPRESSIONS.get(self.compression_code, "unknown")
            raise UnsupportedFormatError(
                f"{path}: SEQ compression format {self.compression_code} ({name}) is not "
                f"supported; only uncompressed (0), JPEG (1) and PNG frames can be read"
            )
        self.compression = compression
        if self.storage_bits % (8 * channels) or self.storage_bits // channels not in (8, 16):
            raise UnsupportedFormatError(
                f"{path}: a storage bit depth of {self.storage_bits} bits for image format "
                f"{self.image_format} ({channels} channel(s)) is not supported; expected 8 or 16 "
                f"bits per sample"
            )
        self._channels = channels
        sample_bits = self.storage_bits // channels
        self._sample_dtype = np.dtype(f"<u{sample_bits // 8}")
        real = self.real_bits
        if real and real % channels == 0 and real > sample_bits:
            real //= channels
        self._bit_depth = real if 0 < real <= sample_bits else sample_bits
        out_channels = 1 if channels == 1 else 3
        self._frame_shape = (
            (self.height, self.width) if out_channels == 1 else (self.height, self.width, 3)
        )
        self._ts_dtype = _timestamp_dtype(self.version)

    # ---- frame layout --------------------------------------------------------------------
    def _layout_uncompressed(self) -> None:
        path = self.path
        check_frame_size(path, self._frame_shape, self._sample_dtype)
        expected = self.width * self.height * self.storage_bits // 8
        if self.image_size != expected:
            raise SequenceFormatError(
                f"{path}: the SEQ header contradicts itself: image size is {self.image_size} "
                f"bytes but {self.width} x {self.height} pixels at {self.storage_bits} bits need "
                f"{expected} bytes"
            )
        if self.true_image_size < self.image_size:
            raise SequenceFormatError(
                f"{path}: the SEQ header contradicts itself: the frame stride (true image size, "
                f"{self.true_image_size} bytes) is smaller than one image ({self.image_size} bytes)"
            )
        self._start = HEADER_SIZE if self.version < 5 else 8192
        stride = self.true_image_size
        body = max(self._file_size - self._start, 0)
        slots, rest = divmod(body, stride)
        # a last slot without its padding is complete if its pixels and timestamp are there
        if rest >= self.image_size + self._ts_dtype.itemsize:
            slots, rest = slots + 1, 0
        self._has_timestamps = stride >= self.image_size + self._ts_dtype.itemsize
        n = min(self.allocated_frames, slots) if self.allocated_frames else slots
        self._partial_bytes = rest if (not self.allocated_frames or n == slots) else 0
        self._n = n
        if n == 0 and not self.allocated_frames:
            raise SequenceFormatError(
                f"{path}: the file holds no complete frame ({body} bytes after the header, "
                f"frames of {stride} bytes); it is truncated or the header is damaged"
            )
        if self.allocated_frames:
            cut = f", {self._partial_bytes} bytes of a partial frame" if self._partial_bytes else ""
            self._report_truncation(self.allocated_frames, n, cut)
        elif self._partial_bytes:
            warnings.warn(
                f"{path}: the last frame is incomplete ({self._partial_bytes} of {stride} bytes, "
                f"the recording was probably cut short); it is ignored and {n} complete frames "
                f"are read",
                SequenceWarning,
                stacklevel=4,
            )

    def _layout_compressed(self, use_idx: bool) -> None:
        self._start = HEADER_SIZE
        # a compressed frame decodes to the header's size: refuse absurd sizes up front
        check_frame_size(self.path, self._frame_shape, self._sample_dtype)
        local = self._source.local_path is not None
        table = _cache.load(self.path, "seq-offsets") if local else None
        if table is None and use_idx:
            table = self._table_from_idx()
        if table is None:
            before = _cache.stamp(self.path) if local else None
            table = self._scan_offsets()
            if local:
                _cache.save(self.path, "seq-offsets", table, before)
        self._offsets = table["offsets"]
        self._sizes = table["sizes"]
        self._ts_seconds = table["timestamps"]
        self._partial_bytes = int(table["partial"]) if "partial" in table else 0
        self._n = len(self._offsets)
        self._has_timestamps = True
        if self.allocated_frames and self.allocated_frames > self._n:
            cut = f", {self._partial_bytes} bytes of a partial frame" if self._partial_bytes else ""
            self._report_truncation(self.allocated_frames, self._n, cut)
        elif self._partial_bytes:
            warnings.warn(
                f"{self.path}: the last compressed frame is incomplete ({self._partial_bytes} "
                f"bytes, the recording was probably cut short); it is ignored and {self._n} "
                f"complete frames are read",
                SequenceWarning,
                stacklevel=4,
            )

    def _payload_ok(self, head: bytes) -> bool:
        magic = _PNG_SIG if self.compression == "png" else _JPEG_SOI
        return head.startswith(magic)

    def _table_from_idx(self) -> dict[str, np.ndarray] | None:
        idx_path = self.path + ".idx"
        try:
            st = os.stat(idx_path)
        except OSError:
            return None
        # one 24-byte record per frame, each frame at least 9 bytes (size prefix + payload):
        # a FIFO or an index larger than that is not read at all
        if not stat.S_ISREG(st.st_mode) or st.st_size > 24 * (self._file_size // 9 + 1):
            warnings.warn(
                f"{self.path}: the index file {os.path.basename(idx_path)} is not a plausible "
                f"index (a special file, or larger than the data allows); it is ignored and the "
                f"frame offsets are rebuilt from a scan of the file",
                SequenceWarning,
                stacklevel=5,
            )
            return None
        fd = open_regular(idx_path)
        try:
            raw = np.frombuffer(os.pread(fd, st.st_size, 0), dtype=np.uint8)
        finally:
            os.close(fd)
        rec = np.dtype(  # 24-byte records: offset, size, timestamp, 4 bytes of padding
            {
                "names": ["offset", "size", "s", "ms", "us"],
                "formats": ["<i8", "<u4", "<i4", "<u2", "<u2"],
                "offsets": [0, 8, 12, 16, 18],
                "itemsize": 24,
            }
        )
        problem = self._idx_problem(raw, rec)
        if problem is not None:
            warnings.warn(
                f"{self.path}: the index file {os.path.basename(idx_path)} disagrees with the "
                f"data ({problem}); it is ignored and the frame offsets are rebuilt from a scan "
                f"of the file",
                SequenceWarning,
                stacklevel=5,
            )
            return None
        recs = raw.view(rec)
        offsets = recs["offset"].astype(np.int64)
        sizes = recs["size"].astype(np.int64) - 4
        return {"offsets": offsets + 4, "sizes": sizes, "timestamps": _seconds(recs)}

    def _idx_problem(self, raw: np.ndarray, rec: np.dtype) -> str | None:
        """Why the ``.seq.idx`` records ``raw`` cannot be trusted, or None when they agree with
        the header and with every frame's size prefix in the data."""
        if raw.size == 0 or raw.size % rec.itemsize:
            return f"{raw.size} bytes is not a whole number of {rec.itemsize}-byte records"
        recs = raw.view(rec)
        count = len(recs)
        if self.allocated_frames and count != self.allocated_frames:
            return f"{count} records for the {self.allocated_frames} frames the header declares"
        offsets = recs["offset"].astype(np.int64)
        sizes = recs["size"].astype(np.int64)
        if offsets[0] != self._start:
            return f"the first frame is at byte {offsets[0]}, not {self._start}"
        if np.any(np.diff(offsets) < sizes[:-1]):
            return "frames overlap or are out of order"
        if offsets[-1] + sizes[-1] > self._file_size:
            return (
                f"the last frame ends at byte {offsets[-1] + sizes[-1]}, after the end of the "
                f"file ({self._file_size} bytes)"
            )
        # every entry against the data: one small read each, like the scan
        for k, (off, n) in enumerate(zip(offsets.tolist(), sizes.tolist(), strict=True)):
            head = self._fh.read(8, off)
            if len(head) < 8 or struct.unpack_from("<I", head)[0] != n or n <= 4:
                return f"frame {k}: the size prefix at byte {off} does not match"
            if not self._payload_ok(head[4:]):
                return f"frame {k}: no {self.compression.upper()} data at byte {off + 4}"
        return None

    def _scan_offsets(self) -> dict[str, np.ndarray]:
        """One pass over the size prefixes: offsets and sizes of every frame, and timestamps."""
        fh, size, path = self._fh, self._file_size, self.path
        ts_len = self._ts_dtype.itemsize
        # where the next prefix may start after the payload: the timestamp, plus 8 zero bytes
        # in some writers; a few other gaps are tried before giving up
        gaps = [ts_len, ts_len + 8, 8, 16, 6, 14, 0, 4, 12, 24, 32]
        offsets: list[int] = []
        sizes: list[int] = []
        stamps: list[bytes] = []
        pos, partial = self._start, 0
        window_len = max(gaps) + 8
        while pos + 8 <= size:
            head = fh.read(8, pos)
            n = struct.unpack_from("<I", head)[0]
            if n <= 4 or not self._payload_ok(head[4:]):
                if not offsets:
                    kind = self.compression.upper()
                    raise SequenceFormatError(
                        f"{path}: no {kind} frame where the first one should start (byte "
                        f"{pos}); the file is damaged or its header names the wrong compression"
                    )
                break
            if pos + n > size:
                partial = size - pos
                break
            offsets.append(pos + 4)
            sizes.append(n - 4)
            end = pos + n
            window = fh.read(window_len, end)
            stamps.append(window[:ts_len].ljust(ts_len, b"\0"))
            nxt = None
            for gap in gaps:
                cand = window[gap : gap + 8]
                if len(cand) == 8:
                    m = struct.unpack_from("<I", cand)[0]
                    if m > 4 and self._payload_ok(cand[4:]):
                        nxt = end + gap
                        break
            if nxt is None:
                break
            pos = nxt
        ts = np.frombuffer(b"".join(stamps), dtype=self._ts_dtype)
        return {
            "offsets": np.asarray(offsets, np.int64),
            "sizes": np.asarray(sizes, np.int64),
            "timestamps": _seconds(ts) if len(ts) else np.zeros(0),
            "partial": np.asarray(partial),
        }

    # ---- protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._frame_shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._sample_dtype.newbyteorder("="))

    @property
    def bit_depth(self) -> int:
        return self._bit_depth

    @property
    def rgb(self) -> bool:
        return self._channels != 1

    def _read(self, index: int) -> np.ndarray:
        if self.compression is not None:
            return self._read_compressed(index)
        shape = (self.height, self.width) + ((self._channels,) if self._channels > 1 else ())
        offset = self._start + index * self.true_image_size
        buf = self._fh.read_array(shape, self._sample_dtype, offset, f"frame {index}")
        if self.colour_order == "BGR":
            return buf[..., ::-1].copy()
        if self.colour_order == "BGRx":
            return buf[..., 2::-1].copy()
        return buf

    def _read_range(self, start: int, stop: int, out: np.ndarray) -> None:
        """Frames ``start:stop`` read straight into ``out`` (a dask chunk), no copy in between.

        Stored frames that are already in the output's layout (mono, Bayer, RGB) go from the
        file into ``out`` by positional reads: one for the whole run when the frames are packed
        (no timestamps or padding between them), else one per frame into its row of ``out``.
        BGR/BGRx and compressed frames are converted frame by frame."""
        direct = (
            self.compression is None
            and self.colour_order not in ("BGR", "BGRx")
            and self._sample_dtype.isnative
            and out.flags.c_contiguous
            and out.dtype == self.dtype
        )
        if not direct:
            super()._read_range(start, stop, out)
            return
        stride, size = self.true_image_size, self.image_size
        first = self._start + start * stride
        if stride == size:  # packed frames: one read for the run
            self._fill(out, first, start)
            return
        for k in range(stop - start):
            self._fill(out[k], first + k * stride, start + k)

    def _fill(self, out: np.ndarray, offset: int, index: int) -> None:
        """``out`` from the bytes at ``offset``, or FrameIndexError naming the first frame
        (``index``) that the file does not hold completely."""
        got = self._fh.readinto(out, offset)
        if got < out.nbytes:
            cut = index + got // self.image_size if out.ndim > len(self._frame_shape) else index
            raise FrameIndexError(
                f"{self.path}: frame {cut} is cut short (the file ends {out.nbytes - got} bytes "
                f"before the frames read end); the file changed or is truncated"
            )

    def _read_compressed(self, index: int) -> np.ndarray:
        import imagecodecs

        off, n = int(self._offsets[index]), int(self._sizes[index])
        data = self._fh.read(n, off)
        if len(data) < n:
            raise FrameIndexError(
                f"{self.path}: compressed frame {index} is cut short ({len(data)} of {n} bytes)"
            )
        dims = _payload_dims(data, self.compression)
        if dims is not None and dims != self._frame_shape[:2]:
            # checked before decoding: a damaged payload header could ask for gigabytes
            raise SequenceFormatError(
                f"{self.path}: frame {index} ({self.compression.upper()}) declares "
                f"{dims[0]} x {dims[1]} pixels but the header gives {self._frame_shape[0]} x "
                f"{self._frame_shape[1]}; the frame is damaged"
            )
        try:
            if self.compression == "png":
                frame = imagecodecs.png_decode(data)
            else:
                frame = imagecodecs.jpeg8_decode(data)
        except Exception as err:
            raise SequenceFormatError(
                f"{self.path}: frame {index} ({self.compression.upper()}, {n} bytes at byte "
                f"{off}) could not be decoded: {err}"
            ) from err
        if frame.ndim == 3 and len(self._frame_shape) == 2 and frame.shape[2] == 1:
            frame = frame[..., 0]
        if frame.shape != self._frame_shape:
            raise SequenceFormatError(
                f"{self.path}: frame {index} decodes to shape {frame.shape} but the header "
                f"gives {self._frame_shape}"
            )
        return frame.astype(self.dtype, copy=False)

    def _read_timestamps(self) -> np.ndarray | None:
        if self.compression is not None:
            return self._ts_seconds
        if not self._has_timestamps or self._n == 0:
            return None
        size = self._ts_dtype.itemsize
        first = self._start + self.image_size
        stride = self.true_image_size
        n = self._n
        out = np.empty(n, self._ts_dtype)
        if stride >= _TS_BLOCK:
            # one small positional read per frame: reading the timestamps of a huge file
            # touches none of its pixels (a memory map would fault in 64 KB per record)
            raw = b"".join(self._fh.read(size, first + i * stride) for i in range(n))
            got = len(raw) // size
            out[:got] = np.frombuffer(raw[: got * size], self._ts_dtype)
        else:
            # small frames: read blocks of whole slots and pick the records out of them, so
            # millions of tiny frames cost a few large reads, not millions of calls
            per = max(1, _TS_BLOCK // stride)
            got = 0
            for k in range(0, n, per):
                m = min(per, n - k)
                block = np.empty(m * stride, np.uint8)
                nread = self._fh.readinto(block, first + k * stride)
                whole = min(m, (nread + stride - size) // stride) if nread >= size else 0
                rows = np.lib.stride_tricks.as_strided(block, (whole, size), (stride, 1))
                out[k : k + whole] = rows.copy().view(self._ts_dtype)[:, 0]
                got = k + whole
                if whole < m:
                    break
        if got != n:
            raise SequenceFormatError(
                f"{self.path}: the timestamps of the last frames are cut short (the file changed "
                f"while it was open)"
            )
        return _seconds(out)

    def _format_metadata(self) -> dict[str, Any]:
        ts = self._read_timestamps()
        ts_fps = None
        if ts is not None and len(ts) > 1:
            d = np.diff(ts)
            d = d[d > 0]
            if len(d):
                ts_fps = float(1.0 / np.median(d))
        header_fps = float(self.header_fps) if self.header_fps > 0 else None
        source = dict(self._header_extra)
        source.update(
            file_size=self._file_size,
            compression=self.compression or "none",
            colour_order=self.colour_order,
            data_start=self._start,
            partial_frame_bytes=self._partial_bytes,
        )
        return {
            "fps": ts_fps if ts_fps is not None else header_fps,
            "header_fps": header_fps,
            "timestamp_fps": ts_fps,
            "timestamps": ts,
            "timestamp_clock": "seconds since the Unix epoch (camera clock, no time zone)",
            "partial_frame": bool(self._partial_bytes),
            "bayer_pattern": self.bayer_pattern if self.colour_order == "bayer" else None,
            "source": source,
        }

    def _close(self) -> None:
        self._fh.close()


class SeqWriter(Writer):
    """Frames to an uncompressed StreamPix SEQ file (version 5 layout).

    2-D uint8/uint16 frames are stored mono, (H, W, 3) uint8 frames as BGR. Timestamps are
    seconds since the Unix epoch; relative times (when the first is before 1973: a source
    without a camera clock) are all put after the moment the file was started. ``bit_depth`` sets the header's real bit depth
    (12 for 12-bit cameras). The header's frame count is rewritten on close and on abort, so
    a partial file reads back with every frame written so far.
    """

    format_name = "seq"
    extensions = (".seq",)

    def _validate_options(self) -> None:
        opts = dict(self.options)
        self.description = str(opts.pop("description", ""))
        if opts:
            raise self._refuse(
                f"unknown option(s) {sorted(opts)} for SEQ; known: bit_depth, description"
            )

    def _check(self, frame: np.ndarray) -> None:
        ok = frame.dtype in (np.uint8, np.uint16) and (
            frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8)
        )
        if not ok:
            raise self._refuse(
                f"SEQ stores 2-D uint8/uint16 or (H, W, 3) uint8 frames, not {frame.shape} "
                f"{frame.dtype}; use .tif or .zarr"
            )

    def _open(self, frame: np.ndarray) -> None:
        self._image_size = frame.nbytes
        self._stride = -(-(self._image_size + 8) // 8192) * 8192
        self._frame_shape, self._dtype = frame.shape, frame.dtype
        self._epoch = time.time()
        self._f = open(self.partial, "wb")
        # a header with 0 frames until the count is known: a file cut off before close is
        # still a SEQ file (and recognisably ours)
        self._f.write(self._header().ljust(8192, b"\0"))

    def _write(self, frame: np.ndarray, timestamp: float) -> None:
        if self.count == 0:  # relative times (a first one before 1973) start at the write's start
            self._shift = self._epoch if timestamp < 1e8 else 0.0
        timestamp += self._shift
        total_us = int(round(timestamp * 1e6))
        s, sub = divmod(total_us, 1_000_000)
        if not -(2**31) <= s < 2**31:
            raise self._refuse(
                f"frame {self.count}: timestamp {timestamp} s is outside what SEQ stores "
                f"(32-bit seconds since 1970, up to 2038); pass times in seconds, relative or "
                f"since the Unix epoch"
            )
        ms, us = divmod(sub, 1000)
        data = frame[..., ::-1] if frame.ndim == 3 else frame
        self._f.write(np.ascontiguousarray(data, dtype=frame.dtype.newbyteorder("<")).tobytes())
        self._f.write(struct.pack("<iHH", s, ms, us))
        self._f.write(b"\0" * (self._stride - self._image_size - 8))

    def _header(self) -> bytes:
        shape, dtype = self._frame_shape, self._dtype
        h = bytearray(HEADER_SIZE)
        struct.pack_into("<I", h, 0, MAGIC)
        h[4:28] = "Norpix seq".encode("utf-16-le").ljust(24, b"\0")
        struct.pack_into("<ii", h, 28, 5, HEADER_SIZE)
        h[36:548] = self.description.encode("utf-16-le")[:510].ljust(512, b"\0")
        bits = dtype.itemsize * 8 * (3 if len(shape) == 3 else 1)
        real = self.bit_depth or dtype.itemsize * 8
        fmt = 200 if len(shape) == 3 else 100
        struct.pack_into(
            "<IIIIIIIII", h, 548, shape[1], shape[0], bits, real, self._image_size, fmt,
            self.count, 0, self._stride,
        )  # fmt: skip
        struct.pack_into("<d", h, 584, float(self.fps or 0.0))
        struct.pack_into("<i", h, 660, 8192)
        return bytes(h)

    def _finish(self) -> None:
        try:
            self._f.flush()
            self._f.seek(0)
            self._f.write(self._header())
            self._f.flush()
        finally:
            self._f.close()


def write_seq(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 30.0,
    timestamps: Iterable[float] | None = None,
    bit_depth: int | None = None,
    description: str = "",
    overwrite: bool = False,
) -> int:
    """Stream frames to an uncompressed SEQ file; return the frame count (see SeqWriter)."""
    ts = iter(timestamps) if timestamps is not None else None
    with SeqWriter(
        path, fps=fps, overwrite=overwrite, bit_depth=bit_depth, description=description
    ) as w:
        for frame in frames:
            w.write(frame, next(ts) if ts is not None else None)
    return w.count


# ---- registration (napari_imseq.io._formats) -----------------------------------------------
from ._formats import register  # noqa: E402

register("seq", reader=SeqFile, writer=SeqWriter, aliases=("norpix-seq",))
