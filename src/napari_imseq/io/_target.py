"""Writing to binary file objects (BytesIO, stdout) and fsspec URLs (``memory://``, ``s3://``).

The format's own writer writes a temporary local file; :class:`TargetWriter` delivers it to
the target on a clean close (see docs/writing.md, "Writing to file objects and URLs").
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from ._source import _COPY_BLOCK, Source, _filesystem, _local_from_file_url, fs_errors, is_url
from ._writer_base import Writer

__all__ = ["TargetWriter", "is_target_path", "local_target", "target_name"]


def is_target_path(target: Any) -> bool:
    """True when ``target`` is a local path a writer writes directly (``file://`` included
    after :func:`local_target`)."""
    return isinstance(target, (str, os.PathLike)) and not is_url(os.fspath(target))


def local_target(target: Any) -> Any:
    """A ``file://`` URL as its local path; anything else unchanged."""
    if isinstance(target, str) and target.lower().startswith("file://"):
        return _local_from_file_url(target)
    return target


def target_name(target: Any) -> str:
    """What messages call a write target: its path or URL, or the file object's name."""
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else f"<{type(target).__name__}>"


class TargetWriter:
    """A writer whose destination is a binary file object (BytesIO, a socket's file, stdout)
    or an fsspec URL (``memory://``, ``s3://`` ...).

    The format's own writer writes to a temporary local file (with its ``.partial`` and
    finalisation rules; the temporary folder is ``TMPDIR``), so memory stays bounded by what
    the container needs, whatever the length. Only a clean :meth:`close` delivers it, copied in
    blocks of 1 MiB:

    * to a file object: written at its position; on an error nothing is written to it, and
      the finalised partial file stays in the temporary folder (:meth:`abort` returns it);
    * to a URL: uploaded to ``URL.partial`` and renamed to ``URL`` (on object stores a copy
      and a delete; the object appears whole or not at all). An existing ``URL`` is replaced
      only with ``overwrite=True``; on an error nothing is uploaded.
    """

    def __init__(
        self,
        target: Any,
        *,
        format: str | None = None,
        overwrite: bool = False,
        storage_options: dict | None = None,
        **options: Any,
    ):
        from ._writer_base import OverwriteRefusedError, UnsupportedWriteError, writer_for

        self.target = target
        self.url = target if isinstance(target, str) else None
        if self.url is not None:
            self.fs, self.fspath = _filesystem(self.url, dict(storage_options or {}))
            self.path = self.url
        else:
            if not hasattr(target, "write"):
                raise UnsupportedWriteError(
                    f"cannot write to a {type(target).__name__}; pass a path, a URL or a binary "
                    f"file object with write()"
                )
            self.path = target_name(target)
        ext = Source(self.path).extension if self.url is not None else ""
        if format is None and not ext:
            raise UnsupportedWriteError(
                f"{self.path}: the output format cannot be told from a file object; pass "
                f"format= ('mkv', 'tif', 'seq', 'gif', 'mp4' ...)"
            )
        cls = writer_for(self.path if format is None else "out", format)
        if cls.directory and self.url is None:
            raise UnsupportedWriteError(
                f"{self.path}: a {cls.format_name} store is a folder and cannot be written into "
                f"one file object; write it to a folder or a URL, or choose a single-file format"
            )
        if format is not None:
            key = "." + format.lower().lstrip(".")
            ext = key if key in cls.extensions else (cls.extensions or ("",))[0]
        if self.url is not None:
            with fs_errors(self.path, "checking the destination"):
                for where in (self.fspath, self.fspath + ".partial"):
                    if not self.fs.exists(where):
                        continue
                    shown = self.path + where[len(self.fspath) :]
                    if cls.directory or self.fs.isdir(where):  # never a folder we did not make
                        raise OverwriteRefusedError(
                            f"{shown} exists and is a folder; a folder "
                            f"at a URL is never replaced (its entries may not be ours); remove "
                            f"it first or choose another name"
                        )
                    if not overwrite:
                        raise OverwriteRefusedError(
                            f"{shown} exists; pass overwrite=True to replace it"
                        )
        self._tmpdir = tempfile.mkdtemp(prefix="imseq-target-")
        local = os.path.join(self._tmpdir, "out" + ext) + (os.sep if cls.directory else "")
        try:
            self._inner = cls(local.rstrip(os.sep), **options)
        except BaseException:
            self._cleanup()
            raise
        self._delivered = False

    # the writer protocol, delegated
    def write(self, frame: Any, timestamp: float | None = None) -> None:
        self._inner.write(frame, timestamp)

    def __getattr__(self, name: str) -> Any:  # count, lossy, shape, dtype, fps ...
        if name.startswith("__") or name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    @property
    def bytes_written(self) -> int:
        return self._size if self._delivered else self._inner.bytes_written

    def close(self) -> None:
        """Finish the file and deliver it to the target."""
        if self._delivered:
            return
        self._inner.close()
        self._size = self._inner.bytes_written
        try:
            if self.url is None:
                self._copy_to_file()
            else:
                self._upload()
            self._delivered = True
        finally:
            if self._delivered:
                self._cleanup()

    def abort(self) -> str | None:
        """After an error: nothing reaches the target; the finalised partial file stays in
        the temporary folder and its path is returned."""
        return self._inner.abort()

    def _copy_to_file(self) -> None:
        from ._writer_base import SequenceWriteError

        try:
            with open(self._inner.path, "rb") as f:
                while block := f.read(_COPY_BLOCK):
                    self.target.write(block)
            flush = getattr(self.target, "flush", None)
            if flush is not None:
                flush()
        except OSError as err:
            raise SequenceWriteError(
                f"{self.path}: writing the finished file to the file object failed ({err}); "
                f"it is complete in {self._inner.path}"
            ) from err

    def _upload(self) -> None:
        fs, dst = self.fs, self.fspath
        partial = dst + ".partial"
        with fs_errors(self.path, "uploading"):
            fs.put(self._inner.path, partial, recursive=self._inner.directory)
            fs.mv(partial, dst, recursive=self._inner.directory)

    def _cleanup(self) -> None:
        import shutil

        shutil.rmtree(self._tmpdir, ignore_errors=True)

    # a clean exit closes (and delivers), an exception aborts: the writers' rule, shared
    __enter__ = Writer.__enter__
    __exit__ = Writer.__exit__

    def __repr__(self) -> str:
        return f"<TargetWriter {self.path!r} frames={self._inner.count}>"
