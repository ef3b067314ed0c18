"""``imseq serve SOURCE``: stream a file, a camera or a test pattern to live receivers."""

from __future__ import annotations

import argparse
import os
import sys
import time

TOKEN_ENV = "IMSEQ_LIVE_TOKEN"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="stream a file, a camera (camera[:N]) or a test pattern (pattern[:HxW]) live",
        description="Stream frames to napari-imseq receivers (napari Live widget, "
        "napari_imseq.live.Receiver). The token comes from --token-file or the "
        f"{TOKEN_ENV} environment variable (never from the command line, where other users "
        "could read it).",
    )
    p.add_argument("source", help="a file napari-imseq reads, camera[:N], or pattern[:HxW]")
    p.add_argument(
        "--address",
        default="127.0.0.1:5555",
        help="HOST:PORT to listen on (default 127.0.0.1:5555; port 0: any free port)",
    )
    p.add_argument("--codec", default="raw", choices=["raw", "lossless", "jpeg"])
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (jpeg codec)")
    p.add_argument("--fps", type=float, help="frames per second (default: the source's)")
    p.add_argument("--loop", action="store_true", help="repeat a file until interrupted")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="a file played once starts at once (default: when a receiver connects)",
    )
    p.add_argument("--count", type=int, help="stop after this many frames")
    p.add_argument("--dtype", default="uint16", help="test pattern dtype (uint8, uint16 ...)")
    p.add_argument("--pipeline", help="a JSON pipeline of per-frame transforms")
    p.add_argument("--token-file", help="file holding the shared secret")
    p.set_defaults(func=cmd_serve)  # fmt: skip


def _token(args) -> str | None:
    if args.token_file:
        try:
            with open(args.token_file) as f:
                return f.read().strip() or None
        except OSError as err:
            raise SystemExit(
                f"imseq: error: --token-file {args.token_file}: {err.strerror}"
            ) from None
    return os.environ.get(TOKEN_ENV) or None


def cmd_serve(args: argparse.Namespace) -> int:
    from . import Sender
    from ._serve import open_source, serve

    transform = None
    if args.pipeline:
        from ..transforms import Pipeline

        try:
            with open(args.pipeline) as f:
                transform = Pipeline.from_json(f.read())
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"imseq: error: {args.pipeline}: {err}", file=sys.stderr)
            return 1
    try:
        source = open_source(args.source, loop=args.loop, dtype=args.dtype, fps=args.fps)
        sender = Sender(args.address, codec=args.codec, token=_token(args), quality=args.quality,
                        fps=args.fps or source.fps, bit_depth=source.bit_depth or None)  # fmt: skip
    except Exception as err:
        print(f"imseq: error: {err}", file=sys.stderr)
        return 1
    print(f"serving {args.source} on {sender.address} ({args.codec}, "
          f"{args.fps or source.fps:g} fps); Ctrl-C stops", flush=True)  # fmt: skip
    status = 0
    try:
        from ._serve import FileSource

        if isinstance(source, FileSource) and not args.loop and not args.no_wait:
            print("waiting for a receiver ...", flush=True)
            while sender.receivers == 0:
                time.sleep(0.05)
        n = serve(source, sender, fps=args.fps, count=args.count, transform=transform)
        print(f"sent {n} frames", flush=True)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    except Exception as err:
        print(f"imseq: error: {err}", file=sys.stderr)
        status = 1
    finally:
        sender.close()
    return status
