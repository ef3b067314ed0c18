"""Batch conversion on dask.distributed: many files as grouped tasks, or one long file as
segments encoded in parallel and joined without re-encoding."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from ..io._writer import UnsupportedWriteError, partial_path
from . import _inplace
from ._engine import BatchError, BatchReport, Skipped, cluster, run_tasks

__all__ = ["convert_batch", "convert_segments", "output_path"]


def output_path(src: str | os.PathLike, to: str | os.PathLike, fmt: str) -> str:
    """``to/STEM.fmt`` for source ``src`` (a file or a folder sequence)."""
    stem = os.path.splitext(os.path.basename(os.path.normpath(os.fspath(src))))[0]
    return os.path.join(os.fspath(to), f"{stem}.{fmt.lstrip('.')}")


def _convert_one(
    pair: tuple[str, str], *, cancel, overwrite: bool, options: dict[str, Any]
) -> dict[str, Any] | Skipped:
    """On a worker: convert one file, unless its output is complete (it exists: outputs appear
    only by renaming a finished ``.partial``). A leftover ``.partial`` from an interrupted run
    (ours: the writer checks) is redone."""
    from ..convert import convert

    src, dst = pair
    if os.path.lexists(dst) and not overwrite:
        return Skipped(f"{dst} exists")
    redo = overwrite or os.path.lexists(partial_path(os.path.abspath(dst)))
    return convert(src, dst, overwrite=redo, progress=False, cancel=cancel, **options)


def _pairs(
    sources: Iterable[str | os.PathLike], to: str, fmt: str, report: BatchReport
) -> Iterator[tuple[str, str]]:
    """(source, output) pairs, streamed; a second source with the same output name fails."""
    seen: dict[str, str] = {}
    for src in sources:
        src = os.fspath(src)
        dst = output_path(src, to, fmt)
        key = os.path.abspath(dst)
        if key in seen:
            report.failed.append(
                (src, f"{src}: its output {dst} is written from {seen[key]} in this run; "
                      f"rename one of them")
            )  # fmt: skip
            continue
        seen[key] = src
        yield src, dst


def convert_batch(
    sources: Iterable[str | os.PathLike],
    to: str | os.PathLike,
    format: str = "mkv",
    *,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    total: int | None = None,
    keep_results: bool = True,
    **options: Any,
) -> BatchReport:
    """Convert every source to ``to/STEM.format`` on dask.distributed.

    ``client`` (an existing ``distributed.Client``), ``scheduler`` (an address) or ``workers``
    (a LocalCluster of that many processes; default one per core) chooses where it runs. Paths
    are opened on the workers, so on a cluster they must name shared storage that every worker
    sees under the same name. ``sources`` may be a generator: it is read as tasks are
    submitted. ``options`` go to :func:`napari_imseq.convert` (``start``, ``stop``, ``step``,
    ``transform``, ``codec``, ``display_range`` ...).

    Outputs appear only complete (written as ``NAME.partial``, renamed at the end); a re-run
    skips complete outputs and redoes partial ones; a file that fails is reported in the
    returned :class:`BatchReport` (``failed``: source and reason) and the others go on.
    Ctrl-C cancels the tasks and raises :class:`BatchInterrupted`. ``report.results`` maps
    each converted source to convert()'s summary unless ``keep_results=False`` (the command
    line's choice: for 10^6 files the client then holds only the list of sources).
    """
    to = os.fspath(to)
    os.makedirs(to, exist_ok=True)
    fmt = str(format).lstrip(".")
    if not fmt:
        raise BatchError("convert_batch needs an output format such as 'mkv', 'tif' or 'zarr'")
    if total is None and hasattr(sources, "__len__"):
        total = len(sources)  # type: ignore[arg-type]
    early = BatchReport()
    with cluster(client, workers=workers, scheduler=scheduler, quiet=not progress) as c:
        report = run_tasks(
            c,
            _convert_one,
            _pairs(sources, to, fmt, early),
            kwargs={"overwrite": overwrite, "options": options},
            total=total,
            progress=progress,
            keep_results=keep_results,
        )
    report.done = [src for src, _ in report.done]
    report.skipped = [src for src, _ in report.skipped]
    report.failed = early.failed + [(src, why) for (src, _), why in report.failed]
    report.results = {src: value for (src, _), value in report.results.items()}
    return report


# ---- one long file: segments in parallel ---------------------------------------------------
_SEGMENT_SUFFIX = ".segments.partial"


def _convert_segment(
    job: tuple[str, str, int, int], *, cancel, options: dict[str, Any]
) -> dict[str, Any] | Skipped:
    from ..convert import convert

    src, dst, start, stop = job
    if os.path.lexists(dst):
        return Skipped(f"{dst} exists")
    redo = os.path.lexists(partial_path(os.path.abspath(dst)))
    out = convert(
        src, dst, start=start, stop=stop, overwrite=redo, progress=False, cancel=cancel, **options
    )
    return {"frames": out["frames"], "path": dst}


def convert_segments(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    segment_frames: int | None = None,
    start: int | None = None,
    stop: int | None = None,
    step: int | None = None,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Convert one long file by writing frame ranges in parallel on dask.distributed and
    joining them without re-encoding: FFV1 in Matroska (``dst`` ending in ``.mkv``), zarr
    (``.zarr``) or uncompressed TIFF (``.tif``/``.tiff``).

    FFV1: our writer codes every frame as a keyframe (GOP 1), so segments join at any frame:
    their packets are copied one after the other with PyAV (timestamps shifted to the segment's
    place); no frame is decoded again. zarr: one chunk per frame, so the segments' chunk files
    are moved into the first segment's store under their frame numbers, and the small timestamp
    array is rewritten. TIFF: one task lays the file out (the pages and description the TIFF
    writer would write, and one contiguous pixel area), then every segment writes its frames
    at their place in it (see :mod:`napari_imseq.batch._inplace`); nothing is joined.
    Everything is written in ``DST.segments.partial/`` (reused by a re-run after an
    interruption) and the result renamed to ``dst`` once every segment is complete; the
    segment folder is removed afterwards. ``segment_frames`` defaults to four segments per
    worker thread; ``start``, ``stop`` and a positive ``step`` choose the frames, as for
    :func:`napari_imseq.convert`.
    """
    from ..io._registry import open_sequence

    src, dst = os.fspath(src), os.path.abspath(os.fspath(dst))
    ext = os.path.splitext(dst)[1].lower()
    tiff = ext in (".tif", ".tiff")
    if ext not in (".mkv", ".zarr") and not tiff:
        raise UnsupportedWriteError(
            f"{dst}: segment-parallel conversion writes FFV1 in Matroska (.mkv), zarr (.zarr) "
            f"or uncompressed TIFF (.tif); convert to other formats with napari_imseq.convert"
        )
    codec = options.get("codec", "ffv1")
    if ext == ".mkv" and str(codec).lower() != "ffv1":
        raise UnsupportedWriteError(
            f"{dst}: segments join without re-encoding only for FFV1 (every frame a keyframe), "
            f"not {codec!r}"
        )
    if step is not None and step < 1:
        raise UnsupportedWriteError(
            f"{dst}: step={step!r}: segments are written forward; use a positive step, or "
            f"napari_imseq.convert for a reversed copy"
        )
    if tiff:
        _inplace.check_options(dst, options)
    _check_replaceable(dst, overwrite)
    with open_sequence(src) as seq:  # headers only
        span = range(*slice(start, stop, step).indices(len(seq)))
        timestamps = seq.timestamps
        fps = seq.fps
    n = len(span)
    if n == 0:
        raise UnsupportedWriteError(
            f"{src}: frames {start}:{stop}:{step} select none of its frames; nothing was written"
        )
    folder = dst + _SEGMENT_SUFFIX
    os.makedirs(folder, exist_ok=True)
    options = {k: v for k, v in options.items() if k != "codec"}
    with cluster(client, workers=workers, scheduler=scheduler, quiet=not progress) as c:
        threads = max(1, sum(c.nthreads().values()))
        size = int(segment_frames) if segment_frames else max(1, -(-n // (4 * threads)))
        bounds = [(a, min(n, a + size)) for a in range(0, n, size)]
        if tiff:
            joined = _inplace.run(c, src, folder, span, bounds, options, progress)
        else:
            jobs = [
                (src, os.path.join(folder, f"{k:06d}{ext}"), span[a], span[b - 1] + 1)
                for k, (a, b) in enumerate(bounds)
            ]
            seg_options = {**options, "step": span.step} if span.step != 1 else options
            report = run_tasks(
                c,
                _convert_segment,
                jobs,
                kwargs={"options": seg_options},
                desc="segments",
                progress=progress,
                first_group=1,
                max_group=1,
            )
    if not tiff:
        _inplace.raise_failed(report, src, folder)
        parts = [j[1] for j in jobs]
        joined = os.path.join(folder, "joined" + ext)  # inside our folder: never a user's file
        if os.path.isdir(joined):
            shutil.rmtree(joined)
        elif os.path.lexists(joined):
            os.remove(joined)
        if ext == ".mkv":
            first = span[0]
            starts = [
                float(timestamps[span[a]] - timestamps[first])
                if timestamps is not None
                else (span[a] - first) / (fps or 30.0)
                for a, _ in bounds
            ]
            frames = _join_ffv1(parts, starts, joined)
        else:
            frames = _join_zarr(parts, [b - a for a, b in bounds], joined)
    else:
        frames = _inplace.frames_in(joined)
    if frames != n:
        raise BatchError(f"{dst}: the joined file holds {frames} frames, not {n}; kept in {folder}")
    _check_replaceable(dst, overwrite)
    if os.path.isdir(dst) and not os.path.islink(dst):
        shutil.rmtree(dst)  # a zarr store napari-imseq wrote (checked), replaced with consent
    elif os.path.lexists(dst):
        os.remove(dst)
    os.replace(joined, dst)
    shutil.rmtree(folder)  # we wrote every entry of it
    if progress:
        print(f"Done: {n} frames in {len(bounds)} segments -> {dst}", file=sys.stderr)
    return {"source": src, "path": dst, "frames": n, "segments": len(bounds)}


def _check_replaceable(dst: str, overwrite: bool) -> None:
    from ..io._writer import OverwriteRefusedError
    from ..io.zarr_ import ZarrWriter

    if not os.path.lexists(dst):
        return
    if not overwrite:
        raise OverwriteRefusedError(f"{dst} exists; pass overwrite=True to replace it")
    if os.path.isdir(dst) and not os.path.islink(dst):
        owned = ZarrWriter.owned_entries(dst)
        if owned is None or set(os.listdir(dst)) - owned:
            raise OverwriteRefusedError(
                f"{dst} is a folder that holds files napari-imseq did not write; it is never "
                f"replaced: choose another name"
            )


def _join_ffv1(parts: list[str], offsets: list[float], out_path: str) -> int:
    """Copy the packets of ``parts`` (FFV1, one keyframe per packet) into ``out_path``,
    shifting each part's stamps by its offset in seconds."""
    import av

    count = 0
    with av.open(parts[0]) as first:
        template = first.streams.video[0]
        out = av.open(out_path, "w", format="matroska")
        try:
            ostream = out.add_stream_from_template(template)
            last = None
            for part, offset in zip(parts, offsets, strict=True):
                with av.open(part) as inp:
                    stream = inp.streams.video[0]
                    shift = round(offset / stream.time_base)
                    for packet in inp.demux(stream):
                        if packet.dts is None and packet.pts is None:
                            continue  # the demuxer's end-of-stream flush packet
                        pts = packet.pts + shift
                        if last is not None and pts <= last:
                            pts = last + 1
                        last = pts
                        packet.pts = packet.dts = pts
                        packet.stream = ostream
                        out.mux(packet)
                        count += 1
        finally:
            out.close()
    return count


def _join_zarr(parts: list[str], lengths: list[int], out_path: str) -> int:
    """Move the frame chunks of the zarr stores ``parts`` into the first one (renamed to
    ``out_path``) under their frame numbers; concatenate the timestamps."""
    import numpy as np
    import zarr

    os.replace(parts[0], out_path)
    root = zarr.open_group(out_path, mode="r+")
    frames, times = root["frames"], root["timestamps"]
    total = sum(lengths)
    stamps = [np.asarray(times[:])]
    chunks = os.path.join(out_path, "frames", "c")
    offset = lengths[0]
    for part, length in zip(parts[1:], lengths[1:], strict=True):
        seg = zarr.open_group(part, mode="r")
        stamps.append(np.asarray(seg["timestamps"][:]))
        if seg["frames"].shape[0] != length:
            raise BatchError(f"{part} holds {seg['frames'].shape[0]} frames, not {length}")
        for i in range(length):  # frame i of the segment: the chunk folder c/i/...
            os.replace(
                os.path.join(part, "frames", "c", str(i)), os.path.join(chunks, str(offset + i))
            )
        offset += length
    frames.resize((total, *frames.shape[1:]))
    times.resize((total,))
    times[:] = np.concatenate(stamps)
    return int(frames.shape[0])
