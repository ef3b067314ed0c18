"""The writer base: the protocol every format's writer implements, and the safety rules.

Format modules subclass :class:`Writer` from here; ``open_writer``/``imwrite`` (which choose a
writer through the format registry) are in :mod:`napari_imseq.io._writer`.

Every writer

* needs no shape or dtype up front: the first ``write(frame)`` fixes them and checks that the
  format can store them *before anything is written*; every later frame must match;
* writes to ``NAME.partial`` and renames it to ``NAME`` only on a clean ``close()``, so an
  interrupted job never leaves a file that looks complete; after an exception the partial file
  is finalised (trailer, header counts) and holds every frame written before it;
* never replaces an existing file unless ``overwrite=True``, and even then replaces only a
  regular file (or a symbolic link, never what it points to) or a folder that napari-imseq
  wrote; inside such a folder only the entries napari-imseq wrote are replaced, the user's other
  files stay. A user's folder, the working folder and its parents, special files and a
  ``NAME.partial`` napari-imseq did not write are never removed.
"""

from __future__ import annotations

import errno as _errno
import math
import os
import shutil
import stat
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from ._base import SequenceError

__all__ = [
    "FrameMismatchError",
    "OverwriteRefusedError",
    "SequenceWriteError",
    "UnsupportedWriteError",
    "Writer",
]

#: the frame rates a writer accepts (inclusive): one frame per ~11.6 days to 1e9 frames/s
FPS_RANGE = (1e-6, 1e9)


class UnsupportedWriteError(SequenceError, ValueError):
    """The format cannot store these frames (dtype, channels, size) or these options."""


class FrameMismatchError(SequenceError, ValueError):
    """A frame's shape or dtype differs from the first frame's."""


class OverwriteRefusedError(SequenceError, FileExistsError):
    """The destination exists and may not be replaced (no consent, or not ours to replace)."""


class SequenceWriteError(SequenceError, OSError):
    """Writing failed in the operating system (disk full, permissions, I/O error).

    The message names the destination, the partial file kept and how many frames it holds;
    ``errno`` is the original error number, ``filename`` the partial file kept (or None), the
    original exception is chained.
    """

    def __str__(self) -> str:  # the full message, not OSError's "[Errno n] reason: file"
        return str(self.args[0]) if self.args else super().__str__()


def fitting_bit_depth(bit_depth: Any, dtype: Any) -> int | None:
    """``bit_depth`` as an int when integer samples of ``dtype`` can hold it, else None."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui" or isinstance(bit_depth, bool):
        return None
    try:
        bits = int(bit_depth)
    except (TypeError, ValueError, OverflowError):
        return None
    return bits if bits == bit_depth and 1 <= bits <= dtype.itemsize * 8 else None


def partial_path(path: str) -> str:
    return path + ".partial"


# ---- what "ours" means -------------------------------------------------------------------------
#: leading bytes of every file format our file writers produce (a leftover ``NAME.partial``
#: must start with one of them, or be empty, to be removed by ``overwrite=True``)
_FILE_MAGICS = (
    b"II*\0", b"MM\0*", b"II+\0", b"MM\0+",  # TIFF, BigTIFF
    b"\xed\xfe\0\0",  # Norpix SEQ
    b"\x1a\x45\xdf\xa3",  # Matroska, WebM
    b"RIFF",  # AVI
    b"GIF87a", b"GIF89a",
    b"nut/multimedia",
)  # fmt: skip
_MOV_ATOMS = (b"ftyp", b"wide", b"mdat", b"moov", b"free", b"skip")


def read_small_file(path: str, limit: int) -> bytes | None:
    """The first ``limit`` bytes of ``path`` when it is a regular file; None for a link, a
    FIFO or a device (opened without following links and without blocking), or an error."""
    try:
        with open(path, "rb", opener=_nofollow_opener) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            return f.read(limit)
    except OSError:
        return None


def _file_is_ours(path: str) -> bool:
    """True for a regular file that is empty or starts like a file one of our writers makes."""
    head = read_small_file(path, 16)
    if head is None:
        return False
    return not head or head.startswith(_FILE_MAGICS) or head[4:8] in _MOV_ATOMS


def _nofollow_opener(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))


def _kind(path: str) -> str:
    """'missing', 'link', 'file', 'dir' or 'special' (symbolic links are not followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "special"


def _holds_working_folder(path: str) -> bool:
    """True when ``path`` is the current working folder or one of its parents."""
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        return False
    real = os.path.realpath(path)
    return cwd == real or cwd.startswith(real.rstrip(os.sep) + os.sep)


def _our_entries(path: str) -> set[str] | None:
    """The names inside folder ``path`` that napari-imseq wrote, or None when one of our
    folder writers did not make it (recognised by its layout: zarr attributes, a marker)."""
    from ._formats import writers

    for w in writers():
        if w.directory:
            owned = w.owned_entries(path)
            if owned is not None:
                return owned
    return None


def _listing(path: str, names: Iterable[str], limit: int = 4) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _remove_entry(path: str) -> None:
    if _kind(path) == "dir":
        shutil.rmtree(path)
    else:
        os.remove(path)


class Writer:
    """Base class: a format implements ``_check``, ``_open``, ``_write`` and ``_finish``."""

    format_name: ClassVar[str] = "unknown"
    extensions: ClassVar[tuple[str, ...]] = ()
    #: True for writers whose output is a folder (zarr, image folders)
    directory: ClassVar[bool] = False
    #: True when the format loses information (lossy codec or a mapping to 8 bits)
    lossy: bool = False

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float | None = None,
        overwrite: bool = False,
        bit_depth: int | None = None,
        **options: Any,
    ):
        self.path = os.path.abspath(os.fspath(path))
        self.partial = partial_path(self.path)
        self.fps = self._checked_fps(fps)
        self.bit_depth = bit_depth
        self.options = options
        self.overwrite = overwrite
        self.count = 0
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self.timestamps: list[float] = []
        self._opened = False
        self._done = False
        for target in (self.path, self.partial):
            if _kind(target) != "missing" and not overwrite:
                what = (
                    "a partial file from an interrupted write" if target == self.partial else "it"
                )
                raise OverwriteRefusedError(
                    f"{target} exists; pass overwrite=True (--overwrite on the command line) to "
                    f"replace {what}"
                )
        self._check_replaceable()
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"{parent}: the destination folder does not exist")
        self._validate_options()

    def _checked_fps(self, fps: Any) -> float | None:
        if fps is None:
            return None
        lo, hi = FPS_RANGE
        try:
            value = float(fps)
        except (TypeError, ValueError):
            value = math.nan
        if isinstance(fps, bool) or not (math.isfinite(value) and lo <= value <= hi):
            raise UnsupportedWriteError(
                f"{self.path}: fps={fps!r} is not a frame rate; fps must be a finite number "
                f"from {lo:g} to {hi:g} frames per second (or None for the format's default)"
            )
        return value

    # ---- what overwrite=True may replace ----------------------------------------------------
    def _check_replaceable(self, partial: bool = True) -> None:
        """Raise :class:`OverwriteRefusedError` unless every existing target is ours to replace.

        Checked at construction (before any byte is written), at the first frame, and again
        before files move (then without the partial file, which this writer wrote)."""
        if partial:
            self._check_partial()
        kind, path = _kind(self.path), self.path
        if kind == "special":
            raise OverwriteRefusedError(
                f"{path} is not a regular file or folder (a FIFO, socket or device); it is never "
                f"replaced: choose another name"
            )
        if kind != "dir":
            return  # missing, a regular file, or a link (the link is replaced, never its target)
        if _holds_working_folder(path):
            raise OverwriteRefusedError(
                f"{path} is the current working folder or one of its parents; it is never "
                f"replaced: write to a new name inside it, such as 'frames/' or 'out.zarr'"
            )
        owned = _our_entries(path)
        entries = set(os.listdir(path))
        if owned is None and not (self.directory and not entries):
            held = f" (it holds {_listing(path, entries)})" if entries else ""
            raise OverwriteRefusedError(
                f"{path} is a folder that napari-imseq did not write{held}; overwrite=True "
                f"replaces only files, and folders napari-imseq wrote, so it is left untouched: "
                f"choose another name, or move the folder away yourself"
            )
        foreign = entries - (owned or set())
        if foreign and not self.directory:
            raise OverwriteRefusedError(
                f"{path} is a folder napari-imseq wrote, but it also holds files it did not "
                f"write ({_listing(path, foreign)}), so it is not replaced by a {self.format_name} "
                f"file: choose another name, or move those files away"
            )

    def _check_partial(self) -> None:
        partial, kind = self.partial, _kind(self.partial)
        if kind == "missing":
            return
        if kind == "file" and _file_is_ours(partial):
            return
        if kind == "dir" and not _holds_working_folder(partial):
            owned = _our_entries(partial)
            if owned is not None and set(os.listdir(partial)) <= owned:
                return
        what = {"dir": "a folder", "link": "a symbolic link", "special": "a special file"}.get(
            kind, "a file"
        )
        raise OverwriteRefusedError(
            f"{partial} exists and is {what} that napari-imseq did not write; a partial file is "
            f"never removed unless napari-imseq wrote it: rename or move it, or choose another "
            f"output name"
        )

    # ---- the part a format implements ------------------------------------------------------
    @classmethod
    def owned_entries(cls, path: str) -> set[str] | None:
        """Directory writers: the names inside ``path`` this writer wrote, or None when it did
        not write the folder."""
        return None

    def _validate_options(self) -> None:
        """Refuse unknown or contradictory options at construction."""

    def _check(self, frame: np.ndarray) -> None:
        """Raise :class:`UnsupportedWriteError` when the format cannot store such frames."""

    def _open(self, frame: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _write(self, frame: np.ndarray, timestamp: float | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush and close the partial file so that it is valid (also after an error)."""

    # ---- shared ----------------------------------------------------------------------------
    def _refuse(self, why: str) -> UnsupportedWriteError:
        return UnsupportedWriteError(f"{self.path}: {why}")

    def _check_common(self, frame: np.ndarray) -> None:
        """Checks every format shares: an image of at least 2-D, no empty axis, numbers, and a
        ``bit_depth`` the dtype can hold."""
        if self.bit_depth is not None and fitting_bit_depth(self.bit_depth, frame.dtype) is None:
            bits = frame.dtype.itemsize * 8
            raise self._refuse(
                f"bit_depth={self.bit_depth!r} does not fit {frame.dtype} frames; it is the "
                f"number of significant bits of integer samples, 1 to {bits} here (or None)"
            )
        if frame.ndim < 2 or 0 in frame.shape:
            raise self._refuse(
                f"a frame of shape {frame.shape} is not an image; frames must be at least 2-D "
                f"(Y, X) with no empty axis"
            )
        if frame.dtype.kind not in "biuf":
            raise self._refuse(
                f"{frame.dtype} frames cannot be written; frames hold bool, integer or float "
                f"samples"
            )

    def write(self, frame: Any, timestamp: float | None = None) -> None:
        """Append one frame (and, optionally, its time in seconds)."""
        if self._done:
            raise UnsupportedWriteError(
                f"{self.path}: the writer is closed; open a new writer to write more frames"
            )
        frame = np.asarray(frame)
        if not frame.dtype.isnative:
            frame = frame.astype(frame.dtype.newbyteorder("="))
        if timestamp is not None:
            try:
                timestamp = float(timestamp)
            except (TypeError, ValueError):
                timestamp = math.nan
            if not math.isfinite(timestamp):
                raise self._refuse(
                    f"frame {self.count} has timestamp {timestamp!r}; timestamps are finite "
                    f"seconds (or None to space frames by 1/fps)"
                )
        if self.shape is None:
            self._check_common(frame)
            self._check(frame)
            self._check_replaceable()
            with self._os_errors("creating"):
                self._remove_stale(self.partial)
                self._claim_partial()
                try:
                    self._open(frame)
                except BaseException:  # nothing of value was written: leave no partial file
                    if _kind(self.partial) in ("file", "dir"):
                        _remove_entry(self.partial)
                    raise
            self._opened = True
            self.shape, self.dtype = frame.shape, frame.dtype
        elif frame.shape != self.shape or frame.dtype != self.dtype:
            raise FrameMismatchError(
                f"{self.path}: frame {self.count} has shape {frame.shape} and dtype {frame.dtype} "
                f"but the file was started with shape {self.shape} and dtype {self.dtype}; every "
                f"frame of a file must match the first"
            )
        if timestamp is None and self.timestamps:
            step = 1.0 / self.fps if self.fps else 1.0
            timestamp = self.timestamps[-1] + step
        elif timestamp is None:
            timestamp = 0.0
        with self._os_errors(f"writing frame {self.count} to"):
            self._write(frame, float(timestamp))
        self.timestamps.append(float(timestamp))
        self.count += 1

    def _os_errors(self, doing: str):
        """A context that turns an OSError into :class:`SequenceWriteError` after keeping the
        partial file (finalised, so it reads back with every frame written so far)."""
        return _WriteErrors(self, doing)

    def _write_error(self, doing: str, err: OSError, kept: str | None) -> SequenceWriteError:
        reason = err.strerror or str(err)
        if err.errno == _errno.ENOSPC:
            advice = "free disk space or write to another disk, then write again"
        elif err.errno in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
            advice = "check the folder's permissions or write elsewhere"
        else:
            advice = "check the disk and write again"
        if kept and os.path.lexists(kept):
            frames = "frame" if self.count == 1 else "frames"
            fate = (
                f"the partial file {kept} holds the {self.count} {frames} written before the "
                f"error and reads back"
                if self._finished_ok
                else f"the partial file {kept} was kept but could not be finalised, so it may "
                f"not read back"
            )
        else:
            fate = "nothing was kept"
        out = SequenceWriteError(
            f"{self.path}: {doing} the file failed: {reason}; {fate}; {advice}"
        )
        out.errno, out.strerror, out.filename = err.errno, reason, kept
        return out

    def _claim_partial(self) -> None:
        """Create the partial file (or folder) exclusively, never through a link, so nothing
        that appeared at that name since the checks is opened or truncated."""
        try:
            if self.directory:
                os.mkdir(self.partial)
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                os.close(os.open(self.partial, flags, 0o666))
        except FileExistsError:
            raise OverwriteRefusedError(
                f"{self.partial} appeared while the writer started (another program or writer "
                f"uses this name); it was left untouched: choose another output name"
            ) from None

    def _remove_stale(self, target: str) -> None:
        """Remove a leftover partial file (``_check_replaceable`` established it is ours)."""
        if _kind(target) != "missing":
            _remove_entry(target)

    def _move_into_place(self) -> None:
        """Rename the partial file to the destination, replacing only what is ours."""
        path, partial = self.path, self.partial
        kind = _kind(path)
        if kind in ("file", "link"):
            os.remove(path)  # a link is removed, never its target
        elif kind == "dir":
            owned = _our_entries(path) or set()
            if self.directory:  # keep the user's files beside ours
                new = set(os.listdir(partial))
                clash = (new & set(os.listdir(path))) - owned
                if clash:
                    raise OverwriteRefusedError(
                        f"{path}: files napari-imseq did not write have the names of new ones "
                        f"({_listing(path, clash)}); nothing was replaced and the new data stays "
                        f"in {partial}"
                    )
                for name in owned:
                    _remove_entry(os.path.join(path, name))
                for name in sorted(new):
                    os.replace(os.path.join(partial, name), os.path.join(path, name))
                os.rmdir(partial)
                return
            shutil.rmtree(path)  # _check_replaceable: every entry is ours
        os.replace(partial, path)

    def close(self) -> None:
        """Finalise and move the finished file into place."""
        if self._done:
            return
        self._done = True
        if not self._opened:
            raise UnsupportedWriteError(
                f"{self.path}: no frame was written, so nothing was saved; give at least one frame"
            )
        try:
            self._finish()
        except OSError as err:
            raise self._write_error("finishing", err, self.partial) from err
        self._finished_ok = True
        try:
            self._check_replaceable(partial=False)
        except OverwriteRefusedError as err:
            raise OverwriteRefusedError(
                f"{err}; what was written ({self.count} frame{'s' if self.count != 1 else ''}) "
                f"is kept, complete, in {self.partial}"
            ) from None
        try:
            self._move_into_place()
        except OSError as err:
            if isinstance(err, SequenceError):
                raise
            raise self._write_error("moving into place", err, self.partial) from err

    _finished_ok = False

    def abort(self) -> str | None:
        """Finalise the partial file after an error and leave it; return its path."""
        if self._done:
            return None
        self._done = True
        if not self._opened:
            return None
        try:
            self._finish()
            self._finished_ok = True
        except Exception:  # pragma: no cover - best effort after another error
            pass
        return self.partial

    @property
    def bytes_written(self) -> int:
        """Bytes of what this writer wrote (in a folder: our entries only, not the user's)."""
        target = self.path if self._done and _kind(self.path) != "missing" else self.partial
        if _kind(target) == "dir":
            owned = _our_entries(target)
            total = 0
            for name in owned if owned is not None else os.listdir(target):
                entry = os.path.join(target, name)
                if _kind(entry) == "file":
                    total += os.path.getsize(entry)
                for root, _, files in os.walk(entry):  # nothing for a file or a link
                    total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
            return total
        return os.path.getsize(target) if _kind(target) == "file" else 0

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {os.path.basename(self.path)!r} frames={self.count}>"


class _WriteErrors:
    """``with writer._os_errors(doing):`` -- see :meth:`Writer._os_errors`."""

    def __init__(self, writer: Writer, doing: str):
        self.writer, self.doing = writer, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, OSError) or isinstance(exc, SequenceError):
            return False
        w = self.writer
        raise w._write_error(self.doing, exc, w.abort()) from exc


# ---- mapping to 8 bits -------------------------------------------------------------------------
def to_uint8(frame: np.ndarray, display_range: tuple[float, float]) -> np.ndarray:
    """Linear map of ``display_range`` to 0..255, clipped (a lossy conversion, asked for).

    NaN maps to 0, +inf to 255 and -inf to 0, whatever the range."""
    lo, hi = float(display_range[0]), float(display_range[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"display_range {display_range!r} must be two finite numbers")
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        out = (frame.astype(np.float32) - np.float32(lo)) * np.float32(scale)
        out = np.clip(out + 0.5, 0, 255, out=out)
    if frame.dtype.kind == "f":
        out[np.isnan(out)] = 0
    return out.astype(np.uint8)


def check_display_range(path: str, value: Any) -> tuple[float, float] | None:
    """``display_range`` as ``(lo, hi)`` floats, or an :class:`UnsupportedWriteError`."""
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise UnsupportedWriteError(
            f"{path}: display_range={value!r} is not a range; pass two finite numbers lo < hi "
            f"(the values mapped to 0 and 255), or 'auto'"
        )
    return lo, hi


def auto_display_range(frames: Any, path: str = "") -> tuple[float, float]:
    """``display_range="auto"``: the 0.1..99.9 percentiles of the finite values of an evenly
    spaced subsample (:func:`napari_imseq.transforms.estimate_range`; the cost follows the
    subsample). NaN and infinite pixels are ignored; no finite value is an
    :class:`UnsupportedWriteError`."""
    from ..transforms import estimate_range  # the package: see transforms/__init__

    try:
        lo, hi = estimate_range(frames, percentiles=(0.1, 99.9), max_frames=32, downsample=4)
    except ValueError as err:
        raise UnsupportedWriteError(
            f"{path}: display_range='auto' cannot be estimated: {err}"
        ) from err
    if hi <= lo:  # a constant image: any range that holds it
        hi = lo + 1.0
    return lo, hi


# ---- choosing a writer (through the format registry) ----------------------------------------
def writer_for(path: str, format: str | None = None) -> type[Writer]:
    """The writer class for ``path``'s extension (or the named ``format``: a format name,
    alias or extension, as for reading)."""
    from . import _formats

    if format:
        fmt = _formats.lookup(format, write=True)
        if fmt is None or fmt.writer is None:
            names = sorted(f.name for f in _formats.formats() if f.writer is not None)
            raise UnsupportedWriteError(
                f"{path}: unknown output format {format!r}; choose from {names}"
            )
        return fmt.writer
    if path.endswith(("/", os.sep)):
        return _formats.lookup("folder").writer
    fmt = _formats.by_name(path, write=True)
    if fmt is None:
        exts = sorted({e for w in _formats.writers() for e in w.extensions})
        raise UnsupportedWriteError(
            f"{path}: no writer for this extension; use one of {', '.join(exts)} or pass format="
        )
    return fmt.writer
