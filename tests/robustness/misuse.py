"""API misuse that must never cost a user data: writers aimed at the user's folders.

Each case builds a sandbox of "user" files, makes one call with ``overwrite=True`` and then
checks that every file and folder the user had is still there, byte for byte. Refusing the
call (with an error that names the path) is fine; writing somewhere safe is fine.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

FRAMES = np.arange(3 * 8 * 10, dtype=np.uint8).reshape(3, 8, 10)


def _user_tree(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "notes.txt").write_text("irreplaceable notes\n")
    (d / "sub").mkdir(exist_ok=True)
    (d / "sub" / "data.bin").write_bytes(bytes(range(256)))


def _snapshot(root: Path, skip: set[Path]) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        here = Path(dirpath)
        if any(here == s or s in here.parents for s in skip):
            continue
        out[str(here.relative_to(root)) + "/"] = "dir"
        for f in files:
            p = here / f
            if p in skip:
                continue
            out[str(p.relative_to(root))] = (
                hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "other"
            )
    return out


def _imwrite(target, data=None, **kw):
    import napari_imseq as imseq

    return imseq.imwrite(target, FRAMES if data is None else data, overwrite=True, **kw)


def dir_named_like_output(ext):
    def case(root: Path):
        _user_tree(root / f"out{ext}")
        return lambda: _imwrite(root / f"out{ext}"), set()

    return case


def user_partial_dir(root: Path):
    _user_tree(root / "out.mkv.partial")
    return lambda: _imwrite(root / "out.mkv"), set()


def user_partial_dir_folder_writer(root: Path):
    _user_tree(root / "frames.partial")
    return lambda: _imwrite(root / "frames", format="folder"), set()


def _in_folder(folder: Path, target: str, **kw):
    def call():
        old = os.getcwd()
        os.chdir(folder)
        try:
            _imwrite(target, **kw)
        finally:
            os.chdir(old)

    return call


def cwd_trailing_slash(root: Path):
    _user_tree(root / "work")
    return _in_folder(root / "work", "./"), set()


def cwd_dot_folder(root: Path):
    _user_tree(root / "work")
    return _in_folder(root / "work", ".", format="folder"), set()


def cwd_parent(root: Path):
    _user_tree(root / "work" / "inner")
    return _in_folder(root / "work" / "inner", "..", format="folder"), set()


def parent_as_folder(root: Path):
    _user_tree(root / "project")
    (root / "project" / "run1").mkdir()
    return lambda: _imwrite(root / "project", format="folder"), set()


def folder_written_again(root: Path):
    _imwrite(root / "imgs", format="folder")
    (root / "imgs" / "notes.txt").write_text("notes beside the images\n")
    images = {p for p in (root / "imgs").iterdir() if p.name != "notes.txt"}
    return lambda: _imwrite(root / "imgs", format="folder"), images


def user_zarr_store(root: Path):
    import zarr

    z = zarr.create_array(str(root / "out.zarr"), shape=(2, 4), dtype="u1")
    z[:] = 7
    (root / "out.zarr" / "README.txt").write_text("my analysis store\n")
    return lambda: _imwrite(root / "out.zarr"), set()


def symlink_to_user_file(root: Path):
    _user_tree(root / "keep")
    os.symlink(root / "keep" / "notes.txt", root / "out.tif")
    return lambda: _imwrite(root / "out.tif"), {root / "out.tif"}


def existing_file_without_overwrite(root: Path):
    """Without overwrite=True an existing file is never touched."""
    _user_tree(root)
    (root / "out.tif").write_bytes(b"a user's file, not a TIFF")

    def call():
        import napari_imseq as imseq

        imseq.imwrite(root / "out.tif", FRAMES)

    return call, set()


def interrupted_write_keeps_old_file(root: Path):
    """A write that fails half-way leaves the file it was to replace as it was."""
    _user_tree(root)
    (root / "out.tif").write_bytes(b"the previous results")

    def frames():
        yield FRAMES[0]
        yield FRAMES[1]
        raise KeyboardInterrupt("interrupted by the user")

    def call():
        try:
            _imwrite(root / "out.tif", data=frames())
        except KeyboardInterrupt as err:
            raise _Expected(str(err)) from err

    return call, {root / "out.tif.partial"}


def convert_into_user_folder(root: Path):
    _user_tree(root / "clip.mkv")
    src = root / "src.tif"

    def call():
        import napari_imseq as imseq

        imseq.imwrite(src, FRAMES)
        imseq.convert(src, root / "clip.mkv", overwrite=True, progress=False)

    return call, {src}


class _Expected(Exception):
    """The call failed the way the case asked it to (not a finding)."""


def our_file_replaced(root: Path):
    """Positive control: overwrite=True must replace a file we wrote."""
    _imwrite(root / "out.mkv")
    return lambda: _imwrite(root / "out.mkv"), {root / "out.mkv"}


def our_zarr_replaced(root: Path):
    """Positive control: overwrite=True must replace a zarr store our writer made."""
    _imwrite(root / "out.zarr")
    return lambda: _imwrite(root / "out.zarr"), {root / "out.zarr"}


CASES = {
    **{f"misuse_dir_named_out{e}": dir_named_like_output(e) for e in (".mkv", ".tif", ".zarr", ".seq", ".gif", ".mp4")},
    **{f"misuse_{f.__name__}": f for f in (
        user_partial_dir, user_partial_dir_folder_writer, cwd_trailing_slash, cwd_dot_folder, cwd_parent,
        parent_as_folder, folder_written_again, user_zarr_store, symlink_to_user_file,
        existing_file_without_overwrite, interrupted_write_keeps_old_file, convert_into_user_folder,
        our_file_replaced, our_zarr_replaced)},
}  # fmt: skip

_REFUSALS = (FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def run(name: str, work: Path) -> tuple[str, list[str]]:
    from napari_imseq.io._base import SequenceError

    root = work / "sandbox"
    root.mkdir()
    call, replaceable = CASES[name](root)
    before = _snapshot(root, replaceable)
    error = None
    try:
        call()
    except Exception as err:  # noqa: BLE001
        error = err
    after = _snapshot(root, replaceable)
    lost = [k for k, v in before.items() if after.get(k) != v]
    if lost:
        how = f"; the call raised {type(error).__name__}: {error}" if error else ""
        return "data_loss", [f"lost or changed: {sorted(lost)[:6]}{how}"]
    control = name in ("misuse_our_file_replaced", "misuse_our_zarr_replaced")
    if isinstance(error, _Expected):
        return "exact", []
    if error is not None:
        ok = isinstance(error, (SequenceError, *_REFUSALS))
        if control:
            return "wrong", [
                f"overwrite=True refused to replace our own output: {type(error).__name__}: {error}"
            ]
        return ("clean_error" if ok else "raw_error"), [
            f"{type(error).__name__}: {str(error)[:200]}"
        ]
    if control:
        import napari_imseq as imseq

        target = root / ("out.mkv" if "file" in name else "out.zarr")
        with imseq.open_sequence(target) as seq:
            if not np.array_equal(seq[:], FRAMES):
                return "wrong", ["the replaced output does not read back as the frames written"]
    return "exact", []
