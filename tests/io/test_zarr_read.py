"""zarr stores: our layout and foreign arrays, and damaged stores (lost chunks, bad JSON,
corrupt chunks, huge declared shapes)."""

import json
import os

import numpy as np
import pytest
import zarr

import napari_imseq as imseq
from napari_imseq.io.zarr_ import ZarrSequence

from . import seqmaker


def _ours(tmp_path, frames):
    path = tmp_path / "a.zarr"
    imseq.imwrite(path, frames, fps=20)
    return path


def test_our_layout_round_trip_with_a_black_frame(tmp_path):
    data = seqmaker.frames(5, (12, 10), np.uint16)
    data[2] = 0  # zarr skips all-fill chunks unless told otherwise: ours are all written
    path = _ours(tmp_path, data)
    with imseq.open_sequence(path) as seq:
        assert isinstance(seq, ZarrSequence)
        np.testing.assert_array_equal(seq[:], data)
        assert seq.fps == 20 and len(seq.timestamps) == 5
        assert seq.metadata["truncated"] is False


def test_a_deleted_chunk_is_an_error_naming_the_frame(tmp_path):
    data = seqmaker.frames(5, (12, 10), np.uint16)
    path = _ours(tmp_path, data)
    os.remove(path / "frames" / "c" / "3" / "0" / "0")
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[2], data[2])
        with pytest.raises(imseq.FrameIndexError, match=r"a\.zarr: frame 3 is missing.*c/3/0/0"):
            seq[3]
        with pytest.raises(imseq.FrameIndexError, match="frame 3"):
            seq[:]


def test_a_foreign_array_without_any_chunk_says_so(tmp_path):
    path = tmp_path / "empty.zarr"
    zarr.open_array(path, mode="w", shape=(4, 6, 7), chunks=(1, 6, 7), dtype="u1")
    with pytest.warns(imseq.SequenceWarning, match=r"empty\.zarr.*no chunk is on disk"):
        seq = imseq.open_sequence(path)
    with seq:
        assert len(seq) == 4


def test_a_foreign_array_with_unwritten_chunks(tmp_path):
    path = tmp_path / "f.zarr"
    z = zarr.open_array(path, mode="w", shape=(3, 6, 7), chunks=(1, 6, 7), dtype="u1")
    z[0] = 5
    with imseq.open_sequence(path) as seq:
        assert (seq[0] == 5).all()
        with pytest.raises(imseq.FrameIndexError, match=r"frame 2 is missing.*missing='fill'"):
            seq[2]
    with imseq.open_sequence(path, missing="fill") as seq:  # zarr's rule: unwritten is fill
        assert (seq[0] == 5).all() and (seq[2] == 0).all()
    with pytest.raises(ValueError, match="missing"):
        imseq.open_sequence(path, missing="zero")


def _edit_json(path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("shape", [[5, 200_000, 200_000], [5, 2**40, 2**40, 3]])
def test_a_huge_declared_shape_is_refused_before_allocating(tmp_path, shape):
    data = seqmaker.frames(5, (12, 10), np.uint16)
    path = _ours(tmp_path, data)

    def grow(meta):
        meta["shape"] = shape
        meta["chunk_grid"]["configuration"]["chunk_shape"] = [1, *shape[1:]]
        if len(shape) == 4:
            meta["dimension_names"] = None

    _edit_json(path / "frames" / "zarr.json", grow)
    with pytest.raises(imseq.SequenceFormatError, match=r"a\.zarr.*GiB.*NAPARI_IMSEQ_MAX_FRAME"):
        imseq.open_sequence(path)


def test_the_frame_limit_is_configurable(tmp_path, monkeypatch):
    data = seqmaker.frames(2, (12, 10), np.uint16)
    path = _ours(tmp_path, data)
    monkeypatch.setenv("NAPARI_IMSEQ_MAX_FRAME_BYTES", "100")
    with pytest.raises(imseq.SequenceFormatError, match="limit"):
        imseq.open_sequence(path)
    monkeypatch.setenv("NAPARI_IMSEQ_MAX_FRAME_BYTES", "240")
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[1], data[1])


def test_broken_json_is_our_error(tmp_path):
    path = _ours(tmp_path, seqmaker.frames(2, (12, 10), np.uint16))
    (path / "frames" / "zarr.json").write_text('{"shape": [2, 12, ')
    with pytest.raises(imseq.SequenceFormatError, match=r"a\.zarr") as info:
        imseq.open_sequence(path)
    assert info.value.__cause__ is not None


def test_a_corrupt_chunk_is_our_error_naming_the_frame(tmp_path):
    path = _ours(tmp_path, seqmaker.frames(3, (12, 10), np.uint16))
    chunk = path / "frames" / "c" / "1" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2 :] = b"\xff" * (len(raw) - len(raw) // 2)
    chunk.write_bytes(bytes(raw[: len(raw) - 3]))
    with imseq.open_sequence(path) as seq:
        seq[0]
        with pytest.raises(imseq.SequenceFormatError, match=r"a\.zarr: reading frame 1") as info:
            seq[1]
        assert info.value.__cause__ is not None


def test_bad_bit_depth_attribute_is_ignored(tmp_path):
    path = _ours(tmp_path, seqmaker.frames(2, (12, 10), np.uint16))
    _edit_json(path / "zarr.json", lambda m: m["attributes"].update(bit_depth="twelve"))
    with imseq.open_sequence(path) as seq:
        assert seq.bit_depth == 16


def test_special_files_inside_a_store_never_block(tmp_path):
    data = seqmaker.frames(3, (12, 10), np.uint16)
    path = _ours(tmp_path, data)
    chunk = path / "frames" / "c" / "1" / "0" / "0"
    chunk.unlink()
    os.mkfifo(chunk)
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[0], data[0])
        with pytest.raises(imseq.SequenceFormatError, match=r"frame 1: its chunk c/1/0/0 is not"):
            seq[1]
    meta = path / "frames" / "zarr.json"
    meta.unlink()
    os.mkfifo(meta)
    with pytest.raises(imseq.SequenceFormatError, match=r"zarr\.json: this is a FIFO"):
        imseq.open_sequence(path)


def test_bool_frames(tmp_path):
    data = np.random.default_rng(0).random((3, 5, 7)) > 0.5
    path = tmp_path / "b.zarr"
    imseq.imwrite(path, data)
    with imseq.open_sequence(path) as seq:
        assert seq.dtype == bool and seq.bit_depth == 1
        np.testing.assert_array_equal(seq[:], data)
