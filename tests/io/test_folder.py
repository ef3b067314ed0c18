"""Folders of numbered images."""

import imagecodecs
import numpy as np
import pytest
import tifffile

import napari_imseq as imseq
from napari_imseq.io.folder import natural_key


def test_natural_order(tmp_path):
    for i in [10, 2, 1, 33, 3]:
        imagecodecs.imwrite(tmp_path / f"img{i}.png", np.full((4, 5), i, np.uint8))
    with imseq.open_sequence(tmp_path) as seq:
        assert [int(seq[k][0, 0]) for k in range(len(seq))] == [1, 2, 3, 10, 33]
        assert [p.rsplit("/", 1)[1] for p in seq.metadata["source"]["files"]][:2] == [
            "img1.png",
            "img2.png",
        ]
    assert sorted(["a10", "a9", "B1"], key=natural_key) == ["a9", "a10", "B1"]


def test_jpeg_and_rgb_png_folders(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (3, 6, 7, 3), dtype=np.uint8)
    (tmp_path / "p").mkdir()
    (tmp_path / "j").mkdir()
    for i, f in enumerate(rgb):
        imagecodecs.imwrite(tmp_path / "p" / f"f{i}.png", f)
        imagecodecs.imwrite(tmp_path / "j" / f"f{i}.jpg", f, level=90)
    with imseq.open_sequence(tmp_path / "p") as seq:
        assert seq.rgb and seq.shape == (3, 6, 7, 3)
        np.testing.assert_array_equal(seq[:], rgb)
    with imseq.open_sequence(tmp_path / "j") as seq:
        assert seq.shape == (3, 6, 7, 3)
        np.testing.assert_array_equal(seq[1], imagecodecs.imread(tmp_path / "j" / "f1.jpg"))


@pytest.mark.parametrize("ext", ["png", "tif", "jpg"])
def test_mixed_shapes_name_the_first_offending_file(tmp_path, ext):
    def write(name, arr):
        if ext == "tif":
            tifffile.imwrite(tmp_path / name, arr)
        else:
            imagecodecs.imwrite(tmp_path / name, arr)

    for i in range(1, 4):
        write(f"img{i}.{ext}", np.zeros((8, 8), np.uint8))
    write(f"img10.{ext}", np.zeros((9, 8), np.uint8))
    write(f"img20.{ext}", np.zeros((7, 8), np.uint8))
    with pytest.raises(imseq.SequenceFormatError, match=rf"img10\.{ext}: this image is \(9, 8\)"):
        imseq.open_sequence(tmp_path)


def test_mixed_types_and_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(imseq.SequenceFormatError, match="empty"):
        imseq.open_sequence(tmp_path / "empty")
    imagecodecs.imwrite(tmp_path / "a1.png", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "a2.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(imseq.SequenceFormatError, match="mixes image types"):
        imseq.open_sequence(tmp_path)
    with imseq.open_sequence(tmp_path, pattern=r"\.png$") as seq:
        assert len(seq) == 1


def test_png_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    import struct
    import zlib

    for i in range(2):
        imagecodecs.imwrite(tmp_path / f"img{i}.png", np.zeros((4, 5), np.uint8))
    raw = bytearray((tmp_path / "img0.png").read_bytes())
    struct.pack_into(">II", raw, 16, 100_000, 100_000)
    struct.pack_into(">I", raw, 29, zlib.crc32(bytes(raw[12:29])))
    (tmp_path / "img0.png").write_bytes(bytes(raw))
    with pytest.raises(imseq.SequenceFormatError, match=r"img0\.png.*GiB"):
        imseq.open_sequence(tmp_path)


def test_fifo_and_device_links_in_a_folder_are_skipped(tmp_path):
    import os

    for i in range(2):
        imagecodecs.imwrite(tmp_path / f"img{i}.png", np.full((4, 5), i, np.uint8))
    os.mkfifo(tmp_path / "img2.png")
    (tmp_path / "img3.png").symlink_to("/dev/zero")
    with imseq.open_sequence(tmp_path) as seq:
        assert len(seq) == 2
        assert seq[1][0, 0] == 1


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 6, 4), (5, 6)])
def test_bool_frames_round_trip_through_a_tif_folder(tmp_path, shape):
    """tifffile packs bool 1 bit per sample right only as minisblack: (Y, X, 3) bool written
    with photometric RGB read back as [True, False, False]."""
    frames = np.random.default_rng(5).random((3, *shape)) > 0.5
    out = tmp_path / "frames"
    imseq.imwrite(out, frames, format="folder", image_format="tif", fps=10)
    with imseq.open_sequence(out) as seq:
        assert seq.dtype == bool
        np.testing.assert_array_equal(seq[:], frames)
