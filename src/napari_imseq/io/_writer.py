"""Streaming writers: the shared protocol, the safety rules, and ``open_writer``/``imwrite``.

Every writer

* needs no shape or dtype up front: the first ``write(frame)`` fixes them and checks that the
  format can store them *before anything is written*; every later frame must match;
* writes to ``NAME.partial`` and renames it to ``NAME`` only on a clean ``close()``, so an
  interrupted job never leaves a file that looks complete; after an exception the partial file
  is finalised (trailer, header counts) and holds every frame written before it;
* never replaces an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from ._base import SequenceError

__all__ = ["FrameMismatchError", "UnsupportedWriteError", "Writer", "imwrite", "open_writer"]


class UnsupportedWriteError(SequenceError, ValueError):
    """The format cannot store these frames (dtype, channels, size) or these options."""


class FrameMismatchError(SequenceError, ValueError):
    """A frame's shape or dtype differs from the first frame's."""


def partial_path(path: str) -> str:
    return path + ".partial"


class Writer:
    """Base class: a format implements ``_check``, ``_open``, ``_write`` and ``_finish``."""

    format_name: ClassVar[str] = "unknown"
    extensions: ClassVar[tuple[str, ...]] = ()
    #: True when the format loses information (lossy codec or a mapping to 8 bits)
    lossy: bool = False

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float | None = None,
        overwrite: bool = False,
        bit_depth: int | None = None,
        **options: Any,
    ):
        self.path = os.path.abspath(os.fspath(path))
        self.partial = partial_path(self.path)
        self.fps = float(fps) if fps else None
        self.bit_depth = bit_depth
        self.options = options
        self.overwrite = overwrite
        self.count = 0
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self.timestamps: list[float] = []
        self._opened = False
        self._done = False
        for target in (self.path, self.partial):
            if os.path.lexists(target) and not overwrite:
                what = (
                    "a partial file from an interrupted write" if target == self.partial else "it"
                )
                raise FileExistsError(
                    f"{target} exists; pass overwrite=True (--overwrite on the command line) to "
                    f"replace {what}"
                )
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"{parent}: the destination folder does not exist")
        self._validate_options()

    # ---- the part a format implements ------------------------------------------------------
    def _validate_options(self) -> None:
        """Refuse unknown or contradictory options at construction."""

    def _check(self, frame: np.ndarray) -> None:
        """Raise :class:`UnsupportedWriteError` when the format cannot store such frames."""

    def _open(self, frame: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _write(self, frame: np.ndarray, timestamp: float | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush and close the partial file so that it is valid (also after an error)."""

    # ---- shared ----------------------------------------------------------------------------
    def _refuse(self, why: str) -> UnsupportedWriteError:
        return UnsupportedWriteError(f"{self.path}: {why}")

    def write(self, frame: Any, timestamp: float | None = None) -> None:
        """Append one frame (and, optionally, its time in seconds)."""
        if self._done:
            raise ValueError(f"{self.path}: the writer is closed")
        frame = np.asarray(frame)
        if not frame.dtype.isnative:
            frame = frame.astype(frame.dtype.newbyteorder("="))
        if self.shape is None:
            self._check(frame)
            self._remove_stale(self.partial)
            self._open(frame)
            self._opened = True
            self.shape, self.dtype = frame.shape, frame.dtype
        elif frame.shape != self.shape or frame.dtype != self.dtype:
            raise FrameMismatchError(
                f"{self.path}: frame {self.count} has shape {frame.shape} and dtype {frame.dtype} "
                f"but the file was started with shape {self.shape} and dtype {self.dtype}; every "
                f"frame of a file must match the first"
            )
        if timestamp is None and self.timestamps:
            step = 1.0 / self.fps if self.fps else 1.0
            timestamp = self.timestamps[-1] + step
        elif timestamp is None:
            timestamp = 0.0
        self._write(frame, float(timestamp))
        self.timestamps.append(float(timestamp))
        self.count += 1

    def _remove_stale(self, target: str) -> None:
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.remove(target)

    def close(self) -> None:
        """Finalise and move the finished file into place."""
        if self._done:
            return
        self._done = True
        if not self._opened:
            raise ValueError(f"{self.path}: no frame was written; nothing to save")
        self._finish()
        if os.path.lexists(self.path):
            self._remove_stale(self.path)  # overwrite=True was checked at construction
        os.replace(self.partial, self.path)

    def abort(self) -> str | None:
        """Finalise the partial file after an error and leave it; return its path."""
        if self._done:
            return None
        self._done = True
        if not self._opened:
            return None
        try:
            self._finish()
        except Exception:  # pragma: no cover - best effort after another error
            pass
        return self.partial

    @property
    def bytes_written(self) -> int:
        target = self.path if os.path.exists(self.path) else self.partial
        if os.path.isdir(target):
            return sum(
                os.path.getsize(os.path.join(root, f))
                for root, _, files in os.walk(target)
                for f in files
            )
        return os.path.getsize(target) if os.path.exists(target) else 0

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {os.path.basename(self.path)!r} frames={self.count}>"


# ---- mapping to 8 bits -------------------------------------------------------------------------
def to_uint8(frame: np.ndarray, display_range: tuple[float, float]) -> np.ndarray:
    """Linear map of ``display_range`` to 0..255, clipped (a lossy conversion, asked for)."""
    lo, hi = float(display_range[0]), float(display_range[1])
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = (frame.astype(np.float32) - lo) * scale
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def auto_display_range(frames: Any) -> tuple[float, float]:
    """``display_range="auto"``: the 0.1..99.9 percentiles of an evenly spaced subsample
    (:func:`napari_imseq.transforms.estimate_range`; the cost follows the subsample)."""
    from ..transforms.normalize import estimate_range

    return estimate_range(frames, percentiles=(0.1, 99.9), max_frames=32, downsample=4)


# ---- choosing a writer -----------------------------------------------------------------------
def _writers() -> list[type[Writer]]:
    from .folder import FolderWriter
    from .seq import SeqWriter
    from .tiff import TiffWriter
    from .video import VideoWriter
    from .zarr_ import ZarrWriter

    return [VideoWriter, TiffWriter, ZarrWriter, SeqWriter, FolderWriter]


def writer_for(path: str, format: str | None = None) -> type[Writer]:
    """The writer class for ``path``'s extension (or the named ``format``)."""
    writers = _writers()
    if format:
        key = format.lower().lstrip(".")
        for w in writers:
            if key == w.format_name or "." + key in w.extensions:
                return w
        names = sorted({w.format_name for w in writers})
        raise UnsupportedWriteError(
            f"{path}: unknown output format {format!r}; choose from {names}"
        )
    if path.endswith(("/", os.sep)):
        return next(w for w in writers if w.format_name == "folder")
    low = path.lower()
    for w in writers:
        if any(low.endswith(ext) for ext in w.extensions):
            return w
    exts = sorted({e for w in writers for e in w.extensions})
    raise UnsupportedWriteError(
        f"{path}: no writer for this extension; use one of {', '.join(exts)} or pass format="
    )


def open_writer(
    path: str | os.PathLike,
    *,
    fps: float | None = None,
    overwrite: bool = False,
    format: str | None = None,
    **options: Any,
) -> Writer:
    """A streaming writer for ``path``, chosen by its extension (or ``format=``).

    Options by format: video (``codec``, ``crf``, ``preset``, ``display_range``, ``gop``),
    TIFF (``compression``, ``bigtiff``, ``imagej``), zarr (``compression``), SEQ
    (``bit_depth``), image folders (``image_format``). See the writer classes.
    """
    path = os.fspath(path)
    return writer_for(path, format)(path, fps=fps, overwrite=overwrite, **options)


def _frames_of(
    data: Any,
) -> tuple[Iterable[np.ndarray], int | None, np.ndarray | None, float | None]:
    """(frames, count, timestamps, fps) for an array, dask array, Sequence or iterable."""
    from ._base import Sequence

    if isinstance(data, Sequence):
        return data.iter_frames(), len(data), data.timestamps, data.fps
    if hasattr(data, "dask") and hasattr(data, "chunks"):  # a dask array: chunk by chunk

        def chunks():
            start = 0
            for size in data.chunks[0]:
                block = np.asarray(data[start : start + size].compute())
                start += size
                yield from block

        return chunks(), data.shape[0], None, None
    if isinstance(data, np.ndarray):
        return iter(data), data.shape[0], None, None
    return iter(data), None, None, None


def imwrite(path: str | os.PathLike, data: Any, **options: Any) -> Writer:
    """Write a numpy array, a dask array (chunk by chunk), a Sequence or frames from an iterable.

    ``display_range="auto"`` (for 8-bit outputs of wider data) is estimated from a subsample
    when ``data`` supports indexing. Returns the closed writer (``.count``, ``.path`` ...).
    """
    frames, _, timestamps, fps = _frames_of(data)
    if (
        options.get("display_range") == "auto"
        and hasattr(data, "__getitem__")
        and hasattr(data, "__len__")
    ):
        options["display_range"] = auto_display_range(data)
    if fps is not None:
        options.setdefault("fps", fps)
    writer = open_writer(path, **options)
    with writer:
        ts = iter(timestamps) if timestamps is not None else None
        for frame in frames:
            writer.write(frame, next(ts) if ts is not None else None)
    return writer
