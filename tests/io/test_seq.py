"""Norpix SEQ: real files against an independent parse, layout variants, and bad input."""

import os
import struct
import warnings

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io import _cache
from napari_imseq.io.seq import SeqFile, write_seq

from ..conftest import sample, sample_names
from . import seqmaker


def independent_parse(path):
    """Header, frames and timestamps of an uncompressed v5 SEQ, straight from the bytes."""
    raw = np.fromfile(path, dtype=np.uint8)
    hdr = raw[:1024].tobytes()
    w, h, bits, real, isz, fmt, alloc = struct.unpack_from("<7I", hdr, 548)
    stride = struct.unpack_from("<I", hdr, 580)[0]
    version = struct.unpack_from("<i", hdr, 28)[0]
    start = 8192 if version >= 5 else 1024
    n = min(alloc, (raw.size - start) // stride)
    dtype = np.dtype("<u2") if bits == 16 else np.dtype(np.uint8)
    frames, times = [], []
    for i in range(n):
        off = start + i * stride
        frames.append(raw[off : off + isz].view(dtype).reshape(h, w))
        s, ms, us = struct.unpack_from("<iHH", raw[off + isz : off + isz + 8].tobytes())
        times.append(s + ms / 1e3 + us / 1e6)
    return np.stack(frames), np.array(times), real


@pytest.mark.parametrize("name", sample_names(".seq") or ["pims_sample_norpix6.seq"])
def test_real_seq_files_match_an_independent_parse(name):
    path = sample(name)
    frames, times, real = independent_parse(path)
    with imseq.open_sequence(path) as seq:
        assert isinstance(seq, SeqFile)
        assert seq.shape == frames.shape and seq.dtype == frames.dtype
        assert seq.bit_depth == real
        np.testing.assert_array_equal(seq[:], frames)
        np.testing.assert_allclose(seq.metadata["timestamps"], times, rtol=0, atol=1e-6)


def test_celeritas_is_12_bit_in_uint16_with_both_frame_rates():
    with imseq.open_sequence(sample("celeritas_top_256.seq")) as seq:
        assert seq.shape == (5, 128, 256)
        assert seq.dtype == np.uint16 and seq.bit_depth == 12
        assert seq[:].max() < 4096
        md = seq.metadata
        assert md["header_fps"] == pytest.approx(1.0)
        assert md["timestamp_fps"] == pytest.approx(1.0, rel=1e-3)


def test_pims_sample_header_fps_disagrees_with_timestamps():
    with imseq.open_sequence(sample("pims_sample_norpix6.seq")) as seq:
        md = seq.metadata
        assert seq.shape == (6, 32, 36) and seq.dtype == np.uint8
        assert md["header_fps"] == pytest.approx(10.0)
        # timestamps are ~33 ms apart: the time axis comes from them
        assert md["timestamp_fps"] == pytest.approx(30, rel=0.1)
        assert md["fps"] == md["timestamp_fps"]
        assert md["source"]["data_start"] == 8192
        assert seq[0].any(), "v5 pixel data starts at 8192, not 1024 (which is all zeros)"


def test_timestamps_v5_and_v3(tmp_path):
    data = seqmaker.frames(4, (8, 8), np.uint8)
    _, t5 = seqmaker.raw_seq(tmp_path / "v5.seq", data)
    _, t3 = seqmaker.raw_seq(tmp_path / "v3.seq", data, version=3)
    with (
        imseq.open_sequence(tmp_path / "v5.seq") as s5,
        imseq.open_sequence(tmp_path / "v3.seq") as s3,
    ):
        np.testing.assert_allclose(s5.timestamps, t5, atol=1e-6)
        np.testing.assert_allclose(s3.timestamps, t3, atol=1e-6)
        assert s3.metadata["source"]["data_start"] == 1024


def test_allocated_frames_smaller_than_slots(tmp_path):
    data = seqmaker.frames(5, (8, 8), np.uint8)
    seqmaker.raw_seq(tmp_path / "a.seq", data, allocated=3, extra_slots=4)
    with imseq.open_sequence(tmp_path / "a.seq") as seq:
        assert len(seq) == 3
        np.testing.assert_array_equal(seq[:], data[:3])
        assert not seq.metadata["partial_frame"]


def test_no_allocated_count_uses_the_slots(tmp_path):
    data = seqmaker.frames(5, (8, 8), np.uint8)
    seqmaker.raw_seq(tmp_path / "a.seq", data, allocated=0)
    with imseq.open_sequence(tmp_path / "a.seq") as seq:
        assert len(seq) == 5


def test_truncated_last_frame_is_ignored_and_reported(tmp_path):
    data = seqmaker.frames(4, (64, 64), np.uint16)
    path = tmp_path / "cut.seq"
    seqmaker.raw_seq(path, data, allocated=0, cut=8192 + 3000)
    with pytest.warns(imseq.SequenceWarning, match=r"cut\.seq.*last frame is incomplete"):
        seq = imseq.open_sequence(path)
    with seq:
        assert len(seq) == 3
        np.testing.assert_array_equal(seq[:], data[:3])
        assert seq.metadata["partial_frame"]
        assert seq.metadata["source"]["partial_frame_bytes"] > 0
        with pytest.raises(imseq.FrameIndexError, match="cut.seq"):
            seq[3]


def test_last_frame_without_padding_is_complete(tmp_path):
    data = seqmaker.frames(3, (16, 16), np.uint8)
    path = tmp_path / "a.seq"
    seqmaker.raw_seq(path, data, allocated=0)
    size = os.path.getsize(path)
    os.truncate(path, size - 8192 + 16 * 16 + 8)  # drop the last frame's zero padding
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seq = imseq.open_sequence(path)
    with seq:
        assert len(seq) == 3
        np.testing.assert_array_equal(seq[2], data[2])
        assert len(seq.timestamps) == 3


@pytest.mark.parametrize("layout", ["BGR", "BGRx"])
def test_colour_is_returned_as_rgb(tmp_path, layout):
    data = np.zeros((2, 4, 5, 3), np.uint8)
    data[..., 0] = 200  # red
    data[..., 2] = 10  # blue
    seqmaker.raw_seq(tmp_path / "c.seq", data, layout=layout)
    with imseq.open_sequence(tmp_path / "c.seq") as seq:
        assert seq.rgb and seq.shape == (2, 4, 5, 3)
        assert (seq[0][..., 0] == 200).all() and (seq[0][..., 2] == 10).all()


def test_bayer_pattern_is_in_metadata(tmp_path):
    data = seqmaker.frames(2, (8, 8), np.uint8)
    seqmaker.raw_seq(tmp_path / "b.seq", data, layout="bayer")
    raw = bytearray((tmp_path / "b.seq").read_bytes())
    struct.pack_into("<I", raw, 608, 3)
    (tmp_path / "b.seq").write_bytes(bytes(raw))
    with imseq.open_sequence(tmp_path / "b.seq") as seq:
        assert seq.metadata["bayer_pattern"] == 3
        assert not seq.rgb
        np.testing.assert_array_equal(seq[1], data[1])


@pytest.mark.parametrize("gap", [0, 8])
def test_jpeg_offsets_from_a_scan_whatever_the_gap(tmp_path, gap):
    data = seqmaker.frames(5, (16, 24), np.uint8)
    expected, times = seqmaker.compressed_seq(tmp_path / "j.seq", data, gap=gap)
    with imseq.open_sequence(tmp_path / "j.seq", use_idx=False) as seq:
        np.testing.assert_array_equal(seq[:], expected)
        np.testing.assert_allclose(seq.timestamps, times, atol=1e-6)
        assert seq.metadata["source"]["compression"] == "jpeg"


def test_old_style_jpeg_flagged_by_image_format_only(tmp_path):
    data = seqmaker.frames(3, (16, 24), np.uint8)
    expected, _ = seqmaker.compressed_seq(tmp_path / "j.seq", data, old_style=True)
    with imseq.open_sequence(tmp_path / "j.seq") as seq:
        np.testing.assert_array_equal(seq[:], expected)


def test_colour_jpeg(tmp_path):
    data = seqmaker.frames(3, (16, 24, 3), np.uint8)
    expected, _ = seqmaker.compressed_seq(tmp_path / "j.seq", data)
    with imseq.open_sequence(tmp_path / "j.seq") as seq:
        assert seq.rgb
        np.testing.assert_array_equal(seq[:], expected)


def test_consistent_idx_is_used_and_bad_idx_falls_back_to_a_scan(tmp_path, monkeypatch):
    data = seqmaker.frames(4, (16, 24), np.uint8)
    expected, times = seqmaker.compressed_seq(tmp_path / "good.seq", data, idx="good")
    seqmaker.compressed_seq(tmp_path / "bad.seq", data, idx="bad")
    scans = []
    original = SeqFile._scan_offsets
    monkeypatch.setattr(SeqFile, "_scan_offsets", lambda self: scans.append(1) or original(self))
    with imseq.open_sequence(tmp_path / "good.seq") as seq:
        np.testing.assert_array_equal(seq[:], expected)
        np.testing.assert_allclose(seq.timestamps, times, atol=1e-6)
    assert scans == []
    with pytest.warns(imseq.SequenceWarning, match=r"bad\.seq\.idx disagrees.*scan"):
        seq = imseq.open_sequence(tmp_path / "bad.seq")
    with seq:
        np.testing.assert_array_equal(seq[:], expected)
    assert scans == [1]


def test_scan_is_cached_on_disk_and_a_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(_cache, "SETTLED_S", 0.0)  # the file counts as settled at once
    data = seqmaker.frames(4, (16, 24), np.uint8)
    expected, _ = seqmaker.compressed_seq(tmp_path / "j.seq", data)
    scans = []
    original = SeqFile._scan_offsets
    monkeypatch.setattr(SeqFile, "_scan_offsets", lambda self: scans.append(1) or original(self))
    imseq.open_sequence(tmp_path / "j.seq").close()
    imseq.open_sequence(tmp_path / "j.seq").close()
    assert scans == [1]
    entry = _cache.entry_path(str(tmp_path / "j.seq"), "seq-offsets")
    with open(entry, "wb") as f:
        f.write(b"garbage")
    with imseq.open_sequence(tmp_path / "j.seq") as seq:
        np.testing.assert_array_equal(seq[:], expected)
    assert scans == [1, 1]


def test_a_file_changed_within_its_time_stamp_tick_gets_a_new_index(tmp_path, monkeypatch):
    """A file rewritten at the same size with the same modification time (a coarse time stamp
    tick, or a tool that restores it) gets a new index: the change time and inode are in the
    key, and a file changed less than ``SETTLED_S`` ago is not stored at all."""
    path = tmp_path / "j.seq"
    a = seqmaker.frames(6, (16, 24), np.uint8)
    seqmaker.compressed_seq(path, a, codec="png")
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[:], a)
    assert not os.path.exists(_cache.entry_path(str(path), "seq-offsets"))  # too fresh
    monkeypatch.setattr(_cache, "SETTLED_S", 0.0)
    imseq.open_sequence(path).close()
    entry = _cache.entry_path(str(path), "seq-offsets")
    assert os.path.exists(entry)
    st = os.stat(path)
    # the same frames in another order: records of other sizes at other offsets, same total
    b = a[[5, 0, 3, 1, 4, 2]]
    seqmaker.compressed_seq(tmp_path / "b.seq", b, codec="png")
    raw = (tmp_path / "b.seq").read_bytes()
    assert len(raw) == st.st_size
    with open(path, "r+b") as f:  # in place: the same inode
        f.write(raw)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[:], b)
    assert _cache.entry_path(str(path), "seq-offsets") != entry


def test_index_of_a_file_that_changes_during_the_scan_is_not_stored():
    st = os.stat(__file__)
    later = os.stat_result((*st[:8], st[8] + 1, st[9] + 1))  # mtime and ctime moved
    now = max(st.st_mtime_ns, st.st_ctime_ns) + int(10e9)
    assert _cache.settled(st, st, now)
    assert not _cache.settled(st, later, now)
    assert not _cache.settled(st, None, now)
    assert not _cache.settled(st, st, now - int(9e9))  # changed 1 s before the scan


def test_truncated_jpeg_frame_is_ignored_and_reported(tmp_path):
    data = seqmaker.frames(4, (16, 24), np.uint8)
    expected, _ = seqmaker.compressed_seq(tmp_path / "j.seq", data)
    os.truncate(tmp_path / "j.seq", os.path.getsize(tmp_path / "j.seq") - 100)
    with pytest.warns(imseq.SequenceWarning, match="declares 4 frames but only 3 are readable"):
        seq = imseq.open_sequence(tmp_path / "j.seq")
    with seq:
        assert len(seq) == 3
        np.testing.assert_array_equal(seq[:], expected[:3])


def test_writer_round_trip(tmp_path):
    data = seqmaker.frames(5, (20, 30), np.uint16)
    times = 1_700_000_000 + np.arange(5) * 0.0125
    write_seq(tmp_path / "w.seq", iter(data), timestamps=times, bit_depth=12, fps=80)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_seq(tmp_path / "w.seq", data)
    got, got_times, real = independent_parse(tmp_path / "w.seq")
    np.testing.assert_array_equal(got, data)
    np.testing.assert_allclose(got_times, times, atol=1e-6)
    assert real == 12
    with imseq.open_sequence(tmp_path / "w.seq") as seq:
        assert seq.metadata["timestamp_fps"] == pytest.approx(80, rel=1e-4)


# ---- bad input: each with its exact error class and the file named ------------------------
def _header_for(tmp_path, **changes):
    data = seqmaker.frames(2, (8, 8), np.uint8)
    path = tmp_path / "bad.seq"
    seqmaker.raw_seq(path, data)
    raw = bytearray(path.read_bytes())
    for off, (fmt, value) in changes.items():
        struct.pack_into(fmt, raw, int(off), value)
    path.write_bytes(bytes(raw))
    return path


def test_empty_file(tmp_path):
    path = tmp_path / "empty.seq"
    path.write_bytes(b"")
    with pytest.raises(imseq.SequenceFormatError, match=r"empty\.seq.*empty"):
        imseq.open_sequence(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "flir.seq"
    path.write_bytes(b"FFF\0" + b"\0" * 2000)
    with pytest.raises(imseq.SequenceFormatError, match=r"flir\.seq.*not a Norpix"):
        imseq.open_sequence(path)


def test_header_cut_short(tmp_path):
    path = tmp_path / "short.seq"
    path.write_bytes(struct.pack("<I", 0xFEED) + b"\0" * 500)
    with pytest.raises(imseq.SequenceFormatError, match=r"short\.seq.*header is cut short"):
        imseq.open_sequence(path)


def test_image_size_contradicts_dimensions(tmp_path):
    path = _header_for(tmp_path, **{"564": ("<I", 1000)})
    with pytest.raises(imseq.SequenceFormatError, match=r"bad\.seq.*image size is 1000 bytes"):
        imseq.open_sequence(path)


def test_stride_smaller_than_image(tmp_path):
    path = _header_for(tmp_path, **{"580": ("<I", 10)})
    with pytest.raises(imseq.SequenceFormatError, match=r"bad\.seq.*stride"):
        imseq.open_sequence(path)


@pytest.mark.parametrize(
    ("offset", "code", "what"), [(568, 600, "image format 600"), (620, 8, "compression format 8")]
)
def test_unsupported_codes_are_named(tmp_path, offset, code, what):
    path = _header_for(tmp_path, **{str(offset): ("<I", code)})
    with pytest.raises(imseq.UnsupportedFormatError, match=rf"bad\.seq.*{what}"):
        imseq.open_sequence(path)


def test_missing_path(tmp_path):
    with pytest.raises(imseq.SequenceFileNotFoundError, match="nothere.seq"):
        imseq.open_sequence(tmp_path / "nothere.seq")
    with pytest.raises(FileNotFoundError):
        imseq.imread(tmp_path / "nothere.seq")


def test_format_errors_are_value_errors():
    assert issubclass(imseq.SequenceFormatError, ValueError)
    assert issubclass(imseq.UnsupportedFormatError, imseq.SequenceFormatError)


# ---- damaged files: exactly the readable frames, and said so ---------------------------------
def test_seq_cut_inside_the_header_area_is_an_error(tmp_path):
    data = seqmaker.frames(6, (32, 36), np.uint8)
    path = tmp_path / "cut.seq"
    seqmaker.raw_seq(path, data)
    os.truncate(path, 1024)
    with pytest.raises(imseq.SequenceFormatError, match=r"cut\.seq.*declares 6 frames.*none"):
        imseq.open_sequence(path)


@pytest.mark.parametrize("version", [3, 5])
def test_truncated_seq_reads_the_readable_frames_with_a_warning(tmp_path, version):
    data = seqmaker.frames(6, (32, 36), np.uint16)
    path = tmp_path / "cut.seq"
    seqmaker.raw_seq(path, data, version=version, cut=8192 * 3 + 8000)
    with pytest.warns(
        imseq.SequenceWarning, match=r"cut\.seq: the header declares 6 frames but only 2 are"
    ):
        seq = imseq.open_sequence(path)
    with seq:
        assert len(seq) == 2
        np.testing.assert_array_equal(seq[:], data[:2])
        assert seq.metadata["frames_declared"] == 6 and seq.metadata["truncated"]
        assert len(seq.timestamps) == 2
    seqmaker.raw_seq(tmp_path / "ok.seq", seqmaker.frames(3, (8, 8), np.uint8))
    with imseq.open_sequence(tmp_path / "ok.seq") as ok:
        assert ok.metadata["truncated"] is False and ok.metadata["frames_declared"] == 3


def test_truncated_jpeg_seq_with_a_declared_count(tmp_path):
    data = seqmaker.frames(5, (16, 24), np.uint8)
    expected, _ = seqmaker.compressed_seq(tmp_path / "j.seq", data)
    raw = (tmp_path / "j.seq").read_bytes()
    (tmp_path / "j.seq").write_bytes(raw[: 1024 + (len(raw) - 1024) * 2 // 5])
    with pytest.warns(imseq.SequenceWarning, match=r"declares 5 frames but only \d are readable"):
        seq = imseq.open_sequence(tmp_path / "j.seq")
    with seq:
        assert 0 < len(seq) < 5 and seq.metadata["truncated"]
        np.testing.assert_array_equal(seq[:], expected[: len(seq)])


@pytest.mark.parametrize("damage", ["partial", "offset_outside", "wrong_size", "extra_record"])
def test_a_partial_or_lying_idx_is_rebuilt_from_a_scan_with_a_warning(tmp_path, damage):
    data = seqmaker.frames(5, (16, 24), np.uint8)
    expected, times = seqmaker.compressed_seq(tmp_path / "j.seq", data, idx="good")
    idx = str(tmp_path / "j.seq") + ".idx"
    with open(idx, "rb") as f:
        raw = bytearray(f.read())
    if damage == "partial":
        raw = raw[: 24 * 3]
    elif damage == "offset_outside":
        struct.pack_into("<q", raw, 24 * 4, 10**9)
    elif damage == "wrong_size":
        struct.pack_into("<I", raw, 24 * 2 + 8, struct.unpack_from("<I", raw, 24 * 2 + 8)[0] - 9)
    else:
        raw += raw[-24:]
    with open(idx, "wb") as f:
        f.write(raw)
    with pytest.warns(imseq.SequenceWarning, match=r"j\.seq\.idx disagrees with the data"):
        seq = imseq.open_sequence(tmp_path / "j.seq")
    with seq:
        assert len(seq) == 5
        np.testing.assert_array_equal(seq[:], expected)
        np.testing.assert_allclose(seq.timestamps, times, atol=1e-6)


def test_timestamps_of_many_tiny_frames_are_read_in_blocks(tmp_path, monkeypatch):
    data = seqmaker.frames(70_000, (2, 2), np.uint8)
    path = tmp_path / "tiny.seq"
    _, times = seqmaker.raw_seq(path, data, pad_to=16)
    calls = []
    original = imseq.io._base.FileHandle.readinto
    monkeypatch.setattr(
        imseq.io._base.FileHandle,
        "readinto",
        lambda self, buf, off: calls.append(off) or original(self, buf, off),
    )
    with imseq.open_sequence(path) as seq:
        np.testing.assert_allclose(seq.timestamps, times, atol=1e-6)
        assert len(calls) < 10  # blocks, not one call per frame
        np.testing.assert_array_equal(seq[69_999], data[69_999])


def test_a_huge_declared_frame_count_is_bounded_by_the_file(tmp_path):
    data = seqmaker.frames(3, (8, 8), np.uint8)
    path = tmp_path / "big.seq"
    seqmaker.raw_seq(path, data, allocated=23_000_000)
    with pytest.warns(imseq.SequenceWarning, match="declares 23000000 frames but only 3"):
        seq = imseq.open_sequence(path)
    with seq:
        assert len(seq) == 3 and len(seq.timestamps) == 3


def test_huge_declared_frame_is_refused_before_allocating(tmp_path, monkeypatch):
    path = _header_for(
        tmp_path,
        **{"548": ("<I", 200_000), "552": ("<I", 100_000), "564": ("<I", 2 * 10**10 % 2**32)},
    )
    with pytest.raises(imseq.SequenceFormatError, match=r"bad\.seq.*GiB.*limit"):
        imseq.open_sequence(path)
    monkeypatch.setenv("NAPARI_IMSEQ_MAX_FRAME_BYTES", "32")
    with pytest.raises(imseq.SequenceFormatError, match=r"bad\.seq.*limit"):
        imseq.open_sequence(_header_for(tmp_path))


def test_header_without_frames_or_count_is_an_error(tmp_path):
    data = seqmaker.frames(2, (16, 16), np.uint8)
    path = tmp_path / "h.seq"
    seqmaker.raw_seq(path, data, allocated=0)
    os.truncate(path, 8192 + 100)
    with pytest.raises(
        imseq.SequenceFormatError, match=r"h\.seq: the file holds no complete frame"
    ):
        imseq.open_sequence(path)


@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_a_frame_declaring_other_dimensions_is_refused_before_decoding(tmp_path, codec):
    data = seqmaker.frames(3, (16, 24), np.uint8)
    expected, _ = seqmaker.compressed_seq(tmp_path / "j.seq", data, codec=codec)
    raw = bytearray((tmp_path / "j.seq").read_bytes())
    first = 1024 + 4  # the first payload, after its size prefix
    if codec == "png":
        struct.pack_into(">II", raw, first + 16, 60000, 60000)
    else:
        sof = raw.index(b"\xff\xc0", first)
        struct.pack_into(">HH", raw, sof + 5, 60000, 60000)
    (tmp_path / "j.seq").write_bytes(bytes(raw))
    with imseq.open_sequence(tmp_path / "j.seq", use_idx=False) as seq:
        with pytest.raises(imseq.SequenceFormatError, match=r"j\.seq: frame 0 .*60000 x 60000"):
            seq[0]
        np.testing.assert_array_equal(seq[1], expected[1])


def test_an_idx_that_is_a_fifo_is_not_read(tmp_path):
    data = seqmaker.frames(3, (16, 24), np.uint8)
    expected, _ = seqmaker.compressed_seq(tmp_path / "j.seq", data)
    os.mkfifo(str(tmp_path / "j.seq") + ".idx")
    with pytest.warns(imseq.SequenceWarning, match=r"j\.seq\.idx is not a plausible index"):
        seq = imseq.open_sequence(tmp_path / "j.seq")
    with seq:
        np.testing.assert_array_equal(seq[:], expected)


def _packed_seq(path, data):
    """A v5 SEQ whose frames follow each other with no timestamp or padding (stride = image)."""
    n, h, w = data.shape
    size = h * w * data.dtype.itemsize
    hdr = seqmaker.header(
        width=w, height=h, bits=8 * data.dtype.itemsize, real_bits=8 * data.dtype.itemsize,
        image_size=size, fmt=100, allocated=n, stride=size,
    )  # fmt: skip
    path.write_bytes(hdr.ljust(8192, b"\0") + data.astype(data.dtype.newbyteorder("<")).tobytes())


@pytest.mark.parametrize(
    ("layout", "dtype", "version", "shape"),
    [
        ("mono", np.uint16, 5, (9, 7)),
        ("mono", np.uint8, 3, (8, 8)),
        ("bayer", np.uint8, 5, (6, 10)),
        ("RGB", np.uint8, 5, (5, 4, 3)),
        ("BGR", np.uint8, 5, (5, 4, 3)),
        ("BGRx", np.uint8, 5, (5, 4, 3)),
        ("packed", np.uint16, 5, (9, 7)),
    ],
)
def test_runs_of_frames_equal_single_frames(tmp_path, layout, dtype, version, shape):
    """A dask chunk (a run read straight into the chunk) holds exactly the frames that single
    reads give, for every run, whatever the layout (timestamps between frames or not)."""
    data = seqmaker.frames(11, shape, dtype, seed=3)
    path = tmp_path / "r.seq"
    if layout == "packed":
        _packed_seq(path, data)
    else:
        seqmaker.raw_seq(path, data, layout=layout, version=version)
    with imseq.open_sequence(path) as seq:
        single = np.stack([seq[i] for i in range(len(seq))])
        np.testing.assert_array_equal(single, data)
        for a in range(len(seq)):
            for b in range(a + 1, len(seq) + 1):
                np.testing.assert_array_equal(seq[a:b], data[a:b], err_msg=f"run {a}:{b}")
        for chunks in (1, 2, 3, 4, "auto"):
            np.testing.assert_array_equal(seq.to_dask(chunks).compute(), data)


@pytest.mark.parametrize("layout", ["mono", "packed"])
def test_a_run_read_of_a_file_cut_after_opening_is_our_error(tmp_path, layout):
    data = seqmaker.frames(6, (16, 16), np.uint16)
    path = tmp_path / "cut.seq"
    if layout == "packed":
        _packed_seq(path, data)
    else:
        seqmaker.raw_seq(path, data)
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[0:2], data[0:2])
        stride = seq.true_image_size
        os.truncate(path, 8192 + 3 * stride + 100)  # frame 3 is cut, 4 and 5 are gone
        np.testing.assert_array_equal(seq[0:3], data[0:3])
        with pytest.raises(imseq.FrameIndexError, match=r"cut\.seq: frame 3 is cut short"):
            seq[1:6]
