"""TIFF stacks: real files against tifffile, axes rules, compressed pages."""

import struct

import numpy as np
import pytest
import tifffile

import napari_imseq as imseq
from napari_imseq.io.tiff import TiffStack

from ..conftest import sample, sample_names
from . import seqmaker


@pytest.mark.parametrize("name", sample_names(".tif", ".tiff") or ["pims_tiff_stack.tif"])
def test_real_tiff_files_match_tifffile(name):
    path = sample(name)
    truth = tifffile.imread(path)
    with imseq.open_sequence(path) as seq:
        assert isinstance(seq, TiffStack)
        assert seq.shape == truth.shape and seq.dtype == truth.dtype.newbyteorder("=")
        np.testing.assert_array_equal(seq[:], truth)
        assert seq.metadata["timestamps"] is None or len(seq.metadata["timestamps"]) == len(seq)


def test_imagej_big_endian_sample():
    with imseq.open_sequence(sample("pims_tiff_stack.tif")) as seq:
        assert seq.shape == (5, 512, 512) and seq.dtype == np.uint16
        md = seq.metadata
        assert md["source"]["byteorder"] == ">" and md["source"]["imagej"]
        assert md["display_range"] == (477.0, 563.0)
        assert md["frame_axis"] == "Z"


def test_tifffile_shaped_sample():
    with imseq.open_sequence(sample("imageio_calcium_imaging.tif")) as seq:
        assert seq.shape == (1000, 30, 40)
        assert seq.metadata["source"]["contiguous"]


def test_hyperstack_keeps_other_axes_and_fps(tmp_path):
    data = seqmaker.frames(4, (3, 2, 10, 12), np.uint16)
    tifffile.imwrite(
        tmp_path / "h.tif", data, imagej=True, metadata={"axes": "TZCYX", "finterval": 0.25}
    )
    with imseq.open_sequence(tmp_path / "h.tif") as seq:
        assert seq.metadata["axes"] == "TZCYX" and seq.metadata["frame_axis"] == "T"
        assert seq.frame_shape == (3, 2, 10, 12)
        assert seq.fps == pytest.approx(4.0)
        np.testing.assert_allclose(seq.timestamps, [0, 0.25, 0.5, 0.75])
        np.testing.assert_array_equal(seq[2], data[2])


def test_ome_tiff(tmp_path):
    data = seqmaker.frames(5, (2, 8, 9), np.uint16)
    tifffile.imwrite(tmp_path / "a.ome.tif", data, ome=True, metadata={"axes": "TCYX"})
    with imseq.open_sequence(tmp_path / "a.ome.tif") as seq:
        assert seq.metadata["source"]["ome"]
        assert seq.shape == data.shape
        np.testing.assert_array_equal(seq[4], data[4])


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd", "jpeg"])
def test_compressed_pages(tmp_path, compression):
    data = seqmaker.frames(4, (16, 16), np.uint8)
    tifffile.imwrite(tmp_path / "c.tif", data, compression=compression, photometric="minisblack")
    truth = tifffile.imread(tmp_path / "c.tif")
    with imseq.open_sequence(tmp_path / "c.tif") as seq:
        assert not seq.metadata["source"]["contiguous"]
        np.testing.assert_array_equal(seq[:], truth)
        if compression != "jpeg":
            np.testing.assert_array_equal(seq[:], data)


def test_single_image_is_one_frame(tmp_path):
    data = seqmaker.frames(1, (10, 11), np.uint16)[0]
    tifffile.imwrite(tmp_path / "one.tif", data)
    with imseq.open_sequence(tmp_path / "one.tif") as seq:
        assert seq.shape == (1, 10, 11)
        np.testing.assert_array_equal(seq[0], data)


def test_float_tiff(tmp_path):
    data = np.random.default_rng(0).random((3, 5, 6), dtype=np.float32)
    tifffile.imwrite(tmp_path / "f.tif", data, photometric="minisblack")
    with imseq.open_sequence(tmp_path / "f.tif") as seq:
        assert seq.dtype == np.float32
        np.testing.assert_array_equal(seq[:], data)


def test_not_a_tiff_with_tif_extension(tmp_path):
    path = tmp_path / "fake.tif"
    path.write_bytes(b"hello, this is text")
    with pytest.raises(imseq.SequenceFormatError, match=r"fake\.tif"):
        imseq.open_sequence(path)


def test_truncated_tiff(tmp_path):
    data = seqmaker.frames(4, (64, 64), np.uint16)
    tifffile.imwrite(tmp_path / "t.tif", data, photometric="minisblack")
    raw = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(imseq.SequenceFormatError, match=r"t\.tif"):
        with imseq.open_sequence(tmp_path / "t.tif") as seq:
            seq[:]


def _next_ifd_pointer(raw, offset, big):
    """Byte position of the next-IFD pointer of the IFD at ``offset`` (little-endian file)."""
    if big:
        return offset + 8 + 20 * struct.unpack_from("<Q", raw, offset)[0]
    return offset + 2 + 12 * struct.unpack_from("<H", raw, offset)[0]


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize(("pages", "loop_from", "loop_to"), [(4, 3, 1), (4, 0, 0), (150, 149, 120)])
def test_a_looping_page_chain_is_an_error_not_a_hang(tmp_path, big, pages, loop_from, loop_to):
    # tifffile looks for loops only at its 100th page: a later loop made it walk forever
    path = tmp_path / "loop.tif"
    data = np.zeros((pages, 4, 4), np.uint8)
    tifffile.imwrite(path, data, photometric="minisblack", metadata=None, bigtiff=big)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        offsets = [p.offset for p in tif.pages]
    fmt = "<Q" if big else "<I"
    struct.pack_into(fmt, raw, _next_ifd_pointer(raw, offsets[loop_from], big), offsets[loop_to])
    path.write_bytes(bytes(raw))
    with pytest.raises(imseq.SequenceFormatError, match=r"loop\.tif.*loops.*damaged"):
        imseq.open_sequence(path)
