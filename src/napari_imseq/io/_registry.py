"""Which format module reads a file: content sniffing first, the extension second."""

from __future__ import annotations

import os
import stat
from typing import Any

import numpy as np

from . import _formats
from ._base import (
    Sequence,
    SequenceFormatError,
    UnsupportedFormatError,
    check_path,
    read_head,
)
from ._source import PathSource, Source, as_source, fs_errors
from .array import ArraySequence, check_fps
from .folder import IMAGE_EXTENSIONS


def formats() -> list[type[Sequence]]:
    """Every reader class, in the order their content checks are tried (the format registry,
    :mod:`napari_imseq.io._formats`)."""
    return _formats.readers()


def find_format(
    path: str | os.PathLike | None = None,
    *,
    head: bytes | None = None,
    name: str | os.PathLike | None = None,
    format: str | None = None,
) -> type[Sequence] | None:
    """The reader class for some content, or None; never raises.

    * ``path``: a local file (its first bytes are read) or folder (each folder format is
      asked); a missing path, a FIFO, a device or a socket gives None.
    * ``head``: the first bytes of content that has no local path (bytes, a file object, a
      URL): detection by content needs no file name.
    * ``name``: a file name or URL whose extension decides when the content is not recognised
      (or not given).
    * ``format``: a format name, alias or extension (``"tiff"``, ``"mkv"``, ``".seq"``); it
      decides alone.
    """
    if format is not None:
        fmt = _formats.lookup(format)
        return fmt.reader if fmt is not None else None
    cls = _by_content(path) if path is not None else None
    if cls is None and head is not None:
        fmt = _formats.sniff(bytes(head))
        cls = fmt.reader if fmt is not None else None
    if cls is None and name is not None:
        try:
            fmt = _formats.by_name(name)
        except (TypeError, ValueError):
            fmt = None
        cls = fmt.reader if fmt is not None else None
    return cls


def _by_content(path: str | os.PathLike) -> type[Sequence] | None:
    try:
        path = os.fspath(path)
        mode = os.stat(path).st_mode  # never open a FIFO or a device: it can block forever
    except (OSError, TypeError, ValueError):
        return None
    if stat.S_ISDIR(mode):
        for fmt in _formats.formats():
            if fmt.folder and fmt.reader is not None:
                try:
                    if fmt.reader.can_read(path):
                        return fmt.reader
                except Exception:  # a check must never take the caller down
                    continue
        return None
    if not stat.S_ISREG(mode):
        return None
    head = read_head(path)
    fmt = _formats.sniff(head) if head is not None else None
    return fmt.reader if fmt is not None else None


_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def is_array(obj: Any) -> bool:
    """True for numpy and dask arrays (and array-likes with shape, dtype and indexing)."""
    if isinstance(obj, (bytes, bytearray, memoryview, str, os.PathLike)) or hasattr(obj, "read"):
        return False
    if isinstance(obj, np.ndarray):
        return True
    return all(hasattr(obj, a) for a in ("shape", "dtype", "__getitem__", "ndim"))


def _named_reader(format: str) -> type[Sequence]:
    cls = find_format(format=format)
    if cls is not None:
        return cls
    names = sorted({c.format_name for c in formats()})
    raise SequenceFormatError(
        f"format={format!r} is not a format napari-imseq reads; use one of {', '.join(names)} "
        f"or a file extension such as 'mkv', 'tif' or 'seq'"
    )


def _unsupported(name: str, hint: str) -> UnsupportedFormatError:
    tried = ", ".join(c.format_name for c in formats())
    return UnsupportedFormatError(
        f"{name}: no reader recognises this content (tried {tried}); check that it is an "
        f"image sequence, or {hint}"
    )


def _open_path(path: str, options: dict) -> Sequence:
    path = os.path.abspath(path)
    st = check_path(path)  # missing paths, FIFOs, devices and sockets: a clear error
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise SequenceFormatError(f"{path}: the file is empty (0 bytes); nothing to read")
    cls = find_format(path)
    if cls is None:
        ext = os.path.splitext(path)[1].lower()
        by_ext = [c for c in formats() if ext and ext in c.extensions]
        if not by_ext:
            raise _unsupported(path, "convert it to TIFF")
        # the extension promises a format the content does not have: let that reader
        # explain exactly what is wrong (wrong magic, cut header ...)
        cls = by_ext[0]
    return cls(path, **options)


def _detect(source: Source) -> type[Sequence]:
    """The reader for content without a local path: its first bytes (a folder: the names in
    it), then the extension of its name."""
    cls = None
    with fs_errors(source.name, "reading the first bytes"):
        if source.isdir():
            names = set(source.listdir())
            if names & set(_ZARR_MARKERS):
                cls = find_format(format="zarr")
            elif any(n.lower().endswith(IMAGE_EXTENSIONS) for n in names):
                cls = find_format(format="folder")
        else:
            head = source.head()
            cls = find_format(head=head) if head else None
            if cls is None and source.size() == 0:
                raise SequenceFormatError(f"{source.name}: the content is empty (0 bytes)")
    if cls is None and source.extension:  # the name promises a format: its reader says
        cls = find_format(name=source.name.split("?", 1)[0])  # what is wrong
    if cls is None:
        raise _unsupported(source.name, "pass format= to name its format")
    return cls


def open_sequence(
    source: Any,
    *,
    format: str | None = None,
    fps: float | None = None,
    storage_options: dict | None = None,
    spill_limit: int | None = None,
    **options: Any,
) -> Sequence:
    """Open ``source`` with the reader its content calls for, or the one ``format`` names.

    ``source`` is a path, a URL (``memory://``, ``file://``, ``http(s)://``, ``s3://`` ...),
    bytes, a binary file object or a numpy/dask array (see :mod:`napari_imseq.io._source`).
    ``format`` is a format name, alias or extension (``"tiff"``, ``"mkv"``, ``".seq"``).
    ``fps`` gives the frame rate: for an array its rate; for a file it replaces the rate the
    file declares (``metadata["fps"]``; the file's own is kept as ``metadata["file_fps"]``),
    and the timestamps are derived from it when the file has no timestamps of its own.

    Raises
    ------
    SequenceFileNotFoundError
        The path does not exist.
    SequenceFormatError
        The file is empty, damaged, not in a format we read, or not a regular file or
        folder (a FIFO, a device or a socket); ``fps`` is not a finite positive number.
    """
    if is_array(source):
        return ArraySequence(source, fps=fps, **options)
    given = check_fps(fps, "open_sequence") if fps is not None else None
    src = as_source(source, storage_options=storage_options, spill_limit=spill_limit)
    if isinstance(src, PathSource):
        if format is None:
            seq = _open_path(src.name, options)
        else:
            seq = _named_reader(format)(src.name, **options)
    else:
        try:
            cls = _named_reader(format) if format is not None else _detect(src)
            seq = cls(src, **options)
        except BaseException:
            src.close()
            raise
    if given is not None:
        seq._give_fps(given)
    return seq
