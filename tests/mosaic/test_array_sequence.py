"""ArraySequence: numpy and dask arrays as Sequences (lazy for dask, copies, timing, pickling,
bad input)."""

import pickle

import dask.array as da
import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io.array import ArraySequence


def test_numpy_frames_are_copies_with_timing():
    data = np.arange(5 * 4 * 3, dtype=np.uint16).reshape(5, 4, 3)
    seq = ArraySequence(data, fps=20.0, bit_depth=12, name="cam")
    assert (len(seq), seq.frame_shape, seq.dtype, seq.bit_depth, seq.rgb) == (
        5, (4, 3), np.uint16, 12, False)  # fmt: skip
    np.testing.assert_allclose(seq.timestamps, np.arange(5) / 20.0)
    assert seq.metadata["format"] == "array" and seq.path == "cam"
    frame = seq[2]
    frame[...] = 0
    assert data[2].any(), "changing a frame never changes the array"
    np.testing.assert_array_equal(seq[1:4], data[1:4])
    np.testing.assert_array_equal(seq.to_dask().compute(), data)


def test_dask_is_read_frame_by_frame():
    computed = []

    def block(i):
        computed.append(i)
        return np.full((1, 6, 7), i, np.int16)

    arr = da.concatenate(
        [da.from_delayed(__import__("dask").delayed(block)(i), (1, 6, 7), np.int16)
         for i in range(10)]
    )  # fmt: skip
    seq = ArraySequence(arr, timestamps=np.linspace(1.0, 2.0, 10))
    _ = len(seq), seq.shape, seq.metadata, seq.fps
    assert computed == [], "opening computes nothing"
    assert seq.fps == pytest.approx(9.0), "frames over the span of the timestamps"
    assert seq[7].max() == 7 and computed == [7], "one frame computes one block"
    assert seq.to_dask() is arr, "a dask array is passed through, not wrapped again"


def test_pickles_and_works_in_mosaics_and_writers(tmp_path):
    data = np.random.default_rng(0).integers(0, 4096, (6, 8, 9), dtype=np.uint16)
    seq = ArraySequence(data, fps=30.0, bit_depth=12, name="x")
    clone = pickle.loads(pickle.dumps(seq))
    assert (clone.fps, clone.bit_depth, clone.path) == (30.0, 12, "x")
    np.testing.assert_array_equal(clone[5], data[5])
    lazy = ArraySequence(da.from_array(data, chunks=(2, 8, 9)), fps=30.0)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lazy))[3], data[3])
    imseq.convert(seq, tmp_path / "x.tif", progress=False)
    with imseq.open_sequence(tmp_path / "x.tif") as back:
        np.testing.assert_array_equal(back[:], data)
        assert back.fps == pytest.approx(30.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(array=np.zeros((4, 4))), "not a sequence of frames"),
        (dict(array=np.zeros((2, 4, 4), complex)), "not images"),
        (dict(array=np.zeros((2, 4, 4)), fps=0), "fps"),
        (dict(array=np.zeros((2, 4, 4)), fps="fast"), "fps"),
        (dict(array=np.zeros((2, 4, 4)), timestamps=[0.0]), "1 timestamps for 2 frames"),
        (dict(array=np.zeros((2, 4, 4)), timestamps=[1.0, 0.5]), "back in time"),
        (dict(array=np.zeros((2, 4, 4)), timestamps=[0.0, np.nan]), "finite"),
        (dict(array=np.zeros((2, 4, 4), np.uint8), bit_depth=12), "bit_depth"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(imseq.SequenceFormatError, match=match):
        ArraySequence(**kwargs)
