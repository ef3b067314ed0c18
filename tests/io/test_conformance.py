"""The conformance suite: every reader, on generated files with known content."""

import gc
import pickle
import random
from concurrent.futures import ThreadPoolExecutor

import dask
import numpy as np
import pytest

import napari_imseq as imseq

from ..conftest import open_fds
from .cases import CASES


@pytest.fixture(params=sorted(CASES))
def case(request, tmp_path):
    path, expected = CASES[request.param](tmp_path)
    return path, np.asarray(expected)


def test_shape_dtype_and_metadata_without_decoding(case):
    path, expected = case
    with imseq.open_sequence(path) as seq:
        assert seq.shape == expected.shape
        assert len(seq) == expected.shape[0]
        assert seq.dtype == expected.dtype and seq.dtype.isnative
        assert seq.ndim == expected.ndim
        md = seq.metadata
        for key in ("format", "fps", "timestamps", "bit_depth", "source"):
            assert key in md
        assert md["source"]["path"] == str(path)
        assert 1 <= seq.bit_depth <= seq.dtype.itemsize * 8


def test_eager_read_matches_ground_truth(case):
    path, expected = case
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[:], expected)
        np.testing.assert_array_equal(seq[-1], expected[-1])
        np.testing.assert_array_equal(seq[1::2], expected[1::2])
        np.testing.assert_array_equal(seq[[2, 0]], expected[[2, 0]])
        np.testing.assert_array_equal(seq[0, 1:3], expected[0, 1:3])
        np.testing.assert_array_equal(np.stack(list(seq.iter_frames(1, None, 2))), expected[1::2])
        with pytest.raises(IndexError, match="out of range"):
            seq[len(seq)]


def test_lazy_equals_eager(case):
    path, expected = case
    arr = imseq.imread(path)
    assert arr.shape == expected.shape and arr.dtype == expected.dtype
    assert sum(arr.chunks[0]) == expected.shape[0]
    assert imseq.imread(path, chunks=1).chunks[0] == (1,) * expected.shape[0]
    np.testing.assert_array_equal(arr.compute(scheduler="threads"), expected)
    two = imseq.imread(path, chunks=2)
    assert two.chunks[0][0] == min(2, expected.shape[0])
    np.testing.assert_array_equal(two[::-1].compute(), expected[::-1])


def test_random_order_equals_sequential(case):
    path, expected = case
    with imseq.open_sequence(path) as seq:
        order = list(range(len(seq))) * 2
        random.Random(1).shuffle(order)
        for i in order:
            np.testing.assert_array_equal(seq[i], expected[i], err_msg=f"frame {i}")


def test_many_threads_get_the_right_frames(case):
    path, expected = case
    with imseq.open_sequence(path) as seq:
        rng = random.Random(2)
        order = [rng.randrange(len(seq)) for _ in range(200)]
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda i: (i, seq[i]), order))
        for i, frame in got:
            np.testing.assert_array_equal(frame, expected[i], err_msg=f"frame {i}")


def test_no_file_left_open(case):
    path, expected = case
    before = open_fds()
    with imseq.open_sequence(path) as seq:
        seq[0]
        seq[len(seq) - 1]
    assert open_fds() - before == set()
    arr = imseq.imread(path)
    arr[0].compute()
    del arr
    gc.collect()
    assert open_fds() - before == set()


def test_pickle_round_trip(case):
    path, expected = case
    with imseq.open_sequence(path) as seq:
        clone = pickle.loads(pickle.dumps(seq))
        with clone:
            assert clone.shape == seq.shape
            np.testing.assert_array_equal(clone[len(clone) // 2], expected[len(expected) // 2])
    arr = pickle.loads(pickle.dumps(imseq.imread(path)))
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(arr[0].compute(), expected[0])


def test_closed_sequence_refuses_reads(case):
    path, _ = case
    seq = imseq.open_sequence(path)
    seq.close()
    with pytest.raises(ValueError, match="closed"):
        seq[0]
