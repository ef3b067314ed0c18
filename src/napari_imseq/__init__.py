"""napari-imseq: lazy, frame-exact image sequences for napari and scripts.

The headless API imports neither napari nor Qt::

    import napari_imseq as imseq
    frames = imseq.imread("recording.seq")      # lazy dask array (T, Y, X[, C])
    with imseq.open_sequence("movie.mkv") as seq:
        print(len(seq), seq.dtype, seq.metadata["fps"])
        frame = seq[120]
"""

from __future__ import annotations

import os

from . import batch  # light: its names load on first use (dask.distributed then)
from ._map import map_frames
from .convert import ConversionCancelled, ConversionInterrupted, convert
from .export import ExportCancelled, ExportError, export
from .io._base import (
    FrameIndexError,
    Sequence,
    SequenceError,
    SequenceFileNotFoundError,
    SequenceFormatError,
    SequenceWarning,
    UnsupportedFormatError,
)
from .io._registry import find_format, open_sequence
from .io._writer import (
    FrameMismatchError,
    OverwriteRefusedError,
    SequenceWriteError,
    UnsupportedWriteError,
    Writer,
    imwrite,
    open_writer,
)
from .mosaic import MosaicSequence, mosaic  # the name napari_imseq.mosaic is the function

__version__ = "0.1.0"

__all__ = [
    "batch",
    "ConversionCancelled",
    "ConversionInterrupted",
    "ExportCancelled",
    "ExportError",
    "export",
    "mosaic",
    "MosaicSequence",
    "FrameMismatchError",
    "OverwriteRefusedError",
    "SequenceWriteError",
    "UnsupportedWriteError",
    "Writer",
    "convert",
    "imwrite",
    "open_writer",
    "FrameIndexError",
    "Sequence",
    "SequenceError",
    "SequenceFileNotFoundError",
    "SequenceFormatError",
    "SequenceWarning",
    "UnsupportedFormatError",
    "find_format",
    "map_frames",
    "imread",
    "open_sequence",
]


def imread(path: str | os.PathLike, *, chunks: int | str | tuple | None = "auto", **options):
    """A lazy dask array over the frames of ``path``: ``(T, Y, X)`` or ``(T, Y, X, C)``.

    Only headers are read. ``chunks="auto"`` makes chunks of a few MiB that start on the
    file's keyframes, so reductions and ``map_blocks`` run at the speed of iterating the file;
    ``imread(p)[i]`` still reads frame ``i`` only. ``chunks=1`` gives one frame per chunk
    (what napari uses); a number of frames or a full dask chunks spec is taken as given.
    The array's graph holds the opened sequence; its file is closed when the array is
    garbage collected, and it pickles by reopening the file.

    ``path`` may also be bytes, a binary file object, a URL (``memory://``, ``http(s)://``,
    ``s3://`` ...) or a numpy/dask array, like :func:`open_sequence`; ``format=`` names the
    reader.
    """
    return open_sequence(path, **options).to_dask(chunks=chunks)
