"""Damaged files read through sources other than a path: ``bytes``, ``io.BytesIO``, an
fsspec ``memory://`` URL and (long run, a sample of cases) ``http://`` on 127.0.0.1.

The oracle is the path: every frame read from a source must equal the frame read from the
path, or both must fail cleanly (one of our error classes, naming the source); ``len()`` must
agree, and so must ``iter_frames()`` over the first frames. A source that fails to open where
the path opens (or the reverse) is a mismatch, as is any error that is not ours.
"""

from __future__ import annotations

import io
import random
import threading
import warnings
from pathlib import Path
from typing import Any

KINDS = ("bytes", "bytesio", "memory")
#: every how many cases of the long run one also reads through http:// (a local server)
HTTP_EVERY = 8


def choose(case_id: str, seed: int, long: bool) -> list[str]:
    """The sources a case reads through: all of them in the long run (plus http:// for one case
    in HTTP_EVERY), one in the CI run (rotating by case, so every kind meets every format)."""
    r = random.Random(f"{seed}:sources:{case_id}")
    if long:
        return [*KINDS, *(["http"] if r.randrange(HTTP_EVERY) == 0 else [])]
    return [r.choice(KINDS)]


def _sidecars(path: Path) -> list[Path]:
    """Files next to ``path`` that belong to it (a ``.seq.idx``): bytes cannot carry them."""
    return [p for p in path.parent.iterdir() if p != path and p.name.startswith(path.name)]


class _Http:
    """A static file server on 127.0.0.1 (range requests, which fsspec's HTTP files need)."""

    def __init__(self, root: Path):
        import functools
        import http.server

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def send_head(self):
                rng = self.headers.get("Range")
                path = self.translate_path(self.path)
                if not rng or not Path(path).is_file():
                    return super().send_head()
                data = Path(path).read_bytes()
                start, _, end = rng.removeprefix("bytes=").partition("-")
                a = int(start) if start else max(len(data) - int(end), 0)
                b = min(int(end) if (end and start) else len(data) - 1, len(data) - 1)
                if a >= len(data):
                    self.send_error(416)
                    return None
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {a}-{b}/{len(data)}")
                self.send_header("Content-Length", str(b - a + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                return io.BytesIO(data[a : b + 1])

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _open(kind: str, path: Path, fmt: str | None, extra: list) -> tuple[Any, str]:
    """The source object of ``kind`` for ``path`` and the name its errors must give."""
    data = path.read_bytes()
    if kind == "bytes":
        return data, "bytes in memory"
    if kind == "bytesio":
        return io.BytesIO(data), "<BytesIO"
    if kind == "memory":
        import fsspec

        fs = fsspec.filesystem("memory")
        root = f"/imseq-robust-{random.randrange(1 << 30):08x}"
        for p in [path, *_sidecars(path)]:
            fs.pipe(f"{root}/{p.name}", p.read_bytes())
        extra.append(lambda: fs.rm(root, recursive=True))
        url = f"memory://{root}/{path.name}"
        return url, path.name
    if kind == "http":
        server = _Http(path.parent)
        extra.append(server.close)
        return f"{server.url}/{path.name}", path.name
    raise ValueError(kind)


def read_through(
    kinds: list[str], path: Path, seqd: dict, n: int | None, it: list, describe
) -> tuple[list[str], list[tuple[str, dict]]]:
    """Read ``path`` through each source in ``kinds``; return (mismatches, errors) where the
    errors are those a user of the source sees (classified like the path's)."""
    import napari_imseq as imseq
    from tests.robustness import oracle

    mismatch: list[str] = []
    errors: list[tuple[str, dict]] = []
    fmt = path.suffix.lstrip(".") or None
    for kind in kinds:
        if kind in ("bytes", "bytesio") and _sidecars(path):
            continue  # the path reads its sidecar index; bytes have none
        extra: list = []
        try:
            src, name = _open(kind, path, fmt, extra)

            def err(e: BaseException, name=name) -> dict:
                d = describe(e, path)
                d["names_file"] = name in d["msg"] or d["names_file"]
                return d

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    seq = imseq.open_sequence(src, format=fmt)
                except Exception as e:  # noqa: BLE001 - classified
                    d = err(e)
                    errors.append((f"{kind}: open", d))
                    if n is not None:
                        mismatch.append(f"{kind}: does not open ({d['type']}: {d['msg'][:120]}) "
                                        f"but the path opens with {n} frames")  # fmt: skip
                    continue
                with seq:
                    if n is None:
                        mismatch.append(f"{kind}: opens with {len(seq)} frames, the path does not")
                        continue
                    if len(seq) != n:
                        mismatch.append(f"{kind}: {len(seq)} frames, the path has {n}")
                        continue
                    # in the order the path was read (indexing, ascending): a difference is
                    # then the source's, not the read order's (the path's random-order and
                    # threaded reads check that)
                    for i in seqd:
                        try:
                            got = ("ok", oracle.frame_hash(seq[i]))
                        except Exception as e:  # noqa: BLE001
                            got = ("err", err(e))
                            errors.append((f"{kind}: frame {i}", got[1]))
                        want = seqd[i]
                        if got[0] != want[0] or (got[0] == "ok" and got[1] != want[1]):
                            mismatch.append(
                                f"{kind}: frame {i} is "
                                f"{got[1] if got[0] == 'ok' else 'error ' + got[1]['type']} but "
                                f"the path gave "
                                f"{want[1] if want[0] == 'ok' else 'error ' + want[1]['type']}"
                            )
                            break
                    if it:
                        got_it: list[str] = []
                        try:
                            for f in seq.iter_frames(0, len(it)):
                                got_it.append(oracle.frame_hash(f))
                        except Exception as e:  # noqa: BLE001
                            errors.append((f"{kind}: iter_frames", err(e)))
                        if got_it != it[: len(got_it)] or len(got_it) < len(it):
                            mismatch.append(f"{kind}: iter_frames differs from the path's")
        finally:
            for f in extra:
                try:
                    f()
                except Exception:  # noqa: BLE001 - cleanup only
                    pass
    return mismatch, errors
