"""Cases, the capped subprocess each runs in, and the pool that runs them.

Every case runs in a fresh process forked from a *forkserver* that imported numpy, PyAV,
tifffile, zarr and napari_imseq once (a clean single-threaded parent, so a fork is safe and
costs milliseconds instead of a 1.5 s interpreter start). The child sets ``RLIMIT_AS`` to its
starting address space plus the memory cap, reports its phase through a pipe, and is killed at
the timeout. Outcome classes:

exact, clean_error (one of our error classes naming the file), wrong, hang, crash, memory,
raw_error, data_loss; plus skipped (a sample is absent, or the mutation does not apply) and
harness_error (a third-party generator or reference failed: not the reader's fault).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import resource
import shutil
import signal
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from . import corpus, mutations, sources

GOOD = ("exact", "clean_error", "skipped")
BAD = ("wrong", "hang", "crash", "memory", "raw_error", "data_loss", "harness_error")
CLASSES = ("exact", "clean_error", "wrong", "hang", "crash", "memory", "raw_error", "data_loss",
           "harness_error", "skipped")  # fmt: skip

SAMPLE_SLOW = (
    "sample_imageio_cockatoo",
    "sample_dlc_tests_vid",
    "sample_mediaconch_ffv1_gray_coder-1_level-3",
)


@dataclass
class Settings:
    seed: int = 20261123
    long: bool = False
    timeout: float = 20.0
    memory: int = 2 << 30
    jobs: int = 2


def build_cases(s: Settings) -> list[dict]:
    """Every case, deterministic for a seed: generators x mutations, then API misuse."""
    from . import misuse

    rng = random.Random(s.seed)
    cases = []
    for name, gen in corpus.GENERATORS.items():
        ref = _ref_kind(name, gen)
        specs = mutations.enumerate_mutations(ref, name, random.Random(f"{s.seed}:{name}"), s.long)
        if name.startswith("sample_") and (not s.long or name in SAMPLE_SLOW):
            # the real files: undamaged plus a few cuts and flips (they are the slow ones)
            keep = [{"kind": "none"}, {"kind": "truncate", "at": "mid"},
                    {"kind": "truncate", "at": "last_frame"}]  # fmt: skip
            flips = [sp for sp in specs if sp["kind"] == "flip"][:1]
            specs = [sp for sp in specs if sp in keep] + flips
            if name in SAMPLE_SLOW and not s.long:
                specs = specs[:1]
        through = ref not in ("folder", "zarr", "special") and name not in SAMPLE_SLOW
        for spec in specs:
            cid = f"{name}:{mutations.spec_id(spec)}"
            cases.append({"id": cid, "base": name, "mutation": spec,
                          "seed": rng.randrange(1 << 30),
                          "sources": sources.choose(cid, s.seed, s.long) if through else []})  # fmt: skip
    for name in misuse.CASES:
        cases.append({"id": name, "base": name, "mutation": {"kind": "misuse"}, "seed": 0})
    return cases


def _ref_kind(name: str, gen) -> str:
    """The reference kind of a generator, from its name (no file is written in the parent)."""
    if name.startswith(("seq_jpeg",)):
        return "jpegseq"
    if "_writer_fps_" in name or name.startswith("rt_"):
        return "writer"
    fam = corpus.family(name)
    return {"seq": "rawseq", "tiff": "tiff", "zarr": "zarr", "folder": "folder",
            "special files": "special"}.get(fam, "pyav")  # fmt: skip


def _child(case: dict, conn, memory: int) -> None:
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        vm = 0
    resource.setrlimit(resource.RLIMIT_AS, (vm + memory, resource.RLIM_INFINITY))
    os.setsid()  # threads and helpers die with the group
    from .probe import run_case

    def send(phase: str) -> None:
        conn.send(("phase", phase))

    try:
        result = run_case(case, send)
    except MemoryError as err:
        result = {"cls": "memory", "details": [f"MemoryError in the case: {err}"]}
    except BaseException as err:  # noqa: BLE001 - the harness reports, never crashes
        import traceback

        result = {
            "cls": "harness_error",
            "details": [traceback.format_exc()[-600:]],
            "err": repr(err),
        }
    conn.send(("result", result))
    conn.close()
    # os._exit skips multiprocessing's finalizers: named semaphores made in the case (numcodecs'
    # blosc mutex, made on first use) would stay registered with the resource tracker, which then
    # warns of hundreds of "leaked semaphore objects" at the end of a run; release them first
    from multiprocessing import util

    util._run_finalizers(0)
    os._exit(0)


_CTX = None


def context():
    global _CTX
    if _CTX is None:
        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(
            [
                "numpy",
                "av",
                "tifffile",
                "zarr",
                "imagecodecs",
                "PIL.Image",
                "napari_imseq",
                "tests.robustness.probe",
            ]  # fmt: skip
        )
    return _CTX


def run_cases(cases: list[dict], s: Settings, progress=None) -> list[dict]:
    """Run ``cases`` ``s.jobs`` at a time; return one result dict per case, in order."""
    ctx = context()
    pending = list(enumerate(cases))
    running: dict = {}
    results: list[dict | None] = [None] * len(cases)
    works: dict[int, str] = {}
    started: dict[int, float] = {}
    while pending or running:
        while pending and len(running) < s.jobs:
            k, case = pending.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            work = tempfile.mkdtemp(prefix="imseq-robust-")
            case = {**case, "work": work}
            p = ctx.Process(target=_child, args=(case, child, s.memory), daemon=True)
            p.start()
            child.close()
            running[k] = (p, parent, time.monotonic() + _limit(case, s), ["start"], None)
            works[k] = work
            started[k] = time.monotonic()
        time.sleep(0.005)
        for k in list(running):
            p, conn, deadline, phase, result = running[k]
            result = _drain(conn, phase, result)
            running[k] = (p, conn, deadline, phase, result)
            if result is not None and not p.is_alive():
                pass
            elif p.is_alive() and time.monotonic() < deadline:
                continue
            elif p.is_alive():
                _kill(p)
                limit = _limit(cases[k], s)
                result = {
                    "cls": "hang",
                    "details": [f"no result after {limit:.0f} s (phase: {phase[0]})"],
                }
                if phase[0] == "reference":
                    result = {
                        "cls": "harness_error",
                        "details": ["the independent reference timed out"],
                    }
            elif result is None:
                p.join()
                # the child may have sent its result between our poll above and its exit:
                # what it wrote stays readable in the pipe after it is gone
                result = _drain(conn, phase, result)
            if result is None and not p.is_alive() and p.exitcode is not None:
                code = p.exitcode
                if code is not None and code < 0:
                    sig = signal.Signals(-code).name
                    result = {"cls": "crash", "details": [f"killed by {sig} in phase {phase[0]}"]}
                else:
                    result = {
                        "cls": "crash",
                        "details": [f"exit code {code} without a result (phase {phase[0]})"],
                    }
            p.join(1)
            conn.close()
            del running[k]
            shutil.rmtree(works.pop(k), ignore_errors=True)
            case = cases[k]
            seconds = round(time.monotonic() - started.pop(k), 2)
            results[k] = {**case, "family": family_of(case), "seconds": seconds, **result}
            if progress:
                progress(results[k])
    return results  # type: ignore[return-value]


def _drain(conn, phase: list, result):
    """Read every message waiting in a child's pipe: phases update ``phase[0]``; the last
    result wins."""
    try:
        while conn.poll():
            kind, val = conn.recv()
            if kind == "phase":
                phase[0] = val
            else:
                result = val
    except (EOFError, OSError):
        pass
    return result


def _limit(case: dict, s: Settings) -> float:
    return s.timeout * (6 if case["base"].startswith("sample_") else 1)


def _kill(p) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        p.kill()
    p.join(5)


def family_of(case: dict) -> str:
    if case["base"].startswith("misuse_"):
        return "api misuse"
    return corpus.family(case["base"])


def counts(results: list[dict]) -> dict[str, Counter]:
    out: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        out[r["family"]][r["cls"]] += 1
    return out


def failures(results: list[dict]) -> list[dict]:
    return [r for r in results if r["cls"] in BAD]


def repro(r: dict, s: Settings) -> str:
    flag = " --long" if s.long else ""
    return f"python3 -m tests.robustness.run --seed {s.seed}{flag} --only '{r['id']}' -v"
