"""Local files as readers open them: path checks, content sniffing heads, positional reads."""

from __future__ import annotations

import os
import stat
import threading
import weakref

import numpy as np

from ._errors import (
    FrameIndexError,
    SequenceClosedError,
    SequenceFileNotFoundError,
    SequenceFormatError,
)

#: how many leading bytes content sniffing looks at
HEAD_BYTES = 64


def _check_exists(path: str) -> None:
    if not os.path.exists(path):
        raise SequenceFileNotFoundError(
            f"{path}: no such file or directory; check the path (relative paths are resolved "
            f"against {os.getcwd()})"
        )


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _special_file_error(path: str, mode: int) -> SequenceFormatError:
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "not a regular file")
    real = os.path.realpath(path)
    via = f" (the link points to {real})" if real != os.path.abspath(path) else ""
    return SequenceFormatError(
        f"{path}: this is {kind}{via}, not a regular file or folder; reading it could block "
        f"forever or never end, so it is refused; copy the data into a regular file"
    )


def check_path(path: str, *, folder: bool | None = None) -> os.stat_result:
    """``os.stat(path)`` (symlinks followed) for a path a reader is about to open.

    Raises :class:`SequenceFileNotFoundError` when it does not exist and
    :class:`SequenceFormatError` for FIFOs, devices and sockets (opening or reading them can
    block forever), and, when ``folder`` is True or False, for a file where a folder is needed
    or the reverse. Never opens the path.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        _check_exists(path)
        raise  # pragma: no cover - a race: the path appeared again
    except OSError as err:
        raise SequenceFormatError(
            f"{path}: cannot be examined ({err.strerror}); check the path and its permissions"
        ) from err
    if stat.S_ISDIR(st.st_mode):
        if folder is False:
            raise SequenceFormatError(
                f"{path}: this is a folder, not a file; open the file inside it, or the folder "
                f"itself as an image folder or zarr store"
            )
    elif stat.S_ISREG(st.st_mode):
        if folder is True:
            raise SequenceFormatError(f"{path}: this is a file, not a folder")
    else:
        raise _special_file_error(path, st.st_mode)
    return st


def open_regular(path: str) -> int:
    """A read-only descriptor of the regular file ``path``.

    The open never blocks (``O_NONBLOCK``: a FIFO swapped in after a check cannot hang it) and
    the descriptor is checked with ``fstat``, so only a regular file is ever read.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        _check_exists(path)
        raise  # pragma: no cover - a race
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):  # pragma: no cover - os.open refuses folders on Linux
            raise SequenceFormatError(f"{path}: this is a folder, not a file")
        raise _special_file_error(path, mode)
    return fd


def read_head(path: str, nbytes: int = HEAD_BYTES) -> bytes | None:
    """The first ``nbytes`` of a regular file, or None (folders, special files, errors).

    For content sniffing: never raises and never blocks.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = open_regular(path)
    except (OSError, ValueError, TypeError):
        return None
    try:
        return os.pread(fd, nbytes, 0) if hasattr(os, "pread") else os.read(fd, nbytes)
    except OSError:
        return None
    finally:
        os.close(fd)


class FileHandle:
    """A regular file opened on first use and read with positional reads only.

    ``os.preadv`` reads straight into a caller's buffer and shares no file cursor, so any
    number of threads can read at once. :meth:`close` is safe while other threads read: the
    descriptor is closed only when no read is in flight (a read never lands on a descriptor
    number the system has given to another file), and every read that starts after
    :meth:`close` raises :class:`SequenceClosedError`. The descriptor is also closed when the
    handle is garbage collected.
    """

    _HAS_PREAD = hasattr(os, "pread")
    _HAS_PREADV = hasattr(os, "preadv")

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None
        self._readers = 0
        self._closing = False

    def _acquire(self) -> int:
        with self._lock:
            if self._closing:
                raise SequenceClosedError(
                    f"{self.path}: the file was closed; open the sequence again to read"
                )
            if self._fd is None:
                self._fd = open_regular(self.path)
                self._finalizer = weakref.finalize(self, os.close, self._fd)
            self._readers += 1
            return self._fd

    def _release(self) -> None:
        with self._lock:
            self._readers -= 1
            if self._closing and self._readers == 0:
                self._close_fd()

    def _close_fd(self) -> None:  # with the lock held
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._fd = None

    def read(self, nbytes: int, offset: int) -> bytes:
        """Up to ``nbytes`` bytes at ``offset`` (fewer at the end of the file)."""
        fd = self._acquire()
        try:
            if self._HAS_PREAD:
                return os.pread(fd, nbytes, offset)
            with self._lock:  # pragma: no cover - platforms without pread (Windows)
                os.lseek(fd, offset, os.SEEK_SET)
                return os.read(fd, nbytes)
        finally:
            self._release()

    def readinto(self, buffer: np.ndarray, offset: int) -> int:
        """Fill the C-contiguous ``buffer`` from ``offset``; return the bytes read."""
        view = memoryview(buffer).cast("B")
        if not self._HAS_PREADV:  # pragma: no cover
            data = self.read(len(view), offset)
            view[: len(data)] = data
            return len(data)
        fd = self._acquire()
        try:
            total = 0
            while total < len(view):
                n = os.preadv(fd, [view[total:]], offset + total)
                if n == 0:
                    break
                total += n
            return total
        finally:
            self._release()

    def read_array(
        self, shape: tuple[int, ...], dtype: np.dtype, offset: int, what: str
    ) -> np.ndarray:
        """A new native-byte-order array of ``shape`` stored as ``dtype`` at ``offset``.

        Raises :class:`FrameIndexError` naming ``what`` when the file ends before the array.
        """
        buf = np.empty(shape, dtype=dtype)
        got = self.readinto(buf, offset)
        if got < buf.nbytes:
            raise FrameIndexError(
                f"{self.path}: {what} is cut short ({got} of {buf.nbytes} bytes); the file "
                f"changed or is truncated"
            )
        if not buf.dtype.isnative:
            buf = buf.byteswap().view(buf.dtype.newbyteorder("="))
        return buf

    def close(self) -> None:
        """Refuse new reads; close the descriptor now, or when the last read in flight ends."""
        with self._lock:
            self._closing = True
            if self._readers == 0:
                self._close_fd()

    @property
    def closed(self) -> bool:
        return self._closing
