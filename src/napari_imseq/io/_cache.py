"""Caches: frame index tables on disk, and decoded frames in memory.

**Index tables** (offsets, timestamps, keyframes) are kept on disk. An entry is keyed by the
file's absolute path, device, inode, size and modification and change times, so a file that
changes gets a new entry. File systems stamp times in coarse ticks (a few milliseconds, up to
2 s), so a file rewritten at the same size within one tick of its last change would keep its
stamp: an index is therefore stored only for a file that was last changed over
:data:`SETTLED_S` seconds before it was scanned and that did not change during the scan (as git
treats a "racily clean" file). Entries are ``.npz`` files written atomically (write to a temporary
name, then rename); a missing, stale or unreadable entry is simply rebuilt by the caller.
Set ``NAPARI_IMSEQ_CACHE_DIR`` to move the cache, or to an empty string to disable it.

**Decoded frames** of every open file share one in-memory LRU, :data:`frames`, bounded in bytes
(default 64 MiB for the whole process, whatever the number of open files). Set
``NAPARI_IMSEQ_FRAME_CACHE_MB`` before import, or call :func:`set_frame_cache_budget`.

**Parked decoders**: a video keeps idle decoders open where they stopped, so that a read later
in the same GOP decodes on instead of from the keyframe. Each open video keeps at least the one
it used last; more are kept only within :data:`decoders`' budget, shared by all open files and
counted by an estimate of the pictures a decoder holds (default 256 MiB: about six 1080p H.264
decoders). Set ``NAPARI_IMSEQ_DECODER_CACHE_MB`` before import, or call
:func:`set_decoder_budget`; 0 keeps one idle decoder per file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

_VERSION = 2
SETTLED_S = 3.0  # a file changed more recently than this may change again within its stamp


def cache_dir() -> str | None:
    env = os.environ.get("NAPARI_IMSEQ_CACHE_DIR")
    if env is not None:
        return env or None
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("napari-imseq", appauthor=False), "index")


def stamp(path: Any) -> os.stat_result | None:
    """The file's stat (before a scan: pass it to :func:`save`), or None (not a local file)."""
    try:
        return os.stat(path)
    except (OSError, TypeError, ValueError):
        return None


def identity(st: os.stat_result) -> tuple[int, ...]:
    """What tells a file's contents apart in a stat: device, inode, size, modification and
    change times (a rewrite in place at the same size within one modification time tick, or
    with its time restored, still changes the change time; a replaced file has another
    inode)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_stamp(path: Any) -> tuple[int, ...] | None:
    """:func:`identity` of the file at ``path``, or None (not a local file)."""
    st = stamp(path)
    return None if st is None else identity(st)


def _key(path: str, kind: str, st: os.stat_result) -> str:
    return f"{_VERSION}|{kind}|{os.path.abspath(path)}|" + "|".join(map(str, identity(st)))


def _entry(path: str, kind: str, st: os.stat_result | None = None) -> str | None:
    root = cache_dir()
    if root is None:
        return None
    st = stamp(path) if st is None else st
    if st is None:
        return None
    return os.path.join(root, hashlib.sha1(_key(path, kind, st).encode()).hexdigest() + ".npz")


def load(path: str, kind: str) -> dict[str, np.ndarray] | None:
    """The cached arrays for ``path``, or None when absent or unreadable."""
    entry = _entry(path, kind)
    if entry is None or not os.path.exists(entry):
        return None
    try:
        with np.load(entry, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # corrupt or foreign: forget it, the caller rebuilds
        try:
            os.remove(entry)
        except OSError:
            pass
        return None


def settled(before: os.stat_result, after: os.stat_result | None, now_ns: int) -> bool:
    """Whether an index scanned between stats ``before`` and ``after`` may be stored: the file
    did not change during the scan, and its last change is over :data:`SETTLED_S` old (a
    change within the same time stamp tick would otherwise go unseen)."""
    if after is None or identity(before) != identity(after):
        return False
    newest = max(before.st_mtime_ns, before.st_ctime_ns)
    return now_ns - newest > SETTLED_S * 1e9


def save(
    path: str, kind: str, arrays: dict[str, np.ndarray], before: os.stat_result | None = None
) -> None:
    """Store ``arrays`` for ``path`` as it was at ``before`` (its :func:`stamp` taken before
    the scan), if the file has :func:`settled`; failures (read-only home, full disk) are
    ignored."""
    if before is None or not settled(before, stamp(path), time.time_ns()):
        return
    entry = _entry(path, kind, before)
    if entry is None:
        return
    try:
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(entry), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, entry)
    except OSError:
        try:
            os.remove(tmp)
        except (OSError, UnboundLocalError):
            pass


def entry_path(path: str, kind: str) -> str | None:
    """Where the entry for ``path`` lives (for tests and diagnostics)."""
    return _entry(path, kind)


# ---- decoded frames in memory ------------------------------------------------------------------
def _default_budget(var: str = "NAPARI_IMSEQ_FRAME_CACHE_MB", mib: int = 64) -> int:
    try:
        return max(0, int(float(os.environ.get(var, str(mib))) * 2**20))
    except ValueError:
        return mib << 20


class FrameCache:
    """A least-recently-used store of frames, bounded in bytes, shared by every open file.

    Keys are ``(owner, key)``; each owner may also have its own smaller limit. Items are
    whatever the owner stores (numpy arrays, decoded frames); ``size`` gives their bytes.
    """

    def __init__(self, budget: int):
        self.budget = budget
        self._items: OrderedDict[tuple[Hashable, Hashable], tuple[Any, int]] = OrderedDict()
        self._owned: dict[Hashable, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, owner: Hashable, key: Hashable) -> Any:
        with self._lock:
            hit = self._items.get((owner, key))
            if hit is None:
                return None
            self._items.move_to_end((owner, key))
            return hit[0]

    def pop(self, owner: Hashable, key: Hashable) -> Any:
        with self._lock:
            hit = self._items.pop((owner, key), None)
            if hit is None:
                return None
            self._account(owner, -hit[1])
            return hit[0]

    def wants(self, owner: Hashable, key: Hashable, size: int, limit: int | None = None) -> bool:
        """Whether :meth:`put` of a new ``key`` of ``size`` bytes would store it (it fits the
        caps and the key is not held): to skip preparing an item that would be refused."""
        cap = self.budget if limit is None else min(limit, self.budget)
        return size <= cap and (owner, key) not in self._items

    def put(
        self,
        owner: Hashable,
        key: Hashable,
        item: Any,
        size: int,
        limit: int | None = None,
        replace: Callable[[Any], bool] | None = None,
    ) -> bool:
        """Store ``item``; False when it does not fit (or an entry stays because ``replace``
        said so). ``limit`` caps the bytes this owner holds."""
        cap = self.budget if limit is None else min(limit, self.budget)
        if size > cap:
            return False
        with self._lock:
            old = self._items.get((owner, key))
            if old is not None:
                if replace is not None and not replace(old[0]):
                    return False
                del self._items[(owner, key)]
                self._account(owner, -old[1])
            self._items[(owner, key)] = (item, size)
            self._account(owner, size)
            if self._owned.get(owner, 0) > cap:
                for k in [k for k in self._items if k[0] == owner]:
                    if self._owned.get(owner, 0) <= cap:
                        break
                    self._account(owner, -self._items.pop(k)[1])
            while self._bytes > self.budget:
                (o, _), (_, s) = self._items.popitem(last=False)
                self._account(o, -s)
        return True

    def drop(self, owner: Hashable, keep: Callable[[Hashable], bool] | None = None) -> None:
        """Forget the owner's entries (those ``keep`` does not keep)."""
        with self._lock:
            for k in [k for k in self._items if k[0] == owner]:
                if keep is None or not keep(k[1]):
                    self._account(owner, -self._items.pop(k)[1])

    def resize(self, budget: int) -> None:
        with self._lock:
            self.budget = budget
            while self._bytes > budget and self._items:
                (o, _), (_, s) = self._items.popitem(last=False)
                self._account(o, -s)

    def _account(self, owner: Hashable, delta: int) -> None:
        self._bytes += delta
        left = self._owned.get(owner, 0) + delta
        if left > 0:
            self._owned[owner] = left
        else:
            self._owned.pop(owner, None)


#: decoded frames of every open video, bounded together
frames = FrameCache(_default_budget())


def set_frame_cache_budget(nbytes: int) -> None:
    """Bytes that decoded frames of all open files may take together (0 disables the cache)."""
    frames.resize(max(0, int(nbytes)))


def frame_cache_budget() -> int:
    return frames.budget


# ---- parked decoders ---------------------------------------------------------------------------
class DecoderPark:
    """Idle decoders of every open video, least recently parked first, with their estimated
    bytes. A file asks :meth:`room` before it opens a decoder beyond the one it has idle, and
    :meth:`park` names the decoders to close (other than each file's last) when over budget.

    Decoders and their files are held by weak references only: a file nobody holds any more
    is collected (and its files closed) as before, and its entries leave with it."""

    def __init__(self, budget: int):
        self.budget = budget
        self._items: OrderedDict[int, tuple[int, Any, Any]] = OrderedDict()  # id: (bytes, refs)
        self._bytes = 0
        self._lock = threading.RLock()  # (a weak reference's callback may run inside park)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def room(self, size: int) -> bool:
        with self._lock:
            return self._bytes + size <= self.budget

    def park(self, dec: Any, size: int, owner: Any) -> list[tuple[Any, Any]]:
        """Count ``dec`` (now idle); returns ``(decoder, owner)`` pairs to evict, least
        recently parked first, while the total is over budget (the caller asks each owner,
        which keeps its last decoder)."""
        import weakref

        key = id(dec)
        with self._lock:
            if key not in self._items:
                self._bytes += size
                gone = lambda _ref, key=key: self._forget(key)  # noqa: E731
                self._items[key] = (size, weakref.ref(dec, gone), weakref.ref(owner))
            self._items.move_to_end(key)
            over, out = self._bytes - self.budget, []
            for k, (s, dref, oref) in list(self._items.items()):
                if over <= 0 or k == key:
                    break
                d, o = dref(), oref()
                if d is not None and o is not None:
                    out.append((d, o))
                    over -= s
            return out

    def unpark(self, dec: Any) -> None:
        self._forget(id(dec))

    def _forget(self, key: int) -> None:
        with self._lock:
            hit = self._items.pop(key, None)
            if hit is not None:
                self._bytes -= hit[0]


#: idle decoders of every open video, bounded together
decoders = DecoderPark(_default_budget("NAPARI_IMSEQ_DECODER_CACHE_MB", 256))


def set_decoder_budget(nbytes: int) -> None:
    """Bytes that idle decoders of all open files may take together (an estimate of the
    pictures they hold); each file keeps the decoder it used last even beyond it."""
    with decoders._lock:
        decoders.budget = max(0, int(nbytes))
