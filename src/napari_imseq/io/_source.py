"""Where a sequence's bytes come from: a path, bytes in memory, a file object or a URL.

Every reader reads through a :class:`Source`:

* :meth:`Source.handle` gives a thread-safe positional reader (``read(n, offset)``,
  ``readinto(buffer, offset)``, ``read_array``) with the close rules of
  :class:`~napari_imseq.io._base.FileHandle`;
* :meth:`Source.file` gives what a library that takes "a path or a file object" wants
  (tifffile, PyAV): the path of a local file, else a new file object with its own cursor,
  closed with the source;
* :meth:`Source.stat`, :meth:`Source.head`, :meth:`Source.listdir` and :meth:`Source.child`
  give sizes, content sniffing and folder listings without reading data.

Which source an object becomes (:func:`as_source`):

=====================================  ==========================================================
``str`` / ``os.PathLike``              a local path (:class:`PathSource`); ``file://`` URLs too
``str`` with a scheme (``memory://``,  an fsspec URL (:class:`UrlSource`); ``storage_options``
``http://``, ``s3://`` ...)            go to the filesystem; the backend must be installed
``bytes`` / ``bytearray`` /            content (:class:`MemorySource`), read in place: never
``memoryview``                         copied, so do not change it while the sequence is open
``io.BytesIO``                         its buffer, read in place (it cannot grow while open)
an opened regular file                 a duplicate descriptor read with ``pread`` (the file
                                       object's own cursor is never moved)
an fsspec file object or ``OpenFile``  its URL, read with our own pooled handles
any other readable, seekable object    read under a lock (seek + read)
a non-seekable stream (pipe, socket)   copied to an unnamed temporary file (*spilled*) up to
                                       ``spill_limit`` bytes (default 1 GiB, environment
                                       variable ``NAPARI_IMSEQ_SPILL_LIMIT``; 0 refuses pipes)
=====================================  ==========================================================

Pickling (dask workers in other processes): a path or URL travels as its name and is opened
again on the worker; bytes travel as one buffer with the sequence (once per graph, not per
task; out of band with pickle protocol 5); an opened file whose name still points to the same
file travels as that path; other file objects cannot travel and say so.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tempfile
import threading
import uuid
import weakref
from typing import Any

import numpy as np

from ._errors import (
    SequenceClosedError,
    SequenceError,
    SequenceFileNotFoundError,
    SequenceFormatError,
)
from ._files import HEAD_BYTES, FileHandle, check_path, read_head

__all__ = [
    "MemorySource",
    "PathSource",
    "Source",
    "UrlSource",
    "as_source",
    "is_url",
    "spill_limit",
]

#: default for how many bytes of a non-seekable stream are copied to a temporary file
SPILL_LIMIT = 1 << 30
_COPY_BLOCK = 1 << 20
#: bytes an fsspec file fetches ahead of a read (remote reads are whole blocks)
_REMOTE_BLOCK = 1 << 20
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")


def spill_limit() -> int:
    """Bytes of a non-seekable stream that may be copied to a temporary file."""
    env = os.environ.get("NAPARI_IMSEQ_SPILL_LIMIT")
    try:
        return max(int(env), 0) if env else SPILL_LIMIT
    except ValueError:
        return SPILL_LIMIT


def is_url(obj: Any) -> bool:
    """True for a string with a scheme (``memory://``, ``s3://``, ``file://`` ...)."""
    return isinstance(obj, str) and bool(_URL.match(obj))


def _fake_stat(size: int, folder: bool) -> os.stat_result:
    mode = (stat.S_IFDIR | 0o555) if folder else (stat.S_IFREG | 0o444)
    return os.stat_result((mode, 0, 0, 1, 0, 0, size, 0, 0, 0))


def _check_kind(name: str, isdir: bool, folder: bool | None) -> None:
    if folder is False and isdir:
        raise SequenceFormatError(
            f"{name}: this is a folder, not a file; open the file inside it, or the folder "
            f"itself as an image folder or zarr store"
        )
    if folder is True and not isdir:
        raise SequenceFormatError(f"{name}: this is a file, not a folder")


# ---- positional readers -------------------------------------------------------------------
class _Handle(FileHandle):
    """A :class:`FileHandle` whose bytes do not come from a descriptor it opens itself.

    Subclasses implement ``_pread(n, offset)`` and ``_preadinto(view, offset)`` (called with a
    read counted in flight) and ``_release_resources()`` (called once, when the handle is
    closed and no read is in flight)."""

    def __init__(self, name: str):
        super().__init__(name)

    def _acquire(self) -> int:
        with self._lock:
            if self._closing:
                raise SequenceClosedError(
                    f"{self.path}: the source was closed; open the sequence again to read"
                )
            self._readers += 1
            return -1

    def _close_fd(self) -> None:  # with the lock held, once no read is in flight
        self._release_resources()

    def _release_resources(self) -> None:
        pass

    def read(self, nbytes: int, offset: int) -> bytes:
        self._acquire()
        try:
            return self._pread(max(int(nbytes), 0), int(offset))
        finally:
            self._release()

    def readinto(self, buffer, offset: int) -> int:
        view = memoryview(buffer).cast("B")
        self._acquire()
        try:
            return self._preadinto(view, int(offset))
        finally:
            self._release()

    def _pread(self, nbytes: int, offset: int) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def _preadinto(self, view: memoryview, offset: int) -> int:
        data = self._pread(len(view), offset)
        view[: len(data)] = data
        return len(data)


class MemoryHandle(_Handle):
    """Positional reads from a buffer in memory: a slice copy, nothing else."""

    def __init__(self, name: str, view: memoryview, release: bool = False):
        super().__init__(name)
        self._view: memoryview | None = view
        self._owns_view = release

    def _pread(self, nbytes: int, offset: int) -> bytes:
        return bytes(self._view[offset : offset + nbytes])

    def _preadinto(self, view: memoryview, offset: int) -> int:
        chunk = self._view[offset : offset + len(view)]
        view[: len(chunk)] = chunk
        return len(chunk)

    def _release_resources(self) -> None:
        if self._owns_view and self._view is not None:
            self._view.release()
        self._view = None


class LockedFileHandle(_Handle):
    """Positional reads from a seekable file object shared with other handles: every read
    is a seek and a read under the source's lock, and the object's position is restored."""

    def __init__(self, name: str, fobj: Any, lock: threading.Lock):
        super().__init__(name)
        self._f = fobj
        self._io_lock = lock

    def _preadinto(self, view: memoryview, offset: int) -> int:
        with self._io_lock:
            f = self._f
            where = f.tell()
            try:
                f.seek(offset)
                total = 0
                reader = getattr(f, "readinto", None)
                while total < len(view):
                    if reader is not None:
                        n = reader(view[total:])
                    else:
                        data = f.read(len(view) - total)
                        n = len(data)
                        view[total : total + n] = data
                    if not n:
                        break
                    total += n
                return total
            finally:
                f.seek(where)

    def _pread(self, nbytes: int, offset: int) -> bytes:
        buf = bytearray(nbytes)
        n = self._preadinto(memoryview(buf), offset)
        return bytes(buf[:n])


class FsspecHandle(_Handle):
    """Positional reads from an fsspec file system: a small pool of fsspec file objects (one
    per concurrent reader), each reading ahead by :data:`_REMOTE_BLOCK` bytes."""

    def __init__(self, name: str, fs: Any, path: str, size: int | None = None):
        super().__init__(name)
        self._fs, self._fspath, self._size = fs, path, size
        self._idle: list[Any] = []
        self._pool_lock = threading.Lock()

    def _take(self):
        with self._pool_lock:
            if self._idle:
                return self._idle.pop()
        extra = {"size": self._size} if self._size is not None else {}
        return self._fs.open(
            self._fspath, "rb", block_size=_REMOTE_BLOCK, cache_type="readahead", **extra
        )

    def _give(self, f) -> None:
        with self._pool_lock:
            self._idle.append(f)

    def _pread(self, nbytes: int, offset: int) -> bytes:
        f = self._take()
        try:
            f.seek(offset)
            return f.read(nbytes)
        finally:
            self._give(f)

    def _release_resources(self) -> None:
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for f in idle:
            f.close()


class FdHandle(FileHandle):
    """A :class:`FileHandle` on a descriptor it was given (and now owns)."""

    def __init__(self, name: str, fd: int):
        super().__init__(name)
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)


class _Cursor(io.RawIOBase):
    """A file object with its own position over a positional handle (for tifffile, PyAV)."""

    def __init__(self, handle: FileHandle, size: int, name: str):
        super().__init__()
        self._h, self._size, self._pos = handle, size, 0
        self.name = name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.closed:
            raise ValueError("I/O operation on a closed file")
        n = self._h.readinto(b, self._pos) if len(b) else 0
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise OSError(22, f"unsupported whence {whence}")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + int(offset)
        if pos < 0:
            raise OSError(22, "negative seek position")
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._h.close()
        super().close()


# ---- sources -------------------------------------------------------------------------------
class Source:
    """Bytes a sequence is read from; see the module documentation."""

    #: the local path when the source is a local file or folder, else None
    local_path: str | None = None

    def __init__(self, name: str):
        self.name = name
        self._files: weakref.WeakSet = weakref.WeakSet()
        self._files_lock = threading.Lock()

    # what a format needs
    def size(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def isdir(self) -> bool:
        return False

    def stat(self, *, folder: bool | None = None) -> os.stat_result:
        """A stat result (``st_mode``, ``st_size``), refusing a file where a folder is
        needed (``folder=True``) and the reverse (``folder=False``)."""
        isdir = self.isdir()
        _check_kind(self.name, isdir, folder)
        return _fake_stat(0 if isdir else self.size(), isdir)

    def handle(self) -> FileHandle:  # pragma: no cover - abstract
        """A new thread-safe positional reader; the caller closes it."""
        raise NotImplementedError

    def file(self) -> Any:
        """The local path, or a new seekable binary file object closed with the source."""
        cursor = self.open_stream()
        with self._files_lock:
            self._files.add(cursor)
        return cursor

    def open_stream(self) -> Any:
        """A new binary file object on this source, closed by the caller."""
        return io.BufferedReader(_Cursor(self.handle(), self.size(), self.name), 1 << 16)

    def read_all(self) -> bytes:
        """The whole content (small files: one image of a folder)."""
        h = self.handle()
        try:
            return h.read(self.size(), 0)
        finally:
            h.close()

    def head(self, nbytes: int = HEAD_BYTES) -> bytes | None:
        """The first ``nbytes`` (content sniffing); None for folders and errors."""
        try:
            if self.isdir():
                return None
            h = self.handle()
            try:
                return h.read(nbytes, 0)
            finally:
                h.close()
        except Exception:
            return None

    def listdir(self) -> list[str]:
        raise SequenceFormatError(f"{self.name}: this is not a folder")

    def child(self, name: str) -> Source:
        raise SequenceFormatError(f"{self.name}: this is not a folder")

    def token(self) -> str:
        """What identifies the content for dask graph names."""
        return self.name

    def entry_mode(self, relpath: str) -> int | None:
        """``st_mode`` of the entry ``relpath`` ('/'-separated) inside this folder, None
        when it does not exist; OSError when that cannot be known."""
        raise OSError(f"{self.name}: not a folder")

    def entry_names(self, relpath: str = "") -> list[str]:
        """Names inside the folder ``relpath`` ('/'-separated) of this folder."""
        raise OSError(f"{self.name}: not a folder")

    @property
    def extension(self) -> str:
        """The lower-case extension of the name ('' when there is none)."""
        base = self.name.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        return os.path.splitext(base)[1].lower()

    def close(self) -> None:
        """Close every file object :meth:`file` handed out (the user's objects stay open)."""
        with self._files_lock:
            files = list(self._files)
            self._files = weakref.WeakSet()
        for f in files:
            f.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class PathSource(Source):
    """A local file or folder."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(os.path.abspath(os.fspath(path)))
        self.local_path = self.name

    def size(self) -> int:
        return os.stat(self.name).st_size

    def isdir(self) -> bool:
        return os.path.isdir(self.name)

    def stat(self, *, folder: bool | None = None) -> os.stat_result:
        return check_path(self.name, folder=folder)

    def handle(self) -> FileHandle:
        return FileHandle(self.name)

    def file(self) -> str:
        return self.name

    def head(self, nbytes: int = HEAD_BYTES) -> bytes | None:
        return read_head(self.name, nbytes)

    def listdir(self) -> list[str]:
        return os.listdir(self.name)

    def child(self, name: str) -> Source:
        return PathSource(os.path.join(self.name, name))

    def _join(self, relpath: str) -> str:
        return os.path.join(self.name, *[p for p in relpath.split("/") if p])

    def entry_mode(self, relpath: str) -> int | None:
        try:
            return os.stat(self._join(relpath)).st_mode
        except FileNotFoundError:
            return None

    def entry_names(self, relpath: str = "") -> list[str]:
        return os.listdir(self._join(relpath))

    def __reduce__(self):
        return PathSource, (self.name,)


class MemorySource(Source):
    """Content in memory (bytes, bytearray, memoryview, a BytesIO's buffer), read in place."""

    def __init__(self, data: Any, name: str | None = None, *, _release: bool = False):
        view = memoryview(data)
        if not view.contiguous:
            raise SequenceFormatError(
                f"{name or '<memory>'}: a non-contiguous memoryview cannot be read in place; "
                f"pass bytes(view) instead"
            )
        self._view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        self._release_view = _release
        self._token = uuid.uuid4().hex
        # a unique name: dask graph names derive from it (equal sizes must not collide)
        super().__init__(name or f"<{len(self._view)} bytes in memory {self._token[:8]}>")

    def size(self) -> int:
        return len(self._view)

    def handle(self) -> FileHandle:
        return MemoryHandle(self.name, self._view)

    def token(self) -> str:
        return self._token

    def close(self) -> None:
        """Also gives a BytesIO's buffer back (it can grow again once no read holds it)."""
        super().close()
        if self._release_view:
            self._view.release()

    def __reduce_ex__(self, protocol: int):
        import pickle

        data = pickle.PickleBuffer(self._view) if protocol >= 5 else self._view.tobytes()
        return MemorySource, (data, self.name)


class FileObjectSource(Source):
    """A readable, seekable file object that is neither a regular OS file nor a BytesIO."""

    def __init__(self, fobj: Any, name: str):
        super().__init__(name)
        self._f = fobj
        self._lock = threading.Lock()
        with self._lock:
            where = fobj.tell()
            try:
                self._size = fobj.seek(0, io.SEEK_END)
            finally:
                fobj.seek(where)
        self._token = uuid.uuid4().hex

    def size(self) -> int:
        return self._size

    def handle(self) -> FileHandle:
        return LockedFileHandle(self.name, self._f, self._lock)

    def token(self) -> str:
        return self._token

    def __reduce__(self):
        raise SequenceError(
            f"{self.name}: a sequence opened from a file object cannot be sent to another "
            f"process; open it from a path, a URL or bytes"
        )


class FdSource(Source):
    """A regular OS file given as an open file object or spilled from a stream: read with
    ``pread`` on descriptors duplicated from it, so the object's own cursor never moves."""

    def __init__(self, fd: int, name: str, *, path: str | None = None, spilled: bool = False):
        super().__init__(name)
        self._fd: int | None = fd  # owned
        self._finalizer = weakref.finalize(self, os.close, fd)
        st = os.fstat(fd)
        self._size, self._id = st.st_size, (st.st_dev, st.st_ino)
        self._path, self._spilled = path, spilled
        self._token = uuid.uuid4().hex

    def size(self) -> int:
        return self._size

    def handle(self) -> FileHandle:
        if self._fd is None:
            raise SequenceClosedError(f"{self.name}: the source was closed")
        return FdHandle(self.name, os.dup(self._fd))

    def token(self) -> str:
        return self._token

    def close(self) -> None:
        super().close()
        if self._fd is not None:
            self._finalizer()
            self._fd = None

    def __reduce__(self):
        if self._path is not None:
            try:
                st = os.stat(self._path)
                if (st.st_dev, st.st_ino) == self._id:
                    return PathSource, (self._path,)
            except OSError:
                pass
        if self._spilled and self._fd is not None:  # the content travels, read in blocks
            data = bytearray(self._size)
            h = self.handle()
            try:
                h.readinto(data, 0)
            finally:
                h.close()
            return MemorySource, (data, self.name)
        raise SequenceError(
            f"{self.name}: a sequence opened from a file object whose file has no usable path "
            f"cannot be sent to another process; open it from a path, a URL or bytes"
        )


class UrlSource(Source):
    """An fsspec URL (``memory://``, ``http(s)://``, ``s3://``, ``gs://`` ...)."""

    def __init__(self, url: str, storage_options: dict | None = None):
        super().__init__(url)
        self.url = url
        self.storage_options = dict(storage_options or {})
        self.fs, self.fspath = _filesystem(url, self.storage_options)
        self._info: dict | None = None

    def _stat_info(self) -> dict:
        if self._info is None:
            with fs_errors(self.name, "looking the URL up"):
                self._info = self.fs.info(self.fspath)
        return self._info

    def size(self) -> int:
        size = self._stat_info().get("size")
        if size is None:
            raise SequenceFormatError(
                f"{self.name}: the server does not say how large the file is, so it cannot be "
                f"read by ranges; download it first"
            )
        return int(size)

    def isdir(self) -> bool:
        if _is_http(self.fs):  # HTTP has no folders: a URL ending in "/" is a listing page
            return self.url.endswith("/")
        return self._stat_info().get("type") == "directory"

    def handle(self) -> FileHandle:
        store = getattr(self.fs, "store", None)
        entry = store.get(self.fspath) if _is_memory_fs(self.fs) else None
        if entry is not None and hasattr(entry, "getbuffer"):
            return MemoryHandle(self.name, entry.getbuffer(), release=True)
        size = self.size() if _is_http(self.fs) else None  # no HEAD request per handle
        return FsspecHandle(self.name, self.fs, self.fspath, size)

    def ranges_refused(self) -> bool:
        """True for an HTTP server that sends whole files only (no ``Range`` requests)."""
        if not _is_http(self.fs) or self.isdir():
            return False
        try:
            with self.fs.open(self.fspath, "rb", block_size=16, size=self.size()) as f:
                f.seek(1)
                f.read(1)
        except ValueError as err:
            return "range" in str(err).lower()
        except Exception:
            return False  # the real read will report it
        return False

    def spill(self, limit: int) -> FdSource:
        """The whole file copied to a temporary file (up to ``limit`` bytes)."""
        with fs_errors(self.name, "downloading"):
            with self.fs.open(self.fspath, "rb", block_size=0) as stream:
                return _spill(stream, self.name, limit)

    def listdir(self) -> list[str]:
        with fs_errors(self.name, "listing the folder"):
            entries = self.fs.ls(self.fspath, detail=False)
        return [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]

    def child(self, name: str) -> Source:
        return UrlSource(self.url.rstrip("/") + "/" + name, self.storage_options)

    def _join(self, relpath: str) -> str:
        return "/".join([self.fspath.rstrip("/"), *[p for p in relpath.split("/") if p]])

    def entry_mode(self, relpath: str) -> int | None:
        try:
            info = self.fs.info(self._join(relpath))
        except FileNotFoundError:
            return None
        except Exception as err:
            raise OSError(f"{self.name}: {relpath} cannot be looked up ({err})") from err
        return stat.S_IFDIR if info.get("type") == "directory" else stat.S_IFREG

    def entry_names(self, relpath: str = "") -> list[str]:
        try:
            entries = self.fs.ls(self._join(relpath), detail=False)
        except Exception as err:
            raise OSError(f"{self.name}: {relpath} cannot be listed ({err})") from err
        return [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]

    def token(self) -> str:
        info = self._info or {}
        stamp = [str(info.get(k)) for k in ("size", "ETag", "etag", "mtime", "LastModified")]
        return "|".join([self.url, *stamp])

    def zarr_store(self):
        """A read-only zarr store on this URL."""
        from zarr.storage import FsspecStore

        with fs_errors(self.name, "opening the zarr store"):
            return FsspecStore.from_url(
                self.url, storage_options=self.storage_options or None, read_only=True
            )

    def __reduce__(self):
        return UrlSource, (self.url, self.storage_options)


def _is_http(fs: Any) -> bool:
    return "http" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _is_memory_fs(fs: Any) -> bool:
    from fsspec.implementations.memory import MemoryFileSystem

    return isinstance(fs, MemoryFileSystem)


class fs_errors:  # noqa: N801 - used like a function: ``with fs_errors(url, what):``
    """Turn a file system's exception into one of ours naming the URL, chained."""

    def __init__(self, name: str, what: str):
        self.name, self.what = name, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, (SequenceError, MemoryError)):
            return False
        if not isinstance(exc, Exception):
            return False
        if isinstance(exc, FileNotFoundError):
            raise SequenceFileNotFoundError(
                f"{self.name}: no such file or folder ({self.what}); check the URL"
            ) from exc
        detail = str(exc).strip() or type(exc).__name__
        raise SequenceError(
            f"{self.name}: {self.what} failed ({type(exc).__name__}: {detail[:300]}); check the "
            f"URL, the network and the storage options (credentials, endpoint)"
        ) from exc


def _filesystem(url: str, storage_options: dict) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError as err:  # pragma: no cover - fsspec comes with dask
        raise SequenceError(
            f"{url}: reading URLs needs fsspec; install it with pip install fsspec"
        ) from err
    scheme = url.split("://", 1)[0].lower()
    try:
        return fsspec.core.url_to_fs(url, **storage_options)
    except ImportError as err:
        raise SequenceError(
            f"{url}: the {scheme}:// file system needs a package that is not installed "
            f"({err}); install it (http(s): aiohttp, s3: s3fs, gs: gcsfs) and try again"
        ) from err
    except ValueError as err:
        raise SequenceError(
            f"{url}: {scheme}:// is not a protocol fsspec knows ({err}); check the URL"
        ) from err
    except TypeError as err:
        raise SequenceError(
            f"{url}: the storage options {sorted(storage_options)} do not fit the {scheme}:// "
            f"file system ({err})"
        ) from err


def _local_from_file_url(url: str) -> str:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise SequenceError(f"{url}: a file:// URL on another host ({parsed.netloc}) is not read")
    return unquote(parsed.path)


def _spill(stream: Any, name: str, limit: int) -> FdSource:
    if limit <= 0:
        raise SequenceFormatError(
            f"{name}: this stream cannot seek (a pipe or socket) and spilling to a temporary "
            f"file is off (spill_limit=0); save it to a file, or pass a seekable object"
        )
    tmp = tempfile.TemporaryFile(prefix="imseq-spill-")
    try:
        total = 0
        while True:
            block = stream.read(min(_COPY_BLOCK, limit + 1 - total))
            if not block:
                break
            tmp.write(block)
            total += len(block)
            if total > limit:
                raise SequenceFormatError(
                    f"{name}: this stream cannot seek and holds more than the spill limit of "
                    f"{limit} bytes (it is copied to a temporary file to be read); raise "
                    f"spill_limit= (or NAPARI_IMSEQ_SPILL_LIMIT), or save the stream to a file"
                )
        tmp.flush()
        fd = os.dup(tmp.fileno())
    finally:
        tmp.close()
    return FdSource(fd, name, spilled=True)


def _file_object_source(fobj: Any, limit: int) -> Source:
    raw_name = getattr(fobj, "name", None)
    name = raw_name if isinstance(raw_name, str) and raw_name else None
    if name is None:  # unique, as dask graph names derive from it
        name = f"<{type(fobj).__name__} {uuid.uuid4().hex[:8]}>"
    if getattr(fobj, "closed", False):
        raise SequenceClosedError(f"{name}: the file object is closed")
    if isinstance(fobj, io.BytesIO):
        return MemorySource(fobj.getbuffer(), name, _release=True)
    seekable = getattr(fobj, "seekable", None)
    try:
        can_seek = bool(seekable()) if seekable is not None else hasattr(fobj, "seek")
    except Exception:
        can_seek = False
    if not can_seek:
        return _spill(fobj, name, limit)
    try:
        fd = fobj.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        regular = False
    if regular:
        path = os.path.abspath(raw_name) if isinstance(raw_name, str) else None
        return FdSource(os.dup(fd), name, path=path)
    return FileObjectSource(fobj, name)


def as_source(
    obj: Any,
    *,
    storage_options: dict | None = None,
    spill_limit: int | None = None,
) -> Source:
    """The :class:`Source` for a path, URL, bytes-like object or binary file object."""
    if isinstance(obj, Source):
        return obj
    limit = _spill_limit_value(spill_limit)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        if not len(obj):
            raise SequenceFormatError("<0 bytes in memory>: the content is empty; nothing to read")
        return MemorySource(obj)
    if isinstance(obj, str) and is_url(obj):
        if obj.lower().startswith("file://"):
            return PathSource(_local_from_file_url(obj))
        source = UrlSource(obj, storage_options)
        return source.spill(limit) if source.ranges_refused() else source
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return PathSource(path)
    remote = _fsspec_file(obj)
    if remote is not None:  # read through our own pooled handles: thread-safe, picklable
        url, options = remote
        source = UrlSource(url, {**options, **(storage_options or {})})
        return source.spill(limit) if source.ranges_refused() else source
    if hasattr(obj, "read"):
        return _file_object_source(obj, limit)
    raise TypeError(
        f"cannot read a sequence from a {type(obj).__name__}; pass a path, a URL, bytes, a "
        f"binary file object, or a numpy/dask array"
    )


def _spill_limit_value(value: int | None) -> int:
    if value is None:
        return spill_limit()
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise TypeError(f"spill_limit must be a number of bytes >= 0, not {value!r}")
    return int(value)


def _fsspec_file(obj: Any) -> tuple[str, dict] | None:
    """(URL, storage options) of an fsspec ``OpenFile`` or of an fsspec file object opened
    for reading (not one of the memory file system, whose buffer is read in place), else
    None."""
    import sys

    if "fsspec" not in sys.modules:  # nothing can be an fsspec object
        return None
    from fsspec.core import OpenFile
    from fsspec.spec import AbstractBufferedFile

    opened = isinstance(obj, AbstractBufferedFile) and getattr(obj, "mode", "") == "rb"
    if not (isinstance(obj, OpenFile) or (opened and not _is_memory_fs(obj.fs))):
        return None
    return obj.fs.unstrip_protocol(obj.path), dict(getattr(obj.fs, "storage_options", {}))
