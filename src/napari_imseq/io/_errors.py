"""The error and warning classes of napari-imseq (re-exported by :mod:`._base`)."""

from __future__ import annotations


class SequenceError(Exception):
    """Base class of every error raised by napari-imseq."""


class SequenceFormatError(SequenceError, ValueError):
    """The file exists but its content is not a valid sequence of the claimed format."""


class UnsupportedFormatError(SequenceFormatError):
    """The file is valid but uses a variant (format code, codec, layout) we do not read."""


class SequenceFileNotFoundError(SequenceError, FileNotFoundError):
    """The path does not exist."""


class FrameIndexError(SequenceError, IndexError):
    """A frame index outside the sequence, or a frame the file does not fully contain."""


class SequenceWarning(UserWarning):
    """Something in the file was off but recoverable (e.g. a partial last frame was ignored)."""


class SequenceClosedError(SequenceError, ValueError):
    """A read of a sequence (or file handle) that was closed."""
