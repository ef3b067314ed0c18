"""The ``imseq`` command: a thin layer over the public API.

    imseq info PATH...
    imseq convert SRC DST [--start --stop --step --fps --codec --crf --display-range
                          --pipeline steps.json --overwrite]
    imseq convert SRC... --to DIR --format mkv        (batch: continues past bad files)
                          [--workers N | --scheduler ADDR] [--files-from LIST]
    imseq normalise SRC... --to DIR --method stretch|equalize|match [--per-file] [--stats F]

Errors are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse

from napari_imseq._cli_common import EXIT_ERROR, EXIT_INTERRUPTED, _err, _writer_options


def _fmt_fps(v: float | None) -> str:
    return "-" if not v else f"{v:.4g}"


def cmd_info(args: argparse.Namespace) -> int:
    import napari_imseq as imseq

    status = 0
    for path in args.paths:
        try:
            with imseq.open_sequence(path) as seq:
                md = seq.metadata
                ts = md.get("timestamps")
                duration = md.get("duration")
                if duration is None and ts is not None and len(ts) > 1:
                    duration = float(ts[-1] - ts[0])
                rows = [
                    ("format", md["format"]),
                    ("shape", "x".join(str(s) for s in seq.shape)),
                    ("dtype", str(seq.dtype)),
                    ("bit depth", str(seq.bit_depth)),
                    ("frames", str(len(seq))),
                    (
                        "fps (header)",
                        _fmt_fps(md.get("header_fps") or md.get("nominal_fps") or md.get("fps")),
                    ),
                    ("fps (timestamps)", _fmt_fps(md.get("timestamp_fps"))),
                    ("duration (s)", "-" if duration is None else f"{duration:.3f}"),
                    ("codec", md.get("codec") or md.get("source", {}).get("compression") or "-"),
                ]
                print(path)
                for key, value in rows:
                    print(f"  {key:17s} {value}")
        except Exception as err:
            _err(str(err) if str(err) else type(err).__name__)
            status = EXIT_ERROR
    return status


def cmd_convert(args: argparse.Namespace) -> int:
    import napari_imseq as imseq

    opts = _writer_options(args)
    span = {"start": args.start, "stop": args.stop, "step": args.step}
    if args.to is None:
        if len(args.paths) != 2:
            _err("convert takes SRC DST, or SRC... --to DIR --format EXT for many files")
            return EXIT_ERROR
        src, dst = args.paths
        if args.workers or args.scheduler:  # one long file, segments on dask.distributed
            from napari_imseq.batch._cli import run_convert_segments

            return run_convert_segments(args, opts, span)
        try:
            imseq.convert(
                src, dst, overwrite=args.overwrite, progress=not args.quiet, **span, **opts
            )
        except KeyboardInterrupt as err:
            _err(str(err) or "interrupted")
            return EXIT_INTERRUPTED
        except Exception as err:
            _err(str(err))
            return EXIT_ERROR
        return 0
    # batch: on dask.distributed (a LocalCluster, or --scheduler ADDR)
    from napari_imseq.batch._cli import run_convert_batch

    return run_convert_batch(args, opts, span)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imseq", description="Inspect and convert image sequences.")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser(
        "info", help="format, shape, dtype, bit depth, frames, fps, duration, codec"
    )
    info.add_argument("paths", nargs="+")
    info.set_defaults(func=cmd_info)
    conv = sub.add_parser("convert", help="convert one file, or many with --to DIR --format EXT")
    conv.add_argument("paths", nargs="*", metavar="PATH")  # none with --files-from
    conv.add_argument("--to", help="output folder for a batch")
    conv.add_argument(
        "--format", help="output extension for a batch: mkv, avi, mp4, gif, tif, zarr, seq"
    )
    conv.add_argument("--start", type=int)
    conv.add_argument("--stop", type=int)
    conv.add_argument("--step", type=int)
    conv.add_argument("--fps", type=float, help="frame rate written (default: the source's)")
    conv.add_argument(
        "--codec", help="video codec: ffv1 (default for mkv/avi), libx264, mjpeg, rawvideo ..."
    )
    conv.add_argument("--crf", type=int, help="H.264/HEVC quality (lower is better, default 18-23)")
    conv.add_argument("--display-range", help="'auto' or 'LO,HI': map wider data to 8 bits (lossy)")
    conv.add_argument(
        "--pipeline", help="a JSON pipeline of per-frame transforms (see napari_imseq.transforms)"
    )
    conv.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    conv.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    conv.set_defaults(func=cmd_convert)
    from napari_imseq.batch import _cli as batch_cli  # light: argparse only

    batch_cli.add_cluster_options(conv)
    batch_cli.add_parser(sub)
    from napari_imseq.live import _cli as live_cli  # light: no zmq, no napari

    live_cli.add_parser(sub)
    from napari_imseq.mosaic import _cli as mosaic_cli  # light: numpy, no transforms

    mosaic_cli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
