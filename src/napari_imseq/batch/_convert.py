"""Batch conversion on dask.distributed: many files as grouped tasks, or one long file as
segments encoded in parallel and joined without re-encoding."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from ..io._writer import UnsupportedWriteError, partial_path
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
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Convert one long file to FFV1 in Matroska (``dst`` ending in ``.mkv``) by encoding
    frame ranges in parallel on dask.distributed and joining them without re-encoding.

    The FFV1 writer codes every frame as a keyframe (GOP 1), so the segments join at any frame:
    their packets are copied one after the other into ``dst`` with PyAV (timestamps shifted to
    the segment's place), no frame is decoded again. Segments are written to
    ``DST.segments.partial/`` (reused by a re-run after an interruption) and the joined file as
    ``DST.partial``, renamed at the end; the segment folder is removed afterwards.
    ``segment_frames`` defaults to the frame count split in four segments per worker thread.
    """
    from ..io._registry import open_sequence

    src, dst = os.fspath(src), os.path.abspath(os.fspath(dst))
    if not dst.lower().endswith(".mkv"):
        raise UnsupportedWriteError(
            f"{dst}: segment-parallel encoding writes FFV1 in Matroska (.mkv); convert to other "
            f"formats with napari_imseq.convert"
        )
    codec = options.get("codec", "ffv1")
    if str(codec).lower() != "ffv1":
        raise UnsupportedWriteError(
            f"{dst}: segments join without re-encoding only for FFV1 (every frame a keyframe), "
            f"not {codec!r}"
        )
    if os.path.lexists(dst) and not overwrite:
        from ..io._writer import OverwriteRefusedError

        raise OverwriteRefusedError(f"{dst} exists; pass overwrite=True to replace it")
    with open_sequence(src) as seq:  # headers only
        n = len(seq)
        timestamps = seq.timestamps
        fps = seq.fps
    folder = dst + _SEGMENT_SUFFIX
    os.makedirs(folder, exist_ok=True)
    with cluster(client, workers=workers, scheduler=scheduler, quiet=not progress) as c:
        threads = max(1, sum(c.nthreads().values()))
        size = int(segment_frames) if segment_frames else max(1, -(-n // (4 * threads)))
        jobs = [
            (src, os.path.join(folder, f"{k:06d}.mkv"), a, min(n, a + size))
            for k, a in enumerate(range(0, n, size))
        ]
        report = run_tasks(
            c,
            _convert_segment,
            jobs,
            kwargs={"options": {k: v for k, v in options.items() if k != "codec"}},
            desc="segments",
            progress=progress,
            first_group=1,
            max_group=1,
        )
    if report.failed:
        job, why = report.failed[0]
        raise BatchError(
            f"{src}: segment of frames {job[2]}:{job[3]} failed: {why}; the finished segments "
            f"stay in {folder} and a re-run reuses them"
        )
    starts = [float(timestamps[a]) if timestamps is not None else a / (fps or 30.0)
              for _, _, a, _ in jobs]  # fmt: skip
    frames = _join_ffv1([j[1] for j in jobs], [s - starts[0] for s in starts], dst, overwrite)
    if frames != n:
        raise BatchError(f"{dst}: the joined file holds {frames} frames, not {n}")
    shutil.rmtree(folder)  # we wrote every entry of it
    if progress:
        print(f"Done: {n} frames in {len(jobs)} segments -> {dst}", file=sys.stderr)
    return {"source": src, "path": dst, "frames": n, "segments": len(jobs)}


def _join_ffv1(parts: list[str], offsets: list[float], dst: str, overwrite: bool) -> int:
    """Copy the packets of ``parts`` (FFV1, one keyframe per packet) into ``dst.partial``,
    shifting each part's stamps by its offset in seconds, then rename it to ``dst``."""
    import av

    partial = partial_path(dst)
    if os.path.lexists(partial):
        os.remove(partial)  # our own partial join from an interrupted run
    count = 0
    with av.open(parts[0]) as first:
        template = first.streams.video[0]
        out = av.open(partial, "w", format="matroska")
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
    if os.path.lexists(dst):
        if not overwrite:  # appeared meanwhile
            raise BatchError(f"{dst} appeared during the join; the joined file is in {partial}")
        os.remove(dst)
    os.replace(partial, dst)
    return count
