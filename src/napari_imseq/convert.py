"""Streamed conversion: read, transform and write with bounded memory.

Reading (the sequence's sequential iterator plus the optional per-frame transform) and writing
run in two worker threads joined by a bounded queue, so decoding and encoding overlap on a
multi-core machine while at most ``queue_size`` frames are in flight, whatever the length.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .io._base import Sequence, SequenceError
from .io._registry import open_sequence
from .io._writer import (
    UnsupportedWriteError,
    auto_display_range,
    fitting_bit_depth,
    open_writer,
    source_timing,
)

__all__ = ["ConversionCancelled", "ConversionInterrupted", "convert"]

_END = object()


class ConversionInterrupted(KeyboardInterrupt):
    """Ctrl-C during a conversion; the message names the partial file that was kept."""


class ConversionCancelled(SequenceError):
    """``cancel`` was set during a conversion; the message names the partial file that was kept."""


def _cancel_requested(cancel: Any) -> bool:
    if cancel is None:
        return False
    return bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())


_CONTEXT_BY_TYPE: dict[type, bool] = {}


def _takes_context(func) -> bool:
    """True when ``func`` accepts ``index=`` and ``timestamp=`` (a Pipeline does).

    For an instance of a callable class (a Pipeline, a Normaliser) the answer depends on its
    class's ``__call__`` only, so it is worked out once per class: a batch of many small files
    would otherwise pay for ``inspect.signature`` on every file."""
    import types

    cls = type(func)
    call = next((k.__dict__["__call__"] for k in cls.__mro__ if "__call__" in k.__dict__), None)
    # an instance of a class whose __call__ is written in Python
    plain_instance = isinstance(call, types.FunctionType) and (
        getattr(func, "__signature__", None) is None
    )
    if plain_instance:
        known = _CONTEXT_BY_TYPE.get(cls)
        if known is None:
            known = _CONTEXT_BY_TYPE[cls] = _signature_takes_context(func)
        return known
    return _signature_takes_context(func)


def _signature_takes_context(func) -> bool:
    import inspect

    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return {"index", "timestamp"} <= set(params) or any(
        p.kind == p.VAR_KEYWORD for p in params.values()
    )


class _Selected:
    """The frames a conversion writes (its range, through its transform), indexable."""

    def __init__(self, seq, indices, transform, with_context: bool, timestamps):
        self.seq, self.indices, self.transform = seq, indices, transform
        self.with_context, self.timestamps = with_context, timestamps

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> np.ndarray:
        i = self.indices[k]
        frame = self.seq[i]
        if self.transform is None:
            return frame
        if self.with_context:
            t = float(self.timestamps[i]) if self.timestamps is not None else None
            return self.transform(frame, index=i, timestamp=t)
        return self.transform(frame)


class _Inline:
    """A stand-in for a Thread that runs its target at ``start()`` in the calling thread."""

    def __init__(self, target, name=None, daemon=None):
        self._target = target

    def start(self) -> None:
        self._target()

    def join(self, timeout=None) -> None:
        return None

    def is_alive(self) -> bool:
        return False


class _Failed:
    def __init__(self, err: BaseException):
        self.err = err


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def convert(
    src: str | os.PathLike | Sequence,
    dst: str | os.PathLike,
    *,
    start: int | None = None,
    stop: int | None = None,
    step: int | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool | Callable[[int, int], Any] = True,
    overwrite: bool = False,
    queue_size: int = 8,
    cancel: threading.Event | Callable[[], bool] | None = None,
    **writer_options: Any,
) -> dict[str, Any]:
    """Convert ``src`` (a path or an open Sequence) to ``dst`` frame by frame.

    Frames ``start:stop:step`` are read with the sequential iterator, passed through
    ``transform`` (any per-frame function, e.g. a Pipeline, which also receives each frame's
    index and timestamp) and written with the writer that
    ``dst``'s extension selects; ``writer_options`` go to it (``codec``, ``crf``,
    ``display_range`` (``"auto"`` estimates it from a subsample of the source), ``fps`` ...).
    fps and timestamps of the source travel to formats that can hold them.

    ``progress`` may be a callable, called as ``progress(frames_written, total)`` from the
    writing thread after every frame. ``cancel`` (a ``threading.Event`` or a callable returning
    True) is checked 20 times per second; when set the conversion stops.

    Returns a summary: frames, bytes written, seconds, frames per second, path, lossy.
    Raises :class:`ConversionInterrupted` on Ctrl-C and :class:`ConversionCancelled` on
    ``cancel``, after keeping the partial file.
    """
    own = not isinstance(src, Sequence)
    seq = open_sequence(src) if own else src
    try:
        return _convert(
            seq,
            dst if not isinstance(dst, (str, os.PathLike)) else os.fspath(dst),  # or a file object
            start,
            stop,
            step,
            transform,
            progress,
            overwrite,
            queue_size,
            writer_options,
            cancel,
        )
    finally:
        if own:
            seq.close()


def _convert(
    seq, dst, start, stop, step, transform, progress, overwrite, queue_size, options, cancel=None
):
    indices = range(*slice(start, stop, step).indices(len(seq)))
    n = len(indices)
    timestamps = seq.timestamps
    with_context = transform is not None and _takes_context(transform)
    if options.get("display_range") == "auto":  # from what will be written: range, transform
        options["display_range"] = auto_display_range(
            _Selected(seq, indices, transform, with_context, timestamps), dst
        )
    timestamps, source_fps = source_timing(seq.path, dst, timestamps, seq.fps)
    fps = options.pop("fps", None)  # given: the writer checks it (finite, positive)
    if fps is None and source_fps:  # the source's rate, thinned by the step
        fps = source_fps / abs(indices.step)
    if transform is None:  # a transform may change the range: its output keeps no claim
        options.setdefault("bit_depth", fitting_bit_depth(seq.bit_depth, seq.dtype))
    writer = open_writer(dst, fps=fps, overwrite=overwrite, **options)

    q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    halt = threading.Event()
    errors: list[BaseException] = []

    def read_worker():
        try:
            it = seq.iter_frames(indices.start, indices.stop, indices.step) if n else iter(())
            for i, frame in zip(indices, it, strict=False):
                if halt.is_set():
                    break
                t = float(timestamps[i]) if timestamps is not None and i < len(timestamps) else None
                if transform is not None:
                    frame = (
                        transform(frame, index=i, timestamp=t) if with_context else transform(frame)
                    )
                if not _put(q, (frame, t), halt):
                    break
        except BaseException as err:  # handed to the main thread
            _put(q, _Failed(err), halt)
        finally:
            _put(q, _END, halt)

    bar = None
    report = progress if callable(progress) else None
    if progress is True and n > 100:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="frame", desc=os.path.basename(str(writer.path)), file=sys.stderr)

    def write_worker():
        try:
            while True:
                try:
                    item = q.get(timeout=0.1)
                except queue.Empty:
                    if halt.is_set():
                        return
                    continue
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.err
                writer.write(*item)
                if bar is not None:
                    bar.update(1)
                if report is not None:
                    report(writer.count, n)
                if _cancel_requested(cancel):  # no frame is written after a cancel is seen
                    halt.set()
                    return
        except BaseException as err:
            errors.append(err)
            halt.set()

    t0 = time.perf_counter()
    # a job that fits the queue (a few frames: a small image file) runs in this thread, one
    # stage after the other: two threads would cost more than the overlap gains (batch jobs of
    # many small files)
    runner = _Inline if n + 1 <= q.maxsize else threading.Thread
    reader = runner(target=read_worker, name="imseq-read", daemon=True)
    writer_thread = runner(target=write_worker, name="imseq-write", daemon=True)
    reader.start()
    writer_thread.start()

    def stop_early() -> str:
        halt.set()
        reader.join(5)
        writer_thread.join(5)
        kept = writer.abort()
        if bar is not None:
            bar.close()
        if kept:
            return f"the partial file {kept} holds the {writer.count} frames written"
        return "nothing was written"

    try:
        while True:
            writer_thread.join(0.05)  # short joins keep Ctrl-C and cancel responsive
            # the writing thread also stops by itself after the frame during which the cancel
            # came: a cancelled job never reaches close(), so nothing looks complete
            stopped = not writer_thread.is_alive()
            if _cancel_requested(cancel) and (not stopped or writer.count < n):
                where = stop_early()
                raise ConversionCancelled(f"conversion to {writer.path} cancelled; {where}")
            if stopped:
                break
    except KeyboardInterrupt:
        where = stop_early()
        raise ConversionInterrupted(f"conversion to {writer.path} interrupted; {where}") from None
    finally:
        halt.set()
        reader.join(5)
    if bar is not None:
        bar.close()
    if errors:
        kept = writer.abort()
        err = errors[0]
        if isinstance(err, KeyboardInterrupt):  # Ctrl-C in an inline job's reading stage
            where = (
                f"the partial file {kept} holds the {writer.count} frames written"
                if kept
                else "nothing was written"
            )
            raise ConversionInterrupted(
                f"conversion to {writer.path} interrupted; {where}"
            ) from None
        if kept:
            err.add_note(
                f"the partial file {kept} holds the {writer.count} frames written before the error"
            )
        raise err
    if writer.count == 0:
        writer.abort()
        raise UnsupportedWriteError(
            f"{seq.path}: frames {start}:{stop}:{step} select none of its {len(seq)} frames; "
            f"nothing was written; choose start/stop/step inside the recording"
        )
    writer.close()
    seconds = time.perf_counter() - t0
    summary = {
        "source": seq.path,
        "path": writer.path,
        "frames": writer.count,
        "bytes": writer.bytes_written,
        "seconds": round(seconds, 3),
        "fps": round(writer.count / seconds, 1) if seconds else None,
        "lossy": writer.lossy,
    }
    if progress is True:
        mb = summary["bytes"] / 1e6
        note = " (lossy)" if writer.lossy else ""
        print(
            f"Done: {summary['frames']} frames -> {writer.path}{note}, {mb:.1f} MB in "
            f"{seconds:.1f} s ({summary['fps']} frames/s)",
            file=sys.stderr,
        )
    return summary
