"""One long file to an uncompressed TIFF by frame ranges written in place, in parallel.

The client has one task create the output's layout (:func:`napari_imseq.io.tiff.allocate_frames`:
every page, tag and description of the finished file, and one contiguous pixel area left
sparse); then every segment task reads its frames and writes them at their place in that area
with positional writes and then leaves a marker ``A-B.done``. All of it happens
inside ``DST.segments.partial/``: the file is renamed to ``DST`` only after the client has
seen every segment's marker, so a killed worker never leaves a file that looks complete (dask
runs its segment again, which rewrites the same bytes). A re-run with the same plan reuses the
allocated file and skips the segments whose marker is there.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..io._cache import file_stamp
from ._engine import BatchError, Skipped, run_tasks

#: the allocated file inside the segment folder
DATA_NAME = "joined.tif"
#: the plan and layout of a segment folder (a re-run reuses the folder only when they agree)
PLAN_NAME = "layout.json"
#: bytes of frames gathered into one positional write
WRITE_BYTES = 16 << 20

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _marker(folder: str, a: int, b: int) -> str:
    return os.path.join(folder, f"{a:09d}-{b:09d}.done")


def _blocks(src: str, indices: range, transform: Any):
    """(open sequence, iterator of arrays of consecutive output frames of ``indices``, about
    :data:`WRITE_BYTES` each) on a worker: runs of frames read straight into the arrays when
    nothing transforms them, else frame by frame."""
    from ..convert import _takes_context
    from ..io._registry import open_sequence

    seq = open_sequence(src)
    per = max(1, WRITE_BYTES // max(1, int(np.prod(seq.frame_shape)) * seq.dtype.itemsize))
    if transform is None and indices.step == 1:
        return seq, _runs(seq, indices, per)
    context = transform is not None and _takes_context(transform)
    times = seq.timestamps if context else None

    def blocks():
        it = seq.iter_frames(indices.start, indices.stop, indices.step)
        block: list[np.ndarray] = []
        for i, frame in zip(indices, it, strict=True):
            if context:
                t = float(times[i]) if times is not None else None
                frame = transform(frame, index=i, timestamp=t)
            elif transform is not None:
                frame = transform(frame)
            block.append(np.asarray(frame))
            if len(block) == per:
                yield block
                block = []
        if block:
            yield block

    return seq, blocks()


def _runs(seq: Any, indices: range, per: int):
    """Runs of frames read into one array, reused from run to run: dask's nanny starts workers
    with ``MALLOC_TRIM_THRESHOLD_`` set, which keeps glibc from reusing large freed blocks, so
    a new array per run would cost a page fault per 4 KiB (2-3x the CPU of the copy itself)."""
    buf = np.empty((min(per, len(indices)), *seq.frame_shape), seq.dtype)
    for at in range(indices.start, indices.stop, per):
        k = min(per, indices.stop - at)
        seq._counted(seq._read_range, f"reading frames {at} to {at + k - 1}", at, at + k, buf[:k])
        yield buf[:k]


def allocate(
    job: tuple[str, str, int, int, int], *, cancel, options: dict[str, Any]
) -> dict[str, Any]:
    """On a worker: the first output frame fixes the layout; create the file (see module)."""
    from ..io._writer import source_timing
    from ..io.tiff import allocate_frames

    src, path, start, stop, step = job
    indices = range(start, stop, step)
    transform = options.get("transform")
    seq, blocks = _blocks(src, indices[:1], transform)
    with seq:
        first = np.asarray(next(iter(blocks))[0])
        _, rate = source_timing(seq.path, path, None, seq.fps)
    writer_options = {k: v for k, v in options.items() if k != "transform"}
    if writer_options.get("fps") is None:  # the source's rate, thinned by the step (convert's)
        writer_options["fps"] = rate / step if rate else None
    if os.path.lexists(path):  # left by this task's attempt on a worker that died
        os.remove(path)
    offset, frame_bytes = allocate_frames(path, len(indices), first, **writer_options)
    return {
        "offset": offset,
        "frame_bytes": frame_bytes,
        "shape": list(first.shape),
        "dtype": first.dtype.str,
    }


def write_segment(
    job: tuple[str, str, int, int], *, cancel, options: dict[str, Any], plan: dict[str, Any]
) -> dict[str, Any] | Skipped:
    """On a worker: output frames ``a:b`` at their place in the allocated file, then the
    segment's marker. Every frame must have the layout's shape and dtype."""
    from ..io._writer_base import FrameMismatchError

    src, folder, a, b = job
    marker = _marker(folder, a, b)
    if os.path.exists(marker):
        return Skipped(f"frames {a}:{b} are written")
    path = os.path.join(folder, DATA_NAME)
    layout = plan["layout"]
    shape, dtype = tuple(layout["shape"]), np.dtype(layout["dtype"]).newbyteorder("=")
    start, step = plan["start"], plan["step"]
    indices = range(start + a * step, start + b * step, step)
    disk = dtype.newbyteorder("<")
    frame_bytes = layout["frame_bytes"]
    seq, blocks = _blocks(src, indices, options.get("transform"))
    with seq:
        # never O_CREAT: a file removed meanwhile is an error, not a new file with holes
        fd = os.open(path, os.O_WRONLY | _NOFOLLOW)
        try:
            at = a  # output index of the next frame
            out = None  # frames of a transform gathered here (one array, reused)
            for block in blocks:
                for k, frame in enumerate(block):
                    if frame.shape != shape or frame.dtype != dtype:
                        raise FrameMismatchError(
                            f"{src}: output frame {at + k} has shape {frame.shape} and dtype "
                            f"{frame.dtype} but the TIFF was laid out for {shape} {dtype} (from "
                            f"the first frame); every frame must match the first"
                        )
                if isinstance(block, list):
                    if out is None:
                        out = np.empty((len(block), *shape), disk)
                    for k, frame in enumerate(block):
                        out[k] = frame
                    block = out[: len(block)]
                data = np.asarray(block, dtype=disk)  # no copy when in the file's byte order
                _pwrite(fd, data, layout["offset"] + at * frame_bytes, path, folder)
                at += len(data)
                if cancel():
                    return Skipped("cancelled")
            if at != b:
                raise BatchError(f"{src}: frames {a}:{b} gave {at - a} frames, not {b - a}")
        finally:  # no fsync, like every writer of this package: what a killed process wrote
            # is in the file; only a crash of the machine before the kernel writes it back is not
            os.close(fd)
    tmp = marker + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{a} {b}\n")
    os.replace(tmp, marker)
    return {"frames": b - a}


def _pwrite(fd: int, block: np.ndarray, offset: int, path: str, folder: str) -> None:
    """``block`` at ``offset``; a failure of the disk is our :class:`SequenceWriteError`."""
    from ..io._writer_base import SequenceWriteError

    try:
        view = memoryview(np.ascontiguousarray(block)).cast("B")
        done = 0
        while done < len(view):
            n = os.pwrite(fd, view[done:], offset + done)
            if n <= 0:
                raise OSError(f"no byte written at offset {offset + done}")
            done += n
    except OSError as err:
        raise SequenceWriteError(
            f"{path}: writing a segment failed: {err.strerror or err}; the output is not "
            f"complete (it stays in {folder}); check the disk and run again"
        ) from err


def prepare(folder: str, plan: dict[str, Any]) -> dict[str, Any] | None:
    """The layout of an earlier run's folder when its plan is ``plan`` and its file is there
    (its markers then stand); else None after removing what an earlier run left (our entries
    only)."""
    saved = os.path.join(folder, PLAN_NAME)
    try:
        with open(saved) as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = None
    path = os.path.join(folder, DATA_NAME)
    if isinstance(old, dict) and old.get("plan") == plan and os.path.isfile(path):
        layout = old.get("layout")
        if isinstance(layout, dict):
            return layout
    for name in os.listdir(folder):
        if name in (DATA_NAME, PLAN_NAME, PLAN_NAME + ".tmp") or name.endswith(
            (".done", ".done.tmp")
        ):
            os.remove(os.path.join(folder, name))
    return None


def save_plan(folder: str, plan: dict[str, Any], layout: dict[str, Any]) -> None:
    tmp = os.path.join(folder, PLAN_NAME + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"plan": plan, "layout": layout}, f)
    os.replace(tmp, os.path.join(folder, PLAN_NAME))


def check_complete(folder: str, bounds: list[tuple[int, int]]) -> None:
    missing = [(a, b) for a, b in bounds if not os.path.exists(_marker(folder, a, b))]
    if missing:
        a, b = missing[0]
        raise BatchError(
            f"{folder}: {len(missing)} segment(s) are not written (first: frames {a}:{b}); "
            f"the output is not complete; run again to finish it"
        )


def raise_failed(report: Any, src: str, folder: str) -> None:
    """A :class:`BatchError` for the first failed segment of ``report``, if any."""
    if report.failed:
        job, why = report.failed[0]
        raise BatchError(
            f"{src}: segment of frames {job[2]}:{job[3]} failed: {why}; the finished segments "
            f"stay in {folder} and a re-run reuses them"
        )


def check_options(dst: str, options: dict[str, Any]) -> None:
    """On the client, before anything runs: the TIFF writer's own checks of ``options`` (fps,
    known options), and no compression."""
    from ..io.tiff import TiffWriter

    opts = {k: v for k, v in options.items() if k != "transform"}
    writer = TiffWriter(dst, overwrite=True, **opts)  # writes nothing until a frame comes
    if writer.compression is not None:
        raise writer._refuse(
            f"segments are written in place uncompressed, not {writer.compression!r}; write a "
            f"compressed TIFF with napari_imseq.convert (one process)"
        )


def run(
    client: Any,
    src: str,
    folder: str,
    span: range,
    bounds: list[tuple[int, int]],
    options: dict[str, Any],
    progress: bool,
) -> str:
    """Lay out ``folder/joined.tif`` (or reuse an earlier run's) and write every segment of
    ``bounds`` (output frame ranges of the source frames ``span``); return the file's path
    once every segment's marker is there."""
    stamp = file_stamp(src)  # None: a URL, or a path only the workers see
    stamp = None if stamp is None else list(stamp)
    plan = {
        "source": src, "stamp": stamp, "start": span.start, "stop": span.stop,
        "step": span.step, "options": repr(sorted(options.items())),
    }  # fmt: skip
    path = os.path.join(folder, DATA_NAME)
    layout = prepare(folder, plan)
    if layout is None:
        item = (src, path, span.start, span.stop, span.step)
        report = run_tasks(
            client, allocate, [item], kwargs={"options": options}, desc="layout",
            progress=False, first_group=1, max_group=1,
        )  # fmt: skip
        if report.failed:
            raise BatchError(f"{src}: the TIFF could not be laid out: {report.failed[0][1]}")
        layout = report.results[item]
        save_plan(folder, plan, layout)
    seg = {"layout": layout, "start": span.start, "step": span.step}
    report = run_tasks(
        client, write_segment, [(src, folder, a, b) for a, b in bounds],
        kwargs={"options": options, "plan": seg}, desc="segments", progress=progress,
        first_group=1, max_group=1,
    )  # fmt: skip
    raise_failed(report, src, folder)
    check_complete(folder, bounds)
    return path


def frames_in(path: str) -> int:
    """Frames a reader finds in the finished file (its layout, read back)."""
    from ..io.tiff import TiffStack

    with TiffStack(path) as seq:
        return len(seq)
