"""What one case does inside its subprocess: make the file, damage it, decode it
independently, read it with napari_imseq in every way a user can, and classify the result."""

from __future__ import annotations

import logging
import math
import os
import random
import tempfile
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from . import corpus, mutations, oracle, sources

#: frames compared one by one; longer sequences are sampled (first, last and random ones)
MAX_PROBED = 48
#: frames sampled from a longer sequence (random access to a long-GOP video costs a GOP each)
SAMPLED = 12


def describe(err: BaseException, path: str | os.PathLike) -> dict[str, Any]:
    from napari_imseq.io._base import SequenceError

    msg = str(err)
    name = os.path.basename(os.fspath(path).rstrip("/"))
    return {
        "type": f"{type(err).__module__}.{type(err).__qualname__}",
        "ours": isinstance(err, SequenceError),
        "names_file": bool(name) and name in msg,
        "memory": isinstance(err, MemoryError),
        "msg": msg[:300],
        "where": traceback.extract_tb(err.__traceback__)[-1].filename.split("site-packages/")[-1]
        if err.__traceback__
        else "",
    }


def _indices(n: int, seed: int) -> list[int]:
    if n <= MAX_PROBED:
        return list(range(n))
    r = random.Random(seed)
    pick = set(range(3)) | set(range(n - 3, n))
    while len(pick) < SAMPLED:
        pick.add(r.randrange(n))
    return sorted(pick)


def _read(seq, i: int, path) -> tuple[str, Any]:
    try:
        return ("ok", oracle.frame_hash(seq[i]))
    except Exception as err:  # noqa: BLE001 - classified, not hidden
        return ("err", describe(err, path))


def read_everything(
    path: Path, seed: int, race: bool = False, convert: bool = False
) -> dict[str, Any]:
    """Open, metadata, indexing, iter_frames, cold random order, 4 threads, (``race``)
    close() while 4 threads read, and (``convert``) ``imseq.convert`` to zarr: every outcome."""
    import napari_imseq as imseq

    out: dict[str, Any] = {"errors": [], "mismatch": []}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            seq = imseq.open_sequence(path)
        except Exception as err:  # noqa: BLE001
            out["open_error"] = describe(err, path)
            out["warnings"] = _warnings(rec)
            return out
        try:
            n = len(seq)
            out["n"] = n
            meta = seq.metadata
            fps = meta.get("fps")
            ts = seq.timestamps
            if fps is not None and not (
                isinstance(fps, int | float) and math.isfinite(fps) and fps > 0
            ):
                out["mismatch"].append(f"metadata fps is {fps!r} (not None or finite positive)")
            if ts is not None and len(ts) != n:
                out["mismatch"].append(f"{len(ts)} timestamps for {n} frames")
        except Exception as err:  # noqa: BLE001
            out["errors"].append(("metadata", describe(err, path)))
            n = out.get("n", 0)
        idx = _indices(n, seed)
        out["indices"] = idx
        seqd = {i: _read(seq, i, path) for i in idx}
        out["seq"] = seqd
        # iter_frames over the first frames, compared with indexing
        stop = min(n, oracle.MAX_FRAMES)
        it: list[str] = []
        try:
            for f in seq.iter_frames(0, stop):
                it.append(oracle.frame_hash(f))
        except Exception as err:  # noqa: BLE001
            out["errors"].append((f"iter_frames at {len(it)}", describe(err, path)))
            if len(it) < stop and seqd.get(len(it), ("err",))[0] == "ok":
                out["mismatch"].append(
                    f"iter_frames raised at frame {len(it)} which indexing reads"
                )
        else:
            if len(it) != stop:
                out["mismatch"].append(f"iter_frames gave {len(it)} frames, len() is {n}")
        out["iter"] = it
        for i, h in enumerate(it):
            if i in seqd and seqd[i][0] == "ok" and seqd[i][1] != h:
                out["mismatch"].append(f"iter_frames frame {i} differs from seq[{i}]")
        seq.close()
        # a cold reader in random order, then a cold reader shared by 4 threads
        order = list(idx)
        random.Random(seed + 1).shuffle(order)
        for label, threads in (("random order", 0), ("4 threads", 4)):
            try:
                other = imseq.open_sequence(path)
            except Exception as err:  # noqa: BLE001
                out["errors"].append((f"reopen for {label}", describe(err, path)))
                continue
            with other:
                if threads:
                    with ThreadPoolExecutor(threads) as ex:
                        got = dict(
                            zip(
                                order,
                                ex.map(lambda i, o=other: _read(o, i, path), order),
                                strict=True,
                            )
                        )
                else:
                    got = {i: _read(other, i, path) for i in order}
            for i in idx:
                a, b = seqd[i], got[i]
                if a[0] != b[0] or (a[0] == "ok" and a[1] != b[1]):
                    out["mismatch"].append(
                        f"{label}: frame {i} is {_short(b)} but sequential indexing gave {_short(a)}"
                    )
                    break
            out["errors"] += [
                (f"{label} frame {i}", v[1]) for i, v in got.items() if v[0] == "err"
            ][:1]
        if race:
            _dask_and_pickle(path, seqd, out)
            _close_race(path, seqd, seed, out)
        if convert and 0 < n <= 200 and all(v[0] == "ok" for v in seqd.values()):
            _convert(path, seqd, n, out)
        out["warnings"] = _warnings(rec)
    return out


def _convert(path: Path, seqd: dict, n: int, out: dict) -> None:
    """``convert`` writes the frames the reader reads, all of them (the warnings are the
    reader's, raised in the same process)."""
    import zarr

    import napari_imseq as imseq

    dst = path.parent.parent / "converted.zarr"
    try:
        imseq.convert(path, dst, progress=False)
    except Exception as err:  # noqa: BLE001
        out["errors"].append(("convert", describe(err, path)))
        return
    frames = zarr.open_group(str(dst), mode="r")["frames"]
    if frames.shape[0] != n:
        out["mismatch"].append(f"convert wrote {frames.shape[0]} frames, the reader has {n}")
        return
    for i, v in seqd.items():
        if oracle.frame_hash(frames[i]) != v[1]:
            out["mismatch"].append(f"convert wrote another frame {i} than seq[{i}]")
            return


def _dask_and_pickle(path: Path, seqd: dict, out: dict) -> None:
    """The lazy array napari gets (computed on threads) and a pickled copy (what a process
    worker gets) give the frames indexing gives."""
    import pickle

    import napari_imseq as imseq

    good = [i for i, v in seqd.items() if v[0] == "ok"]
    if not good:
        return
    try:
        arr = imseq.imread(path)
        got = arr[good].compute(scheduler="threads")
        for i, frame in zip(good, got, strict=True):
            if oracle.frame_hash(frame) != seqd[i][1]:
                out["mismatch"].append(f"imread(...)[{i}] computed by dask differs from seq[{i}]")
                break
        with imseq.open_sequence(path) as seq:
            clone = pickle.loads(pickle.dumps(seq))
            with clone:
                if oracle.frame_hash(clone[good[-1]]) != seqd[good[-1]][1]:
                    out["mismatch"].append(f"a pickled sequence reads another frame {good[-1]}")
    except Exception as err:  # noqa: BLE001
        out["errors"].append(("dask/pickle", describe(err, path)))


def _close_race(path: Path, seqd: dict, seed: int, out: dict) -> None:
    """close() while 4 threads read, then grab the freed descriptors with another file: every
    read returns the right frame or raises one of our errors (never another file's bytes)."""
    import threading

    import napari_imseq as imseq
    from napari_imseq.io._base import SequenceError

    good = [i for i, v in seqd.items() if v[0] == "ok"]
    if not good:
        return
    decoy = path.parent.parent / "decoy.bin"
    size = path.stat().st_size if path.is_file() else 1 << 20
    decoy.write_bytes(random.Random(seed).randbytes(max(size, 1 << 16)))
    seq = imseq.open_sequence(path)
    stop = threading.Event()
    problems: list[str] = []

    def worker(j: int) -> None:
        r = random.Random(seed + j)
        while not stop.is_set():
            i = r.choice(good)
            try:
                h = oracle.frame_hash(seq[i])
            except SequenceError:
                continue
            except Exception as err:  # noqa: BLE001
                info = describe(err, path)
                problems.append(f"close() during reads: {info['type']}: {info['msg']}")
                return
            if h != seqd[i][1]:
                problems.append(f"close() during reads: frame {i} came back with other bytes")
                return

    threads = [threading.Thread(target=worker, args=(j,), daemon=True) for j in range(4)]
    for t in threads:
        t.start()
    stop.wait(0.05)
    seq.close()
    fds = [os.open(decoy, os.O_RDONLY) for _ in range(8)]
    stop.wait(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    for fd in fds:
        os.close(fd)
    if any(t.is_alive() for t in threads):
        problems.append("close() during reads: a reading thread did not finish within 10 s")
    raw = [p for p in problems if "other bytes" not in p and "did not finish" not in p]
    if raw:
        out["errors"].append(("close race", {"type": raw[0].split(":")[1].strip(), "ours": False,
                                             "names_file": False, "memory": False, "msg": raw[0],
                                             "where": ""}))  # fmt: skip
    out["mismatch"] += [p for p in problems if p not in raw][:1]


def _short(r) -> str:
    return r[1] if r[0] == "ok" else f"error {r[1]['type']}"


def _warnings(rec) -> list[tuple[str, str]]:
    return [(w.category.__name__, str(w.message)[:200]) for w in rec]


def compare(outcome: dict, alternatives: list[oracle.Alternative] | None) -> list[str]:
    """Problems of the reader's frames against the independent reference (empty: exact)."""
    if "open_error" in outcome or alternatives is None:
        return []
    seqd, n = outcome["seq"], outcome.get("n", 0)
    warned = any(w[0] == "SequenceWarning" for w in outcome["warnings"])
    best: list[str] | None = None
    for alt in alternatives:
        probs = []
        ref = alt.hashes
        for i, (kind, val) in seqd.items():
            if kind != "ok":
                continue
            if i >= oracle.MAX_FRAMES:
                continue  # beyond what a reference decodes
            if i >= len(ref):
                probs.append(f"frame {i} returned but the {alt.what} has only {len(ref)} frames")
            elif ref[i] == oracle.UNKNOWN:
                continue
            elif ref[i] is None:
                probs.append(f"frame {i} returned but its data is not readable ({alt.what})")
            elif ref[i] != val:
                probs.append(f"frame {i} differs from the {alt.what}")
        readable = [i for i, h in enumerate(ref) if h is not None and h != oracle.UNKNOWN]
        if n < (readable[-1] + 1 if readable else 0) and not warned:
            probs.append(f"{n} frames without a SequenceWarning; the {alt.what} reads {len(readable)} "
                         f"of {len(ref)}")  # fmt: skip
        if alt.need_warning and not warned:
            probs.append(f"{alt.what}: frames dropped without a SequenceWarning")
        if not probs:
            return []
        if best is None:
            best = probs
    return best or []


def classify(outcome: dict, problems: list[str]) -> tuple[str, list[str]]:
    errs = (
        ([("open", outcome["open_error"])] if "open_error" in outcome else [])
        + [e for e in outcome.get("errors", [])]
        + [(f"seq[{i}]", v[1]) for i, v in outcome.get("seq", {}).items() if v[0] == "err"][:3]
    )
    details = list(outcome.get("mismatch", [])) + problems
    if any(e[1]["memory"] for e in errs):
        e = next(e for e in errs if e[1]["memory"])
        return "memory", [f"{e[0]}: {e[1]['type']}: {e[1]['msg']}"] + details
    if details:
        return "wrong", details[:6]
    raw = [e for e in errs if not (e[1]["ours"] and e[1]["names_file"])]
    if raw:
        e = raw[0]
        extra = "" if not e[1]["ours"] else " (our class, but the message does not name the file)"
        return "raw_error", [f"{e[0]}: {e[1]['type']}{extra}: {e[1]['msg']} [{e[1]['where']}]"]
    if errs:
        e = errs[0]
        return "clean_error", [f"{e[0]}: {e[1]['type']}: {e[1]['msg'][:160]}"]
    return "exact", []


#: what each alternative of ``oracle.decode_all`` is, by reference kind
_ALT_NAMES = {
    "tiff": ("page-by-page reference", "tifffile series reference", "undamaged layout reference"),
    "pyav": (
        "reference",
        "second reference (GIF: RGB without declared transparency; video: "
        "the decoder's output order)",
    ),
    "jpegseq": ("reference", "reference cut at the header's frame count"),
}


def references(base, applied: mutations.Applied, pristine: list | None) -> list | None:
    """The acceptable outcomes; ``pristine`` holds those of the undamaged file."""
    if applied.mode == "none":
        return None
    if applied.mode == "pristine":
        refs = pristine
    else:
        try:
            refs = oracle.decode_all(base, Path(base.path), applied.layout)
        except oracle.RefUnavailable:
            return None
    alts = []
    for k, ref in enumerate(refs):
        ref = list(ref)
        names = _ALT_NAMES.get(base.ref, ())
        what = names[k] if applied.mode != "pristine" and k < len(names) else "reference"
        for i in applied.unreadable:
            if i < len(ref):
                ref[i] = None
        alts.append(oracle.Alternative(ref, False, what))
        for i in applied.drop_allowed:
            if i < len(ref):
                alts.append(
                    oracle.Alternative(
                        ref[:i] + ref[i + 1 :], True, what + " without the bad image"
                    )
                )
    if applied.mode != "pristine":
        pages = oracle.tiff_pages_as_frames(base, Path(base.path), applied.layout)
        if pages is not None:  # the layout lost with a warning: pages read as frames
            alts.append(oracle.Alternative(pages, True, "page-by-page reference, a page a frame"))
    return alts


def run_case(case: dict, send) -> dict:
    """Everything one case does; ``send(phase)`` reports progress to the parent."""
    from . import misuse

    work = (
        Path(case["work"]) if case.get("work") else Path(tempfile.mkdtemp(prefix="imseq-robust-"))
    )
    os.environ["NAPARI_IMSEQ_CACHE_DIR"] = str(work / "cache")
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    if case["base"].startswith("selftest_"):
        return _selftest(case, work, send)
    if case["base"].startswith("misuse_"):
        send("misuse")
        cls, details = misuse.run(case["base"], work)
        return {"cls": cls, "details": details}
    d = work / "data"
    d.mkdir()
    send("generate")
    gen = corpus.GENERATORS[case["base"]]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = gen(d)
    except corpus.GeneratorUnavailable as err:
        return {"cls": "skipped", "details": [str(err)]}
    except Exception as err:  # noqa: BLE001
        info = describe(err, d)
        frames = traceback.extract_tb(err.__traceback__)
        our_writer = info["ours"] or any("napari_imseq" in f.filename for f in frames)
        if info["ours"] and info["names_file"]:
            return {
                "cls": "clean_error",
                "details": [f"writer refused: {info['type']}: {info['msg'][:160]}"],
            }
        if our_writer:
            return {
                "cls": "raw_error",
                "details": [f"writer: {info['type']}: {info['msg']} [{info['where']}]"],
            }
        return {"cls": "harness_error", "details": [f"generator: {info['type']}: {info['msg']}"]}
    if base.ref == "special":
        send("read")
        outcome = read_everything(Path(base.path), case["seed"])
        if "open_error" not in outcome:
            return {
                "cls": "wrong",
                "details": [f"opened as a sequence of {outcome.get('n')} frames"],
            }
        return dict(zip(("cls", "details"), classify(outcome, []), strict=True))
    send("reference")
    spec = case["mutation"]
    pristine = None
    if spec["kind"] == "none" or spec["kind"] in ("seq_field", "zarr_ts", "folder"):
        if base.truth is not None:
            pristine = [oracle.hashes(list(base.truth))]
        else:
            try:
                pristine = oracle.decode_all(base, Path(base.path), base.layout)
            except oracle.RefUnavailable as err:
                return {
                    "cls": "harness_error",
                    "details": [f"no reference for the undamaged file: {err}"],
                }
    send("mutate")
    applied = mutations.apply(base, spec, case["seed"])
    if applied.mode == "skip":
        return {"cls": "skipped", "details": [applied.note]}
    send("reference")
    try:
        alts = references(base, applied, pristine)
    except BaseException as err:  # noqa: BLE001 - a reference decoder's failure is not ours
        return {"cls": "harness_error", "details": [f"reference: {type(err).__name__}: {err}"]}
    send("read")
    outcome = read_everything(
        Path(base.path),
        case["seed"],
        race=spec["kind"] == "none",
        convert=spec["kind"] in ("truncate", "idx", "seq_field", "append"),
    )
    if case.get("sources") and Path(base.path).is_file():
        # the same damaged file through bytes, BytesIO, memory:// (http://): as the path reads
        send("sources")
        mism, errs = sources.read_through(
            case["sources"], Path(base.path), outcome.get("seq", {}), outcome.get("n"),
            outcome.get("iter", []), describe,
        )  # fmt: skip
        outcome["mismatch"] = outcome.get("mismatch", []) + mism
        outcome["errors"] = outcome.get("errors", []) + errs[:2]
    problems = compare(outcome, alts)
    if spec["kind"] == "none" and "open_error" in outcome:
        e = outcome["open_error"]
        problems.append(f"the undamaged file does not open: {e['type']}: {e['msg'][:200]}")
    cls, details = classify(outcome, problems)
    if spec["kind"] == "none" and cls == "clean_error":
        cls = "wrong"
        details = ["the undamaged file gave an error: " + details[0]]
    if applied.note:
        details.append(f"mutation: {applied.note}")
    details.append(f"reference: {'none (consistency only)' if alts is None else applied.mode}; "
                   f"reader: {outcome.get('n', '-')} frames, warnings {[w[1][:80] for w in outcome.get('warnings', [])][:2]}")  # fmt: skip
    return {"cls": cls, "details": details}


def _selftest(case: dict, work: Path, send) -> dict:
    """Faults planted on purpose, to prove the harness sees each class (tests only)."""
    kind = case["base"]
    send("read")
    if kind == "selftest_hang":
        import time

        time.sleep(3600)
    if kind == "selftest_crash":
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "selftest_memory":
        np.ones(8 << 30, np.uint8)  # beyond the cap
    if kind == "selftest_exit":
        os._exit(3)
    if kind == "selftest_wrong":
        # the undamaged reference, but a pixel changed behind its back
        d = work / "data"
        d.mkdir()
        base = corpus.seq_raw8(d)
        pristine = [oracle.hashes(list(base.truth))]
        with open(base.path, "r+b") as f:
            f.seek(base.layout["start"] + base.layout["stride"] + 5)
            f.write(b"\x01")
        applied = mutations.Applied("pristine", base.layout)
        outcome = read_everything(Path(base.path), case["seed"])
        cls, details = classify(outcome, compare(outcome, references(base, applied, pristine)))
        return {"cls": cls, "details": details}
    raise ValueError(kind)
