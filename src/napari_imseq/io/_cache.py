"""On-disk cache of frame index tables (offsets, timestamps, keyframes).

An entry is keyed by the file's absolute path, size and modification time, so a file that
changes gets a new entry. Entries are ``.npz`` files written atomically (write to a temporary
name, then rename); a missing, stale or unreadable entry is simply rebuilt by the caller.
Set ``NAPARI_IMSEQ_CACHE_DIR`` to move the cache, or to an empty string to disable it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np

_VERSION = 1


def cache_dir() -> str | None:
    env = os.environ.get("NAPARI_IMSEQ_CACHE_DIR")
    if env is not None:
        return env or None
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("napari-imseq", appauthor=False), "index")


def _entry(path: str, kind: str) -> str | None:
    root = cache_dir()
    if root is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = f"{_VERSION}|{kind}|{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    return os.path.join(root, hashlib.sha1(key.encode()).hexdigest() + ".npz")


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


def save(path: str, kind: str, arrays: dict[str, np.ndarray]) -> None:
    """Store ``arrays`` for ``path``; failures (read-only home, full disk) are ignored."""
    entry = _entry(path, kind)
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
