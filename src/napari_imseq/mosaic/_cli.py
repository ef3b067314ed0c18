"""``imseq mosaic``: several recordings side by side in one movie, through ``convert``'s
streaming writer path (bounded memory, ``.partial`` until a clean close, progress bar).

    imseq mosaic a.seq b.mp4 c.tif -o side_by_side.mkv --grid 1x3 --sync timestamps --fps 60 --labels
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(
            f"imseq: error: {what} takes comma-separated numbers, not {text!r}"
        ) from None


def _tile_pipelines(items: list[str] | None, count: int) -> list[Any] | None:
    if not items:
        return None
    from napari_imseq.transforms import Pipeline

    out: list[Any] = [None] * count
    for item in items:
        where, _, path = item.partition("=")
        try:
            k = int(where) - 1
        except ValueError:
            k = -1
        if not path or not 0 <= k < count:
            raise SystemExit(
                f"imseq: error: --tile-pipeline takes N=steps.json with N the source's place "
                f"(1..{count}), not {item!r}"
            )
        try:
            with open(path) as f:
                out[k] = Pipeline.from_json(f.read())
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SystemExit(f"imseq: error: {path}: {err}") from None
    return out


def mosaic_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`napari_imseq.mosaic` that the command line gives."""
    opts: dict[str, Any] = {
        "grid": args.grid,
        "sync": args.sync,
        "fps": args.fps,
        "fit": args.fit,
        "interpolation": args.interpolation,
        "span": args.span,
        "outside": "hold" if args.hold else "background",
        "absolute": args.absolute,
        "time_labels": args.time_labels,
        "gap": args.gap,
        "gray": args.gray,
        "dtype": args.dtype,
        "promote": args.promote,
        "cache": args.cache,
    }
    if args.label:
        if len(args.label) != len(args.paths):
            raise SystemExit(
                f"imseq: error: {len(args.label)} --label for {len(args.paths)} sources; give "
                f"one per source (an empty one for none)"
            )
        opts["labels"] = [text or None for text in args.label]
    else:
        opts["labels"] = args.labels
    if args.offsets:
        opts["offsets"] = _floats(args.offsets, "--offsets")
    if args.source_fps:
        rates = [r if r > 0 else None for r in _floats(args.source_fps, "--source-fps")]
        if len(rates) != len(args.paths):
            raise SystemExit(
                f"imseq: error: --source-fps has {len(rates)} rates for {len(args.paths)} "
                f"sources; give one per source (0 keeps the file's own)"
            )
        opts["source_fps"] = rates
    if args.bit_depths:
        opts["bit_depths"] = _bit_depths(args.bit_depths, len(args.paths))
    if args.cell:
        opts["cell"] = args.cell
    if args.background:
        values = _floats(args.background, "--background")
        opts["background"] = values[0] if len(values) == 1 else values
    opts["pipelines"] = _tile_pipelines(args.tile_pipeline, len(args.paths))
    return opts


def _bit_depths(text: str, n: int) -> str | list[int | str | None]:
    """``--bit-depths``: 'estimate', or one entry per source (0: the file's own)."""
    if text.strip() == "estimate":
        return "estimate"
    out: list[int | str | None] = []
    for part in text.split(","):
        part = part.strip()
        if part == "estimate":
            out.append(part)
            continue
        try:
            out.append(int(part) or None)
        except ValueError:
            raise SystemExit(
                f"imseq: error: --bit-depths {text!r}: each entry is a whole number of bits, "
                f"0 (the file's own) or 'estimate'"
            ) from None
    if len(out) != n:
        raise SystemExit(
            f"imseq: error: --bit-depths has {len(out)} entries for {n} sources; give one per "
            f"source (0 keeps the file's own) or just 'estimate'"
        )
    return out


def cmd_mosaic(args: argparse.Namespace) -> int:
    import napari_imseq as imseq
    from napari_imseq._cli_common import EXIT_ERROR, EXIT_INTERRUPTED, _err, _writer_options

    from . import mosaic

    writer_args = argparse.Namespace(**vars(args))
    writer_args.fps = None  # --fps is the mosaic's rate; the writer takes it from the mosaic
    opts = _writer_options(writer_args)
    span = {"start": args.start, "stop": args.stop, "step": args.step}
    if os.path.exists(args.output) and not args.overwrite:  # before any source is opened
        _err(f"{args.output} exists; pass --overwrite to replace it, or choose another name")
        return EXIT_ERROR
    try:
        with mosaic(args.paths, **mosaic_options(args)) as m:
            if not args.quiet:
                rows = "x".join(map(str, m.grid)) if m.grid else "positions"
                print(
                    f"mosaic: {len(m.sources)} tiles ({rows}), {m.frame_shape[1]}x"
                    f"{m.frame_shape[0]} {m.dtype}, {len(m)} frames at {m.fps:.4g} fps",
                    file=sys.stderr,
                )
            imseq.convert(
                m, args.output, overwrite=args.overwrite, progress=not args.quiet, **span, **opts
            )
    except KeyboardInterrupt as err:
        _err(str(err) or "interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:
        _err(str(err) or type(err).__name__)
        return EXIT_ERROR
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``imseq mosaic`` on the ``imseq`` command's subparsers."""
    p = subparsers.add_parser(
        "mosaic",
        help="several recordings side by side, synchronised in time, written as one movie",
        description="Compose recordings side by side in sync and write them with convert's "
        "streaming writer (lossless FFV1 for .mkv). See docs/mosaic.md.",
    )
    p.add_argument("paths", nargs="+", metavar="SRC", help="recordings, in tile order")
    p.add_argument("-o", "--output", required=True, help="output file (.mkv, .mp4, .tif ...)")
    p.add_argument("--grid", help="RxC (rows x columns), e.g. 1x3; default near-square")
    p.add_argument("--sync", choices=["timestamps", "fps", "index"], default="timestamps")
    p.add_argument("--fps", type=float, help="output frame rate (default: the fastest source)")
    p.add_argument("--offsets", help="seconds added to each source's clock: 0,0.25,-1.5")
    p.add_argument(
        "--source-fps", help="each source's frame rate, 0 for the file's own: 0,0,30 (for files "
        "that state none)",
    )  # fmt: skip
    p.add_argument(
        "--span", choices=["union", "intersection"], default="union",
        help="cover every source's time (union) or only when all run (intersection)",
    )  # fmt: skip
    p.add_argument("--hold", action="store_true", help="show first/last frames outside a source")
    p.add_argument("--absolute", action="store_true", help="sync by absolute clock timestamps")
    p.add_argument("--fit", choices=["resize", "stretch", "pad", "crop"], default="resize")
    p.add_argument(
        "--interpolation", choices=["area", "linear", "cubic", "nearest"], default="area"
    )
    p.add_argument("--cell", help="cell size HxW (default: the largest frame)")
    p.add_argument("--gap", type=int, default=0, help="pixels between cells")
    p.add_argument("--background", help="background value (or R,G,B)")
    p.add_argument("--labels", action="store_true", help="draw each source's file name")
    p.add_argument("--label", action="append", help="label text per source (repeat per source)")
    p.add_argument("--time-labels", action="store_true", help="draw each tile's time and frame")
    p.add_argument(
        "--gray", default="replicate", help="gray tiles in colour: replicate or a colormap"
    )
    p.add_argument("--dtype", help="output type, e.g. uint8 (each tile scaled from its range)")
    p.add_argument(
        "--promote", choices=["scale", "keep"], default="scale",
        help="tiles of fewer bits in a deeper mosaic: span its range (scale) or keep values",
    )  # fmt: skip
    p.add_argument(
        "--bit-depths", help="each source's significant bits, 0 for the file's own: 0,0,14; "
        "'estimate' (per source or for all) estimates them from 16 frames for 16-bit files "
        "that state none",
    )  # fmt: skip
    p.add_argument("--tile-pipeline", action="append", metavar="N=steps.json",
                   help="a JSON pipeline for source N (1-based), before it is placed")  # fmt: skip
    p.add_argument("--pipeline", help="a JSON pipeline applied to the composed frames")
    p.add_argument("--cache", help="folder for a zarr cache of composed frames")
    p.add_argument("--start", type=int)
    p.add_argument("--stop", type=int)
    p.add_argument("--step", type=int)
    p.add_argument("--codec", help="video codec: ffv1 (default for mkv/avi), libx264, ...")
    p.add_argument("--crf", type=int, help="H.264/HEVC quality")
    p.add_argument("--display-range", help="'auto' or 'LO,HI': map wider data to 8 bits (lossy)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_mosaic)
    return p
