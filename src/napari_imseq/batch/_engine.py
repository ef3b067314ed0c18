"""Streaming many small jobs through dask.distributed.

The file list is consumed lazily: at most ``2 x threads + 2`` tasks are in flight (submitted
with ``client.submit`` and collected with ``as_completed``), so a list of a million files never
becomes a graph of a million tasks. Files are grouped into tasks; the group size adapts to the
measured cost per file so that one task lasts about ``target_seconds`` (0.5 s by default), which
keeps the scheduler's per-task overhead (a few milliseconds) well under 10% of the work.

Everything else is dask.distributed's own machinery: a LocalCluster, a scheduler address or an
existing Client; a task whose worker dies is re-run elsewhere by the scheduler (up to
``distributed.scheduler.allowed-failures`` times); the dashboard shows the tasks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..io._base import SequenceError

__all__ = ["BatchError", "BatchInterrupted", "BatchReport", "cluster", "run_tasks"]


class BatchError(SequenceError):
    """The batch could not run (no scheduler at the address, bad options)."""


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a batch: the tasks were cancelled; the message says what was finished."""


@dataclass
class BatchReport:
    """What a batch did: ``done``, ``skipped`` (complete outputs from an earlier run) and
    ``failed`` (item, reason) in the order they finished; ``results`` maps each done item to
    what its task returned."""

    done: list[Any] = field(default_factory=list)
    skipped: list[Any] = field(default_factory=list)
    failed: list[tuple[Any, str]] = field(default_factory=list)
    results: dict[Any, Any] = field(default_factory=dict)
    seconds: float = 0.0
    tasks: int = 0
    #: seconds the workers spent inside the per-item functions (sum over tasks)
    work_seconds: float = 0.0

    @property
    def total(self) -> int:
        return len(self.done) + len(self.skipped) + len(self.failed)

    def __repr__(self) -> str:
        return (
            f"<BatchReport done={len(self.done)} skipped={len(self.skipped)} "
            f"failed={len(self.failed)} tasks={self.tasks} seconds={self.seconds:.2f}>"
        )


# ---- the cluster -------------------------------------------------------------------------------
@contextlib.contextmanager
def cluster(
    client: Any = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    quiet: bool = False,
) -> Iterator[Any]:
    """A ``distributed.Client``: ``client`` itself when given (left open), else one connected to
    ``scheduler`` (an address such as ``tcp://host:8786``), else a LocalCluster of ``workers``
    single-threaded worker processes (default: one per core) on 127.0.0.1. Prints the dashboard
    address of a cluster it connects to or creates unless ``quiet``; what it created is closed
    on exit."""
    if client is not None:  # the caller's: they know where it runs
        yield client
        return
    from distributed import Client

    if scheduler:
        try:
            own = Client(scheduler, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise BatchError(
                f"no dask scheduler answers at {scheduler} ({err}); start one with "
                f"`dask scheduler` and `dask worker {scheduler}`, or drop --scheduler to run on "
                f"this machine"
            ) from err
        local = None
    else:
        n = int(workers) if workers else (os.cpu_count() or 1)
        if n < 1:
            raise BatchError(f"workers={workers!r}: a cluster needs at least one worker")
        local = local_cluster(n)
        own = Client(local, set_as_default=False)
    try:
        _announce(own, quiet)
        yield own
    finally:
        own.close()
        if local is not None:
            local.close()


#: dask's own default for ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_``
_DASK_TRIM_DEFAULT = 65536


def local_cluster(n: int) -> Any:
    """A LocalCluster of ``n`` single-threaded worker processes on 127.0.0.1, as the batch jobs
    start it: workers ignore Ctrl-C (the client handles it) and run with glibc's own malloc
    thresholds. dask's nannies set ``MALLOC_TRIM_THRESHOLD_=65536`` by default, which freezes
    glibc's mmap threshold at 128 KiB: every frame-sized buffer (a 256x256 uint16 image is
    128 KiB) becomes a fresh mapping faulted in page by page, on every read and write. For the
    clusters it starts itself, napari-imseq drops dask's default; a value the user configured
    (dask config or the environment) is kept, and clusters the user passes are left alone."""
    import dask
    from distributed import LocalCluster

    key = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
    keep = dask.config.get(key, None) != _DASK_TRIM_DEFAULT
    with _workers_ignore_ctrl_c(), dask.config.set({} if keep else {key: None}):
        return LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0" if _has_dashboard() else None,
            silence_logs=logging.ERROR,
        )


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Worker processes started inside inherit an ignored SIGINT: Ctrl-C reaches the whole
    process group, and the client alone handles it (cancels the tasks, closes the cluster)
    instead of every worker printing a KeyboardInterrupt traceback."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _has_dashboard() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def _announce(client: Any, quiet: bool) -> None:
    if quiet:
        return
    workers = client.nthreads()
    link = client.dashboard_link if _has_dashboard() else None
    where = f"dashboard {link}" if link else "no dashboard (pip install bokeh to get one)"
    print(
        f"dask: {len(workers)} workers, {sum(workers.values())} threads at "
        f"{client.scheduler.address}; {where}",
        file=sys.stderr,
    )


# ---- on the workers ----------------------------------------------------------------------------
class Skipped:
    """Returned by a task function for an item with nothing to do (its output is complete)."""

    def __init__(self, why: str = ""):
        self.why = why


class _RemoteCancel:
    """A ``cancel()`` callable for work running on a worker: True once the client set the
    distributed Event ``name``; the scheduler is asked at most twice a second."""

    def __init__(self, name: str | None):
        self.name, self._event, self._next, self._set = name, None, 0.0, False

    def __call__(self) -> bool:
        if self.name is None or self._set:
            return self._set
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + 0.5
        try:
            if self._event is None:
                from distributed import Event

                self._event = Event(self.name)
            self._set = bool(self._event.is_set())
        except Exception:  # no client on this worker (a test calling directly): never cancelled
            self.name = None
        return self._set


def _run_group(func: Callable, items: list, kwargs: dict, cancel_name: str | None) -> list:
    """Run ``func(item, cancel=..., **kwargs)`` for each item; one item's error does not stop
    the others. Returns ``(status, value, seconds)`` per item."""
    cancel = _RemoteCancel(cancel_name)
    out = []
    for item in items:
        t0 = time.perf_counter()
        if cancel():
            out.append(("cancelled", "cancelled", 0.0))
            continue
        try:
            value = func(item, cancel=cancel, **kwargs)
            status = "skipped" if isinstance(value, Skipped) else "done"
            if isinstance(value, Skipped):
                value = value.why
        except Exception as err:
            status, value = "failed", (str(err) or type(err).__name__)
        out.append((status, value, time.perf_counter() - t0))
    return out


# ---- on the client -----------------------------------------------------------------------------
def _executing_keys(dask_worker: Any = None) -> list[str]:
    try:
        return [str(ts.key) for ts in dask_worker.state.executing]
    except Exception:
        return []


def _wait_stopped(client: Any, prefix: str, timeout: float = 15.0) -> None:
    """Wait until no task of this batch still runs on a worker: a cancelled task keeps running
    until it sees the cancel event (within half a second), and a re-run started before it
    stopped would race with it for the same output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = client.run(_executing_keys, on_error="ignore")
        except Exception:
            return
        if not any(k.startswith(prefix) for keys in running.values() for k in keys):
            return
        time.sleep(0.1)


def run_tasks(
    client: Any,
    func: Callable,
    items: Iterable[Any],
    *,
    kwargs: dict | None = None,
    total: int | None = None,
    desc: str = "files",
    progress: bool = True,
    target_seconds: float = 0.5,
    max_group: int = 512,
    first_group: int = 1,
    on_result: Callable[[Any, str, Any], None] | None = None,
    keep_results: bool = True,
) -> BatchReport:
    """Run ``func(item, cancel=cancel, **kwargs)`` for every item on ``client``'s workers.

    ``items`` is consumed lazily (a generator of 10^6 paths is fine); the tasks in flight are
    bounded; items are grouped so that a task lasts about ``target_seconds``. ``func`` may
    return :class:`Skipped`; an exception marks the item failed with its message. A progress
    bar (tqdm, on stderr) runs on the client. Ctrl-C cancels every task (the running ones see
    ``cancel()`` turn True within half a second) and raises :class:`BatchInterrupted`.
    ``on_result(item, status, value)`` is called on the client as results arrive;
    ``keep_results=False`` keeps only the items in the report, not what their tasks returned
    (for 10^6 files).
    """
    from distributed import Event, as_completed

    kwargs = dict(kwargs or {})
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    it = iter(items)
    threads = max(1, sum(client.nthreads().values()))
    limit = 2 * threads + 2
    token = uuid.uuid4().hex[:12]
    cancel_name = f"imseq-cancel-{token}"
    report = BatchReport()
    group_size, per_item = max(1, int(first_group)), None
    groups: dict[Any, list] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="file", desc=desc, file=sys.stderr, smoothing=0.05)
    t0 = time.perf_counter()
    pending = as_completed(loop=client.loop)  # the given client, which need not be the default
    counter = itertools.count()

    def submit() -> bool:
        group = list(itertools.islice(it, group_size))
        if not group:
            return False
        fut = client.submit(
            _run_group,
            func,
            group,
            kwargs,
            cancel_name,
            key=f"imseq-{desc}-{token}-{next(counter)}",
            pure=False,
            retries=0,
        )
        groups[fut.key] = group
        pending.add(fut)
        report.tasks += 1
        return True

    def record(item: Any, status: str, value: Any) -> None:
        if status == "done":
            report.done.append(item)
            if keep_results:
                report.results[item] = value
        elif status == "skipped":
            report.skipped.append(item)
        else:
            report.failed.append((item, str(value)))
        if on_result is not None:
            on_result(item, status, value)
        if bar is not None:
            bar.update(1)

    try:
        while len(groups) < limit and submit():
            pass
        for fut in pending:
            group = groups.pop(fut.key)
            try:
                rows = fut.result()
            except Exception as err:  # KilledWorker after too many deaths, a pickling error
                why = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                for item in group:
                    record(item, "failed", f"its task failed on the cluster ({why})")
                continue
            finally:
                fut.release()
            seconds = sum(r[2] for r in rows)
            report.work_seconds += seconds
            if rows:  # adapt the group size to the measured cost per item
                cost = seconds / len(rows)
                per_item = cost if per_item is None else 0.7 * per_item + 0.3 * cost
                group_size = int(min(max_group, max(1, target_seconds / max(per_item, 1e-6))))
            for item, (status, value, _) in zip(group, rows, strict=True):
                record(item, status, value)
            while len(groups) < limit and submit():
                pass
    except KeyboardInterrupt:
        report.seconds = time.perf_counter() - t0
        with contextlib.suppress(Exception):
            Event(cancel_name, client=client).set()
        futures = list(pending.futures) if hasattr(pending, "futures") else []
        with contextlib.suppress(Exception):
            client.cancel(futures, force=True)
        _wait_stopped(client, f"imseq-{desc}-{token}-")
        if bar is not None:
            bar.close()
        raise BatchInterrupted(
            f"batch interrupted after {report.seconds:.1f} s: {len(report.done)} items were "
            f"reported finished and {len(report.skipped)} already complete before the "
            f"interruption, the tasks in flight were cancelled; outputs being written stay as "
            f"'.partial' files, which the next run redoes (complete outputs are skipped)"
        ) from None
    finally:
        report.seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    return report
