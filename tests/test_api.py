"""The headless public API."""

import subprocess
import sys

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io._registry import find_format
from napari_imseq.io.seq import SeqFile
from napari_imseq.io.tiff import TiffStack

from .io import seqmaker


def test_import_pulls_in_neither_qt_nor_napari():
    code = (
        "import sys, napari_imseq\n"
        "a = napari_imseq.open_sequence\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'qtpy', 'vispy', 'magicgui')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_content_decides_not_the_extension(tmp_path):
    data = seqmaker.frames(3, (8, 8), np.uint8)
    seqmaker.raw_seq(tmp_path / "really_seq.tif", data)
    import tifffile

    tifffile.imwrite(tmp_path / "really_tiff.seq", data, photometric="minisblack")
    assert find_format(tmp_path / "really_seq.tif") is SeqFile
    assert find_format(tmp_path / "really_tiff.seq") is TiffStack
    np.testing.assert_array_equal(imseq.imread(tmp_path / "really_tiff.seq").compute(), data)
    assert find_format(tmp_path / "missing.seq") is None


def test_unknown_content_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_text("not an image")
    with pytest.raises(imseq.UnsupportedFormatError, match=r"notes\.xyz.*no reader recognises"):
        imseq.open_sequence(path)


def test_imread_is_lazy(tmp_path, monkeypatch):
    data = seqmaker.frames(6, (8, 8), np.uint16)
    seqmaker.raw_seq(tmp_path / "a.seq", data)
    reads = []
    original = SeqFile._read
    monkeypatch.setattr(SeqFile, "_read", lambda self, i: reads.append(i) or original(self, i))
    arr = imseq.imread(tmp_path / "a.seq")
    assert reads == []
    assert arr.shape == (6, 8, 8) and arr.dtype == np.uint16
    np.testing.assert_array_equal(arr[4].compute(), data[4])
    assert reads == [4]


def test_sequence_repr_and_nbytes(tmp_path):
    data = seqmaker.frames(2, (8, 8), np.uint16)
    seqmaker.raw_seq(tmp_path / "a.seq", data)
    with imseq.open_sequence(tmp_path / "a.seq") as seq:
        assert "a.seq" in repr(seq) and "uint16" in repr(seq)
        assert seq.nbytes == data.nbytes
        np.testing.assert_array_equal(np.asarray(seq), data)
