"""Which format module reads a file: content sniffing first, the extension second."""

from __future__ import annotations

import os
import stat

from . import _formats
from ._base import (
    Sequence,
    SequenceFormatError,
    UnsupportedFormatError,
    check_path,
    read_head,
)
from ._source import is_url


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


def open_sequence(path: str | os.PathLike, **options) -> Sequence:
    """Open ``path`` with the reader its content calls for.

    ``path`` may also be a URL (``memory://``, ``http(s)://``, ``s3://`` ...), bytes, a
    binary file object or a numpy/dask array; ``format=`` names the reader (see
    :mod:`napari_imseq.io._source`).

    Raises
    ------
    SequenceFileNotFoundError
        The path does not exist.
    SequenceFormatError
        The file is empty, damaged, not in a format we read, or not a regular file or
        folder (a FIFO, a device or a socket).
    """
    if options.get("format") is not None or not isinstance(path, (str, os.PathLike)) or (
        is_url(path)
    ):
        from ._source import open_source

        return open_source(path, **options)
    options.pop("format", None)
    path = os.path.abspath(os.fspath(path))
    st = check_path(path)  # missing paths, FIFOs, devices and sockets: a clear error
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise SequenceFormatError(f"{path}: the file is empty (0 bytes); nothing to read")
    cls = find_format(path)
    if cls is None:
        ext = os.path.splitext(path)[1].lower()
        by_ext = [c for c in formats() if ext and ext in c.extensions]
        if by_ext:
            # the extension promises a format the content does not have: let that reader
            # explain exactly what is wrong (wrong magic, cut header ...)
            return by_ext[0](path, **options)
        names = ", ".join(c.format_name for c in formats())
        raise UnsupportedFormatError(
            f"{path}: no reader recognises this file's content (tried {names}); "
            f"check that it is an image sequence, or convert it to TIFF"
        )
    return cls(path, **options)
