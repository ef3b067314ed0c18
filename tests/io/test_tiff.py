"""TIFF stacks: real files against tifffile, axes rules, compressed pages."""

import os
import re
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


@pytest.mark.parametrize(
    "kind", ["plain", "imagej", "shaped", "bigtiff", "zlib", "tiled", "ome_zlib"]
)
def test_truncated_tiff_opens_with_exactly_the_readable_frames(tmp_path, kind):
    data = seqmaker.frames(40, (32, 32), np.uint16)
    kw = {
        "plain": {"photometric": "minisblack", "metadata": None},
        "imagej": {"imagej": True, "metadata": {"axes": "TYX", "finterval": 0.1}},
        "shaped": {"photometric": "minisblack"},
        "bigtiff": {"bigtiff": True, "photometric": "minisblack"},
        "zlib": {"photometric": "minisblack", "compression": "zlib", "metadata": None},
        "tiled": {"photometric": "minisblack", "tile": (16, 16), "metadata": None},
        "ome_zlib": {"ome": True, "compression": "zlib", "metadata": {"axes": "TYX"}},
    }[kind]
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, data, **kw)
    with tifffile.TiffFile(path) as tif:
        ifds = [p.offset for p in tif.pages]
    size = path.stat().st_size
    cut = int(size * 0.7)
    assert ifds[0] < cut  # the first page survives
    os.truncate(path, cut)
    with pytest.warns(imseq.SequenceWarning) as said:
        seq = imseq.open_sequence(path)
    assert any(re.search(r"t\.tif: the .* (frames|page).* truncated", str(w.message)) for w in said)
    if kind == "ome_zlib":  # tifffile writes the OME-XML last: the cut takes it
        assert any("image description (tag 270) is damaged" in str(w.message) for w in said)
    with seq:
        n = len(seq)
        assert 0 < n < 40
        assert seq.metadata["truncated"]
        declared = seq.metadata["frames_declared"]
        assert declared is None or declared > n
        np.testing.assert_array_equal(seq[:], data[:n])  # every frame it shows is readable
        # nothing readable was dropped: the next frame's bytes are not all in the file
        if seq.metadata["source"]["contiguous"] and declared is not None:
            assert seq.metadata["source"]["data_offset"] + (n + 1) * 32 * 32 * 2 > cut


def test_tiff_cut_before_any_frame_is_an_error(tmp_path):
    data = seqmaker.frames(4, (64, 64), np.uint16)
    tifffile.imwrite(tmp_path / "t.tif", data, imagej=True)
    os.truncate(tmp_path / "t.tif", 2000)
    with pytest.raises(imseq.SequenceFormatError, match=r"t\.tif.*holds only 2000 bytes"):
        imseq.open_sequence(tmp_path / "t.tif")
    tifffile.imwrite(tmp_path / "u.tif", data, photometric="minisblack")
    os.truncate(tmp_path / "u.tif", 8192 + 50)  # a frame fits in the file size, not its data
    with pytest.raises(imseq.SequenceFormatError, match=r"u\.tif.*declares 4 frames but none"):
        imseq.open_sequence(tmp_path / "u.tif")


def test_bool_frames_read_back(tmp_path):
    data = np.random.default_rng(0).random((3, 5, 7)) > 0.5
    tifffile.imwrite(tmp_path / "b.tif", data)
    with imseq.open_sequence(tmp_path / "b.tif") as seq:
        assert seq.dtype == bool and seq.shape == data.shape
        np.testing.assert_array_equal(seq[:], data)
        np.testing.assert_array_equal(seq[2], data[2])


def test_imagej_description_that_contradicts_itself_is_refused(tmp_path):
    data = seqmaker.frames(4, (3, 2, 10, 12), np.uint16)
    path = tmp_path / "h.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    raw = path.read_bytes().replace(b"channels=2\n", b"xhannels=2\n")
    path.write_bytes(raw)
    with pytest.raises(imseq.SequenceFormatError, match=r"h\.tif.*images=24.*12 planes"):
        imseq.open_sequence(path)


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


def _set_tag(path, name, value):
    """Overwrite tag ``name`` of every page in place (little-endian classic TIFF)."""
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            tag = page.tags[name]
            struct.pack_into("<H" if tag.dtype == 3 else "<I", raw, tag.valueoffset, value)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_huge_declared_dimensions_are_refused_before_allocating(tmp_path, compression):
    path = tmp_path / "h.tif"
    data = seqmaker.frames(4, (16, 20), np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", compression=compression)
    _set_tag(path, "ImageWidth", 60000)
    _set_tag(path, "ImageLength", 60000)
    # 60000 x 60000 uint16 is 6.7 GiB a frame: more than the file (raw) or than its strips
    with pytest.raises(imseq.SequenceFormatError, match=r"h\.tif: the (header|first page)"):
        imseq.open_sequence(path)


def test_frame_size_limit_applies_to_compressed_frames(tmp_path, monkeypatch):
    path = tmp_path / "c.tif"
    tifffile.imwrite(
        path, seqmaker.frames(3, (64, 64), np.uint16), photometric="minisblack", compression="zlib"
    )
    monkeypatch.setenv("NAPARI_IMSEQ_MAX_FRAME_BYTES", str(64 * 64))
    with pytest.raises(imseq.SequenceFormatError, match=r"c\.tif.*limit"):
        imseq.open_sequence(path)


def test_a_corrupt_compressed_page_is_our_error_naming_the_frame(tmp_path):
    path = tmp_path / "z.tif"
    data = seqmaker.frames(3, (32, 32), np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", compression="zlib")
    with tifffile.TiffFile(path) as tif:
        off, count = tif.pages[1].dataoffsets[0], tif.pages[1].databytecounts[0]
    raw = bytearray(path.read_bytes())
    raw[off : off + count] = b"\x13" * count
    path.write_bytes(bytes(raw))
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[0], data[0])
        with pytest.raises(imseq.SequenceFormatError, match=r"z\.tif: reading frame 1") as info:
            seq[1]
        assert info.value.__cause__ is not None


def test_seeded_mutations_give_frames_or_our_errors(tmp_path):
    """A small, fixed sample of byte flips, pointer rewrites and cuts: never a raw error.
    (The long mutation run with hang and memory classification lives in the robustness suite.)"""
    import logging
    import random
    import warnings

    rng = random.Random(7)
    data = seqmaker.frames(6, (16, 20), np.uint16)
    kinds = [
        {"photometric": "minisblack"},
        {"imagej": True, "metadata": {"axes": "TYX"}},
        {"ome": True, "metadata": {"axes": "TYX"}},
        {"bigtiff": True, "photometric": "minisblack"},
        {"photometric": "minisblack", "compression": "zlib"},
        {"photometric": "minisblack", "tile": (16, 16)},
    ]
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    for k, kw in enumerate(kinds):
        base = tmp_path / f"b{k}.tif"
        tifffile.imwrite(base, data, **kw)
        raw0 = base.read_bytes()
        for j in range(25):
            raw = bytearray(raw0)
            if j % 3 == 0:
                raw = raw[: rng.randrange(8, len(raw))]
            else:
                for _ in range(rng.randrange(1, 4)):
                    pos = rng.randrange(len(raw) - 4)
                    struct.pack_into(
                        "<I", raw, pos, rng.choice([0, 0xFFFFFFFF, rng.randrange(1 << 20)])
                    )
            path = tmp_path / f"m{k}_{j}.tif"
            path.write_bytes(bytes(raw))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", imseq.SequenceWarning)
                try:
                    with imseq.open_sequence(path) as seq:
                        for i in range(len(seq)):
                            seq[i]
                        assert seq.metadata["frame_count"] == len(seq)
                except imseq.SequenceError as err:
                    assert str(path) in str(err)


def test_truncated_imagej_hyperstack_keeps_its_axes(tmp_path):
    data = seqmaker.frames(10, (3, 2, 10, 12), np.uint16)
    path = tmp_path / "h.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX", "finterval": 0.5})
    os.truncate(path, path.stat().st_size * 6 // 10)
    with pytest.warns(imseq.SequenceWarning, match=r"declares 10 frames but only \d are readable"):
        seq = imseq.open_sequence(path)
    with seq:
        assert seq.metadata["axes"] == "TZCYX" and seq.frame_shape == (3, 2, 10, 12)
        assert 0 < len(seq) < 10
        np.testing.assert_array_equal(seq[:], data[: len(seq)])
        assert seq.fps == pytest.approx(2.0)


def test_a_page_whose_data_cannot_be_located_is_an_error_not_a_black_frame(tmp_path):
    path = tmp_path / "z.tif"
    data = seqmaker.frames(4, (10, 12), np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", compression="zlib")
    _set_tag_on_page(path, 2, "StripByteCounts", 0)
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[1], data[1])
        with pytest.raises(imseq.FrameIndexError, match=r"z\.tif: frame 2: page 2 lists 0 bytes"):
            seq[2]


def _set_tag_on_page(path, index, name, value):
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[index].tags[name]
        struct.pack_into("<H" if tag.dtype == 3 else "<I", raw, tag.valueoffset, value)
    path.write_bytes(bytes(raw))


def test_a_damaged_first_page_that_splits_the_series_is_reported(tmp_path):
    path = tmp_path / "s.tif"
    data = seqmaker.frames(5, (10, 12), np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", compression="zlib", metadata=None)
    _set_tag_on_page(path, 0, "ImageWidth", 6331)
    with pytest.warns(imseq.SequenceWarning, match=r"s\.tif: the file's 5 pages form 2 series"):
        try:
            imseq.open_sequence(path).close()
        except imseq.SequenceFormatError:
            pass  # refusing the damaged page is fine too; losing the others silently is not


@pytest.mark.parametrize("damaged", [[2], [1, 3]])
def test_damaged_pages_inside_a_stack_are_damaged_frames_not_a_renumbering(tmp_path, damaged):
    """Seed 13's `tiff_ome:flip[n=4,seed=1038314730]`: a flipped ImageLength made page 2 of 4
    a series of its own; the first series (pages 0, 1, 3) was read, so page 3 became frame 2,
    with only a warning that pages form several series. The pages from the first to the last
    of the stack are now its frames: the odd pages raise, every other frame keeps its number;
    dask gives the same."""
    path = tmp_path / "m.tif"
    data = seqmaker.frames(6, (10, 12), np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", compression="zlib", metadata=None)
    for k, height in zip(damaged, (212, 77), strict=False):
        _set_tag_on_page(path, k, "ImageLength", height)
    with tifffile.TiffFile(path) as tif:  # (what tifffile makes of it)
        assert len(tif.series) == 1 + len(damaged)
        assert [p.index for p in tif.series[0].pages] == [k for k in range(6) if k not in damaged]
    pages = ", ".join(map(str, damaged))
    with pytest.warns(imseq.SequenceWarning, match=rf"m\.tif: (\d pages|page) {pages} of the "):
        seq = imseq.open_sequence(path)
    with seq:
        assert len(seq) == 6 and seq.frame_shape == (10, 12)
        for i in range(6):
            if i in damaged:
                with pytest.raises(imseq.FrameIndexError, match=rf"frame {i}: page {i} is \("):
                    seq[i]
            else:
                np.testing.assert_array_equal(seq[i], data[i])
        good = [i for i in range(6) if i not in damaged]
        arr = seq.to_dask()
        np.testing.assert_array_equal(arr[good].compute(), data[good])


def test_an_odd_page_after_the_stack_renumbers_nothing_and_is_reported(tmp_path):
    path = tmp_path / "e.tif"
    data = seqmaker.frames(5, (10, 12), np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", compression="zlib", metadata=None)
    _set_tag_on_page(path, 4, "ImageLength", 212)
    with pytest.warns(imseq.SequenceWarning, match=r"e\.tif: the file's 5 pages form 2 series"):
        seq = imseq.open_sequence(path)
    with seq:
        assert len(seq) == 4
        np.testing.assert_array_equal(np.stack([seq[i] for i in range(4)]), data[:4])


def test_a_shaped_description_the_pages_do_not_match_is_reported(tmp_path):
    path = tmp_path / "d.tif"
    data = seqmaker.frames(6, (10, 12), np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", compression="zlib")
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        nxt = _next_ifd_pointer(raw, tif.pages[1].offset, False)
    struct.pack_into("<I", raw, nxt, 0)  # the chain now ends after page 1
    path.write_bytes(bytes(raw))
    with pytest.warns(imseq.SequenceWarning, match=r"d\.tif: the header declares 6 frames"):
        seq = imseq.open_sequence(path)
    with seq:
        assert seq.metadata["truncated"] and seq.metadata["frames_declared"] == 6
        np.testing.assert_array_equal(seq[0], data[0])


@pytest.mark.parametrize(
    ("byteorder", "kw"),
    [
        ("<", {"photometric": "minisblack"}),
        (">", {"photometric": "minisblack"}),
        ("<", {"imagej": True, "metadata": {"axes": "TYX"}}),
        ("<", {"photometric": "rgb"}),
        ("<", {"photometric": "minisblack", "compression": "zlib"}),
    ],
)
def test_runs_of_frames_equal_tifffile(tmp_path, byteorder, kw):
    """A dask chunk of a contiguous file is one read straight into the chunk (swapped in place
    when big-endian); every run equals tifffile's frames, as do compressed pages frame by frame."""
    shape = (9, 6, 7, 3) if kw.get("photometric") == "rgb" else (9, 6, 7)
    data = seqmaker.frames(shape[0], shape[1:], np.uint16 if len(shape) == 3 else np.uint8)
    path = tmp_path / "r.tif"
    tifffile.imwrite(path, data, byteorder=byteorder, **kw)
    truth = tifffile.imread(path)
    np.testing.assert_array_equal(truth, data)
    with imseq.open_sequence(path) as seq:
        assert seq.metadata["source"]["contiguous"] == ("compression" not in kw)
        for a in range(len(seq)):
            for b in range(a + 1, len(seq) + 1):
                got = seq[a:b]
                assert got.dtype.isnative
                np.testing.assert_array_equal(got, data[a:b], err_msg=f"run {a}:{b}")
        for chunks in (1, 2, 4, "auto"):
            np.testing.assert_array_equal(seq.to_dask(chunks).compute(), data)


def test_a_run_read_of_a_tiff_cut_after_opening_is_our_error(tmp_path):
    data = seqmaker.frames(6, (16, 16), np.uint16)
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    with imseq.open_sequence(path) as seq:
        offset = seq.metadata["source"]["data_offset"]
        os.truncate(path, offset + 3 * 512 + 100)  # frame 3 is cut, 4 and 5 are gone
        np.testing.assert_array_equal(seq[0:3], data[0:3])
        with pytest.raises(imseq.FrameIndexError, match=r"cut\.tif: frame 3 is cut short"):
            seq[1:6]


@pytest.mark.parametrize(
    ("shape", "dtype", "kind"),
    [((6, 5), np.uint16, "imagej"), ((6, 5, 3), np.uint8, "imagej"),
     ((6, 5), np.int32, "shaped"), ((3, 6, 5), np.float32, "shaped")],
)  # fmt: skip
def test_allocated_frames_filled_in_any_order_read_back_exact(tmp_path, shape, dtype, kind):
    from napari_imseq.io.tiff import allocate_frames

    data = (np.random.default_rng(4).random((9, *shape)) * 1000).astype(dtype)
    path = tmp_path / "a.tif"
    offset, nbytes = allocate_frames(str(path), 9, data[0], fps=40.0)
    assert nbytes == data[0].nbytes
    with open(path, "r+b") as f:  # frames written in place, last first
        for i in reversed(range(9)):
            f.seek(offset + i * nbytes)
            f.write(data[i].astype(data.dtype.newbyteorder("<")).tobytes())
    np.testing.assert_array_equal(tifffile.imread(path).reshape(data.shape), data)
    with imseq.open_sequence(path) as seq:
        assert seq.shape == data.shape and seq.fps == 40.0
        assert seq.metadata["source"]["series_kind"] == kind
        np.testing.assert_array_equal(seq[:], data)
    with pytest.raises(imseq.OverwriteRefusedError):
        allocate_frames(str(path), 9, data[0])
    with pytest.raises(imseq.UnsupportedWriteError, match="uncompressed"):
        allocate_frames(str(tmp_path / "c.tif"), 9, data[0], compression="zlib")
    with pytest.raises(imseq.UnsupportedWriteError, match="bool"):
        allocate_frames(str(tmp_path / "b.tif"), 9, data[0] > 0)
    assert sorted(os.listdir(tmp_path)) == ["a.tif"]


def test_allocated_imagej_stack_past_4_gb_is_one_page_and_sparse(tmp_path):
    """Past 4 GB an ImageJ stack keeps one IFD and contiguous data (what TiffWriter writes);
    the allocated pixel area takes no disk space until frames are written."""
    from napari_imseq.io.tiff import allocate_frames

    path = tmp_path / "big.tif"
    frame = np.arange(512 * 512, dtype=np.uint32).astype(np.uint16).reshape(512, 512)
    offset, nbytes = allocate_frames(str(path), 9000, frame, fps=100.0)
    assert path.stat().st_size == offset + 9000 * nbytes > 2**32
    if path.stat().st_blocks * 512 > 2**20:
        pytest.skip("this file system does not keep holes in files")
    with open(path, "r+b") as f:
        for i, data in ((8999, frame), (4500, frame[::-1])):
            f.seek(offset + i * nbytes)
            f.write(data.tobytes())
    with imseq.open_sequence(path) as seq:
        assert seq.shape == (9000, 512, 512) and seq.fps == 100.0
        np.testing.assert_array_equal(seq[8999], frame)
        np.testing.assert_array_equal(seq[4500], frame[::-1])
        assert not seq[4499].any()
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1 and tif.imagej_metadata["frames"] == 9000
    np.testing.assert_array_equal(tifffile.memmap(path)[8999], frame)


def test_a_page_whose_coding_tags_differ_from_the_series_is_refused(tmp_path):
    """tifffile decodes every page of a series with the first page's tags: a page whose own
    Compression tag was damaged (here: deflate rewritten as none) would come out as the series'
    coding says, or as garbage page by page. Its frame is refused, naming what differs; the
    other frames read exactly."""
    p = tmp_path / "a.tif"
    data = np.arange(5 * 10 * 12, dtype=np.uint16).reshape(5, 10, 12)
    tifffile.imwrite(p, data, compression="zlib")
    with tifffile.TiffFile(p) as tf:
        tag = tf.pages[3].tags["Compression"]
        at, order = tag.valueoffset, tf.byteorder
    blob = bytearray(p.read_bytes())
    blob[at : at + 2] = (1).to_bytes(2, "little" if order == "<" else "big")
    p.write_bytes(bytes(blob))
    with imseq.open_sequence(str(p)) as s:
        assert len(s) == 5
        for i in (0, 1, 2, 4):
            assert np.array_equal(s[i], data[i])
        with pytest.raises(
            imseq.FrameIndexError, match="page 3 is coded differently.*compression 1 "
        ):
            s[3]


def test_a_damaged_image_description_is_reported(tmp_path, recwarn):
    """An ImageJ hyperstack whose description tag cannot be read looks like a plain stack of
    pages: the reader says the layout is lost instead of handing out planes as frames
    silently. A file without a description gets no such warning."""
    p = tmp_path / "a.tif"
    data = np.arange(3 * 2 * 2 * 6 * 8, dtype=np.uint16).reshape(3, 2, 2, 6, 8)
    tifffile.imwrite(p, data, imagej=True, metadata={"axes": "TZCYX"})
    with tifffile.TiffFile(p) as tf:
        at, order = tf.pages[0].tags["ImageDescription"].offset, tf.byteorder
    blob = bytearray(p.read_bytes())
    blob[at + 2 : at + 4] = (0xB504).to_bytes(2, "little" if order == "<" else "big")  # type
    p.write_bytes(bytes(blob))
    with pytest.warns(imseq.SequenceWarning, match=r"image description \(tag 270\) is damaged"):
        s = imseq.open_sequence(str(p))
    with s:
        assert len(s) == 12 and s.frame_shape == (6, 8)
        assert np.array_equal(s[5], data.reshape(12, 6, 8)[5])
    plain = tmp_path / "b.tif"
    tifffile.imwrite(plain, data.reshape(12, 6, 8), description=None, metadata=None)
    recwarn.clear()
    imseq.open_sequence(str(plain)).close()
    assert not [w for w in recwarn if "tag 270" in str(w.message)]
