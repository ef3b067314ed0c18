"""Dask over one file (issue #11, part 1): every scheduler, thread count, chunking and order
gives exactly the frames of a plain sequential read; ``imread(p)[i]`` reads frame i only;
chunks follow the file's keyframes; a chunk that continues a GOP reuses the decoder that is
reading the chunk before it instead of decoding the GOP again."""

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dask
import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io import _dask

from . import videomaker as vm
from .cases import CASES


def _rgb(n, h, w):
    return [np.stack([f, f[::-1], np.roll(f, 5, axis=1)], -1) for f in vm.pattern(n, h, w)]


def video_h264_long_gop(d):
    """B-frames and GOPs of 40 frames: chunks inside a GOP continue one decoder."""
    vm.write(d / "a.mp4", _rgb(120, 32, 48), codec="libx264", pix_fmt="yuv420p",
             fmt_in="rgb24", gop=40, bframes=3,
             options={"keyint_min": "40", "sc_threshold": "0", "bf": "3"})  # fmt: skip
    return d / "a.mp4", vm.sequential(d / "a.mp4")


def video_h264_avi(d):
    """AVI stamps are decode stamps: frames are counted from keyframes."""
    vm.write(d / "a.avi", _rgb(60, 32, 48), codec="libx264", pix_fmt="yuv420p",
             fmt_in="rgb24", gop=20, bframes=2, options={"bf": "2"})  # fmt: skip
    return d / "a.avi", vm.sequential(d / "a.avi")


def video_hevc(d):
    # x265 corrupts memory on frames smaller than its 64-pixel blocks: 64x96
    vm.write(d / "a.mp4", _rgb(48, 64, 96), codec="libx265", pix_fmt="yuv420p",
             fmt_in="rgb24", gop=16, options={"x265-params": "log-level=error"})  # fmt: skip
    return d / "a.mp4", vm.sequential(d / "a.mp4")


def video_vp9(d):
    vm.write(d / "a.webm", _rgb(30, 32, 48), codec="libvpx-vp9", pix_fmt="yuv420p",
             fmt_in="rgb24", gop=10, options={"deadline": "realtime", "cpu-used": "8"})  # fmt: skip
    return d / "a.webm", vm.sequential(d / "a.webm")


def video_mjpeg(d):
    vm.write(d / "a.avi", _rgb(20, 32, 48), codec="mjpeg", pix_fmt="yuvj420p", fmt_in="rgb24")
    return d / "a.avi", vm.sequential(d / "a.avi")


EXTRA = {f.__name__: f for f in [
    video_h264_long_gop, video_h264_avi, video_hevc, video_vp9, video_mjpeg,
]}  # fmt: skip
ALL = {**CASES, **EXTRA}


@pytest.fixture(params=sorted(ALL))
def case(request, tmp_path):
    path, expected = ALL[request.param](tmp_path)
    return path, np.asarray(expected)


@pytest.fixture
def long_gop(tmp_path):
    return video_h264_long_gop(tmp_path)


SCHEDULERS = [
    ("sync", {}),
    ("threads", {"num_workers": 1}),
    ("threads", {"num_workers": 2}),
    ("threads", {"num_workers": 5}),
]


def test_every_scheduler_and_chunking_gives_the_sequential_frames(case):
    path, expected = case
    n = len(expected)
    auto = imseq.imread(path)
    assert sum(auto.chunks[0]) == n
    for scheduler, kw in SCHEDULERS:
        got = auto.compute(scheduler=scheduler, **kw)
        np.testing.assert_array_equal(got, expected, err_msg=f"{scheduler} {kw}")
    one = imseq.imread(path, chunks=1)
    np.testing.assert_array_equal(one.compute(scheduler="threads", num_workers=4), expected)
    three = imseq.imread(path, chunks=3)
    got = three[::-1].compute(scheduler="threads", num_workers=3)
    np.testing.assert_array_equal(got, expected[::-1])


def test_reductions_and_map_blocks_match_numpy(case):
    path, expected = case
    arr = imseq.imread(path)
    axes = tuple(range(1, expected.ndim))
    np.testing.assert_allclose(arr.mean(axis=axes).compute(), expected.mean(axis=axes))
    np.testing.assert_array_equal(arr.max(axis=0).compute(), expected.max(axis=0))
    doubled = arr.map_blocks(lambda b: b.astype(np.int64) * 2, dtype=np.int64)
    np.testing.assert_array_equal(doubled.compute(), expected.astype(np.int64) * 2)


def test_chunks_in_random_order_from_many_threads(case):
    path, expected = case
    arr = imseq.imread(path, chunks=2 if len(expected) < 8 else "auto")
    starts = np.r_[0, np.cumsum(arr.chunks[0])]
    order = list(range(arr.numblocks[0])) * 3
    random.Random(7).shuffle(order)

    def block(b):
        return b, arr.blocks[b].compute(scheduler="sync")

    with ThreadPoolExecutor(4) as pool:
        for b, got in pool.map(block, order):
            np.testing.assert_array_equal(got, expected[starts[b] : starts[b + 1]])


@pytest.mark.parametrize("name", ["seq_mono16_12bit_v3", "video_h264_long_gop", "tiff_contiguous"])
def test_process_scheduler_gives_the_sequential_frames(name, tmp_path):
    path, expected = ALL[name](tmp_path)
    arr = imseq.imread(path)
    got = arr.compute(scheduler="processes", num_workers=2)
    np.testing.assert_array_equal(got, expected)


def test_one_frame_of_an_auto_chunk_reads_one_frame(long_gop):
    path, expected = long_gop
    with imseq.open_sequence(path) as seq:
        arr = seq.to_dask("auto")
        assert max(arr.chunks[0]) > 1
        singles, runs = [], []
        read, read_range = seq._read, seq._read_range
        seq._read = lambda i: singles.append(i) or read(i)
        seq._read_range = lambda a, b, out: runs.append((a, b)) or read_range(a, b, out)
        np.testing.assert_array_equal(arr[57].compute(), expected[57])
        assert singles == [57] and runs == []
        np.testing.assert_array_equal(arr[50:53].compute(), expected[50:53])
        assert runs == [(50, 53)]
        # napari's reader: one frame per chunk, so whole-chunk computes stay one frame
        assert seq.to_dask().chunks[0] == (1,) * len(expected)


def test_auto_chunks_start_on_keyframes(long_gop, monkeypatch):
    path, _ = long_gop
    monkeypatch.setattr(_dask, "_threads", lambda: 2)
    with imseq.open_sequence(path) as seq:
        keys = [int(k) for k in seq._decode_points()]
        sizes = _dask.auto_frame_chunks(seq)
    assert keys == [0, 40, 80]
    assert sizes == (40, 40, 40)  # a GOP longer than 2 chunks per thread: one chunk each


class _Fake:
    def __init__(self, n, points, frame_bytes=1 << 20):
        self.n, self.points = n, points
        self.frame_shape, self.dtype = (frame_bytes,), np.dtype(np.uint8)

    def __len__(self):
        return self.n

    def _decode_points(self):
        return None if self.points is None else np.asarray(self.points)


@pytest.mark.parametrize(
    "n, points, expected",
    [
        (100, None, (15, 15, 14, 14, 14, 14, 14)),  # at most 16 frames of 1 MiB, even
        (100, range(0, 100, 5), (15, 15, 15, 15, 15, 15, 10)),  # short GOPs never split
        (100, [0, 60], (60, 40)),  # a long GOP is one chunk (up to 256 MiB)
        (700, [0, 600], (200, 200, 200, 100)),  # ... or even pieces of at most 256 MiB
        (3, [0, 1, 2], (2, 1)),  # every frame a keyframe: 2 chunks per thread
    ],
)
def test_auto_chunk_plan(n, points, expected, monkeypatch):
    monkeypatch.setattr(_dask, "_threads", lambda: 1)
    assert _dask.auto_frame_chunks(_Fake(n, points)) == expected


def test_chunks_argument_is_checked(long_gop):
    path, _ = long_gop
    with pytest.raises(ValueError, match="auto"):
        imseq.imread(path, chunks="big")
    with pytest.raises(ValueError, match="at least one frame"):
        imseq.imread(path, chunks=0)


def test_a_chunk_inside_a_gop_waits_for_the_decoder_reading_the_chunk_before(long_gop):
    """Thread A reads frames 0-19 slowly; a read of 20-39 asked meanwhile continues A's
    decoder when A is done instead of decoding 0-19 again with a second decoder."""
    path, expected = long_gop
    with imseq.open_sequence(path) as seq:
        made = []
        new_decoder = seq._new_decoder
        seq._new_decoder = lambda *args: made.append(args) or new_decoder(*args)
        to_array = seq._plan.to_array
        seq._plan.to_array = lambda frame: time.sleep(0.01) or to_array(frame)
        first = {}
        a = threading.Thread(target=lambda: first.setdefault("x", seq[0:20]))
        a.start()
        deadline = time.monotonic() + 10
        while not seq._heading and time.monotonic() < deadline:  # A's decoder is busy
            time.sleep(0.001)
        second = seq[20:40]
        a.join()
        np.testing.assert_array_equal(first["x"], expected[0:20])
        np.testing.assert_array_equal(second, expected[20:40])
        assert len(made) == 1


def test_a_pickled_auto_array_reads_the_right_frames(long_gop):
    import pickle

    path, expected = long_gop
    arr = pickle.loads(pickle.dumps(imseq.imread(path)))
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(arr[70:90].compute(), expected[70:90])


# ---- a GOP longer than GOP_CHUNK_BYTES, in pieces -------------------------------------------
@pytest.fixture
def split_gop(long_gop, monkeypatch):
    """The long-GOP file with 'auto' chunks of 10 frames: each GOP of 40 in 4 pieces."""
    monkeypatch.setattr(_dask, "_threads", lambda: 6)  # 120 frames / (2 x 6) = 10 a chunk
    monkeypatch.setattr(_dask, "GOP_CHUNK_BYTES", 1)
    path, expected = long_gop
    arr = imseq.imread(path)
    assert arr.chunks[0] == (10,) * 12
    return path, np.asarray(expected), arr


def test_continued_chunks_are_the_pieces_inside_a_gop(monkeypatch):
    monkeypatch.setattr(_dask, "_threads", lambda: 1)
    seq = _Fake(700, [0, 600])
    sizes = _dask.auto_frame_chunks(seq)
    assert sizes == (200, 200, 200, 100)
    assert _dask.continued_chunks(seq, sizes) == [1, 2]
    assert _dask.continued_chunks(_Fake(700, None), sizes) == []  # frames read alone
    assert _dask.continued_chunks(_Fake(700, [0]), sizes) == [1, 2, 3]  # one GOP: never seeks
    assert _dask.continued_chunks(_Fake(700, range(700)), sizes) == []  # every frame a key


@pytest.mark.parametrize("scheduler, kw", [*SCHEDULERS, ("processes", {"num_workers": 2})])
def test_split_gop_pieces_give_the_sequential_frames_in_every_scheduler(split_gop, scheduler, kw):
    path, expected, arr = split_gop
    with dask.config.set(scheduler=scheduler, **kw):
        np.testing.assert_array_equal(arr.compute(), expected)
        np.testing.assert_array_equal(arr[::-1].compute(), expected[::-1])
        np.testing.assert_allclose(
            arr.mean(axis=(1, 2, 3)).compute(), expected.mean(axis=(1, 2, 3))
        )
        np.testing.assert_array_equal(arr.max(axis=0).compute(), expected.max(axis=0))
        for i in (0, 35, 47, 119):  # first piece, last piece, a piece after a keyframe, the end
            np.testing.assert_array_equal(arr[i].compute(), expected[i])
        np.testing.assert_array_equal(arr[28:53].compute(), expected[28:53])


def test_one_frame_of_a_piece_still_reads_that_frame_alone(split_gop):
    path, expected, _ = split_gop
    with imseq.open_sequence(path) as seq:
        arr = seq.to_dask("auto")
        singles, runs = [], []
        read, read_range = seq._read, seq._read_range
        seq._read = lambda i: singles.append(i) or read(i)
        seq._read_range = lambda a, b, out: runs.append((a, b)) or read_range(a, b, out)
        np.testing.assert_array_equal(arr[57].compute(scheduler="sync"), expected[57])
        # the piece before it (40:50) is read first: its decode is on the way to frame 57
        assert singles == [57] and runs == [(40, 50)]


def _count_repositions(monkeypatch):
    from napari_imseq.io.video import _decode

    calls = []
    reposition = _decode._Decoder._reposition
    monkeypatch.setattr(
        _decode._Decoder, "_reposition", lambda dec, t: calls.append(t) or reposition(dec, t)
    )
    return calls


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_pieces_of_a_gop_are_decoded_once(split_gop, monkeypatch, workers):
    """Each GOP is decoded from its keyframe once, whatever order dask prefers: the decoder
    that read a piece continues into the next. Unchained (dask's own order, last piece of a
    GOP first) the same reduction repositions decoders more often."""
    path, expected, arr = split_gop
    calls = _count_repositions(monkeypatch)
    with imseq.open_sequence(path) as seq:
        arr = seq.to_dask("auto")
        got = arr.mean(axis=(1, 2, 3)).compute(scheduler="threads", num_workers=workers)
        np.testing.assert_allclose(got, expected.mean(axis=(1, 2, 3)))
        keys = {int(k) for k in seq._decode_points()}
    # a decoder seeks only to start a GOP (a fresh one stands at frame 0, one that ended a
    # GOP at the next keyframe), and never starts one twice
    assert set(calls) <= keys and len(calls) == len(set(calls)), calls
    calls.clear()
    monkeypatch.setattr(_dask, "continued_chunks", lambda seq, sizes: [])
    with imseq.open_sequence(path) as seq:
        unchained = seq.to_dask("auto").mean(axis=(1, 2, 3))
        np.testing.assert_allclose(
            unchained.compute(scheduler="sync"), expected.mean(axis=(1, 2, 3))
        )
    assert set(calls) - keys, calls  # pieces started inside their GOP, decoded from its key


def test_chain_leaves_a_graph_it_does_not_know_as_it_is():
    """A dask that builds chunk tasks other than getter(array, index): the array comes back
    unchained (correct, only slower), never an error."""
    import dask.array as da

    arr = da.arange(12, chunks=4).map_blocks(lambda b: b * 2)
    same = _dask._chain(arr, [1, 2])
    assert same is arr
    np.testing.assert_array_equal(same.compute(), np.arange(12) * 2)


def test_a_file_rewritten_in_place_within_its_time_stamp_tick_gets_another_dask_name(tmp_path):
    """Dask names are deterministic: a file rewritten at the same size and modification time
    must not share one with its old contents (dask would take one for the other where it
    merges graphs)."""
    import os

    from . import seqmaker

    path = tmp_path / "r.seq"
    a = seqmaker.frames(3, (8, 8), np.uint8)
    seqmaker.raw_seq(path, a)
    st = os.stat(path)
    first = imseq.imread(path)
    raw = path.read_bytes()
    with open(path, "r+b") as f:
        f.write(raw[:-1] + bytes([raw[-1] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    second = imseq.imread(path)
    assert first.name != second.name
    assert imseq.imread(path).name == second.name  # and stays deterministic
