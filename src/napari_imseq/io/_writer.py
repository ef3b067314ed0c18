"""Writing: ``open_writer``/``imwrite`` choose a writer through the format registry
(:mod:`napari_imseq.io._formats`) and stream frames to it.

The writer protocol and the safety rules every writer follows are in
:mod:`napari_imseq.io._writer_base`; its names are importable from here too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._base import Sequence
from ._writer_base import (  # noqa: F401 - the writer names, importable from here
    FPS_RANGE,
    FrameMismatchError,
    OverwriteRefusedError,
    SequenceWriteError,
    UnsupportedWriteError,
    Writer,
    auto_display_range,
    check_display_range,
    fitting_bit_depth,
    partial_path,
    read_small_file,
    to_uint8,
    writer_for,
)

__all__ = [
    "FrameMismatchError",
    "OverwriteRefusedError",
    "SequenceWriteError",
    "UnsupportedWriteError",
    "Writer",
    "imwrite",
    "open_writer",
    "writer_for",
]


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
    from ._target import TargetWriter, is_target_path, local_target

    path = local_target(path)  # file:// URLs are local paths
    if not is_target_path(path):  # a binary file object or a URL (memory://, s3:// ...)
        return TargetWriter(path, fps=fps, overwrite=overwrite, format=format, **options)
    path = os.fspath(path)
    return writer_for(path, format)(path, fps=fps, overwrite=overwrite, **options)


def _frames_of(
    data: Any,
    path: str = "",
) -> tuple[Iterable[np.ndarray], int | None, np.ndarray | None, float | None]:
    """(frames, count, timestamps, fps) for an array, dask array, Sequence or iterable."""
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
        if data.ndim < 3:
            raise UnsupportedWriteError(
                f"{path}: an array of shape {data.shape} is not a sequence of images; it takes "
                f"frames along the first axis: (T, Y, X) or (T, Y, X, C)"
            )
        return iter(data), data.shape[0], None, None
    try:
        return iter(data), None, None, None
    except TypeError:
        raise UnsupportedWriteError(
            f"{path}: imwrite takes a numpy or dask array, a Sequence or an iterable of frames, not "
            f"{type(data).__name__}"
        ) from None


def source_timing(
    source: str, dst: str, timestamps: Any, fps: Any
) -> tuple[np.ndarray | None, float | None]:
    """A source's timestamps and fps as a writer accepts them: a damaged header's rate (NaN,
    0, negative) is dropped, and non-finite timestamps are replaced by the rate, with a
    :class:`SequenceWarning`."""
    import warnings

    from ._base import SequenceWarning

    try:
        rate = float(fps) if fps is not None else None
    except (TypeError, ValueError):
        rate = None
    if rate is not None and not (math.isfinite(rate) and FPS_RANGE[0] <= rate <= FPS_RANGE[1]):
        rate = None
    if timestamps is not None and not np.all(np.isfinite(np.asarray(timestamps, float))):
        warnings.warn(
            f"{source}: some frame timestamps are not finite numbers; {dst} gets evenly spaced "
            f"times from the frame rate instead",
            SequenceWarning,
            stacklevel=3,
        )
        timestamps = None
    return timestamps, rate


def imwrite(path: str | os.PathLike, data: Any, **options: Any) -> Writer:
    """Write a numpy array, a dask array (chunk by chunk), a Sequence or frames from an iterable.

    ``display_range="auto"`` (for 8-bit outputs of wider data) is estimated from a subsample
    when ``data`` supports indexing. Returns the closed writer (``.count``, ``.path`` ...).
    """
    from ._target import target_name

    name = target_name(path)  # a path, a URL or a file object
    frames, _, timestamps, fps = _frames_of(data, name)
    if (
        options.get("display_range") == "auto"
        and hasattr(data, "__getitem__")
        and hasattr(data, "__len__")
    ):
        options["display_range"] = auto_display_range(data, name)
    if isinstance(data, Sequence):
        timestamps, fps = source_timing(data.path, name, timestamps, fps)
    if fps is not None:
        options.setdefault("fps", fps)
    writer = open_writer(path, **options)
    with writer:
        ts = iter(timestamps) if timestamps is not None else None
        for frame in frames:
            writer.write(frame, next(ts) if ts is not None else None)
    return writer
