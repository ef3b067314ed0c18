"""Which format module reads a file: content sniffing first, the extension second."""

from __future__ import annotations

import os

from ._base import (
    Sequence,
    SequenceFormatError,
    UnsupportedFormatError,
    _check_exists,
)


def formats() -> list[type[Sequence]]:
    """Every reader class, in the order their content checks are tried."""
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
    readers.append(ImageFolder)
    return readers


def find_format(path: str | os.PathLike) -> type[Sequence] | None:
    """The reader class for ``path``, or None; never raises."""
    path = os.fspath(path)
    try:
        if not os.path.exists(path):
            return None
    except (TypeError, ValueError):
        return None
    readers = formats()
    for cls in readers:
        if cls.can_read(path):
            return cls
    return None


def open_sequence(path: str | os.PathLike, **options) -> Sequence:
    """Open ``path`` with the reader its content calls for.

    Raises
    ------
    SequenceFileNotFoundError
        The path does not exist.
    SequenceFormatError
        The file is empty, damaged, or not in a format we read.
    """
    path = os.path.abspath(os.fspath(path))
    _check_exists(path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
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
