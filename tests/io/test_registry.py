"""The format registry (io/_formats.py): one way to find readers and writers, no import circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io import _formats
from napari_imseq.io._registry import find_format, formats
from napari_imseq.io._writer import UnsupportedWriteError, writer_for
from napari_imseq.io.folder import FolderWriter, ImageFolder
from napari_imseq.io.seq import SeqFile, SeqWriter
from napari_imseq.io.tiff import TiffStack, TiffWriter
from napari_imseq.io.video import VideoFile, VideoWriter
from napari_imseq.io.zarr_ import ZarrSequence, ZarrWriter

IO = Path(imseq.__file__).parent / "io"
FRAMES = np.arange(3 * 16 * 16, dtype=np.uint8).reshape(3, 16, 16)


def test_every_builtin_format_is_registered_once_in_sniff_order():
    got = [(f.name, f.reader, f.writer) for f in _formats.formats()]
    assert got == [
        ("seq", SeqFile, SeqWriter),
        ("tiff", TiffStack, TiffWriter),
        ("video", VideoFile, VideoWriter),
        ("zarr", ZarrSequence, ZarrWriter),
        ("folder", ImageFolder, FolderWriter),
    ]
    assert formats() == [SeqFile, TiffStack, VideoFile, ZarrSequence, ImageFolder]
    assert _formats.writers() == [SeqWriter, TiffWriter, VideoWriter, ZarrWriter, FolderWriter]
    assert [f.folder for f in _formats.formats()] == [False, False, False, True, True]


@pytest.mark.parametrize(
    "name, reader",
    [
        ("a.seq", SeqFile),
        ("a.tif", TiffStack),
        ("a.mkv", VideoFile),
        ("a.gif", VideoFile),
        ("a.zarr", ZarrSequence),
    ],
)
def test_content_is_recognised_from_its_first_bytes_without_a_name(tmp_path, name, reader):
    path = tmp_path / name
    imseq.imwrite(path, FRAMES, fps=10)
    assert find_format(path) is reader
    if not reader.folder:
        head = path.read_bytes()[:4096]
        assert find_format(head=head) is reader
        assert find_format(head=memoryview(head)) is reader
        assert _formats.sniff(head).reader is reader
        # the content decides, not the name
        assert find_format(head=head, name="x.seq" if reader is not SeqFile else "x.tif") is reader


def test_folders_are_recognised_by_their_entries(tmp_path):
    imseq.imwrite(str(tmp_path / "imgs") + "/", FRAMES, fps=10)
    assert find_format(tmp_path / "imgs") is ImageFolder
    assert find_format(tmp_path) is None  # a folder of folders is no sequence


def test_unknown_content_and_missing_paths_give_none_and_never_raise(tmp_path):
    assert find_format(head=b"") is None
    assert find_format(head=b"\x00" * 64) is None
    assert find_format(tmp_path / "missing.seq") is None
    assert find_format() is None
    assert find_format(head=b"\x00" * 64, name=12) is None  # a bad name: None, no TypeError
    assert find_format(format="no-such-format") is None


def test_a_name_decides_only_when_the_content_does_not():
    assert find_format(head=b"\x00" * 64, name="x.SEQ") is SeqFile
    assert find_format(name="https://host/a/b.ome.tif") is TiffStack
    assert find_format(name="clip.mp4") is VideoFile
    assert find_format(name="notes.txt") is None


@pytest.mark.parametrize(
    "format, reader, writer",
    [
        ("seq", SeqFile, SeqWriter),
        ("norpix-seq", SeqFile, SeqWriter),
        (".seq", SeqFile, SeqWriter),
        ("TIFF", TiffStack, TiffWriter),
        ("tif", TiffStack, TiffWriter),
        ("mkv", VideoFile, VideoWriter),
        ("video", VideoFile, VideoWriter),
        ("zarr", ZarrSequence, ZarrWriter),
        ("image-folder", ImageFolder, FolderWriter),
        ("folder", ImageFolder, FolderWriter),
    ],
)
def test_readers_and_writers_are_found_by_the_same_names(format, reader, writer):
    assert find_format(format=format) is reader
    assert writer_for("out", format) is writer


def test_writers_by_extension_and_refusals():
    assert writer_for("a/b.MKV") is VideoWriter
    assert writer_for("a.ome.tif") is TiffWriter
    assert writer_for("x.mkv", format="zarr") is ZarrWriter
    assert writer_for("out/") is FolderWriter
    with pytest.raises(UnsupportedWriteError, match="no writer for this extension"):
        writer_for("clip.ts")  # read, never written
    with pytest.raises(UnsupportedWriteError, match="unknown output format 'ts'"):
        writer_for("clip", "ts")


class _Toy:
    format_name = "toy"
    extensions = (".toy",)
    folder = False

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(b"TOY!")


class _Broken(_Toy):
    format_name = "broken"
    extensions = (".broken",)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        raise RuntimeError("a sniff that fails")


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test are dropped afterwards."""
    monkeypatch.setattr(_formats, "_registered", dict(_formats._registered))
    monkeypatch.setattr(_formats, "_MODULES", list(_formats._MODULES))
    monkeypatch.setattr(_formats, "_loaded", _formats._loaded)


def test_a_third_party_format_registers_the_same_way(scratch_registry):
    _formats.register("broken", reader=_Broken)
    fmt = _formats.register("toy", reader=_Toy, aliases=("toy-format",))
    assert fmt.names == {"toy", "toy-format"}
    assert find_format(head=b"TOY!....") is _Toy  # the broken sniff before it is skipped
    assert find_format(format="toy-format") is _Toy
    assert find_format(name="a.toy") is _Toy
    assert _formats.formats()[-2:] == [_formats.lookup("broken"), fmt]  # after the built-ins
    with pytest.raises(UnsupportedWriteError, match="unknown output format"):
        writer_for("a.toy", "toy")  # a reader only
    with pytest.raises(ValueError, match="neither a reader nor a writer"):
        _formats.register("nothing")


def test_a_module_named_for_lazy_import_is_imported_on_the_next_question(
    scratch_registry, tmp_path, monkeypatch
):
    (tmp_path / "toy_format_mod.py").write_text(
        "from napari_imseq.io._formats import register\n"
        "class Reader:\n"
        "    format_name = 'lazy-toy'\n"
        "    extensions = ('.lazytoy',)\n"
        "    @classmethod\n"
        "    def sniff(cls, head):\n"
        "        return head.startswith(b'LAZY')\n"
        "register('lazy-toy', reader=Reader)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_format_mod", raising=False)
    _formats.add_module("toy_format_mod")
    assert "toy_format_mod" not in sys.modules
    assert find_format(head=b"LAZY....").__module__ == "toy_format_mod"


def _imports(path: Path) -> set[str]:
    """The napari_imseq modules ``path`` imports anywhere (also inside functions), as absolute
    names relative to the package (``io._base``, ``io.video._decode``)."""
    here = path.relative_to(IO.parent).with_suffix("").parts  # ("io", "video", "_decode")
    package = here[:-1] if here[-1] != "__init__" else here[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            names = [node.module] if node.module else [a.name for a in node.names]
            out.update(".".join((*base, n)) for n in names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("napari_imseq."):
            out.add(node.module.removeprefix("napari_imseq."))
        elif isinstance(node, ast.Import):
            out.update(
                a.name.removeprefix("napari_imseq.")
                for a in node.names
                if a.name.startswith("napari_imseq.")
            )
    return out


def test_no_import_circle_through_the_registry_or_the_writers():
    # the registry imports nothing of the package: no circle can pass through it
    assert _imports(IO / "_formats.py") == set()
    # the writer base needs only the errors of _base, the registry and a range estimate (from
    # the transforms package, imported when asked for: see transforms/__init__)
    assert _imports(IO / "_writer_base.py") <= {
        "io._base",
        "io._formats",
        "transforms",
    }
    # format modules register into the registry and take the writer base, never the modules
    # that choose among formats (which would close a circle)
    choosing = {"io._writer", "io._registry", "io._source", "io._target"}
    modules = ["seq.py", "tiff.py", "zarr_.py", "folder.py"]
    modules += [f"video/{p.name}" for p in sorted((IO / "video").glob("*.py"))]
    for module in modules:
        used = _imports(IO / module)
        registers = module in ("seq.py", "tiff.py", "zarr_.py", "folder.py", "video/__init__.py")
        assert ("io._formats" in used) == registers, module
        assert not used & choosing, module
    # the video modules form no circle among themselves (the decoder does not import the reader)
    assert "io.video._reader" not in _imports(IO / "video" / "_decode.py")


@pytest.mark.parametrize(
    "first",
    ["napari_imseq.io.seq", "napari_imseq.io._writer_base", "napari_imseq.io.video._writer"],
)
def test_any_module_imports_first_in_a_fresh_interpreter(first):
    code = (
        f"import {first}\n"
        "from napari_imseq.io import _formats\n"
        "print(','.join(f.name for f in _formats.formats()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "seq,tiff,video,zarr,folder"
