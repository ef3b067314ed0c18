"""``imseq convert SRC... --to DIR`` on dask.distributed, and ``imseq normalise``.

Only argparse is imported here at start-up; dask.distributed is imported by the commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _err(message: str) -> None:
    print(f"imseq: error: {message}", file=sys.stderr)


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    """--workers, --scheduler and --files-from, shared by the batch commands."""
    p.add_argument(
        "--workers",
        type=int,
        help="batch: worker processes of a local dask cluster (default: one per core); with "
        "SRC DST (.mkv, .zarr, .tif): one file written in segments in parallel",
    )
    p.add_argument(
        "--scheduler",
        help="batch: address of a running dask scheduler (tcp://host:8786); paths are opened "
        "on its workers; with SRC DST: one file in segments on that cluster",
    )
    p.add_argument(
        "--files-from",
        metavar="LIST",
        help="batch: a text file of input paths, one per line (read lazily; for 10^5+ files)",
    )


def _sources(args: argparse.Namespace) -> Any:
    from ._normalise import FileList

    if args.files_from:
        listed = FileList(args.files_from)
        return listed if not args.paths else [*args.paths, *listed]
    return list(args.paths)


def _guarded(func: Any, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """``(func(...), 0)``, or ``(None, exit status)`` after printing the error in one line."""
    try:
        return func(*args, **kwargs), 0
    except KeyboardInterrupt as err:
        _err(str(err) or "interrupted")
        return None, EXIT_INTERRUPTED
    except Exception as err:
        _err(str(err) or type(err).__name__)
        return None, EXIT_ERROR


def _finish(report: Any, verb: str, to: str) -> int:
    total = report.total
    skipped = f" ({len(report.skipped)} already complete)" if report.skipped else ""
    print(
        f"Done: {len(report.done) + len(report.skipped)} of {total} files {verb} to "
        f"{to}{skipped} in {report.seconds:.1f} s",
        file=sys.stderr,
    )
    for src, why in report.failed:
        _err(why if str(src) in why else f"{src}: {why}")
    return EXIT_ERROR if report.failed else 0


def run_convert_batch(args: argparse.Namespace, opts: dict[str, Any], span: dict) -> int:
    """The batch form of ``imseq convert`` (called by cli.cmd_convert)."""
    from ._convert import convert_batch

    if not args.format:
        _err("--to needs --format (e.g. mkv, tif, zarr)")
        return EXIT_ERROR
    if not args.paths and not args.files_from:
        _err("convert --to DIR needs input files (SRC... or --files-from LIST)")
        return EXIT_ERROR
    span = {k: v for k, v in span.items() if v is not None}
    report, status = _guarded(
        convert_batch,
        _sources(args),
        args.to,
        args.format,
        workers=args.workers,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        progress=not args.quiet,
        keep_results=False,
        **span,
        **opts,
    )
    return status if report is None else _finish(report, "converted", args.to)


def run_convert_segments(args: argparse.Namespace, opts: dict[str, Any], span: dict) -> int:
    """``imseq convert SRC DST --workers N`` (or ``--scheduler``): one long file written in
    segments in parallel (called by cli.cmd_convert)."""
    from ._convert import convert_segments

    src, dst = args.paths
    _, status = _guarded(
        convert_segments,
        src,
        dst,
        workers=args.workers,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        progress=not args.quiet,
        **{k: v for k, v in span.items() if v is not None},
        **opts,
    )
    return status


def cmd_normalise(args: argparse.Namespace) -> int:
    from ._normalise import normalise

    try:
        lo, hi = (float(v) for v in args.percentiles.split(","))
    except ValueError:
        _err(f"--percentiles takes 'LOW,HIGH' such as 0.5,99.5, not {args.percentiles!r}")
        return EXIT_ERROR
    if not args.paths and not args.files_from:
        _err("normalise needs input files (SRC... or --files-from LIST)")
        return EXIT_ERROR
    report, status = _guarded(
        normalise,
        _sources(args),
        args.to,
        method=args.method,
        per_file=args.per_file,
        stats=args.stats,
        percentiles=(lo, hi),
        channels=args.channels,
        reference=args.reference,
        format=args.format,
        max_files=args.max_files,
        workers=args.workers,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    if report is None:
        return status
    if not args.quiet:
        s = report.stats
        if s.get("scope") == "global":
            sample = s["sample"]
            print(
                f"Statistics: {sample['files']} of {sample['files_total']} files sampled, "
                f"{sample['fraction']:.1%} of the pixels, in {report.stats_seconds:.1f} s",
                file=sys.stderr,
            )
    return _finish(report, "normalised", args.to)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "normalise",
        help="normalise many files (stretch, equalize, match) from subsample statistics",
        description="Normalise images and sequences on dask.distributed: statistics from a "
        "subsample (saved as JSON, reusable), then every file mapped in parallel.",
    )
    p.add_argument("paths", nargs="*", metavar="SRC")
    p.add_argument("--to", required=True, help="output folder (same file names)")
    p.add_argument("--method", choices=("stretch", "equalize", "match"), default="stretch")
    p.add_argument(
        "--per-file", action="store_true", help="each file's own statistics (default: global)"
    )
    p.add_argument(
        "--stats",
        help="statistics JSON: reused when it exists, written when not (default TO/imseq-stats.json)",
    )
    p.add_argument("--percentiles", default="0.5,99.5", help="stretch: LOW,HIGH (default 0.5,99.5)")
    p.add_argument(
        "--channels",
        choices=("joint", "per-channel", "luminance"),
        help="colour: one mapping for all channels (stretch default), one per channel, or on "
        "luminance (equalize/match default)",
    )
    p.add_argument("--reference", help="match: the image or sequence whose histogram to match")
    p.add_argument("--format", help="output extension (default: the input's)")
    p.add_argument(
        "--max-files", type=int, default=500, help="global statistics: files sampled (default 500)"
    )
    add_cluster_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_normalise)
    return p


__all__ = [
    "add_cluster_options",
    "add_parser",
    "cmd_normalise",
    "run_convert_batch",
    "run_convert_segments",
]
