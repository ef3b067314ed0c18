"""What every ``imseq`` subcommand shares (exit codes, one-line errors, writer options), so
the subcommands in their own packages never import the ``cli`` module that registers them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _err(message: str) -> None:
    print(f"imseq: error: {message}", file=sys.stderr)


def _writer_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if args.fps is not None:  # the writer refuses 0, negative, NaN and inf
        opts["fps"] = args.fps
    if args.codec:
        opts["codec"] = args.codec
    if args.crf is not None:
        opts["crf"] = args.crf
    if args.display_range:
        if args.display_range == "auto":
            opts["display_range"] = "auto"
        else:
            try:
                lo, hi = (float(v) for v in args.display_range.split(","))
            except ValueError:
                raise SystemExit(
                    f"imseq: error: --display-range takes 'auto' or 'LO,HI', not {args.display_range!r}"
                ) from None
            opts["display_range"] = (lo, hi)
    if args.pipeline:
        from napari_imseq.transforms import Pipeline

        try:
            with open(args.pipeline) as f:
                opts["transform"] = Pipeline.from_json(f.read())
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SystemExit(f"imseq: error: {args.pipeline}: {err}") from None
    return opts
