"""Which format module reads a file: content sniffing first, the extension second."""

from __future__ import annotations

import functools
import os
import stat

from ._base import (
    Sequence,
    SequenceFormatError,
    UnsupportedFormatError,
    check_path,
    read_head,
)
from ._source import is_url


@functools.cache
def _formats() -> tuple[type[Sequence], ...]:
    from .folder import ImageFolder
    from .seq import SeqFile
    from .tiff import TiffStack

    readers: list[type[Sequence]] = [SeqFile, TiffStack]
    try:
        from .video import VideoFile
    except ImportError:  # pragma: no cover - PyAV missing
        pass
    else:
        readers.append(VideoFile)
    from .zarr_ import ZarrSequence

    readers += [ZarrSequence, ImageFolder]
    return tuple(readers)


def formats() -> list[type[Sequence]]:
    """Every reader class, in the order their content checks are tried."""
    return list(_formats())


def find_format(path: str | os.PathLike) -> type[Sequence] | None:
    """The reader class for ``path``, or None; never raises."""
    try:
        path = os.fspath(path)
        mode = os.stat(path).st_mode  # never open a FIFO or a device: it can block forever
    except (OSError, TypeError, ValueError):
        return None
    if stat.S_ISDIR(mode):
        head = None
    elif stat.S_ISREG(mode):
        head = read_head(path)
        if head is None:
            return None
    else:
        return None
    for cls in _formats():
        try:
            if cls.sniff(head) if head is not None else cls.can_read(path):
                return cls
        except Exception:  # a sniff must never take the caller down
            continue
    return None


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
