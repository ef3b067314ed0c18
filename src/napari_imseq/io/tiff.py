"""TIFF stacks (plain, BigTIFF, ImageJ hyperstacks, OME-TIFF, tifffile-shaped) via tifffile.

The frame axis is the first axis of the first series that is not spatial (``Y``, ``X``) or a
sample axis (``S``); all other axes stay in the frame. Uncompressed series stored contiguously
are read with one positional read per frame; everything else (compressed or scattered pages)
goes through tifffile's zarr store, which decodes only the tiles/strips a frame needs.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from typing import Any

import numpy as np

from ._base import (
    FileHandle,
    FrameIndexError,
    Sequence,
    SequenceFormatError,
    SequenceWarning,
    check_frame_size,
    dependency_errors,
)

_MAGICS = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
_SPATIAL = set("YXS")
#: more tags than this in one IFD means a damaged file (tifffile gives up there too)
_MAX_TAGS = 4096
#: bytes read at each IFD while walking the chain (the tag count, the tags, the next offset)
_IFD_READ = 1024


def _walk_ifds(fh: FileHandle, size: int) -> tuple[int, int | None]:
    """Follow the chain of IFDs (pages) from the header; return how many there are, and the
    offset of the next page when the chain points past the end of the file (else None).

    tifffile detects a loop in the chain only at its 100th page, so a chain that loops later
    makes it walk forever. Here every IFD offset is remembered: a loop, an IFD outside the
    file or a damaged tag count is a :class:`SequenceFormatError`. The walk costs one small
    read per page (two for pages of more than 85 tags) and ends after ``size / 18`` pages at
    most (the smallest possible IFD).
    """
    path = fh.path
    head = fh.read(16, 0)
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\0", b"\0+")
    if big:
        cnt_fmt, cnt_len, tag_len, off_fmt, off_len = "Q", 8, 20, "Q", 8
        first = int(np.frombuffer(head[8:16], order + "u8")[0]) if len(head) >= 16 else 0
    else:
        cnt_fmt, cnt_len, tag_len, off_fmt, off_len = "H", 2, 12, "I", 4
        first = int(np.frombuffer(head[4:8], order + "u4")[0]) if len(head) >= 8 else 0
    seen: dict[int, int] = {}
    offset = first
    count_fmt, next_fmt = order + cnt_fmt, order + off_fmt
    while offset:
        if offset in seen:
            raise SequenceFormatError(
                f"{path}: the chain of TIFF pages loops (page {len(seen) - 1} points back to "
                f"page {seen[offset]} at byte {offset}); the file is damaged; repair it, e.g. "
                f"by saving the readable pages again with another program"
            )
        if offset + cnt_len > size:
            if not seen:
                raise SequenceFormatError(
                    f"{path}: the first TIFF page is at byte {offset}, outside the file "
                    f"({size} bytes); the file is truncated or damaged"
                )
            return len(seen), offset  # a cut chain: the pages before it are what is there
        seen[offset] = len(seen)
        raw = fh.read(_IFD_READ, offset)  # most IFDs fit: one read per page
        count = struct.unpack_from(count_fmt, raw)[0]
        if count > _MAX_TAGS or count == 0:
            if len(seen) == 1:
                raise SequenceFormatError(
                    f"{path}: the first TIFF page has {count} tags; the file is damaged"
                )
            break
        at = cnt_len + count * tag_len
        nxt = raw[at : at + off_len] if at + off_len <= len(raw) else fh.read(off_len, offset + at)
        if len(nxt) < off_len:
            break
        offset = struct.unpack(next_fmt, nxt)[0]
        if offset >= size:
            return len(seen), offset
    return len(seen), None


#: the tags that say how a page's bytes become pixels; tifffile decodes every page of a series
#: with its first page's values
_CODING = (
    "compression", "predictor", "fillorder", "planarconfig", "bitspersample", "sampleformat",
    "tilewidth", "tilelength", "rowsperstrip",
)  # fmt: skip


def _coding(page) -> tuple:
    """How ``page`` is coded (:data:`_CODING`), as plain values."""
    values = (getattr(page, name, None) for name in _CODING)
    return tuple(-1 if v is None else int(v) for v in values)  # (tifffile's NONE is falsy)


class TiffStack(Sequence):
    """A TIFF file read frame by frame along its first non-spatial axis."""

    format_name = "tiff"
    extensions = (".tif", ".tiff", ".btf", ".tf8", ".ome.tif", ".ome.tiff")

    magic = _MAGICS

    def __init__(self, path: str | os.PathLike, *, series: int = 0):
        super().__init__(path, series=series)
        import tifffile

        path = self.path
        fh = self._source.handle()  # a path, bytes, a file object or a URL
        try:
            self._page_count, self._chain_cut_at = _walk_ifds(fh, self._stat.st_size)
        finally:
            fh.close()
        try:
            self._tif = tifffile.TiffFile(self._source.file())
        except Exception as err:
            raise SequenceFormatError(f"{path}: not a readable TIFF file: {err}") from err
        try:
            with dependency_errors(path, "reading the TIFF structure"):
                self._setup(series)
        except BaseException:
            self._tif.close()
            raise

    def _setup(self, series_index: int) -> None:
        tif, path = self._tif, self.path
        if not tif.series:
            raise SequenceFormatError(f"{path}: the TIFF file holds no image series")
        if series_index >= len(tif.series):
            raise SequenceFormatError(
                f"{path}: series {series_index} requested but the file has {len(tif.series)}"
            )
        s = tif.series[series_index]
        merged = self._with_damaged_pages(tif) if series_index == 0 else None
        if merged is not None:
            s = merged
        self._merged = merged is not None
        self._series = s
        axes, shape = s.axes, tuple(s.shape)
        offset = s.dataoffset
        recovered = self._imagej_layout(tif, s) if series_index == 0 else None
        self._recovered = recovered is not None
        if recovered is not None:
            axes, shape, offset = recovered
        faxis = next((k for k, a in enumerate(axes) if a not in _SPATIAL), None)
        self._faxis = faxis
        self.axes = axes
        if faxis is None:  # a single image is a sequence of one frame
            self._n = 1
            self._frame_shape = shape
            self.frame_axis = None
        else:
            self._n = shape[faxis]
            self._frame_shape = shape[:faxis] + shape[faxis + 1 :]
            self.frame_axis = axes[faxis]
        self._native = np.dtype(s.dtype).newbyteorder("=")
        if self._native.kind not in "buifc":
            raise SequenceFormatError(f"{path}: TIFF sample type {self._native} is not supported")
        # before anything is allocated: a damaged header can declare any size
        page = s.keyframe
        uncompressed = getattr(page, "compression", 1) == 1 and self._native.kind != "b"
        check_frame_size(
            path, self._frame_shape, self._native,
            stored_bytes=self._stat.st_size if uncompressed else None,
        )  # fmt: skip
        check_frame_size(path, tuple(page.shape), self._native)  # one page, one chunk
        needed = math.prod(getattr(page, "chunked", ()) or (1,))
        listed = len(page.dataoffsets)
        if listed and needed != listed:
            raise SequenceFormatError(
                f"{path}: the first page is {page.imagelength} x {page.imagewidth} pixels, which "
                f"takes {needed} strips or tiles, but its tags list {listed}; the page's "
                f"dimensions or strip tags are damaged"
            )
        # tifffile reports native dtypes; the bytes on disk are in the file's byte order
        self._file_dtype = self._native.newbyteorder(tif.byteorder)
        page = s.keyframe
        self._bits = int(getattr(page, "bitspersample", self._file_dtype.itemsize * 8))
        self._rgb = axes.endswith("S") and shape[-1] in (3, 4)
        # fast path: uncompressed, contiguous, frames along the first axis
        contiguous = offset is not None and faxis in (0, None) and self._native.kind != "b"
        self._offset = offset if contiguous else None
        self._fh = self._source.handle() if self._offset is not None else None
        self._zarr = None
        self._pages_per_frame = 0
        self._pages_ok: set[int] = set()
        tif.filehandle.set_lock(True)  # page checks and tifffile's reads share the cursor
        import tifffile

        self._tifffile = tifffile
        first = self._own_page(s.pages[0]) if s.pages and s.pages[0] is not None else None
        self._page_layout = (tuple(page.shape), page.dtype)
        self._page_coding = _coding(page)
        if first is not None and (tuple(first.shape), first.dtype) != self._page_layout:
            raise SequenceFormatError(
                f"{path}: the series' first page is {first.shape} {first.dtype} but tifffile "
                f"reads the series as {page.shape} {page.dtype} pages; a page is damaged, so "
                f"no frame can be trusted"
            )
        self._check_imagej(tif, s)
        self._check_readable(s)
        self._check_other_series(tif, series_index)
        self._check_description(tif, s)

    @staticmethod
    def _imagej_layout(tif, s) -> tuple[str, tuple[int, ...], int] | None:
        """Axes, shape and data offset of an ImageJ stack that tifffile no longer parses as
        one (a truncated file loses the pages ImageJ's layout needs), from its description.

        ImageJ stores the planes of a stack contiguously after the first page's data, in
        ``TZC`` order; only uncompressed stacks are recovered this way.
        """
        ij = tif.imagej_metadata or {}
        images = ij.get("images")
        if s.kind == "imagej" or not isinstance(images, int) or images <= 1:
            return None
        page = tif.pages.first
        offsets, counts = page.dataoffsets, page.databytecounts
        gapless = all(
            o + c == nxt for o, c, nxt in zip(offsets[:-1], counts[:-1], offsets[1:], strict=True)
        )
        if page.compression != 1 or not offsets or not gapless or len(page.shape) > 3:
            return None
        dims = [
            (a, int(ij.get(k, 1)))
            for a, k in (("T", "frames"), ("Z", "slices"), ("C", "channels"))
            if isinstance(ij.get(k, 1), int) and int(ij.get(k, 1)) > 1
        ]
        if int(np.prod([n for _, n in dims])) != images:
            dims = [("I", images)]
        page_axes = "YXS" if len(page.shape) == 3 else "YX"
        axes = "".join(a for a, _ in dims) + page_axes
        return axes, tuple(n for _, n in dims) + tuple(page.shape), int(offsets[0])

    def _check_description(self, tif, s) -> None:
        """A first page that lists an ImageDescription tag tifffile could not read (a damaged
        tag) has lost what tells an ImageJ hyperstack or a shaped series from a plain stack of
        pages: say that its pages are read as frames."""
        page = tif.pages.first
        if s.kind not in ("generic", "uniform") or page.description or 270 in page.tags:
            return
        big = tif.is_bigtiff
        entry = 20 if big else 12
        try:
            with tif.filehandle.lock:
                tif.filehandle.seek(page.offset)
                head = tif.filehandle.read(8 if big else 2)
                count = struct.unpack(tif.byteorder + ("Q" if big else "H"), head)[0]
                raw = tif.filehandle.read(min(count, 4096) * entry)
        except (OSError, struct.error):
            return
        codes = {
            struct.unpack_from(tif.byteorder + "H", raw, k * entry)[0]
            for k in range(len(raw) // entry)
        }
        if 270 in codes:
            warnings.warn(
                f"{self.path}: the first page's image description (tag 270) is damaged and "
                f"cannot be read; it may have held the layout of an ImageJ hyperstack or a "
                f"shaped series (which pages form one frame, the frame rate), so the "
                f"{len(s.pages)} pages are read as {len(s.pages)} frames of {s.keyframe.shape}",
                SequenceWarning,
                stacklevel=4,
            )

    def _with_damaged_pages(self, tif):
        """A plain stack in which single pages differ from all the others (damaged dimension
        or sample tags) between its first and its last page: tifffile makes the odd pages
        series of their own, and reading the first series would renumber every frame after
        one. The pages from the first to the last of the first series are the frames instead
        (a page in no series, or an odd one, is a damaged frame that raises: ``_check_pages``);
        None when the file is not such a stack."""
        series = tif.series
        if len(series) < 2 or any(x.kind != "generic" for x in series):
            return None
        main, others = series[0], series[1:]
        pages = {}
        for x in series:
            for page in x.pages:
                if page is None or not isinstance(page.index, int):
                    return None  # (sub-IFDs: a pyramid, not a damaged stack)
                pages[page.index] = page
        first, last = main.pages[0].index, main.pages[-1].index
        odd = sorted(x.pages[0].index for x in others if len(x.pages) == 1)
        if (
            first != 0 or len(odd) != len(others) or len(odd) >= len(main.pages)
            or not odd or odd[0] > last
        ):  # fmt: skip
            return None  # (odd pages after the last frame renumber nothing: read as before)
        import tifffile

        inside = [k for k in range(last + 1) if k not in pages or k in odd]
        merged = tifffile.TiffPageSeries(
            [pages.get(k) for k in range(last + 1)],
            (last + 1, *main.get_shape(False)[1:]),
            main.dtype,
            main.get_axes(False),
            parent=tif,
            kind="generic",
        )
        one = len(inside) == 1
        shown = ", ".join(map(str, inside[:5])) + (", ..." if len(inside) > 5 else "")
        warnings.warn(
            f"{self.path}: {'page' if one else f'{len(inside)} pages'} {shown} of the first "
            f"{last + 1} {'differs' if one else 'differ'} from the others or cannot be parsed "
            f"(damaged tags); read as {'a damaged frame' if one else 'damaged frames'} (an "
            f"error when read), so that every other frame keeps its number",
            SequenceWarning,
            stacklevel=6,
        )
        return merged

    def _check_other_series(self, tif, series_index: int) -> None:
        """Plain pages that tifffile split into several series (a page that differs from the
        others, often a damaged one) would silently lose the other pages: say so."""
        s = tif.series[series_index]
        if self._merged or len(tif.series) < 2 or s.kind not in ("generic", "uniform"):
            return
        others = [k for k, o in enumerate(tif.series) if k != series_index]
        if all(tif.series[k].kind not in ("generic", "uniform") for k in others):
            return
        warnings.warn(
            f"{self.path}: the file's {self._page_count} pages form {len(tif.series)} series of "
            f"different shapes (one page may be damaged); series {series_index} "
            f"({len(s.pages)} pages, {s.axes} {tuple(s.shape)}) is read and the others are not; "
            f"pass series= to read another",
            SequenceWarning,
            stacklevel=5,
        )

    def _check_imagej(self, tif, s) -> None:
        """An ImageJ description whose image count contradicts its own axes gives frames
        made of the wrong planes: refuse it rather than guess."""
        ij = tif.imagej_metadata or {}
        images = ij.get("images")
        if s.kind != "imagej" or not isinstance(images, int) or images <= 1:
            return
        planes = int(
            np.prod([n for n, a in zip(s.shape, s.axes, strict=True) if a not in _SPATIAL])
        )
        if planes != images:
            dims = ", ".join(f"{k}={ij[k]}" for k in ("frames", "slices", "channels") if k in ij)
            raise SequenceFormatError(
                f"{self.path}: the ImageJ description contradicts itself: images={images} but "
                f"its axes ({dims or 'none'}) give {planes} planes; the description is damaged, "
                f"so the frames cannot be told apart; repair the description (e.g. in Fiji)"
            )

    def _check_readable(self, s) -> None:
        """Keep only the frames whose bytes are in the file; say so when some are not.

        Contiguous data is checked against the file size; paged data by the strips (or tiles)
        of the last page of a frame, with a binary search when the last frame is incomplete.
        Nothing is decoded.
        """
        size, n = self._stat.st_size, self._n
        declared = n
        ij = self._tif.imagej_metadata or {}
        damaged_ij = s.kind != "imagej" and not self._recovered
        if damaged_ij and isinstance(ij.get("images"), int) and ij["images"] > n:
            declared = ij["images"]  # tifffile gave up on a damaged ImageJ file: its count
        shaped = (self._tif.shaped_metadata or ({},))[0] if self._faxis in (0, None) else {}
        described = shaped.get("shape") if isinstance(shaped, dict) else None
        if (
            isinstance(described, list) and described and isinstance(described[0], int)
            and len(described) > len(s.keyframe.shape) and described[0] > max(n, 1)
        ):  # fmt: skip
            declared = described[0]  # tifffile gave up on the shape its description gives
        if self._faxis is None:
            page = s.keyframe
            ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
            readable = int(bool(ends) and max(ends) <= size)
        elif self._offset is not None:
            fbytes = int(np.prod(self._frame_shape)) * self._file_dtype.itemsize
            readable = min(n, max(0, size - self._offset) // fbytes) if fbytes else n
        else:
            pages = s.pages
            per = len(pages) // n if n else 0
            self._pages_per_frame = per
            if per == 0:
                per, n = 1, 0  # no page per frame: nothing to check

            def complete(k: int) -> bool:
                try:
                    page = pages[(k + 1) * per - 1] if self._faxis == 0 else pages[len(pages) - 1]
                    offsets, counts = page.dataoffsets, page.databytecounts
                except Exception:  # a page that cannot even be parsed is not readable
                    return False
                return bool(offsets) and all(
                    o + c <= size for o, c in zip(offsets, counts, strict=False)
                )

            if n == 0 or complete(n - 1):
                readable = self._n
            elif self._faxis != 0:
                raise SequenceFormatError(
                    f"{self.path}: the file is truncated and its frames ({self.frame_axis} is "
                    f"not the outer axis) are spread over the whole file, so no frame is "
                    f"complete; recover the full file"
                )
            else:
                lo, hi = 0, n - 1  # frame lo-1 is complete (or lo == 0), frame hi is not
                while lo < hi:
                    mid = (lo + hi) // 2
                    if complete(mid):
                        lo = mid + 1
                    else:
                        hi = mid
                readable = lo
        self._report_truncation(declared, readable)
        self._n = readable
        if not self._truncated and self._chain_cut_at is not None and s.kind != "imagej":
            # no count in any header, but the last page points past the end of the file
            self._truncated, self._frames_declared = True, None
            warnings.warn(
                f"{self.path}: the chain of TIFF pages is cut after page {self._page_count} "
                f"(the next page would start at byte {self._chain_cut_at}, past the end of the "
                f"file: it is probably truncated); the {readable} complete frames are read",
                SequenceWarning,
                stacklevel=5,
            )

    def _zarr_array(self):
        if self._zarr is None:
            import zarr

            store = self._series.aszarr()
            z = zarr.open(store, mode="r")
            if not hasattr(z, "shape"):  # a multiscale group: level 0
                z = z["0"]
            if np.dtype(z.dtype).newbyteorder("=") != self._native:
                store.close()
                raise SequenceFormatError(
                    f"{self.path}: the pages of the series disagree on the sample type (the "
                    f"first page gives {self._native}, tifffile decodes {np.dtype(z.dtype)}); a "
                    f"page is damaged, so no frame can be trusted"
                )
            self._store, self._zarr = store, z
        return self._zarr

    # ---- protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._frame_shape

    @property
    def dtype(self) -> np.dtype:
        return self._native

    @property
    def bit_depth(self) -> int:
        return min(self._bits, self.dtype.itemsize * 8)

    @property
    def rgb(self) -> bool:
        return self._rgb

    def _own_page(self, page):
        """``page`` parsed from its own tags (tifffile reads the pages of a series as frames
        that borrow the first page's tags), or None when its tags cannot be parsed."""
        try:
            if isinstance(page, self._tifffile.TiffPage):
                return page
            return self._tif.pages.get(page.index, cache=False, aspage=True)
        except Exception:
            return None

    def _check_pages(self, index: int) -> None:
        """Every strip or tile of frame ``index`` lies in the file and holds bytes; tifffile
        would read a strip at offset 0 from the header, or fill a strip of 0 bytes with zeros
        (a silent black frame)."""
        pages = self._series.pages
        per = self._pages_per_frame if self._faxis == 0 else len(pages)
        if not per or self._faxis not in (0, None):
            return
        first = 0 if self._faxis is None else index * per
        size = self._stat.st_size
        for k in range(first, first + per):
            if k in self._pages_ok:  # each page is checked once
                continue
            with self._tif.filehandle.lock:  # tifffile parses pages through one file cursor
                page = pages[k]
                own = None if page is None else self._own_page(page)
            if page is None:
                raise FrameIndexError(f"{self.path}: frame {index}: page {k} is missing")
            # its own tags, not those of tifffile's keyframe
            if own is None or (own.shape, own.dtype) != self._page_layout:
                what = "cannot be parsed" if own is None else f"is {own.shape} {own.dtype}"
                raise FrameIndexError(
                    f"{self.path}: frame {index}: page {k} {what} but the series is made of "
                    f"{self._page_layout[0]} {self._page_layout[1]} pages; the page is damaged"
                )
            coding = _coding(own)
            if coding != self._page_coding:
                # the series is decoded with its first page's tags; a page whose own tags say
                # otherwise (a damaged compression or predictor tag) has no trusted reading
                differ = ", ".join(
                    f"{name} {mine} (the series: {theirs})"
                    for name, mine, theirs in zip(_CODING, coding, self._page_coding, strict=True)
                    if mine != theirs
                )
                raise FrameIndexError(
                    f"{self.path}: frame {index}: page {k} is coded differently from the "
                    f"series' first page: {differ}; the page's tags are damaged, so its pixels "
                    f"cannot be trusted"
                )
            if not page.dataoffsets or len(page.dataoffsets) != len(page.databytecounts):
                raise FrameIndexError(
                    f"{self.path}: frame {index}: page {k} lists {len(page.dataoffsets)} strip "
                    f"or tile offsets and {len(page.databytecounts)} byte counts; its data "
                    f"cannot be located (the page is damaged)"
                )
            for o, c in zip(page.dataoffsets, page.databytecounts, strict=False):
                if o <= 0 or c <= 0 or o + c > size:
                    raise FrameIndexError(
                        f"{self.path}: frame {index}: page {k} lists {c} bytes of image data at "
                        f"byte {o}, which is not in the file ({size} bytes); the page is damaged"
                    )
            self._pages_ok.add(k)

    def _read(self, index: int) -> np.ndarray:
        if self._offset is not None:
            nbytes = int(np.prod(self._frame_shape)) * self._file_dtype.itemsize
            offset = self._offset + index * nbytes
            return self._fh.read_array(
                self._frame_shape, self._file_dtype, offset, f"frame {index}"
            )
        else:
            self._check_pages(index)
            z = self._zarr_array()
            if self._faxis is None:
                buf = np.asarray(z[...])
            else:
                key = [slice(None)] * z.ndim
                key[self._faxis] = index
                buf = np.asarray(z[tuple(key)])
        if not buf.dtype.isnative:
            buf = buf.byteswap().view(self._native)
        return buf

    def _read_range(self, start: int, stop: int, out: np.ndarray) -> None:
        """Frames ``start:stop`` into ``out`` (a dask chunk): contiguous uncompressed data in
        one positional read straight into ``out`` (swapped in place when big-endian), other
        layouts frame by frame."""
        if self._offset is None or not out.flags.c_contiguous or out.dtype != self._native:
            super()._read_range(start, stop, out)
            return
        fbytes = int(np.prod(self._frame_shape)) * self._file_dtype.itemsize
        got = self._fh.readinto(out, self._offset + start * fbytes)
        if got < out.nbytes:
            raise FrameIndexError(
                f"{self.path}: frame {start + got // max(fbytes, 1)} is cut short (the file ends "
                f"{out.nbytes - got} bytes before frame {stop - 1} does); the file changed or is "
                f"truncated"
            )
        if not self._file_dtype.isnative:
            out.byteswap(inplace=True)

    def _format_metadata(self) -> dict[str, Any]:
        tif = self._tif
        md: dict[str, Any] = {}
        ij = tif.imagej_metadata or {}
        fps = None
        interval = ij.get("finterval")
        if ij.get("fps"):
            fps = float(ij["fps"])
        elif interval:
            fps = 1.0 / float(interval)
        if fps is None and self._series.kind == "shaped" and tif.shaped_metadata:
            rate = tif.shaped_metadata[0].get("fps")  # our writer keeps the rate here
            if isinstance(rate, (int, float)) and np.isfinite(rate) and rate > 0:
                fps = float(rate)
        if fps and self.frame_axis in ("T", "I", "Q"):
            md["timestamps"] = np.arange(self._n, dtype=np.float64) / fps
        md["fps"] = fps
        if "min" in ij and "max" in ij and ij["max"] > ij["min"]:
            md["display_range"] = (float(ij["min"]), float(ij["max"]))
        page = self._series.keyframe
        md["axes"] = self.axes
        md["frame_axis"] = self.frame_axis
        md["source"] = {
            "series": self._options["series"],
            "series_kind": self._series.kind,
            "series_count": len(tif.series),
            "byteorder": tif.byteorder,
            "bigtiff": tif.is_bigtiff,
            "compression": str(getattr(page.compression, "name", page.compression)),
            "imagej": bool(ij),
            "ome": tif.is_ome,
            "contiguous": self._offset is not None,
            "data_offset": self._offset,
        }
        if ij:
            md["source"]["imagej_metadata"] = {
                k: v for k, v in ij.items() if isinstance(v, (int, float, str, bool))
            }
        return md

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._zarr = None
        store = getattr(self, "_store", None)
        if store is not None:
            store.close()
        self._tif.close()


# ---- one plain page: the fast path of batch jobs over many small files -------------------
#: bytes read at the start of a file to find a single page's tags (one read for most files)
_PLAIN_HEAD = 8192
#: the tags a plain page may have; any other tag with a bearing on the pixels is not plain
_PLAIN_TAGS = {
    254, 256, 257, 258, 259, 262, 266, 270, 273, 274, 277, 278, 279, 282, 283, 284, 296, 305,
    306, 339,
}  # fmt: skip
_TAG_FORMATS = {1: "B", 2: "B", 3: "H", 4: "I", 5: "II", 7: "B", 16: "Q"}


def _plain_tags(head: bytes, order: str, fd: int, size: int) -> dict[int, tuple] | None:
    """The tags of the first page of a classic TIFF as {code: values}; None when the page is
    not a single plain page (another page follows, a tag outside ``_PLAIN_TAGS``, a value
    outside the file)."""
    (ifd,) = struct.unpack_from(order + "I", head, 4)
    if ifd < 8 or ifd + 2 > len(head):
        return None
    (count,) = struct.unpack_from(order + "H", head, ifd)
    end = ifd + 2 + 12 * count
    if count == 0 or count > 64 or end + 4 > len(head):
        return None
    if struct.unpack_from(order + "I", head, end)[0] != 0:
        return None  # more pages: the general reader
    tags: dict[int, tuple] = {}
    for k in range(count):
        code, kind, n = struct.unpack_from(order + "HHI", head, ifd + 2 + 12 * k)
        fmt = _TAG_FORMATS.get(kind)
        if code not in _PLAIN_TAGS or fmt is None:
            return None
        nbytes = n * struct.calcsize(fmt)
        if nbytes <= 4:
            raw = head[ifd + 2 + 12 * k + 8 : ifd + 2 + 12 * k + 8 + nbytes]
        else:
            (at,) = struct.unpack_from(order + "I", head, ifd + 2 + 12 * k + 8)
            if at + nbytes > size or nbytes > 1 << 20:
                return None
            raw = head[at : at + nbytes] if at + nbytes <= len(head) else os.pread(fd, nbytes, at)
            if len(raw) != nbytes:
                return None
        tags[code] = raw if kind == 2 else struct.unpack(order + fmt * n, raw)
    return tags


def _plain_rate(desc: bytes, page: tuple[int, ...]) -> tuple[bool, float | None]:
    """(the description describes one plain image of shape ``page``, its frame rate) for
    a page's description: ImageJ's ``key=value`` lines, tifffile's JSON shape or free text;
    OME-XML is not plain."""
    text = desc.rstrip(b"\0").decode("utf-8", "replace")
    fps = None
    if text.startswith("ImageJ="):
        ij = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        for key in ("images", "frames", "slices", "channels"):
            if ij.get(key, "1").strip() != "1":
                return False, None
        try:
            if "fps" in ij:
                fps = float(ij["fps"])
            elif "finterval" in ij:
                fps = 1.0 / float(ij["finterval"])
        except (ValueError, ZeroDivisionError):
            return False, None
    elif text.startswith("{"):
        import json

        try:
            md = json.loads(text)
        except ValueError:
            return False, None
        shape = md.get("shape") if isinstance(md, dict) else None
        if not isinstance(shape, list) or not all(isinstance(v, int) for v in shape):
            return False, None
        while len(shape) > len(page) and shape[0] == 1:
            shape = shape[1:]
        if tuple(shape) != page:  # the JSON says frames of another shape
            return False, None
        rate = md.get("fps")
        if isinstance(rate, (int, float)) and not isinstance(rate, bool):
            fps = float(rate)
    elif "<OME" in text[:4096] or text.startswith("<?xml"):
        return False, None
    if fps is not None and not (math.isfinite(fps) and 1e-6 <= fps <= 1e9):
        fps = None  # as the writer's FPS_RANGE: a damaged rate is dropped
    return True, fps


def read_plain_page(path: str) -> tuple[np.ndarray, float | None] | None:
    """The one image of a plain single-page TIFF file, and its frame rate, in two positional
    reads (the head, the pixels); None when the file is anything else.

    Plain: a classic (not Big) TIFF whose only page is uncompressed 8- or 16-bit unsigned gray
    or RGB in contiguous strips that all lie inside the file, with no tag that changes how the
    pixels read (colour maps, extra samples, sub-pages, predictors, fill order ...) and a
    description of one image (ImageJ, tifffile's JSON or free text; not OME). For such a file
    :class:`TiffStack` gives the same frame and rate; every other file, including a damaged or
    truncated one, gives None, and the caller opens it with :class:`TiffStack`, which reports
    what is wrong. Batch jobs over many small files use this to skip the general reader's
    cost (the chain walk, tifffile's parse, the page checks), which is most of a small file's.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000):  # a regular file only
            return None
        size = st.st_size
        head = os.pread(fd, min(size, _PLAIN_HEAD), 0)
        if len(head) < 16 or head[:4] not in (b"II*\0", b"MM\0*"):
            return None
        order = "<" if head[:2] == b"II" else ">"
        tags = _plain_tags(head, order, fd, size)
        if tags is None:
            return None

        def one(code: int, default: int | None = None) -> int | None:
            v = tags.get(code)
            return default if v is None else (v[0] if len(v) == 1 else None)

        width, length = one(256), one(257)
        spp, photometric = one(277, 1), one(262)
        bits = tags.get(258, (1,))
        formats = tags.get(339, (1,) * len(bits))
        if (
            not width or not length or one(259, 1) != 1 or one(284, 1) != 1
            or one(274, 1) != 1 or one(266, 1) != 1 or one(254, 0) != 0
            or (spp, photometric) not in ((1, 1), (3, 2))
            or len(bits) != spp or len(set(bits)) != 1 or bits[0] not in (8, 16)
            or set(formats) != {1}
        ):  # fmt: skip
            return None
        offsets, counts = tags.get(273), tags.get(279)
        if not offsets or not counts or len(offsets) != len(counts):
            return None
        itemsize = bits[0] // 8
        nbytes = width * length * spp * itemsize
        start = offsets[0]
        if start < 8 or sum(counts) != nbytes or start + nbytes > size:
            return None  # damaged or truncated: the general reader says what is wrong
        pos = start
        for o, c in zip(offsets, counts, strict=True):
            if o != pos:
                return None  # scattered strips: the general reader
            pos += c
        shape = (length, width, 3) if spp == 3 else (length, width)
        plain, fps = _plain_rate(tags[270], shape) if 270 in tags else (True, None)
        if not plain:
            return None
        dtype = np.dtype(order + ("u1" if itemsize == 1 else "u2"))
        if start + nbytes <= len(head):
            frame = np.frombuffer(head, dtype, width * length * spp, start).reshape(shape).copy()
        else:  # straight into the frame's memory: no copy
            frame = np.empty(shape, dtype)
            if os.preadv(fd, [memoryview(frame).cast("B")], start) != nbytes:
                return None
        if not dtype.isnative:
            frame = frame.byteswap().view(dtype.newbyteorder("="))
        return frame, fps
    except (OSError, struct.error, ValueError):
        return None
    finally:
        os.close(fd)


def write_plain_page(path: str, frame: np.ndarray, fps: float | None = None) -> int:
    """Write one gray uint8/uint16 or RGB uint8 frame to a new TIFF ``path``, byte for byte what
    :class:`TiffWriter` writes for it (a one-image ImageJ hyperstack), with the writer's
    guarantees at fewer system calls: ``NAME.partial`` is created exclusively (never through a
    link), written and hard-linked to ``NAME``, which fails if ``NAME`` appeared meanwhile: an
    existing file is never replaced (this path is for new outputs only). Returns the bytes
    written. Raises :class:`OverwriteRefusedError` when ``NAME`` or ``NAME.partial`` exists,
    :class:`SequenceWriteError` on a failure of the disk (the partial file is removed: it was
    ours and incomplete)."""
    import errno

    import tifffile

    from ._writer_base import (
        OverwriteRefusedError,
        SequenceWriteError,
        UnsupportedWriteError,
        partial_path,
    )

    rgb = frame.ndim == 3
    if not (
        (frame.ndim == 2 and frame.dtype in (np.uint8, np.uint16))
        or (rgb and frame.shape[2] == 3 and frame.dtype == np.uint8)
    ) or 0 in frame.shape:  # fmt: skip
        raise UnsupportedWriteError(
            f"{path}: write_plain_page takes gray uint8/uint16 or RGB uint8 frames, not "
            f"{frame.shape} {frame.dtype}; use napari_imseq.imwrite"
        )
    partial = partial_path(path)
    if os.path.lexists(path):
        raise OverwriteRefusedError(
            f"{path} exists; write_plain_page never replaces a file: use napari_imseq.imwrite "
            f"with overwrite=True"
        )
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:  # "x": O_CREAT | O_EXCL, never through a link
        f = open(partial, "xb", opener=lambda p, flags: os.open(p, flags | nofollow, 0o666))  # noqa: SIM115
    except FileExistsError:
        raise OverwriteRefusedError(
            f"{partial} exists; pass overwrite=True to replace a partial file napari-imseq wrote"
        ) from None
    rate = {"finterval": 1.0 / fps, "fps": fps} if fps else {}
    try:
        with f:
            tifffile.imwrite(
                f, frame[None], imagej=True, contiguous=True,
                photometric="rgb" if rgb else "minisblack",
                metadata={"axes": "TYXS" if rgb else "TYX", **rate},
            )  # fmt: skip
            written = f.tell()
    except BaseException as err:
        os.remove(partial)  # ours, and incomplete
        if isinstance(err, OSError):
            raise SequenceWriteError(
                f"{path}: writing the file failed: {err.strerror or err}; nothing was kept; "
                f"check the disk and write again"
            ) from err
        raise
    try:
        os.link(partial, path)  # fails when path exists: never a replacement
    except FileExistsError:
        raise OverwriteRefusedError(
            f"{path} appeared while it was written (another program uses this name); it was "
            f"left untouched and what was written is kept, complete, in {partial}"
        ) from None
    except OSError as err:  # a file system without hard links
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV):
            raise
        if os.path.lexists(path):
            raise OverwriteRefusedError(
                f"{path} appeared while it was written; it was left untouched and what was "
                f"written is kept, complete, in {partial}"
            ) from None
        os.replace(partial, path)
        return written
    os.remove(partial)
    return written


# ---- writing -------------------------------------------------------------------------------
from ._writer_base import Writer  # noqa: E402


class TiffWriter(Writer):
    """Frames to a TIFF (BigTIFF when large) page by page through tifffile.

    Uncompressed gray or RGB frames of uint8/uint16/float32 are written as one ImageJ
    hyperstack (``TYX[C]`` with ``finterval`` = 1/fps) so Fiji opens a time series. Every other
    frame (other dtypes, other shapes such as ``(Y, X, 2)`` or ``(Z, Y, X)``, or
    ``compression=`` ``"zlib"``, ``"zstd"``, ``"lzw"``, ``"jpeg"`` ...) is written as a
    tifffile-shaped series: the first page's description holds ``{"shape": [T, ...], "fps": ..}``
    so tifffile (and this package) read back T frames of the written shape, whatever the
    number of pages per frame. bool frames are refused (write .zarr, which keeps them).
    """

    format_name = "tiff"
    extensions = (".tif", ".tiff", ".btf")

    def _validate_options(self) -> None:
        import tifffile

        opts = dict(self.options)
        self.compression = opts.pop("compression", None)
        self.bigtiff = opts.pop("bigtiff", None)
        self.imagej = opts.pop("imagej", None)
        if opts:
            raise self._refuse(
                f"unknown option(s) {sorted(opts)} for TIFF; known: compression, bigtiff, imagej"
            )
        if self.compression in ("none", "None"):
            self.compression = None
        if self.compression is not None:
            name = self.compression
            if isinstance(name, str):  # tifffile's own spelling rules
                name = 8 if name.upper() == "ZLIB" else name.upper()
            try:
                tifffile.enumarg(tifffile.COMPRESSION, name)
            except (KeyError, ValueError, TypeError):
                raise self._refuse(
                    f"unknown TIFF compression {self.compression!r}; use e.g. 'zlib', 'zstd', "
                    f"'lzw', 'lzma', 'packbits' (lossless) or 'jpeg' (lossy), or None"
                ) from None
        self.lossy = str(self.compression).lower() in ("jpeg", "webp", "jpegxl", "jpeg2000")

    def _check(self, frame: np.ndarray) -> None:
        if frame.dtype.kind == "b":
            raise self._refuse(
                "bool frames cannot be stored in TIFF here; write .zarr (which keeps bool) or "
                "pass the frames as uint8 (frames.astype(np.uint8))"
            )
        if frame.dtype.kind not in "uif":
            raise self._refuse(f"{frame.dtype} frames cannot be stored in TIFF")
        rgb = frame.ndim == 3 and frame.shape[-1] in (3, 4) and frame.dtype == np.uint8
        self._ij_ok = frame.dtype in (np.uint8, np.uint16, np.float32) and (frame.ndim == 2 or rgb)
        if self.imagej and not self._ij_ok:
            raise self._refuse(
                f"ImageJ TIFF holds 2-D uint8/uint16/float32 or (Y, X, 3|4) uint8 frames, not "
                f"{frame.shape} {frame.dtype}; pass imagej=False (a tifffile-shaped series) or "
                f"write .zarr"
            )
        if self.imagej and self.compression:
            raise self._refuse(
                "ImageJ TIFF is written uncompressed here; pass imagej=False to compress"
            )

    def _layout(self, frame: np.ndarray) -> bool:
        """Decide ImageJ or not and the photometric of frames like ``frame`` (checked);
        return whether the file is BigTIFF."""
        import warnings

        # past 4 GB an ImageJ hyperstack keeps one IFD and contiguous data: how ImageJ itself
        # stores it, and how tifffile and this package read it; not worth a warning
        warnings.filterwarnings("ignore", message=r".*truncating ImageJ file", category=UserWarning)
        self._imagej = (self.imagej if self.imagej is not None else self._ij_ok) and (
            not self.compression
        )
        self._photometric = "rgb" if frame.ndim == 3 and frame.shape[-1] in (3, 4) else "minisblack"
        return self.bigtiff if self.bigtiff is not None else not self._imagej

    def _open(self, frame: np.ndarray) -> None:
        import tifffile

        bigtiff = self._layout(frame)
        self._tif = tifffile.TiffWriter(self.partial, bigtiff=bigtiff, imagej=self._imagej)

    def _ij_rate(self) -> dict[str, float]:
        return {"finterval": 1.0 / self.fps, "fps": self.fps} if self.fps else {}

    def _shaped(self, count: int) -> str:
        import json

        shape = self._frame_shape()
        # explicit axes: tifffile would guess them from the page shape, and length-1 axes
        # (a (1, 1) frame, a (Y, X, 1) frame) would be taken for something else
        inner = "YXS" if self._photometric == "rgb" else "YX"
        md: dict[str, Any] = {
            "shape": [count, *shape],
            "axes": "T" + "Q" * (len(shape) - len(inner)) + inner,
        }
        if self.fps:
            md["fps"] = self.fps
        return json.dumps(md)

    def _frame_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in (self.shape or self._first_shape))  # type: ignore[union-attr]

    def _write(self, frame: np.ndarray, timestamp: float) -> None:
        if self._imagej:
            self._tif.write(
                frame, contiguous=True, photometric=self._photometric, metadata=self._ij_rate()
            )
        elif self.compression is None:  # uncompressed: contiguous (a shaped series needs it)
            md = {"fps": self.fps} if self.fps else {}
            self._tif.write(frame, contiguous=True, photometric=self._photometric, metadata=md)
        else:  # compressed pages; the description is completed on close
            self._first_shape = frame.shape
            self._tif.write(
                frame,
                photometric=self._photometric,
                compression=self.compression,
                metadata=None,
                description=self._shaped(1) if self.count == 0 else None,
            )

    def _finish(self) -> None:
        import tifffile

        desc = self._final_description(tifffile)
        if desc is not None and getattr(self._tif, "_descriptiontag", None) is not None:
            # rewritten through the open handle: no second parse of the file (a small file's
            # tiffcomment costs as much as writing it)
            self._tif.overwrite_description(desc)
            desc = None
        self._tif.close()
        if desc is not None:
            tifffile.tiffcomment(self.partial, desc)

    def _final_description(self, tifffile) -> str | None:
        """The first page's description for the frames written (None: keep tifffile's)."""
        if self._imagej:
            # tifffile labels a streamed stack as channels; ImageJ needs frames for time. The
            # new description must fit where the old one is (a file past 4 GB cannot point
            # to one appended at its end): "frames" is shorter than "channels", the rate was
            # in the old one too, and ImageJ's default loop=false is left out.
            rgb = self._photometric == "rgb"
            desc = tifffile.imagej_description(
                (self.count, *self.shape), axes="TYXS" if rgb else "TYX", rgb=rgb,
                **self._ij_rate(),
            )  # fmt: skip
            return desc.replace("loop=false\n", "")
        return self._shaped(self.count) if self.count else None


def allocate_frames(
    path: str, count: int, frame: np.ndarray, *, fps: float | None = None, **options: Any
) -> tuple[int, int]:
    """Create the new file ``path`` as the uncompressed TIFF that :class:`TiffWriter` writes
    for ``count`` frames like ``frame`` (the same pages, tags and description: an ImageJ
    hyperstack or a tifffile-shaped series), with its pixel data not yet written: one
    contiguous, little-endian area (sparse on disk) that writers fill by frame ranges in
    place, in any order and from any process. Returns ``(data offset, bytes per frame)``.

    ``options`` are :class:`TiffWriter`'s (``imagej``, ``bigtiff``); compression is refused
    (compressed frames have no fixed place). ``path`` is created exclusively, never through a
    link, and checked by reading its layout back.
    """
    import tifffile

    writer = TiffWriter(path, fps=fps, **options)  # validates fps and options, refuses a path
    frame = np.asarray(frame)
    if writer.compression is not None:
        raise writer._refuse(
            f"frames written in place are uncompressed, not {writer.compression!r}; convert "
            f"to a compressed TIFF with napari_imseq.convert (one process)"
        )
    count = int(count)
    if count < 1:
        raise writer._refuse(f"a TIFF of {count} frames cannot be allocated; at least one")
    writer._check_common(frame)
    writer._check(frame)
    bigtiff = writer._layout(frame)
    writer.shape, writer.count = frame.shape, count
    desc = writer._final_description(tifffile)
    dtype = frame.dtype.newbyteorder("<")
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow
    with (
        open(path, "wb", opener=lambda p, _: os.open(p, flags, 0o666)) as f,
        tifffile.TiffWriter(f, bigtiff=bigtiff, imagej=writer._imagej, byteorder="<") as tif,
    ):
        if writer._imagej:
            axes = "TYXS" if writer._photometric == "rgb" else "TYX"
            tif.write(
                shape=(count, *frame.shape), dtype=dtype, contiguous=True,
                photometric=writer._photometric, metadata={"axes": axes, **writer._ij_rate()},
            )  # fmt: skip
            tif.overwrite_description(desc)
        else:
            tif.write(
                shape=(count, *frame.shape), dtype=dtype, contiguous=True,
                photometric=writer._photometric, metadata=None, description=desc,
            )  # fmt: skip
    with TiffStack(path) as back:  # what a reader makes of it, before any frame is written
        offset = back._offset
        if offset is None or back.shape != (count, *frame.shape) or back.dtype != frame.dtype:
            raise SequenceFormatError(
                f"{path}: the allocated TIFF reads back as {back.shape} {back.dtype}"
                f"{'' if offset is not None else ' (not contiguous)'}, not {count} frames of "
                f"{frame.shape} {frame.dtype}; write it with napari_imseq.convert"
            )
    return int(offset), int(frame.nbytes)


# ---- registration (napari_imseq.io._formats) -----------------------------------------------
from ._formats import register  # noqa: E402

register("tiff", reader=TiffStack, writer=TiffWriter, aliases=("tif",))
