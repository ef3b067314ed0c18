"""An in-memory or lazy array (numpy, dask, zarr ...) seen as a :class:`Sequence`.

:class:`ArraySequence` lets everything that takes a Sequence (mosaics, ``convert``, pipelines,
napari layers) take frames that are already arrays: a recording loaded with another library,
a napari layer's data, a dask graph. Frames are read from the array one at a time, only when
asked for; a dask array is never computed as a whole.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ._base import Sequence, SequenceFormatError

__all__ = ["ArraySequence"]


def _rebuild(array, fps, timestamps, name, bit_depth):
    return ArraySequence(array, fps=fps, timestamps=timestamps, name=name, bit_depth=bit_depth)


def _is_dask(array: Any) -> bool:
    return hasattr(array, "dask") and hasattr(array, "chunks") and hasattr(array, "compute")


def init_sequence_state(seq: Sequence, path: str, options: dict[str, Any]) -> None:
    """The state :class:`Sequence` keeps, for subclasses that have no file to check.

    ``Sequence.__init__`` refuses a path that does not exist; sequences made from arrays or
    from other sequences (mosaics) have none, so they call this instead.
    """
    seq.path = path
    seq._options = dict(options)
    seq._closed = False
    seq._metadata = None
    seq._metadata_lock = threading.Lock()
    seq._state_lock = threading.Lock()
    seq._reads_in_flight = 0
    seq._close_done = False
    seq._frames_declared = None
    seq._truncated = False
    seq._stat = None


def check_fps(fps: Any, what: str) -> float | None:
    """``fps`` as a float, or None; anything but a finite positive number is refused."""
    if fps is None:
        return None
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise SequenceFormatError(f"{what}: fps {fps!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise SequenceFormatError(
            f"{what}: fps {fps!r} is not a finite positive number of frames per second"
        )
    return value


class ArraySequence(Sequence):
    """Frames along the first axis of an array: ``(T, Y, X)`` or ``(T, Y, X, C)``.

    Parameters
    ----------
    array
        A numpy array, a dask array (read frame by frame, never computed whole) or any array
        with ``shape``, ``dtype`` and numpy-style indexing (zarr, h5py ...).
    fps
        Frames per second; when given without ``timestamps`` the frames are ``1 / fps`` apart.
    timestamps
        Time of each frame in seconds (non-decreasing, one per frame), for variable frame
        rates. Without ``fps`` the rate is derived from them (frames over their span).
    name
        What the sequence is called in messages and layer names (``path``); by default
        ``"<array (T, Y, X) dtype>"``.
    bit_depth
        Significant bits per sample (e.g. 12 for 12-bit camera data in uint16); by default
        the dtype's size.

    Frames are copies: changing a frame returned by ``seq[i]`` never changes the array. The
    sequence pickles with its array (a dask array pickles as its graph), so dask workers in
    other processes can read it.

    Examples
    --------
    >>> seq = ArraySequence(np.zeros((10, 4, 5), np.uint16), fps=50.0, bit_depth=12)
    >>> len(seq), seq.frame_shape, float(seq.timestamps[1])
    (10, (4, 5), 0.02)
    """

    format_name = "array"

    def __init__(
        self,
        array: Any,
        *,
        fps: float | None = None,
        timestamps: Any = None,
        name: str | None = None,
        bit_depth: int | None = None,
    ):
        if not (hasattr(array, "shape") and hasattr(array, "dtype")):
            array = np.asarray(array)
        shape = tuple(int(n) for n in array.shape)
        dtype = np.dtype(array.dtype)
        label = name if name else f"<array {shape} {dtype}>"
        init_sequence_state(self, label, {})
        if len(shape) < 3:
            raise SequenceFormatError(
                f"{label}: an array of shape {shape} is not a sequence of frames; frames go "
                f"along the first axis, (T, Y, X) or (T, Y, X, C) (one image: array[np.newaxis])"
            )
        if dtype.kind not in "uifb":
            raise SequenceFormatError(
                f"{label}: {dtype} arrays are not images; use an integer, float or bool array"
            )
        self._array = array
        self._shape = shape
        self._dtype = dtype.newbyteorder("=") if dtype.byteorder not in "=|" else dtype
        self._dask = _is_dask(array)
        self._fps = self._given_fps = check_fps(fps, label)
        self._given_timestamps = timestamps
        self._timestamps = None
        if timestamps is not None:
            try:
                ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as err:
                raise SequenceFormatError(f"{label}: timestamps are not numbers ({err})") from err
            if len(ts) != shape[0]:
                raise SequenceFormatError(
                    f"{label}: {len(ts)} timestamps for {shape[0]} frames; give one per frame"
                )
            if not np.all(np.isfinite(ts)):
                raise SequenceFormatError(f"{label}: timestamps must be finite seconds")
            if np.any(np.diff(ts) < 0):
                raise SequenceFormatError(
                    f"{label}: timestamps go back in time (frame "
                    f"{int(np.argmax(np.diff(ts) < 0)) + 1}); give them in frame order"
                )
            self._timestamps = ts
        elif self._fps is not None:
            self._timestamps = np.arange(shape[0], dtype=np.float64) / self._fps
        if self._fps is None and self._timestamps is not None and shape[0] > 1:
            span = float(self._timestamps[-1] - self._timestamps[0])
            if span > 0:
                self._fps = (shape[0] - 1) / span
        full = 1 if dtype.kind == "b" else dtype.itemsize * 8
        if bit_depth is not None and not (0 < int(bit_depth) <= full):
            raise SequenceFormatError(
                f"{label}: bit_depth {bit_depth} does not fit {dtype} (1..{full})"
            )
        self._bits = full if bit_depth is None else int(bit_depth)
        self._name = name

    def __len__(self) -> int:
        return self._shape[0]

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._shape[1:]

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def bit_depth(self) -> int:
        return self._bits

    @property
    def rgb(self) -> bool:
        return len(self._shape) == 4 and self._shape[-1] in (3, 4)

    @property
    def array(self) -> Any:
        """The array the frames come from."""
        return self._array

    def _read(self, index: int) -> np.ndarray:
        item = self._array[index]
        if self._dask:
            # one frame: computed here, without starting a thread pool inside a worker
            item = item.compute(scheduler="sync")
        return np.array(item, dtype=self._dtype, copy=True)

    def _format_metadata(self) -> dict[str, Any]:
        return {
            "fps": self._fps,
            "timestamps": self._timestamps,
            "source": {"array": type(self._array).__module__.split(".")[0]},
        }

    def to_dask(self, chunks: int | tuple | None = None):
        """A dask array over the frames (one frame per chunk unless ``chunks`` says so).

        A dask array given to the constructor is returned as it is (rechunked only when
        ``chunks`` is given), so its graph is not wrapped twice.
        """
        import dask.array as da
        from dask.base import tokenize

        if isinstance(chunks, int):
            chunks = (chunks, *self.frame_shape)
        if self._dask:
            arr = self._array if chunks is None else self._array.rechunk(chunks)
            return arr.astype(self._dtype) if arr.dtype != self._dtype else arr
        if chunks is None:
            chunks = (1, *self.frame_shape)
        name = "imseq-array-" + tokenize(self._array, self._dtype, chunks)
        meta = np.empty((0,) * self.ndim, dtype=self.dtype)
        return da.from_array(self, chunks=chunks, name=name, asarray=False, fancy=False, meta=meta)

    def _close(self) -> None:
        self._array = None

    def __reduce__(self):
        return _rebuild, (
            self._array,
            self._given_fps,
            self._given_timestamps,
            self._name,
            self._bits,
        )

    def __repr__(self) -> str:
        return f"<ArraySequence {self.path!r} shape={self.shape} dtype={self.dtype}>"
