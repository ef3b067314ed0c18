"""Dask arrays over a :class:`~napari_imseq.io._base.Sequence`: chunks that follow the file.

Three chunkings:

* ``chunks=None`` or ``1``: one frame per chunk. napari's reader uses it: napari switches off
  dask's task fusion and computes whole chunks, so a slider step must cost one frame.
* ``chunks="auto"`` (what :func:`napari_imseq.imread` uses): runs of frames of about
  :data:`CHUNK_BYTES` each, enough chunks for every thread, starting on the file's decode
  points (a video's keyframes, see :meth:`Sequence._decode_points`). Short GOPs are gathered
  into chunks and never split, so threads decode different GOPs and never repeat each other's
  work. A long GOP (H.264 with GOP 250) is one chunk of up to :data:`GOP_CHUNK_BYTES`, and
  only a longer one is cut into pieces that large. dask orders independent chunks its own way
  (often backwards: the last piece of a GOP first), and a piece that starts inside a GOP costs
  a decode from the keyframe unless the decoder that read the piece before it is there to
  continue (see ``VideoFile._acquire``). So the pieces of one GOP are chained: a piece's task
  waits for a tiny ticket of the piece before it (:func:`_chain`), and the GOP decodes once,
  in order, while other GOPs go on in parallel; at most a piece and the next are held per
  GOP. A chunk is read as a run (:meth:`Sequence._read_range`), so a video decodes straight
  through instead of seeking per frame.
* an integer (frames per chunk) or a full dask ``chunks`` spec, taken as given.

The chunk tasks use dask's own ``getter``, which dask's optimiser fuses with the slicing that
follows: ``imread(p)[i]`` reads frame ``i`` only, not its whole chunk (in a chained piece,
after the pieces of its GOP before it: their decode is on the way to frame ``i`` anyway).
"""

from __future__ import annotations

import math
import os
from typing import Any, Protocol

import numpy as np

from . import _cache


class Sequence(Protocol):  # what of a napari_imseq.io._base.Sequence is used here
    path: str
    _options: dict
    frame_shape: tuple[int, ...]
    dtype: np.dtype
    ndim: int

    def __len__(self) -> int: ...
    def _decode_points(self) -> np.ndarray | None: ...


#: bytes of decoded frames per ``"auto"`` chunk (lowered by dask's ``array.chunk-size``)
CHUNK_BYTES = 16 << 20
#: most bytes of an ``"auto"`` chunk that holds one long GOP
GOP_CHUNK_BYTES = 256 << 20
#: ``"auto"`` makes at least this many chunks per thread (so every thread has work) when
#: the file has that many decode points
CHUNKS_PER_THREAD = 2


def _budget() -> int:
    import dask
    from dask.utils import parse_bytes

    limit = dask.config.get("array.chunk-size", None)
    try:
        return min(CHUNK_BYTES, parse_bytes(limit)) if limit else CHUNK_BYTES
    except (TypeError, ValueError):
        return CHUNK_BYTES


def _threads() -> int:
    from dask.system import CPU_COUNT

    return max(1, int(CPU_COUNT or os.cpu_count() or 1))


def _even(length: int, pieces: int) -> list[int]:
    """``length`` frames in ``pieces`` runs whose sizes differ by at most one."""
    base, extra = divmod(length, pieces)
    return [base + 1] * extra + [base] * (pieces - extra)


def auto_frame_chunks(seq: Sequence) -> tuple[int, ...]:
    """Chunk sizes along the frame axis for ``chunks="auto"``."""
    n = len(seq)
    if n == 0:
        return (0,)
    frame_bytes = max(1, math.prod(seq.frame_shape) * seq.dtype.itemsize)
    per = max(1, _budget() // frame_bytes)
    per = min(per, max(1, math.ceil(n / (CHUNKS_PER_THREAD * _threads()))))
    gop_per = max(1, GOP_CHUNK_BYTES // frame_bytes)
    points = seq._decode_points()
    if points is None or len(points) >= n:
        return tuple(_even(n, math.ceil(n / per)))
    starts = np.unique(np.clip(np.asarray(points, dtype=np.int64), 0, n - 1))
    starts = np.r_[0, starts] if starts[0] != 0 else starts
    segments = np.diff(np.r_[starts, n])
    sizes: list[int] = []
    run = 0  # frames of whole GOPs gathered for the next chunk
    for length in segments.tolist():
        if run and run + length > per:
            sizes.append(run)
            run = 0
        if length > per:  # a long GOP: whole, or in as few pieces as memory allows
            sizes.extend(_even(length, math.ceil(length / max(per, gop_per))))
        else:
            run += length
    if run:
        sizes.append(run)
    return tuple(sizes)


def continued_chunks(seq: Sequence, sizes: tuple[int, ...]) -> list[int]:
    """Chunks (by position) that start inside a GOP, after the chunk before them: the pieces
    of a long GOP, and every chunk after the first of a file that is never read from elsewhere
    than its start (decode points all 0)."""
    n = len(seq)
    points = seq._decode_points()
    if points is None or len(points) >= n or len(sizes) < 2:
        return []
    keys = set(np.asarray(points, dtype=np.int64).tolist()) | {0}
    starts = np.cumsum(sizes)[:-1].tolist()
    return [j for j, start in enumerate(starts, 1) if start not in keys]


class _Ticket:
    """What a piece of a GOP hands the next one: passed to dask's ``getter`` as its ``lock``
    (a task argument there keeps the getter fusable with later slicing); holds nothing."""

    __slots__ = ()

    def acquire(self, *args) -> bool:
        return True

    def release(self) -> None:
        pass


def _ticket(_chunk) -> _Ticket:
    return _Ticket()


def _chain(arr, continued: list[int]):
    """``arr`` with each chunk of ``continued`` computed after the chunk before it; ``arr``
    itself (correct, only slower for long GOPs) where this dask builds its graph otherwise
    (task specs came with dask 2024.12; the project allows older)."""
    import dask.array as da
    from dask.array.core import getter
    from dask.highlevelgraph import HighLevelGraph

    try:
        from dask._task_spec import Task, TaskRef
    except ImportError:
        return arr
    name, rest = arr.name, (0,) * (arr.ndim - 1)
    tickets = "imseq-ticket-" + name.partition("-")[2]
    graph = dict(arr.__dask_graph__())
    for j in continued:
        key, before = (name, j, *rest), (name, j - 1, *rest)
        old = graph.get(key)
        if not isinstance(old, Task) or old.func is not getter or len(old.args) != 2:
            return arr  # not getter(array, index): leave dask's graph as it is
        graph[(tickets, j)] = Task((tickets, j), _ticket, TaskRef(before))
        graph[key] = Task(key, getter, old.args[0], old.args[1], False, TaskRef((tickets, j)))
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=())
    return da.Array(hlg, name, chunks=arr.chunks, meta=arr._meta)


def frame_chunks(seq: Sequence, chunks: Any) -> Any:
    """A dask ``chunks`` spec for ``seq`` from what :meth:`Sequence.to_dask` accepts."""
    frame = tuple((d,) for d in seq.frame_shape)
    if chunks is None:
        return ((1,) * len(seq), *frame)
    if isinstance(chunks, str):
        if chunks != "auto":
            raise ValueError(f"chunks={chunks!r}: use 'auto', a number of frames or a dask spec")
        return (auto_frame_chunks(seq), *frame)
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        if chunks < 1:
            raise ValueError(f"chunks={chunks}: a chunk holds at least one frame")
        return (int(chunks), *seq.frame_shape)
    return chunks


def to_dask(seq: Sequence, chunks: Any = None):
    """The dask array behind :meth:`Sequence.to_dask` and :func:`napari_imseq.imread`."""
    import dask.array as da
    from dask.base import tokenize

    spec = frame_chunks(seq, chunks)
    stamp = _cache.file_stamp(seq.path)
    name = "imseq-" + tokenize(type(seq).__name__, seq.path, stamp, seq._options, spec)
    meta = np.empty((0,) * seq.ndim, dtype=seq.dtype)
    # fancy=True: dask's plain getter, which its optimiser fuses with later slicing
    arr = da.from_array(seq, chunks=spec, name=name, asarray=False, fancy=True, meta=meta)
    continued = continued_chunks(seq, spec[0]) if chunks == "auto" else []
    return _chain(arr, continued) if continued else arr
