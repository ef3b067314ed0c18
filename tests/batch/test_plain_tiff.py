"""The plain one-page TIFF fast path of batch jobs (io.tiff.read_plain_page / write_plain_page
and normalisation's use of them): the same frames, rate and output bytes as the general path;
anything else (compressed, several pages, damaged, truncated) falls back to the general reader,
which reports it; no file is ever replaced."""

import os

import numpy as np
import pytest
import tifffile

from napari_imseq.batch import Normaliser
from napari_imseq.batch import _normalise as nm
from napari_imseq.convert import ConversionCancelled
from napari_imseq.io._base import SequenceError, SequenceFormatError
from napari_imseq.io._registry import open_sequence
from napari_imseq.io._writer import OverwriteRefusedError, open_writer
from napari_imseq.io.tiff import read_plain_page, write_plain_page

RNG = np.random.default_rng(5)
U16 = RNG.integers(0, 65535, (40, 52), dtype=np.uint16)
RGB = RNG.integers(0, 255, (30, 20, 3), dtype=np.uint8)


def _plain_files(d):
    files = {
        "u16.tif": dict(data=U16),
        "u8.tif": dict(data=U16.astype(np.uint8)),
        "big_endian.tif": dict(data=U16, byteorder=">"),
        "strips.tif": dict(data=U16, rowsperstrip=3),
        "rgb.tif": dict(data=RGB, photometric="rgb"),
        "imagej_fps.tif": dict(data=U16, imagej=True, metadata={"fps": 12.5}),
        "text.tif": dict(data=U16, description="a microscope's note", metadata=None),
    }
    for name, kw in files.items():
        tifffile.imwrite(d / name, **kw)
    # a large one: the pixels lie past the head read
    tifffile.imwrite(d / "large.tif", RNG.integers(0, 65535, (300, 257), dtype=np.uint16))
    return sorted(list(files) + ["large.tif"])


def test_plain_pages_read_as_the_general_reader_does(tmp_path):
    for name in _plain_files(tmp_path):
        got = read_plain_page(str(tmp_path / name))
        assert got is not None, name
        frame, fps = got
        with open_sequence(tmp_path / name) as seq:
            ref = seq[0]
            assert len(seq) == 1
            assert fps == seq.fps, name
        assert frame.dtype == ref.dtype and frame.dtype.isnative, name
        np.testing.assert_array_equal(frame, ref, err_msg=name)
        assert frame.flags.writeable


def _other_files(d):
    tifffile.imwrite(d / "zlib.tif", U16, compression="zlib")
    tifffile.imwrite(d / "pages.tif", np.stack([U16, U16]))
    tifffile.imwrite(d / "bigtiff.tif", U16, bigtiff=True)
    tifffile.imwrite(d / "float.tif", U16.astype(np.float32))
    tifffile.imwrite(d / "int16.tif", U16.astype(np.int16))
    tifffile.imwrite(d / "rgba.tif", RNG.integers(0, 255, (8, 9, 4), dtype=np.uint8))
    tifffile.imwrite(d / "palette.tif", U16.astype(np.uint8), colormap=np.zeros((3, 256), "u2"))
    # tifffile's JSON says two frames of half the height: not one plain image
    tifffile.imwrite(d / "shaped.tif", U16, description='{"shape": [2, 20, 52]}', metadata=None)
    tifffile.imwrite(d / "ome.tif", U16, ome=True)
    tifffile.imwrite(d / "full.tif", U16)
    raw = (d / "full.tif").read_bytes()
    (d / "truncated.tif").write_bytes(raw[:-50])
    # an ImageJ description of 3 images on one page (a damaged or cut stack)
    tifffile.imwrite(d / "ij3.tif", U16, description="ImageJ=1.11a\nimages=3\n", metadata=None)
    return {
        "zlib.tif": None, "pages.tif": None, "bigtiff.tif": None, "float.tif": None,
        "int16.tif": None, "rgba.tif": None, "palette.tif": None, "shaped.tif": None,
        "ome.tif": None, "truncated.tif": SequenceFormatError, "ij3.tif": None,
    }  # fmt: skip


def test_everything_else_falls_back(tmp_path):
    for name, error in _other_files(tmp_path).items():
        assert read_plain_page(str(tmp_path / name)) is None, name
        if error is not None:  # the general reader says what is wrong
            with pytest.raises(error):
                open_sequence(tmp_path / name)
    assert read_plain_page(str(tmp_path / "missing.tif")) is None
    os.mkfifo(tmp_path / "fifo.tif")
    assert read_plain_page(str(tmp_path / "fifo.tif")) is None  # never blocks on a FIFO
    (tmp_path / "empty.tif").write_bytes(b"")
    assert read_plain_page(str(tmp_path / "empty.tif")) is None


def test_strip_outside_the_file_falls_back(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", U16, rowsperstrip=8)
    raw = bytearray((tmp_path / "a.tif").read_bytes())
    page = tifffile.TiffFile(tmp_path / "a.tif").pages[0]
    at = page.tags["StripOffsets"].valueoffset  # the offsets' array
    raw[at : at + 4] = (len(raw) + 10).to_bytes(4, "little")
    (tmp_path / "a.tif").write_bytes(bytes(raw))
    assert read_plain_page(str(tmp_path / "a.tif")) is None


@pytest.mark.parametrize("frame", [U16, U16.astype(np.uint8), RGB], ids=["u16", "u8", "rgb"])
@pytest.mark.parametrize("fps", [None, 25.0])
def test_write_plain_page_is_the_writers_output(tmp_path, frame, fps):
    ours = str(tmp_path / "fast.tif")
    written = write_plain_page(ours, frame, fps)
    with open_writer(tmp_path / "general.tif", fps=fps) as w:
        w.write(frame)
    assert (tmp_path / "fast.tif").read_bytes() == (tmp_path / "general.tif").read_bytes()
    assert written == os.path.getsize(ours)
    assert sorted(os.listdir(tmp_path)) == ["fast.tif", "general.tif"]  # no partial left


def test_write_plain_page_never_replaces(tmp_path):
    dst = tmp_path / "x.tif"
    dst.write_bytes(b"user data")
    with pytest.raises(OverwriteRefusedError):
        write_plain_page(str(dst), U16)
    assert dst.read_bytes() == b"user data"
    assert not os.path.exists(str(dst) + ".partial")
    other = tmp_path / "y.tif"
    (tmp_path / "y.tif.partial").write_bytes(b"someone's")
    with pytest.raises(OverwriteRefusedError):
        write_plain_page(str(other), U16)
    assert (tmp_path / "y.tif.partial").read_bytes() == b"someone's"
    assert not other.exists()
    with pytest.raises(SequenceError):  # not a frame this path writes
        write_plain_page(str(tmp_path / "f.tif"), U16.astype(np.float32))


def test_write_plain_page_when_the_name_appears_meanwhile(tmp_path, monkeypatch):
    dst = tmp_path / "z.tif"
    real_link = os.link

    def racing_link(a, b):
        dst.write_bytes(b"appeared")  # another program takes the name
        return real_link(a, b)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(OverwriteRefusedError, match="kept, complete"):
        write_plain_page(str(dst), U16)
    assert dst.read_bytes() == b"appeared"
    np.testing.assert_array_equal(tifffile.imread(str(dst) + ".partial"), U16)


def _mapping():
    hist = np.bincount(U16.ravel(), minlength=65536)
    return Normaliser.build("stretch", "joint", "uint16", [hist])


def _one(src, out, mapping, cancel=None):
    kw = dict(cancel=cancel, to=str(out), fmt=None, mapping=mapping, per_file=None)
    return nm._normalise_one(str(src), overwrite=False, **kw)


def test_normalise_one_takes_the_fast_path_with_the_same_output(tmp_path, monkeypatch):
    names = [n for n in _plain_files(tmp_path) if n not in ("rgb.tif", "u8.tif")]
    mapping = _mapping()
    general = tmp_path / "general"
    general.mkdir()
    monkeypatch.setattr(nm, "_plain_tiff", lambda *a: None)
    for name in names:
        _one(tmp_path / name, general, mapping)
    monkeypatch.undo()

    def no_convert(*a, **k):
        raise AssertionError("the general path was taken")

    import sys

    monkeypatch.setattr(sys.modules["napari_imseq.convert"], "convert", no_convert)
    fast = tmp_path / "fast"
    fast.mkdir()
    for name in names:
        out = _one(tmp_path / name, fast, mapping)
        assert out["frames"] == 1 and out["bytes"] == os.path.getsize(fast / name)
        assert (fast / name).read_bytes() == (general / name).read_bytes(), name
    assert sorted(os.listdir(fast)) == sorted(names)
    # a second run skips what is there
    assert isinstance(_one(tmp_path / names[0], fast, mapping), nm.Skipped)


def test_normalise_one_reports_damage_through_the_general_reader(tmp_path):
    _other_files(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SequenceFormatError, match="truncated.tif"):
        _one(tmp_path / "truncated.tif", out, _mapping())
    assert os.listdir(out) == []


def test_normalise_one_cancelled_writes_nothing(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", U16)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConversionCancelled):
        _one(tmp_path / "a.tif", out, _mapping(), cancel=lambda: True)
    assert os.listdir(out) == []


@pytest.mark.parametrize(
    ("name", "method", "channels"),
    [("u16.tif", "stretch", "joint"), ("rgb.tif", "equalize", "luminance"),
     ("rgb.tif", "stretch", "per-channel")],
)  # fmt: skip
def test_per_file_statistics_on_the_fast_path(tmp_path, monkeypatch, name, method, channels):
    _plain_files(tmp_path)
    per = {"method": method, "channels": channels, "percentiles": [0.5, 99.5], "reference": None}
    outs = {}
    for kind in ("general", "fast"):
        folder = tmp_path / kind
        folder.mkdir()
        if kind == "general":
            monkeypatch.setattr(nm, "_plain_tiff", lambda *a: None)
        kw = dict(cancel=None, to=str(folder), fmt=None, mapping=None, per_file=per)
        outs[kind] = nm._normalise_one(str(tmp_path / name), overwrite=False, **kw)["stats"]
        monkeypatch.undo()
    assert outs["fast"] == outs["general"]
    fast, general = (tmp_path / k / name for k in ("fast", "general"))
    assert fast.read_bytes() == general.read_bytes()
