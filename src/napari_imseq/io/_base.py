"""The protocol every format module implements, and the error types.

A format module provides one subclass of :class:`Sequence`. The subclass

* implements :meth:`Sequence.can_read` (a cheap content sniff that never raises),
* parses headers in its constructor and raises :class:`SequenceFormatError` with the path
  and the reason when the file is not what it claims to be,
* exposes ``len()``, ``frame_shape`` and ``dtype`` without decoding pixels,
* implements ``_read(i)`` so that it is safe to call from many threads at once
  (no shared file cursor), and
* closes what it holds in ``_close()``.

Everything else (indexing, slicing, dask, pickling, context management) lives here, once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from ._errors import (  # noqa: F401 - re-exported: every error class is importable from here
    FrameIndexError,
    SequenceClosedError,
    SequenceError,
    SequenceFileNotFoundError,
    SequenceFormatError,
    SequenceWarning,
    UnsupportedFormatError,
)
from ._files import (  # noqa: F401 - re-exported
    HEAD_BYTES,
    FileHandle,
    _check_exists,
    _special_file_error,
    check_path,
    open_regular,
    read_head,
)
from ._source import PathSource, Source

__all__ = [
    "FrameIndexError",
    "Sequence",
    "SequenceClosedError",
    "SequenceError",
    "SequenceFileNotFoundError",
    "SequenceFormatError",
    "SequenceWarning",
    "UnsupportedFormatError",
]


#: the largest frame a header may declare before it is called damaged (bytes, decoded);
#: override with the NAPARI_IMSEQ_MAX_FRAME_BYTES environment variable
MAX_FRAME_BYTES = 8 << 30


def max_frame_bytes() -> int:
    env = os.environ.get("NAPARI_IMSEQ_MAX_FRAME_BYTES")
    try:
        return int(env) if env else MAX_FRAME_BYTES
    except ValueError:
        return MAX_FRAME_BYTES


def check_frame_size(
    path: str, shape: tuple[int, ...], dtype: np.dtype, *, stored_bytes: int | None = None
) -> int:
    """Refuse a declared frame before anything is allocated for it; return its size in bytes.

    A frame larger than :func:`max_frame_bytes` (8 GiB unless ``NAPARI_IMSEQ_MAX_FRAME_BYTES``
    says otherwise) is a damaged header, not an image; so is an uncompressed frame larger
    than the bytes that can hold it (``stored_bytes``: the file size, or what is left of it).
    """
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise SequenceFormatError(f"{path}: the header declares a frame of shape {shape}")
    nbytes = int(np.prod(dims, dtype=object)) * np.dtype(dtype).itemsize
    limit = max_frame_bytes()
    if nbytes > limit:
        raise SequenceFormatError(
            f"{path}: the header declares frames of {tuple(dims)} {np.dtype(dtype)} "
            f"({nbytes / 2**30:.3g} GiB each), more than the {limit / 2**30:.3g} GiB limit for "
            f"one frame; the header is probably damaged; if the file is genuine, raise the "
            f"limit with the NAPARI_IMSEQ_MAX_FRAME_BYTES environment variable"
        )
    if stored_bytes is not None and nbytes > stored_bytes:
        raise SequenceFormatError(
            f"{path}: the header declares uncompressed frames of {tuple(dims)} "
            f"{np.dtype(dtype)} ({nbytes} bytes) but the file holds only {stored_bytes} bytes "
            f"of data; the header is damaged or the file is truncated"
        )
    return nbytes


def _dependency_error(
    path: str, what: str, err: Exception, error: type[SequenceError] | None = None
) -> SequenceError:
    cls = error or SequenceFormatError
    detail = str(err).strip() or type(err).__name__
    return cls(
        f"{path}: {what} failed ({type(err).__name__}: {detail[:300]}); the file is damaged or "
        f"uses a variant this reader does not handle; check it with the program that wrote it, "
        f"or convert it"
    )


#: exceptions that dependency_errors lets through unchanged
_PASS_THROUGH = (SequenceError, MemoryError, Warning)


@contextlib.contextmanager
def dependency_errors(path: str, what: str, error: type[SequenceError] | None = None):
    """Turn an unexpected exception from a dependency (tifffile, zarr, codecs, json ...)
    while doing ``what`` into one of our errors naming ``path``, chained.

    Our own errors, warnings turned into errors, ``MemoryError`` and ``KeyboardInterrupt``
    (anything not an ``Exception``) pass unchanged.
    """
    try:
        yield
    except _PASS_THROUGH:
        raise
    except Exception as err:
        raise _dependency_error(path, what, err, error) from err


def _reopen(
    cls: type[Sequence], path: str, options: dict[str, Any], fps: float | None = None
) -> Sequence:
    seq = cls(path, **options)
    if fps is not None:
        seq._give_fps(fps)
    return seq


def _apply_fps(md: dict[str, Any], fps: float, n: int) -> None:
    """Put a given frame rate into metadata ``md``: the file's own is kept as ``file_fps``;
    timestamps are derived from ``fps`` unless the file has its own (timestamps that are only
    the even grid of the file's rate, as TIFF's frame interval gives, are derived again)."""
    own, ts = md.get("fps"), md.get("timestamps")
    md["file_fps"] = own
    md["fps"] = fps
    grid = own and ts is not None and len(ts) == n
    if grid:
        grid = bool(np.allclose(ts, np.arange(n, dtype=np.float64) / own, rtol=1e-9, atol=1e-9))
    if ts is None or grid:
        md["timestamps"] = np.arange(n, dtype=np.float64) / fps


class Sequence:
    """A sequence of frames on disk, read lazily and by index.

    ``seq[i]`` is frame ``i`` as a numpy array; ``seq[a:b:c]`` stacks frames; ``seq[i, y0:y1]``
    indexes inside a frame. ``len(seq)``, :attr:`shape`, :attr:`dtype` and :attr:`metadata`
    never decode pixels.
    """

    #: name reported as ``metadata["format"]``
    format_name: ClassVar[str] = "unknown"
    #: lower-case extensions (with the dot) this format usually has; only a hint
    extensions: ClassVar[tuple[str, ...]] = ()
    #: True for formats stored as a folder (zarr, image folders), False for single files
    folder: ClassVar[bool] = False

    def __init__(self, path: str | os.PathLike, **options: Any):
        if isinstance(path, Source):
            self._source = path
            self.path = path.name  # what messages name: a path, a URL or "<N bytes ...>"
        else:
            self.path = os.path.abspath(os.fspath(path))
            self._source = PathSource(self.path)
        self._options = dict(options)
        self._closed = False
        self._metadata: dict[str, Any] | None = None
        self._metadata_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._reads_in_flight = 0
        self._close_done = False
        #: (frames the header declares, frames readable) when the file holds fewer
        self._frames_declared: int | None = None
        self._truncated = False
        # before any open: a missing path, a FIFO, a device or a socket is refused here
        self._stat = self._source.stat(folder=self.folder)

    # ---- the part a format implements -------------------------------------------------
    #: byte strings one of which starts every file of this format (for the default sniff)
    magic: ClassVar[tuple[bytes, ...]] = ()

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """True when ``head`` (the first bytes of a file) starts like this format; never raises.

        The default compares ``head`` with :attr:`magic`; formats with richer signatures
        override it.
        """
        return any(head.startswith(m) for m in cls.magic)

    @classmethod
    def can_read(cls, path: str) -> bool:
        """Cheap content check; never raises."""
        head = read_head(path)
        if head is None:
            return False
        try:
            return cls.sniff(head)
        except Exception:
            return False

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def frame_shape(self) -> tuple[int, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def bit_depth(self) -> int:
        """Significant bits per sample (what the display range should span)."""
        return self.dtype.itemsize * 8

    @property
    def rgb(self) -> bool:
        """True when the last frame axis holds RGB(A) channels."""
        return False

    def _read(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        """Frame ``index`` (0 <= index < len) as a new array; thread-safe."""
        raise NotImplementedError

    def _read_range(self, start: int, stop: int, out: np.ndarray) -> None:
        """Frames ``start:stop`` into ``out`` (a chunk of a dask array); thread-safe.

        Formats that read a run of frames faster than single frames (a video decodes on
        instead of seeking) override it."""
        for k in range(stop - start):
            out[k] = self._read(start + k)

    def _decode_points(self) -> np.ndarray | None:
        """Frames from which reading needs no earlier frame (a video's keyframes), sorted and
        starting with 0; None when every frame reads alone. Dask chunks start on them."""
        return None

    def _format_metadata(self) -> dict[str, Any]:
        """Format specific metadata: at least ``fps`` and ``timestamps``."""
        return {}

    def _close(self) -> None:
        pass

    def _report_truncation(self, declared: int, readable: int, detail: str = "") -> None:
        """Record and announce that only ``readable`` of the ``declared`` frames are in the file.

        One rule for every format: a :class:`SequenceWarning` saying how many frames are read,
        ``metadata["frames_declared"]`` and ``metadata["truncated"]``; with no readable frame
        at all the file is refused with a :class:`SequenceFormatError`.
        """
        self._frames_declared = int(declared)
        self._truncated = readable < declared
        if not self._truncated:
            return
        if readable <= 0:
            raise SequenceFormatError(
                f"{self.path}: the header declares {declared} frames but none is readable (the "
                f"file is probably truncated{detail}); nothing can be read from it"
            )
        warnings.warn(
            f"{self.path}: the header declares {declared} frames but only {readable} are "
            f"readable (the file is probably truncated{detail}); {readable} frames are read",
            SequenceWarning,
            stacklevel=4,
        )

    # ---- derived, shared by all formats ------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.frame_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.frame_shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def metadata(self) -> dict[str, Any]:
        """Format, fps, timestamps (seconds or None), bit depth and source details."""
        if self._metadata is None:
            with self._metadata_lock:
                if self._metadata is None:
                    md: dict[str, Any] = {
                        "format": self.format_name,
                        "fps": None,
                        "timestamps": None,
                        "bit_depth": self.bit_depth,
                        "frame_count": len(self),
                        "frame_shape": self.frame_shape,
                        "dtype": str(self.dtype),
                        "rgb": self.rgb,
                        "frames_declared": self._frames_declared,
                        "truncated": self._truncated,
                    }
                    with dependency_errors(self.path, "reading the metadata"):
                        md.update(self._format_metadata())
                    if self._given_fps is not None:
                        _apply_fps(md, self._given_fps, len(self))
                    md.setdefault("source", {})
                    md["source"] = {"path": self.path, **md["source"]}
                    self._metadata = md
        return self._metadata

    #: the rate ``open_sequence(fps=)`` gave, in place of the file's (None: the file's own)
    _given_fps: float | None = None

    def _give_fps(self, fps: float) -> None:
        """Replace the file's frame rate (``open_sequence(fps=)``; ``fps`` already checked)."""
        with self._metadata_lock:
            self._given_fps = float(fps)
            self._metadata = None

    @property
    def fps(self) -> float | None:
        return self.metadata["fps"]

    @property
    def timestamps(self) -> np.ndarray | None:
        return self.metadata["timestamps"]

    def _check_open(self) -> None:
        if self._closed:
            raise SequenceClosedError(f"{self.path}: the sequence is closed; open it again to read")

    def _get(self, index: int) -> np.ndarray:
        """``_read(index)`` counted as a read in flight, so :meth:`close` waits for it."""
        return self._counted(self._read, f"reading frame {index}", index)

    def _get_range(self, start: int, stop: int) -> np.ndarray:
        """``_read_range`` into a new stack, counted as one read in flight."""
        out = np.empty((stop - start, *self.frame_shape), dtype=self.dtype)
        self._counted(self._read_range, f"reading frames {start} to {stop - 1}", start, stop, out)
        return out

    def _counted(self, read, what: str, *args):
        with self._state_lock:
            self._check_open()
            self._reads_in_flight += 1
        try:
            return read(*args)
        except _PASS_THROUGH:
            raise
        except Exception as err:  # the same rule as dependency_errors, without its overhead
            raise _dependency_error(self.path, what, err) from err
        finally:
            with self._state_lock:
                self._reads_in_flight -= 1
                finish = self._closed and not self._reads_in_flight and not self._close_done
                if finish:
                    self._close_done = True
            if finish:
                self._close_all()

    def _close_all(self) -> None:
        """The format's ``_close`` and then the source's (file objects it handed out)."""
        try:
            self._close()
        finally:
            source = getattr(self, "_source", None)
            if source is not None:
                source.close()

    def _frame_index(self, key: Any) -> int:
        n = len(self)
        try:
            i = int(key)
        except TypeError:
            raise TypeError(f"frame index must be an integer, not {type(key).__name__}") from None
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise FrameIndexError(f"{self.path}: frame {key} is out of range for {n} frames")
        return i

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` (negative counts from the end)."""
        self._check_open()
        return self._get(self._frame_index(index))

    def _stack(self, indices: range | list[int]) -> np.ndarray:
        if len(indices) == 1:  # a one-frame dask chunk: no second copy
            return self._get(indices[0])[np.newaxis]
        if isinstance(indices, range) and indices.step == 1:  # a dask chunk of many frames
            return self._get_range(indices.start, indices.stop)
        out = np.empty((len(indices), *self.frame_shape), dtype=self.dtype)
        for k, i in enumerate(indices):
            out[k] = self._get(i)
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        self._check_open()
        inner: tuple = ()
        if key is Ellipsis or (isinstance(key, tuple) and key and key[0] is Ellipsis):
            return self._stack(range(len(self)))[key]
        if isinstance(key, tuple):
            if not key:
                key = slice(None)
            else:
                key, inner = key[0], key[1:]
        if isinstance(key, slice):
            data = self._stack(range(*key.indices(len(self))))
            return data[(slice(None), *inner)] if inner else data
        if isinstance(key, (list, np.ndarray)) and np.ndim(key) == 1:
            idx = np.asarray(key)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            data = self._stack([self._frame_index(i) for i in idx])
            return data[(slice(None), *inner)] if inner else data
        frame = self._get(self._frame_index(key))
        return frame[inner] if inner else frame

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_frames()

    def iter_frames(
        self, start: int | None = None, stop: int | None = None, step: int | None = None
    ) -> Iterator[np.ndarray]:
        """Frames ``start:stop:step`` in order, for conversion and export."""
        self._check_open()
        for i in range(*slice(start, stop, step).indices(len(self))):
            yield self._get(i)

    def iter_chunks(
        self, n: int, start: int | None = None, stop: int | None = None
    ) -> Iterator[np.ndarray]:
        """Frames ``start:stop`` in order as arrays of ``n`` frames (the last may hold fewer),
        read on the format's fastest sequential path (:meth:`iter_frames`, or a run read when
        the format reads runs faster); at most one chunk is held. Each chunk is a new array
        of shape ``(k, *frame_shape)``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{self.path}: chunk size must be a positive integer, not {n!r}")
        self._check_open()
        lo, hi, _ = slice(start, stop).indices(len(self))
        cls = type(self)
        if cls._read_range is not Sequence._read_range and cls.iter_frames is Sequence.iter_frames:
            for at in range(lo, hi, n):  # a run read (one seek, a straight decode)
                yield self._get_range(at, min(at + n, hi))
            return
        frames = self.iter_frames(lo, hi)
        try:
            for at in range(lo, hi, n):
                out = np.empty((min(n, hi - at), *self.frame_shape), dtype=self.dtype)
                for k in range(len(out)):
                    out[k] = next(frames)
                yield out
        finally:
            frames.close()  # a chunk loop left early frees the decoder at once

    def to_dask(self, chunks: int | str | tuple | None = None):
        """A lazy dask array over the frames, one frame per chunk unless ``chunks`` says so.

        ``chunks`` may be the number of frames per chunk, ``"auto"`` (chunks of a few MiB
        that start on the file's keyframes; what :func:`napari_imseq.imread` uses) or a full
        dask ``chunks`` spec. See :mod:`napari_imseq.io._dask`.
        """
        from ._dask import to_dask

        return to_dask(self, chunks)

    def __array__(self, dtype=None, copy=None):
        data = self[:]
        return data if dtype is None else data.astype(dtype)

    # ---- life cycle --------------------------------------------------------------------
    def close(self) -> None:
        """Refuse new reads and release the file; safe while other threads read (what they
        hold is released when the last read in flight ends)."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            finish = not self._reads_in_flight
            if finish:
                self._close_done = True
        if finish:
            self._close_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Sequence:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self):
        source = getattr(self, "_source", None)
        where = self.path if source is None or source.local_path else source
        return _reopen, (type(self), where, self._options, self._given_fps)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {os.path.basename(self.path)!r} shape={self.shape} "
            f"dtype={self.dtype} bit_depth={self.bit_depth}>"
        )
