"""The format registry: every format that napari-imseq reads or writes, found one way.

Each format module declares itself once, at its end, with :func:`register`: its name (and
aliases), its reader class and its writer class. The reader's ``sniff(head)`` recognises the
content from its first bytes (no file name needed), its ``extensions`` are the names it
usually has; the writer's ``extensions`` are the names it writes. Readers and writers are found
here the same way: by content (:func:`sniff`), by a format name or extension
(:func:`lookup`), or by a file name (:func:`by_name`).

This module imports no format module by name: the built-in ones are imported (by their module
path, on first use) when a question is asked, so format modules import the registry and never
the other way round, and there is no import circle. A third-party format registers the same
way (its module calls :func:`register`, or :func:`add_module` names it for a lazy import).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Format",
    "add_module",
    "by_name",
    "formats",
    "lookup",
    "readers",
    "register",
    "sniff",
    "writers",
]

#: the built-in format modules, in the order their content checks are tried
_MODULES: list[str] = [
    "napari_imseq.io.seq",
    "napari_imseq.io.tiff",
    "napari_imseq.io.video",
    "napari_imseq.io.zarr_",
    "napari_imseq.io.folder",
]


@dataclass(frozen=True)
class Format:
    """One format as registered: ``reader`` and ``writer`` are classes (either may be None)."""

    name: str
    reader: Any = None
    writer: Any = None
    aliases: tuple[str, ...] = ()
    #: ``sniff(head: bytes) -> bool`` on the first bytes of a file; the reader's by default
    sniff: Callable[[bytes], bool] | None = None
    module: str = ""
    names: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def folder(self) -> bool:
        """True when the reader reads folders (zarr stores, image folders), not files."""
        return bool(getattr(self.reader, "folder", False))

    @property
    def read_extensions(self) -> tuple[str, ...]:
        return tuple(getattr(self.reader, "extensions", ()))

    @property
    def write_extensions(self) -> tuple[str, ...]:
        return tuple(getattr(self.writer, "extensions", ()))

    def recognises(self, head: bytes) -> bool:
        """Whether ``head`` starts like this format; never raises."""
        if self.sniff is None or self.folder:
            return False
        try:
            return bool(self.sniff(head))
        except Exception:  # a sniff must never take the caller down
            return False


_registered: dict[str, Format] = {}
#: every module of :data:`_MODULES` was imported to the end
_loaded = False


def register(
    name: str,
    *,
    reader: Any = None,
    writer: Any = None,
    aliases: tuple[str, ...] = (),
    sniff: Callable[[bytes], bool] | None = None,
) -> Format:
    """Declare a format: called once, at its end, by the module that implements it.

    ``name`` is what ``format=`` takes (``aliases`` and the classes' own ``format_name`` are
    accepted too); ``sniff`` defaults to ``reader.sniff``. Registering a name again replaces
    the earlier entry (a module reloaded)."""
    if reader is None and writer is None:
        raise ValueError(f"format {name!r} registers neither a reader nor a writer")
    names = {name, *aliases}
    for cls in (reader, writer):
        if cls is not None and getattr(cls, "format_name", None):
            names.add(cls.format_name)
    fmt = Format(
        name=name,
        reader=reader,
        writer=writer,
        aliases=tuple(aliases),
        sniff=sniff if sniff is not None else getattr(reader, "sniff", None),
        module=(reader or writer).__module__,
        names=frozenset(n.lower() for n in names),
    )
    # no lock: a dict assignment is atomic, and a lock held here while another thread holds
    # it across an import (below) could deadlock against Python's per-module import locks
    _registered[name] = fmt
    return fmt


def add_module(module: str) -> None:
    """Name a module (``"package.module"``) that registers formats when imported; it is
    imported on the next question to the registry, after the built-in ones."""
    global _loaded
    if module not in _MODULES:
        _MODULES.append(module)
        _loaded = False


def _load() -> None:
    """Import every format module (each registers itself); thread-safe through Python's own
    import locks. A module still being imported (a question asked while it loads) is asked
    again next time."""
    global _loaded
    if _loaded:
        return
    complete = True
    for module in list(_MODULES):
        try:
            mod = importlib.import_module(module)
        except ImportError as err:  # an optional dependency is missing: skip the format
            if (err.name or "").startswith(("napari_imseq", module)):
                raise
            continue
        if getattr(getattr(mod, "__spec__", None), "_initializing", False):
            complete = False
    _loaded = complete


def _rank(fmt: Format) -> tuple[int, str]:
    package = fmt.module
    for k, module in enumerate(_MODULES):
        if package == module or package.startswith(module + "."):
            return k, fmt.name
    return len(_MODULES), fmt.name


def formats() -> list[Format]:
    """Every registered format, in the order their content checks are tried."""
    _load()
    return sorted(list(_registered.values()), key=_rank)


def readers() -> list[Any]:
    """Every reader class, in the order their content checks are tried."""
    return [f.reader for f in formats() if f.reader is not None]


def writers() -> list[Any]:
    """Every writer class."""
    return [f.writer for f in formats() if f.writer is not None]


def lookup(format: str, *, write: bool = False) -> Format | None:
    """The format a ``format=`` value names: a name or alias (``"tiff"``, ``"norpix-seq"``,
    ``"image-folder"``) or an extension with or without its dot (``"mkv"``, ``".seq"``),
    one the format reads (or, with ``write``, writes). Names win over extensions; None when
    nothing matches."""
    key = str(format).strip().lower()
    every = formats()
    for fmt in every:
        if key in fmt.names:
            return fmt
    ext = key if key.startswith(".") else "." + key
    for fmt in every:
        if ext in (fmt.write_extensions if write else fmt.read_extensions):
            return fmt
    return None


def sniff(head: bytes) -> Format | None:
    """The file format whose content check ``head`` (a file's first bytes) passes, or None;
    folder formats are not asked (they have no first bytes). Never raises."""
    if not head:
        return None
    return next((f for f in formats() if f.recognises(head)), None)


def by_name(name: str | os.PathLike, *, write: bool = False) -> Format | None:
    """The format a file name (or URL) announces by its extension, for reading or writing;
    None when none does. The longest matching extension wins (``.ome.tif`` before ``.tif``)."""
    low = os.fspath(name).lower()
    best, best_len = None, 0
    for fmt in formats():
        for ext in fmt.write_extensions if write else fmt.read_extensions:
            if low.endswith(ext) and len(ext) > best_len:
                best, best_len = fmt, len(ext)
    return best
