"""Mosaics: every output frame of every tile is the right source frame (sources whose pixels
encode their frame number, at different rates, sizes, dtypes and offsets, and variable frame
rates); layout geometry; promotion; laziness; pickling; the cache; bad input."""

import pickle
import random
import subprocess
import sys
import threading

import dask
import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io.array import ArraySequence
from napari_imseq.mosaic import MosaicError, mosaic
from napari_imseq.transforms import Pipeline
from napari_imseq.transforms.geometry import resize

TOL = 1e-3  # of an output period: the documented tolerance


def coded(n, shape, dtype, scale=1):
    """n frames of ``shape`` whose every pixel is (frame index + 1) * scale."""
    values = (np.arange(n) + 1) * scale
    return (values.reshape(-1, *([1] * len(shape))) * np.ones((1, *shape))).astype(dtype)


def expected_frame(times, end, t, tol, outside="background"):
    """The frame a source with frame ``times`` (on the output clock) shows at ``t``, by the
    definition: the last one stamped at or before ``t``; -1 outside [first, end)."""
    if t < times[0] - tol:
        return 0 if outside == "hold" else -1
    if t >= end - tol:
        return len(times) - 1 if outside == "hold" else -1
    return max(j for j, tj in enumerate(times) if tj <= t + tol)


def centre(frame, box):
    y, x, h, w = box
    return frame[y + h // 2, x + w // 2]


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """A 12-bit SEQ at 50 fps, an RGB FFV1 movie at 15 fps and a float32 array at 24 fps,
    of three sizes, each frame's pixels = its index + 1 (x 0.5 for the float one)."""
    tmp_path = tmp_path_factory.mktemp("three")
    a = coded(40, (30, 40), np.uint16)
    with imseq.open_writer(tmp_path / "a.seq", fps=50.0, bit_depth=12) as w:
        for f in a:
            w.write(f)
    b = coded(12, (24, 50, 3), np.uint8)
    imseq.imwrite(tmp_path / "b.mkv", b, fps=15.0)
    c = ArraySequence(coded(30, (36, 36), np.float32, 0.5), fps=24.0, name="c")
    return [tmp_path / "a.seq", tmp_path / "b.mkv", c], [1.0, 1.0, 0.5]


def check_every_frame(m, scales, outside="background"):
    tl = m.timeline
    tiles = m.metadata["tiles"]
    seen = set()
    for k in range(len(m)):
        frame = m[k]
        t = m.timestamps[k]
        for s, tile in enumerate(tiles):
            times = tl.source_times[s]
            want = expected_frame(times, tl.ends[s], t, TOL / m.fps, outside)
            value = centre(frame, tile["box"])
            got = np.atleast_1d(value)[0]
            if want < 0:
                assert got == 0, (k, s, t, value)
            else:
                assert got == pytest.approx((want + 1) * scales[s]), (k, s, t, want, value)
                seen.add((s, want))
    return seen


def test_every_frame_of_every_tile_is_the_right_source_frame(three):
    sources, scales = three
    m = mosaic(sources, grid="1x3", offsets=[0.0, 0.2, -0.1])
    assert m.fps == pytest.approx(50.0, rel=1e-5)  # the fastest source
    assert m.rgb and m.dtype == np.float32  # uint16 + RGB uint8 + float32
    # union: from the earliest start (-0.1 s) to the latest end (c: -0.1 + 30/24 s)
    assert m.timestamps[0] == pytest.approx(-0.1)
    assert len(m) == int(np.ceil((-0.1 + 30 / 24 + 0.1) * m.fps - TOL))
    np.testing.assert_allclose(np.diff(m.timestamps), 1 / m.fps)
    seen = check_every_frame(m, scales)
    # every frame of the slower sources appears; the 50 fps one appears whole
    assert {j for s, j in seen if s == 0} == set(range(40))
    assert {j for s, j in seen if s == 1} == set(range(12))
    assert {j for s, j in seen if s == 2} == set(range(30))
    assert [t["name"] for t in m.metadata["tiles"]] == ["a.seq", "b.mkv", "c"]
    m.close()


def test_hold_intersection_and_output_fps(three):
    sources, scales = three
    m = mosaic(sources, offsets=[0.0, 0.2, -0.1], span="intersection", outside="hold", fps=60)
    # intersection: from b's start (0.2 s) to a's end (0.8 s)
    assert m.timestamps[0] == pytest.approx(0.2)
    assert m.timestamps[-1] < 0.8
    assert m.grid == (2, 2)
    check_every_frame(m, scales, outside="hold")
    table = m.timeline.table()  # the whole timeline at once: the same frames
    assert [m.tile_frames(k) for k in range(len(m))] == table.tolist()
    m.close()


def test_variable_frame_rate_by_true_timestamps(tmp_path):
    rng = np.random.default_rng(3)
    ts = np.cumsum(rng.uniform(0.005, 0.08, 50))  # 12..200 fps, not starting at 0
    vfr = ArraySequence(coded(50, (20, 20), np.uint16), timestamps=ts, name="vfr")
    steady = ArraySequence(coded(25, (20, 30), np.uint8), fps=10.0, name="steady")
    # a VFR video file too: written with its own timestamps
    vts = np.concatenate([[0.0], np.cumsum(rng.choice([1 / 30, 1 / 15, 1 / 60], 19))])
    with imseq.open_writer(tmp_path / "vfr.mkv", fps=30.0) as w:
        for f, t in zip(coded(20, (16, 16), np.uint8), vts, strict=True):
            w.write(f, t)
    with imseq.open_sequence(tmp_path / "vfr.mkv") as video:
        np.testing.assert_allclose(video.timestamps, vts, atol=1e-3)
        m = mosaic([vfr, steady, video], fps=100)
        # promote="scale": the 8-bit tiles span the 16-bit range (x 257), frames unchanged
        check_every_frame(m, [1, 257, 257])
        # relative clocks: the VFR source starts at the mosaic's time 0
        assert m.timeline.source_times[0][0] == 0.0
        m.close()
    # absolute clocks keep the stamps as they are
    m = mosaic([vfr, steady], absolute=True, fps=100)
    assert m.timeline.source_times[0][0] == pytest.approx(ts[0])
    check_every_frame(m, [1, 257])


def test_sync_by_fps_and_by_index():
    vfr = ArraySequence(
        coded(10, (8, 8), np.uint8), timestamps=np.r_[0, np.cumsum([0.2] * 9)] ** 1.5
    )
    other = ArraySequence(coded(6, (8, 8), np.uint8), fps=3.0)
    by_fps = mosaic([vfr, other], sync="fps", fps=10)
    # the nominal rate of the VFR one is frames over its span
    np.testing.assert_allclose(by_fps.timeline.source_times[0], np.arange(10) / vfr.fps)
    check_every_frame(by_fps, [1, 1])
    by_index = mosaic([vfr, other], sync="index", outside="hold")
    assert len(by_index) == 10
    for k in range(10):
        assert by_index.tile_frames(k) == [k, min(k, 5)]
        frame = by_index[k]
        boxes = [t["box"] for t in by_index.metadata["tiles"]]
        assert centre(frame, boxes[0]) == k + 1 and centre(frame, boxes[1]) == min(k, 5) + 1


def test_every_order_and_thread_count_gives_the_same_frames(three):
    sources, _ = three
    one = mosaic(sources, offsets=[0, 0.2, -0.1], threads=1)
    many = mosaic(sources, offsets=[0, 0.2, -0.1], threads=3)
    order = list(range(len(one)))
    random.Random(1).shuffle(order)
    sequential = [one[k] for k in range(len(one))]
    for k in order:
        np.testing.assert_array_equal(many[k], sequential[k])
    computed = many.to_dask().compute(scheduler="threads", num_workers=4)
    np.testing.assert_array_equal(computed, np.stack(sequential))
    one.close()
    many.close()


# ---- geometry ------------------------------------------------------------------------------------
def ramp(h, w, n=2, dtype=np.uint16):
    base = (np.arange(h * w).reshape(h, w) % 1000 + 1).astype(dtype)
    return np.stack([base + i for i in range(n)])


@pytest.mark.parametrize("fit", ["resize", "stretch", "pad", "crop"])
def test_fit_modes_with_odd_sizes(fit):
    a = ArraySequence(ramp(7, 13), fps=10)
    b = ArraySequence(ramp(9, 5), fps=10)
    cell = (11, 15) if fit == "pad" else (6, 9)
    m = mosaic([a, b], grid="2x1", cell=cell, gap=3, fit=fit, background=0,
               interpolation="linear")  # fmt: skip
    assert m.frame_shape == (2 * cell[0] + 3, cell[1])
    frame = m[1]
    covered = np.zeros(frame.shape, bool)
    for src, tile in zip((a, b), m.metadata["tiles"], strict=True):
        y, x, h, w = tile["box"]
        cy, cx, ch, cw = tile["cell"]
        assert cy <= y and y + h <= cy + ch and cx <= x and x + w <= cx + cw, "inside the cell"
        assert abs((y - cy) - (cy + ch - y - h)) <= 1 and abs((x - cx) - (cx + cw - x - w)) <= 1
        sh, sw = src.frame_shape
        if fit == "resize":
            scale = min(ch / sh, cw / sw)
            assert (h, w) == (min(ch, round(sh * scale)), min(cw, round(sw * scale)))
            assert h == ch or w == cw, "touches two sides of its cell"
            want = resize(src[1], shape=(h, w), interpolation="linear")
        elif fit == "stretch":
            assert (y, x, h, w) == (cy, cx, ch, cw)
            want = resize(src[1], shape=(h, w), interpolation="linear")
        elif fit == "pad":
            assert (h, w) == (sh, sw)
            want = src[1]
        else:  # crop: the centre is kept
            assert (h, w) == (min(sh, ch), min(sw, cw))
            y0, x0 = (sh - h) // 2, (sw - w) // 2
            want = src[1][y0 : y0 + h, x0 : x0 + w]
        np.testing.assert_array_equal(frame[y : y + h, x : x + w], want)
        covered[y : y + h, x : x + w] = True
    assert not frame[~covered].any(), "everything else (gaps too) is background"


def test_positions_background_and_labels_inside_their_cells():
    a = ArraySequence(np.full((3, 40, 60), 100, np.uint16), fps=5, bit_depth=12)
    b = ArraySequence(np.full((3, 30, 30), 50, np.uint8), fps=5)
    m = mosaic([a, b], positions=[(0, 0), (10, 70, 40, 40)], background=7)
    assert m.frame_shape == (50, 110)
    assert m.dtype == np.uint16 and m.bit_depth == 12
    frame = m[0]
    assert frame[45, 5] == 7 and frame[5, 65] == 7
    assert m.metadata["tiles"][1]["box"] == (10, 70, 40, 40)  # resized from 30x30
    labelled = mosaic([a, b], positions=[(0, 0), (10, 70, 40, 40)], background=7,
                      labels=["left", None], time_labels=True)  # fmt: skip
    diff = labelled[2] != m[2]
    cells = np.zeros(diff.shape, bool)
    for tile in m.metadata["tiles"]:
        y, x, h, w = tile["cell"]
        cells[y : y + h, x : x + w] = True
        assert diff[y : y + h, x : x + w].any(), "every cell has its time stamp"
    assert diff.any() and not diff[~cells].any(), "labels stay inside their cells"
    assert labelled[2].max() <= 4095, "white is the 12-bit white"
    # overlapping boxes: later tiles on top, read in parallel and pasted in order
    over = mosaic([a, b], positions=[(0, 0), (20, 40)], background=7)
    assert not over._disjoint and over.frame_shape == (50, 70)
    frame = over[1]
    b50 = round(50 * 4095 / 255)  # the 8-bit tile spans the 12-bit range (promote)
    assert frame[5, 5] == 100 and frame[25, 45] == b50 and frame[45, 50] == b50
    assert frame[45, 5] == 7 and frame[5, 65] == 7


def test_grid_parsing_and_automatic_grid():
    srcs = [ArraySequence(np.zeros((2, 4, 4), np.uint8), fps=1) for _ in range(5)]
    assert mosaic(srcs).grid == (2, 3)
    assert mosaic(srcs, grid="x2").grid == (3, 2)
    assert mosaic(srcs, grid=(1, 0)).grid == (1, 5)
    assert mosaic(srcs, grid="2x3", gap=2).frame_shape == (10, 16)


# ---- promotion -----------------------------------------------------------------------------------
def test_promotion_rules():
    g12 = ArraySequence(np.full((2, 8, 8), 4095, np.uint16), fps=1, bit_depth=12)
    g8 = ArraySequence(np.full((2, 8, 8), 200, np.uint8), fps=1)
    rgb8 = ArraySequence(np.full((2, 8, 8, 3), 9, np.uint8), fps=1)
    f32 = ArraySequence(np.full((2, 8, 8), 0.25, np.float32), fps=1)
    i64 = ArraySequence(np.full((2, 8, 8), 2**60 + 1, np.int64), fps=1)
    m = mosaic([g12, g8], promote="keep")
    assert (m.dtype, m.bit_depth, m.rgb) == (np.uint16, 12, False)
    assert m[0].max() == 4095 and m[0].min() == 200, "values kept, not rescaled"
    m = mosaic([g12, rgb8], grid="1x2")
    assert (m.dtype, m.rgb, m.frame_shape[-1]) == (np.uint16, True, 3)
    assert (m[0][4, 4] == 4095).all(), "gray replicated into RGB, 16 bits kept"
    m = mosaic([g12, rgb8], grid="1x2", gray="viridis")
    assert m.dtype == np.uint8, "a colormap is asked-for 8-bit colour"
    assert tuple(m[0][4, 4]) == (253, 231, 37), "the top of the 12-bit range is viridis' top"
    m = mosaic([g12, f32])
    assert m.dtype == np.float32 and m[0].max() == 4095.0
    with pytest.raises(MosaicError, match="without loss"):
        mosaic([i64, f32])
    m = mosaic([g12, g8], dtype="uint8", grid="1x2")  # asked for: each tile from its range
    assert m.dtype == np.uint8 and (m[0][:, :8] == 255).all() and (m[0][:, 8:] == 200).all()
    rgba = ArraySequence(np.full((2, 8, 8, 4), 3, np.uint8), fps=1)
    m = mosaic([g8, rgba], grid="1x2")
    assert m.frame_shape[-1] == 4 and tuple(m[0][4, 4]) == (200, 200, 200, 255)


def test_promote_scale_spans_the_deepest_tiles_range_without_loss():
    """8-bit tiles beside a 12- or 16-bit one span its range (not dim), every 8-bit value
    keeps a value of its own (invertible), the deepest tile is untouched; promote="keep"
    keeps values; colour and colormapped tiles too; a bad promote is refused."""
    ramp8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16).repeat(2, 0)
    g8 = ArraySequence(ramp8, fps=1, name="g8")
    for bits in (12, 16):
        deep = ArraySequence(np.full((2, 16, 16), 2**bits - 1, np.uint16), fps=1,
                             bit_depth=bits, name="deep")  # fmt: skip
        m = mosaic([deep, g8], grid="1x2")
        assert (m.dtype, m.bit_depth) == (np.uint16, bits)
        left, right = m[1][:, :16], m[1][:, 16:]
        assert (left == 2**bits - 1).all(), "the deepest tile is not touched"
        top = 2**bits - 1
        np.testing.assert_array_equal(right, np.rint(ramp8[0] * (top / 255)).astype(np.uint16))
        assert right.min() == 0 and right.max() == top, "0..255 spans the deep tile's range"
        assert len(np.unique(right)) == 256, "no two 8-bit values merge: nothing is lost"
        back = np.rint(right.astype(np.float64) * 255 / top).astype(np.uint8)
        np.testing.assert_array_equal(back, ramp8[0])
        kept = mosaic([deep, g8], grid="1x2", promote="keep")
        np.testing.assert_array_equal(kept[1][:, 16:], ramp8[0])
    # 8 onto 16 bits is exact: x 257
    rgb8 = ArraySequence(np.full((2, 8, 8, 3), 9, np.uint8), fps=1)
    g16 = ArraySequence(np.full((2, 8, 8), 1000, np.uint16), fps=1)
    m = mosaic([g16, rgb8], grid="1x2")
    assert m.rgb and (m[0][4, 12] == 9 * 257).all() and (m[0][4, 4] == 1000).all()
    # a 12-bit tile beside a 16-bit one (a 16-bit table): 0..4095 onto 0..65535
    r12 = ArraySequence(np.arange(4096, dtype=np.uint16).reshape(1, 64, 64).repeat(2, 0),
                        fps=1, bit_depth=12)  # fmt: skip
    full = ArraySequence(np.zeros((2, 64, 64), np.uint16), fps=1)
    m12 = mosaic([full, r12], grid="1x2")
    assert m12.bit_depth == 16
    want = np.rint(np.arange(4096).reshape(64, 64) * (65535 / 4095)).astype(np.uint16)
    np.testing.assert_array_equal(m12[0][:, 64:], want)
    # all 8-bit, or a float mosaic: nothing to scale
    assert mosaic([g8, rgb8], grid="1x2")[0][4, 20, 0] == 9
    f32 = ArraySequence(np.full((2, 16, 16), 0.5, np.float32), fps=1)
    assert mosaic([g8, f32], grid="1x2")[0][15, 15] == 255.0
    # a pickled mosaic keeps its promotion; the fingerprint tells the two apart
    clone = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(clone[1], m[1])
    assert mosaic([g16, rgb8], promote="keep").fingerprint != m.fingerprint
    with pytest.raises(MosaicError, match="promote"):
        mosaic([g16, rgb8], promote="stretch")


def test_per_tile_pipelines():
    a = ArraySequence(ramp(20, 30, n=3), fps=10, name="a")
    b = ArraySequence(ramp(20, 30, n=3), fps=10, name="b")
    crop = Pipeline([("crop", {"y": (0, 10), "x": (0, 30)}), ("invert", {})])
    m = mosaic([a, b], grid="1x2", pipelines={"b": crop}, fit="pad")
    tiles = m.metadata["tiles"]
    y, x, h, w = tiles[1]["box"]
    assert (h, w) == (10, 30)
    np.testing.assert_array_equal(m[2][y : y + h, x : x + w], crop(a[2], index=2))
    y, x, h, w = tiles[0]["box"]
    np.testing.assert_array_equal(m[2][y : y + h, x : x + w], a[2])
    # the same steps as JSON, as a list of steps
    again = mosaic([a, b], grid="1x2", pipelines=[None, crop.to_json()], fit="pad")
    np.testing.assert_array_equal(again[1], m[1])


# ---- laziness, pickling, cache -------------------------------------------------------------------
class Counting(ArraySequence):
    reads = 0

    def _read(self, index):
        type(self).reads += 1
        return super()._read(index)


def test_opening_reads_no_pixels(three, monkeypatch):
    sources, _ = three
    from napari_imseq.io.seq import SeqFile

    calls = []
    original = SeqFile._read
    monkeypatch.setattr(SeqFile, "_read", lambda self, i: calls.append(i) or original(self, i))
    Counting.reads = 0
    counted = Counting(np.zeros((30, 36, 36), np.float32), fps=24.0)
    m = mosaic([sources[0], sources[1], counted], labels=True, time_labels=True, recent=2,
               pipelines=[[("gaussian", {"sigma": 1.0})], None, None])  # fmt: skip
    _ = len(m), m.shape, m.dtype, m.metadata, m.timestamps, m.to_dask(), m.bit_depth
    pickle.dumps(m)
    assert calls == [] and Counting.reads == 0
    m[3]
    assert len(calls) == 1 and Counting.reads == 1, "one read per tile per frame"
    m[3]
    assert len(calls) == 1, "the last few frames are kept"
    m.close()


def test_a_frame_shown_again_is_not_read_again():
    """A 10 fps source in a 40 fps mosaic shows each frame 4 times, a source held after its
    end shows its last frame on: each is read once while shown, in order or back, and the
    frames equal a serial composition with nothing kept."""
    Counting.reads = 0
    slow = Counting(coded(5, (20, 30, 3), np.uint8), fps=10.0, name="slow")
    fast = ArraySequence(coded(30, (24, 24), np.uint16), fps=40.0, name="fast")
    m = mosaic([fast, slow], grid="1x2", outside="hold")
    assert len(m) == 30
    frames = [m[k] for k in range(len(m))]
    assert Counting.reads == 5, "each slow frame read once, the held last one too"
    serial = mosaic([fast, ArraySequence(slow.array, fps=10.0)], grid="1x2", outside="hold",
                    threads=1)  # fmt: skip
    for k in range(len(m)):
        np.testing.assert_array_equal(frames[k], serial[k])
    assert frames[3][12, 36, 0] == 257 and frames[4][12, 36, 0] == 2 * 257
    Counting.reads = 0
    backwards = [m[k] for k in reversed(range(len(m)))]
    assert Counting.reads == 4, "the last one is still kept; the 4 others read once each"
    for k, frame in zip(reversed(range(len(m))), backwards, strict=True):
        np.testing.assert_array_equal(frame, serial[k])
    frames[5][...] = 0  # the caller's own array: the kept tile is not touched
    np.testing.assert_array_equal(m[6], serial[6])
    m.close()
    serial.close()


def test_tools_are_imported_when_the_mosaic_is_made():
    """What composing uses (transforms, OpenCV) is imported by the thread that makes the
    mosaic, not by tile threads at once (a package with circular imports imported by two
    threads at the same moment can come out half made); a mosaic that needs no transform
    does not import them."""
    code = (
        "import sys, numpy as np\n"
        "from napari_imseq.mosaic import mosaic\n"
        "a = (np.zeros((3, 8, 8), np.uint16), 10.0)\n"
        "plain = mosaic([a, a])\n"
        "print('napari_imseq.transforms' in sys.modules)\n"
        "b = (np.zeros((3, 4, 6), np.uint8), 10.0)\n"
        "fitted = mosaic([a, b], labels=True)\n"
        "print('napari_imseq.transforms.geometry' in sys.modules, 'cv2' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "True", "True"]


def test_pickles_for_dask_workers(three):
    sources, _ = three
    m = mosaic(sources, offsets=[0, 0.2, -0.1], grid="3x1", labels=True)
    clone = pickle.loads(pickle.dumps(m))
    assert clone.shape == m.shape and clone.fingerprint == m.fingerprint
    for k in (0, 17, len(m) - 1):
        np.testing.assert_array_equal(clone[k], m[k])
    graph = m.to_dask()[::20]
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(graph)).compute(), m[::20])
    clone.close()
    m.close()


def test_cache_keeps_composed_frames(tmp_path):
    Counting.reads = 0
    src = Counting(coded(10, (16, 16), np.uint16), fps=10.0, name="cam")
    other = ArraySequence(coded(5, (16, 16), np.uint16), fps=5.0, name="other")
    m = mosaic([src, other], cache=tmp_path / "cache")
    assert m.cache_path is not None and not (tmp_path / "cache").exists(), "nothing until read"
    first = [m[k] for k in (0, 4, 9)]
    assert Counting.reads == 3
    again = mosaic([src, other], cache=tmp_path / "cache")
    assert again.cache_path == m.cache_path
    np.testing.assert_array_equal([again[k] for k in (0, 4, 9)], first)
    assert Counting.reads == 3, "read back from the cache, not composed again"
    again[5]
    assert Counting.reads == 4
    np.testing.assert_array_equal(np.stack(list(again.iter_frames(3, 7))), again[3:7])
    assert Counting.reads == 6, "streaming starts ahead only frames not in the cache"
    with imseq.open_sequence(m.cache_path) as stored:  # our zarr layout: readable as it is
        np.testing.assert_array_equal(stored[4], first[1])
        assert stored.fps == 10.0
        with pytest.raises(imseq.FrameIndexError):
            stored[1]  # not composed yet: never a blank frame
    other_layout = mosaic([src, other], cache=tmp_path / "cache", grid="2x1")
    assert other_layout.cache_path != m.cache_path
    (tmp_path / "file").write_text("x")
    with pytest.raises(MosaicError, match="folder"):
        mosaic([src, other], cache=tmp_path / "file")


# ---- bad input -----------------------------------------------------------------------------------
def test_bad_input_is_a_clear_error(tmp_path):
    a = ArraySequence(np.zeros((5, 8, 8), np.uint8), fps=10, name="a")
    b = ArraySequence(np.zeros((5, 8, 8), np.uint8), fps=10, name="b")
    no_rate = ArraySequence(np.zeros((5, 8, 8), np.uint8))
    cases = [
        (dict(sources=[]), "no sources"),
        (dict(sources=[a, b], span="intersection", offsets=[0, 10]), "never overlap"),
        (dict(sources=[a, b, a], grid="1x2"), "2 cells for 3 sources"),
        (dict(sources=[a, b], fps=0), "fps"),
        (dict(sources=[a, b], fps=float("nan")), "fps"),
        (dict(sources=[a, b], cell=(0, 5)), "cell height"),
        (dict(sources=[a, b], cell=(4, 4), fit="pad"), "larger than their cell"),
        (dict(sources=[a, b], fit="zoom"), "fit must be"),
        (dict(sources=[a, b], sync="clock"), "sync must be"),
        (dict(sources=[a, no_rate]), "neither timestamps nor a frame rate"),
        (dict(sources=[a, b], offsets=[0]), "offsets"),
        (dict(sources=[a, b], background=300), "background"),
        (dict(sources=[a, b], positions=[(0, 0), (-1, 0)]), "negative"),
        (dict(sources=[a, b], gap=-1), "gap"),
        (dict(sources=[tmp_path / "missing.seq"]), "no such file"),
    ]
    for kwargs, match in cases:
        with pytest.raises(imseq.SequenceError, match=match):
            mosaic(**kwargs)
    with pytest.raises(ValueError):  # our errors are ValueErrors (or FileNotFoundError)
        mosaic([a, b], grid="-1x2")


def test_public_api():
    assert imseq.mosaic is mosaic and "mosaic" in imseq.__all__
    m = imseq.mosaic([np.zeros((3, 4, 4), np.uint8)], source_fps=[10])
    assert isinstance(m, imseq.Sequence) and isinstance(m, imseq.MosaicSequence)
    pair = imseq.mosaic([(np.zeros((3, 4, 4), np.uint8), 10.0), (np.ones((6, 4, 4)), 20.0)])
    assert pair.fps == 20.0 and len(pair) == 6


class Failing(ArraySequence):
    def _read(self, index):
        if index == 7:
            raise imseq.FrameIndexError(f"{self.path}: frame 7 is damaged")
        return super()._read(index)


def test_lanes_auto_reads_cheap_tiles_in_the_composing_thread(three):
    """lanes="auto" times the first frames in a thread per tile, then the composing thread
    reads the cheap tiles (their CPU time summed within the costliest tile's, which keeps its
    own thread); every frame, in any order, equals a serial composition; lanes="all" keeps a
    thread per tile; an inline tile's error comes in order, naming the tile and frame."""
    sources, _ = three
    big = ArraySequence(coded(30, (400, 600), np.uint16), fps=24.0, name="big")
    serial = mosaic([*sources, big], grid="2x2", cell=(60, 60), threads=1)
    m = mosaic([*sources, big], grid="2x2", cell=(60, 60))
    assert m._inline is None, "nothing chosen before frames are timed"
    for k in range(6):
        np.testing.assert_array_equal(m[k], serial[k])
    assert m._inline is not None
    costs = m.lane_costs
    heavy = int(np.argmax(costs))
    assert heavy not in m._inline
    assert sum(costs[s] for s in m._inline) <= costs[heavy]
    order = list(range(len(m)))
    random.Random(2).shuffle(order)
    for k in order:
        np.testing.assert_array_equal(m[k], serial[k])
    np.testing.assert_array_equal(np.stack(list(m.iter_frames())), serial[:])
    clone = pickle.loads(pickle.dumps(m))
    assert clone.fingerprint == m.fingerprint
    np.testing.assert_array_equal(clone[9], serial[9])
    every = mosaic([*sources, big], grid="2x2", cell=(60, 60), lanes="all")
    for k in range(8):
        np.testing.assert_array_equal(every[k], serial[k])
    assert every._inline == frozenset() and every.fingerprint == m.fingerprint
    with pytest.raises(MosaicError, match="lanes"):
        mosaic(sources, lanes="processes")
    # a cheap tile read inline fails at frame 7 of a stream: frames 0..6 come first
    big = ArraySequence(coded(10, (300, 400), np.uint16), fps=10.0, name="big")
    bad = Failing(coded(10, (8, 8), np.uint8), fps=10.0, name="bad")
    failing = mosaic([big, bad], grid="1x2")
    failing._costs = [[1.0] * 4, [0.001] * 4]  # as timed: "bad" is cheap
    failing._choose_inline()
    assert failing._inline == frozenset({1})
    got = []
    with pytest.raises(imseq.FrameIndexError, match="frame 7 is damaged") as info:
        for frame in failing.iter_frames():
            got.append(frame)
    assert len(got) == 7
    assert "tile 1 (bad), frame 7" in "".join(getattr(info.value, "__notes__", []))
    for seq in (serial, m, every, failing):
        seq.close()


def test_a_frame_read_alone_reads_its_costliest_tile_in_the_calling_thread(three):
    """A frame read on its own (a slider step) with lanes="auto": the costliest tile is read
    in the calling thread, the cheap ones together in one other thread; while a stream has
    frames started ahead, the costliest keeps its own thread. Frames equal a serial
    composition either way; an error of a cheap tile comes out naming the tile and frame."""
    sources, _ = three
    big = ArraySequence(coded(30, (400, 600), np.uint16), fps=24.0, name="big")
    serial = mosaic([*sources, big], grid="2x2", cell=(60, 60), threads=1)
    m = mosaic([*sources, big], grid="2x2", cell=(60, 60))
    m._costs = [[0.001] * 4, [0.001] * 4, [0.001] * 4, [1.0] * 4]  # as timed: "big" costs
    m._choose_inline()
    assert m._heavy == 3 and m._inline == frozenset({0, 1, 2})
    seen: dict[str, set] = {}
    for tile in m._tiles:

        def frame(j, into=None, _tile=tile, _frame=tile.frame):
            seen.setdefault(_tile.name, set()).add(threading.current_thread().name)
            return _frame(j, into)

        tile.frame = frame
    order = list(range(len(m)))
    random.Random(5).shuffle(order)
    for k in order:
        np.testing.assert_array_equal(m[k], serial[k])
    main = threading.current_thread().name
    assert seen["big"] == {main}, "the costliest tile: read where the frame is asked for"
    cheap = set().union(*(seen[t.name] for t in m._tiles[:3]))
    assert len(cheap) == 1 and main not in cheap, "the cheap tiles: together, in one lane"
    seen.clear()
    np.testing.assert_array_equal(np.stack(list(m.iter_frames(0, 12))), serial[:12])
    assert main not in seen["big"], "streaming (frames started ahead): big in its lane"
    # overlapping boxes: the pixels come back and are pasted in source order
    places = [(0, 0), (10, 10), (5, 5, 40, 60)]
    over = mosaic([*sources[:2], big], positions=places)
    flat = mosaic([*sources[:2], big], positions=places, threads=1)
    over._costs = [[0.001] * 4, [0.001] * 4, [1.0] * 4]
    over._choose_inline()
    assert not over._disjoint and over._heavy == 2
    for k in order:
        np.testing.assert_array_equal(over[k], flat[k])
    bad = Failing(coded(10, (8, 8), np.uint8), fps=10.0, name="bad")
    failing = mosaic([ArraySequence(coded(10, (300, 400), np.uint16), fps=10.0), bad])
    failing._costs = [[1.0] * 4, [0.001] * 4]
    failing._choose_inline()
    np.testing.assert_array_equal(failing[6][:, 400:].max(), 7 * 257)
    with pytest.raises(imseq.FrameIndexError, match="frame 7 is damaged") as info:
        failing[7]
    assert "tile 1 (bad), frame 7" in "".join(getattr(info.value, "__notes__", []))
    for seq in (serial, m, failing, over, flat):
        seq.close()


def test_streaming_reads_ahead_and_equals_indexing(three):
    sources, _ = three
    serial = mosaic(sources, offsets=[0, 0.2, -0.1], threads=1)
    m = mosaic(sources, offsets=[0, 0.2, -0.1])
    assert m.read_ahead >= 1
    streamed = list(m.iter_frames())
    np.testing.assert_array_equal(np.stack(streamed), serial[:])
    it = m.iter_frames(5, 40, 3)
    np.testing.assert_array_equal(next(it), serial[5])
    assert m._ahead, "the next frames are started while one is handed out"
    it.close()
    assert m._ahead == {}, "frames started ahead are dropped when the stream stops"
    # an error in a frame started ahead is raised in order, naming the tile and frame
    bad = Failing(coded(10, (8, 8), np.uint8), fps=10.0, name="bad")
    good = ArraySequence(coded(10, (8, 8), np.uint8), fps=10.0, name="good")
    got = []
    with pytest.raises(imseq.FrameIndexError, match="frame 7 is damaged") as info:
        for frame in mosaic([good, bad]).iter_frames():
            got.append(frame)
    assert len(got) == 7
    assert "tile 1 (bad), frame 7" in "".join(getattr(info.value, "__notes__", []))
    serial.close()
    m.close()


def test_source_fps_for_files_without_a_rate(tmp_path):
    imseq.imwrite(tmp_path / "stack.tif", coded(8, (10, 10), np.uint16))  # no frame interval
    other = ArraySequence(coded(4, (10, 10), np.uint16), fps=10.0)
    with pytest.raises(MosaicError, match="source_fps"):
        mosaic([tmp_path / "stack.tif", other])
    m = mosaic([tmp_path / "stack.tif", other], source_fps=[40.0, None])
    assert m.fps == 40.0 and len(m) == 16  # 0.4 s of the 10 fps array at 40 fps
    check_every_frame(m, [1, 1])
    clone = pickle.loads(pickle.dumps(m))
    assert clone.fps == 40.0 and clone.fingerprint == m.fingerprint
    labelled = mosaic([tmp_path / "stack.tif", other], source_fps=[40.0, None], time_labels=True)
    plain = mosaic([tmp_path / "stack.tif", other], source_fps=[40.0, None])
    assert (labelled[6] != plain[6]).any()
    same = mosaic([ArraySequence(coded(8, (10, 10), np.uint16), fps=40.0), other],
                  time_labels=True)  # fmt: skip
    # the tile's time (frame 6 at 40 fps: 0.150 s) comes from the rate given for the file
    np.testing.assert_array_equal(labelled[6], same[6])
    with pytest.raises(MosaicError, match="not a finite positive fps"):
        mosaic([tmp_path / "stack.tif", other], source_fps=[-1, None])
