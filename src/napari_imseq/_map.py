"""``map_frames``: a function over the frames of a sequence, in parallel, streamed in order.

A thin layer over :mod:`concurrent.futures`:

* **threads** (the default): the calling thread reads frames on the reader's sequential path
  (:meth:`Sequence.iter_frames` / :meth:`Sequence.iter_chunks`) and hands each frame (or
  chunk) to a thread pool; functions that release the GIL (numpy, OpenCV, scipy) run in
  parallel.
* **processes** (``processes=True``): each worker process receives the pickled sequence once
  (it reopens the file, URL or buffer itself) and then only frame ranges; it reads its frames
  and returns ``func``'s results. Pixels travel only as results. Pure-Python functions run in
  parallel. A sequence that cannot be pickled sends its frames instead.

At most ``max_in_flight`` tasks (frames, chunks or ranges) are submitted and not yet handed
out, so memory stays bounded whatever the length of the sequence, and results come out in
frame order (``ordered=True``) although they finish in any order. An exception in ``func``
is raised by the iterator with the frame index in its notes (and as ``frame_index``); the
tasks not started yet are cancelled. Closing the iterator (``close()``, leaving a ``with``
block, ``break`` out of a ``for`` loop over it) cancels the rest and waits for the running
tasks only.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterator
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

__all__ = ["map_frames"]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _tag(err: BaseException, index: int, what: str) -> BaseException:
    """Name the frame in the exception (kept through pickling: notes and attributes live in
    the exception's ``__dict__``)."""
    if getattr(err, "frame_index", None) is None:
        try:
            err.frame_index = index
            err.add_note(f"napari_imseq.map_frames: raised by the function on {what}")
        except (AttributeError, TypeError):  # pragma: no cover - an exception without __dict__
            pass
    return err


def _call(func: Callable, item: Any, index: int, what: str) -> Any:
    try:
        return func(item)
    except Exception as err:
        raise _tag(err, index, what) from None


# ---- worker processes ------------------------------------------------------------------------
_worker_seq = None


def _init_worker(blob: bytes) -> None:
    global _worker_seq
    _worker_seq = pickle.loads(blob)


def _run_range(func: Callable, start: int, stop: int, chunk: int | None):
    """In a worker: ``func`` over frames ``start:stop`` (or over one chunk of them); returns
    (results, the exception that stopped them or None), so the frames before a failing one
    are delivered."""
    seq = _worker_seq
    if chunk:
        block = next(seq.iter_chunks(stop - start, start, stop))
        return _apply(func, [block], start, True)
    out = []
    frames = seq.iter_frames(start, stop)
    try:
        for k, frame in enumerate(frames):
            out.append(_call(func, frame, start + k, f"frame {start + k}"))
    except Exception as err:
        return out, err
    finally:
        frames.close()
    return out, None


def _apply(func: Callable, items: list, start: int, chunk: bool):
    """``func`` over frames (or one chunk) sent along: (results, exception or None)."""
    out = []
    try:
        for k, item in enumerate(items):
            if chunk:
                what = f"the chunk of frames {start} to {start + len(item) - 1}"
                out.append(_call(func, item, start, what))
            else:
                out.append(_call(func, item, start + k, f"frame {start + k}"))
    except Exception as err:
        return out, err
    return out, None


def _ranges(lo: int, hi: int, step: int, points) -> list[tuple[int, int]]:
    """Frame ranges of about ``step`` frames covering ``lo:hi`` for worker tasks. With the
    file's decode points (a video's keyframes), ranges start on them where they can, so a
    worker does not decode a GOP's first frames again for a range that starts inside it; a
    GOP longer than 4 steps is cut anyway (results of a task stay bounded)."""
    if points is None or len(points) < 2:
        return [(at, min(at + step, hi)) for at in range(lo, hi, step)]
    cuts = sorted({lo, hi, *(int(p) for p in points if lo < p < hi)})
    out: list[tuple[int, int]] = []
    start = lo
    for k, point in enumerate(cuts[1:], 1):
        nxt = cuts[k + 1] if k + 1 < len(cuts) else None
        # close the range here when it is long enough, or the next cut would make it too long
        if point - start >= step or point == hi or (nxt is not None and nxt - start > 4 * step):
            while point - start > 4 * step:
                out.append((start, start + step))
                start += step
            out.append((start, point))
            start = point
    return out


def _default_context():
    # a forked child inherits locks that other threads of this process may hold (the frame
    # cache, decoder pools): it could wait on them forever. The fork server is a clean,
    # single-threaded process to fork from.
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # workers fork from a server that has imported the readers already, so a pool starts in
    # milliseconds instead of importing numpy and napari_imseq in every worker (effective
    # when the fork server has not started yet in this process)
    from .io import _formats

    ctx.set_forkserver_preload(["napari_imseq._map", *_formats._MODULES])
    return ctx


# ---- the iterator ----------------------------------------------------------------------------
class MapFrames:
    """The iterator :func:`map_frames` returns: results in frame order (``ordered=True``) or
    ``(index, result)`` pairs as they finish (``ordered=False``; ``index`` is the first frame
    of the chunk with ``chunk=``). ``close()`` (or leaving a ``with`` block) cancels what has
    not started and waits for what runs."""

    def __init__(self, gen: Iterator, stop: Callable[[], None]):
        self._gen = gen
        self._stop = stop

    def __iter__(self) -> MapFrames:
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
        self._stop()

    def __enter__(self) -> MapFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


def map_frames(
    func: Callable[[np.ndarray], Any],
    source: Any,
    *,
    workers: int | None = None,
    processes: bool = False,
    chunk: int | None = None,
    ordered: bool = True,
    start: int | None = None,
    stop: int | None = None,
    max_in_flight: int | None = None,
    batch: int | None = None,
    mp_context: Any = None,
    **open_options: Any,
) -> MapFrames:
    """``func(frame)`` for every frame of ``source`` (``func(chunk)`` for arrays of ``chunk``
    frames with ``chunk=``), computed by ``workers`` threads or processes, streamed in order.

    Parameters
    ----------
    func
        Called with one frame (``(Y, X[, C])`` array) or, with ``chunk=``, an array of up to
        ``chunk`` frames. With ``processes=True`` it must pickle (a module-level function).
    source
        A :class:`~napari_imseq.Sequence` (not closed here) or anything
        :func:`~napari_imseq.open_sequence` opens, with ``open_options`` (closed at the end).
    workers
        Threads or processes; default: the CPUs this process may use.
    processes
        Worker processes instead of threads (for functions that hold the GIL).
    chunk
        Give ``func`` arrays of this many frames instead of single frames.
    ordered
        Results in frame order (default); False yields ``(index, result)`` as they finish.
    start, stop
        The frames ``start:stop`` only.
    max_in_flight
        Tasks submitted and not handed out yet (default ``2 * workers``); bounds memory.
    batch
        Processes without ``chunk``: frames per task (default: about 1/8 of a worker's
        share, 1 to 64), so each worker reads a run of frames on its fast sequential path.
    mp_context
        A :mod:`multiprocessing` context for the processes (default: ``forkserver`` where it
        exists, else ``spawn``).

    The iterator feeds any writer: ``imwrite("out.mkv", map_frames(f, "in.mkv"), fps=30)``.
    """
    from .io._base import Sequence
    from .io._registry import open_sequence

    workers = _cpus() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if chunk is not None and (isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1):
        raise ValueError(f"chunk must be a positive number of frames, not {chunk!r}")
    limit = 2 * workers if max_in_flight is None else int(max_in_flight)
    if limit < 1:
        raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
    if not callable(func):
        raise TypeError(f"func must be callable, not {type(func).__name__}")

    if processes:
        try:
            pickle.dumps(func)
        except Exception as err:  # noqa: BLE001 - whatever pickle raises
            raise TypeError(
                f"map_frames(processes=True) sends func to worker processes, but {func!r} "
                f"cannot be pickled ({err}); use a function defined at module level, or threads"
            ) from err
    owned = not isinstance(source, Sequence)
    if not owned and open_options:
        raise TypeError(f"options {sorted(open_options)} apply when map_frames opens the source")
    seq = open_sequence(source, **open_options) if owned else source
    try:
        return _start(func, seq, owned, workers, processes, chunk, ordered, start, stop, limit,
                      batch, mp_context)  # fmt: skip
    except BaseException:
        if owned:  # nothing started: the sequence opened here is closed again
            seq.close()
        raise


def _start(func, seq, owned, workers, processes, chunk, ordered, start, stop, limit, batch,
           mp_context) -> MapFrames:  # fmt: skip
    lo, hi, _ = slice(start, stop).indices(len(seq))
    hi = max(lo, hi)
    size = int(chunk) if chunk else None

    if processes:
        if batch is None:
            share = -(-(hi - lo) // workers)
            batch = max(1, min(64, share // 8))
        step = size or int(batch)
        try:
            blob = pickle.dumps(seq)
        except Exception:  # noqa: BLE001 - any pickling failure: send the frames instead
            blob = None
        pool = futures.ProcessPoolExecutor(
            workers,
            mp_context=mp_context or _default_context(),
            initializer=_init_worker if blob is not None else None,
            initargs=(blob,) if blob is not None else (),
        )

        bounds = [(at, min(at + step, hi)) for at in range(lo, hi, step)]
        if not size:
            bounds = _ranges(lo, hi, step, getattr(seq, "_decode_points", lambda: None)())

        def tasks():
            for at, end in bounds:
                if blob is not None:
                    yield at, lambda a=at, e=end: pool.submit(_run_range, func, a, e, size)
                else:
                    block = seq[at:end]
                    items = [block] if size else list(block)
                    yield (
                        at,
                        lambda it=items, a=at: pool.submit(_apply, func, it, a, bool(size)),
                    )

        def unpack(result: tuple, at: int):
            results, err = result
            yield from ((at if size else at + k, r) for k, r in enumerate(results))
            if err is not None:
                raise err

    else:
        pool = futures.ThreadPoolExecutor(workers, thread_name_prefix="imseq-map")

        def tasks():
            if size:
                for k, block in enumerate(seq.iter_chunks(size, lo, hi)):
                    at = lo + k * size
                    what = f"the chunk of frames {at} to {at + len(block) - 1}"
                    yield at, lambda b=block, a=at, w=what: pool.submit(_call, func, b, a, w)
            else:
                for k, frame in enumerate(seq.iter_frames(lo, hi)):
                    i = lo + k
                    yield i, lambda f=frame, i=i: pool.submit(_call, func, f, i, f"frame {i}")

        def unpack(result: Any, at: int):
            yield at, result

    def stop_all() -> None:
        pool.shutdown(wait=True, cancel_futures=True)
        if owned:
            seq.close()

    def _result(fut: futures.Future) -> Any:
        try:
            return fut.result()
        except BrokenProcessPool as err:
            from .io._base import SequenceError

            raise SequenceError(
                f"{seq.path}: a map_frames worker process ended abruptly ({err}); the sequence "
                f"could not be reopened there, or func crashed or ran out of memory"
            ) from err

    def run():
        pending: collections.deque = collections.deque()
        source_tasks = tasks()
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < limit:
                    task = next(source_tasks, None)
                    if task is None:
                        exhausted = True
                        break
                    at, submit = task
                    pending.append((at, submit()))
                if not pending:
                    return
                if ordered:
                    at, fut = pending.popleft()
                    for _, r in unpack(_result(fut), at):
                        yield r
                    continue
                done, _ = futures.wait([f for _, f in pending], return_when="FIRST_COMPLETED")
                for item in [p for p in pending if p[1] in done]:
                    pending.remove(item)
                    yield from unpack(_result(item[1]), item[0])
        finally:
            for _, fut in pending:
                fut.cancel()
            source_tasks.close()
            stop_all()

    return MapFrames(run(), stop_all)
