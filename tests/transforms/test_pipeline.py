"""Pipelines: JSON and pickle round trips, lazy == eager, context, subsample estimates."""

import pickle

import dask.array as da
import numpy as np
import pytest
import tifffile

import napari_imseq as imseq
from napari_imseq.io.seq import SeqFile
from napari_imseq.transforms import Pipeline, estimate_histogram, estimate_range

from ..conftest import sample
from ..io import seqmaker

STEPS = [
    ("rescale", {"in_range": (100, 3000)}),
    ("clahe", {"clip_limit": 2.0, "tile_grid": (4, 4)}),
    ("gaussian", {"sigma": 1.0}),
    ("crop", {"y": (2, 22), "x": (4, 30)}),
    ("draw_text", {"text": "{index}", "position": (1, 1), "size": 8}),
]


def test_json_and_pickle_round_trips():
    p = Pipeline(STEPS)
    q = Pipeline.from_json(p.to_json())
    assert q == p and q.steps[3][1]["y"] == (2, 22)
    r = pickle.loads(pickle.dumps(p))
    f = seqmaker.frames(1, (24, 32), np.uint16)[0]
    np.testing.assert_array_equal(r(f, index=5), p(f, index=5))


def test_bad_steps_are_named():
    with pytest.raises(KeyError, match="no transform named 'blurr'"):
        Pipeline([("blurr", {})])
    with pytest.raises(TypeError, match="'gaussian' has no parameter.*'radius'"):
        Pipeline([("gaussian", {"radius": 2})])
    with pytest.raises(ValueError, match="not a pipeline"):
        Pipeline.from_json("{oops")


def test_lazy_equals_eager_on_a_sequence(tmp_path, monkeypatch):
    data = seqmaker.frames(9, (24, 32), np.uint16)
    seqmaker.raw_seq(tmp_path / "a.seq", data)
    reads = []
    original = SeqFile._read
    monkeypatch.setattr(SeqFile, "_read", lambda self, i: reads.append(i) or original(self, i))
    p = Pipeline(STEPS)
    with imseq.open_sequence(tmp_path / "a.seq") as seq:
        lazy = p.apply(seq)
        assert reads == [], "building the lazy array reads no frame"
        assert lazy.shape == (9, 20, 26) and lazy.dtype == np.uint16
        got = lazy.compute(scheduler="threads")
        for i in range(9):
            np.testing.assert_array_equal(got[i], p(data[i], index=i, timestamp=seq.timestamps[i]))


def test_ndim_changes_and_dask_input():
    frames = da.from_array(seqmaker.frames(4, (16, 16), np.uint16), chunks=(2, 8, 8))
    rgb = Pipeline([("apply_colormap", {"colormap": "magenta", "in_range": (0, 4095)})]).apply(
        frames
    )
    assert rgb.shape == (4, 16, 16, 3) and rgb.dtype == np.uint8
    back = Pipeline([("rgb_to_gray", {})]).apply(rgb)
    assert back.shape == (4, 16, 16)
    np.testing.assert_array_equal(
        back.compute()[1], Pipeline([("rgb_to_gray", {})])(rgb[1].compute())
    )


def test_convert_runs_a_pipeline_with_frame_context(tmp_path):
    data = seqmaker.frames(5, (32, 64), np.uint16)
    seqmaker.raw_seq(tmp_path / "a.seq", data)
    p = Pipeline([("convert_dtype", {"dtype": "uint8", "in_range": (0, 4095)}),
                  ("draw_text", {"text": "{index}", "size": 10})])  # fmt: skip
    imseq.convert(tmp_path / "a.seq", tmp_path / "a.tif", transform=p, progress=False)
    with (
        imseq.open_sequence(tmp_path / "a.tif") as out,
        imseq.open_sequence(tmp_path / "a.seq") as src,
    ):
        for i in range(5):
            np.testing.assert_array_equal(out[i], p(src[i], index=i, timestamp=src.timestamps[i]))


def test_cli_pipeline(tmp_path):
    import subprocess
    import sys

    data = seqmaker.frames(4, (32, 48), np.uint16)
    seqmaker.raw_seq(tmp_path / "a.seq", data)
    (tmp_path / "p.json").write_text(Pipeline([("crop", {"y": (0, 10), "x": (0, 12)})]).to_json())
    out = subprocess.run([sys.executable, "-m", "napari_imseq.cli", "convert", tmp_path / "a.seq", tmp_path / "b.tif",
                          "--pipeline", tmp_path / "p.json", "-q"], capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif"), data[:, :10, :12])


def test_estimates_from_a_subsample_are_close_to_the_full_statistic():
    # calcium imaging: sparse bright transients make the top percentile the hard one
    with imseq.open_sequence(sample("imageio_calcium_imaging.tif")) as seq:
        full = seq[:]
        reads = []
        original = type(seq)._read
        seq._read = lambda i: reads.append(i) or original(seq, i)
        lo, hi = estimate_range(seq)  # defaults: 64 frames, downsampled by 4
        assert len(reads) == 64  # the cost follows the subsample, not the 1000 frames
        lo2, hi2 = estimate_range(seq, max_frames=256, downsample=1)
    flo, fhi = np.percentile(full, (0.5, 99.5))
    span = fhi - flo
    # documented in docs/transforms.md: 0.1 % and 9.3 % of the span with the defaults,
    # 0.0 % and 1.3 % with 256 whole frames
    assert abs(lo - flo) < 0.01 * span and abs(hi - fhi) < 0.12 * span
    assert abs(lo2 - flo) < 0.01 * span and abs(hi2 - fhi) < 0.03 * span
    lut = estimate_histogram(full, max_frames=64, downsample=2)
    assert lut.dtype == np.uint16 and len(lut) == 65536
    eq = lut[full]
    # shared LUT equalises the whole recording: its values spread over the full range evenly
    q = np.percentile(eq, [25, 50, 75]) / 65535
    np.testing.assert_allclose(q, [0.25, 0.5, 0.75], atol=0.05)


def test_apply_loops_over_leading_axes_and_single_frames():
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 255, (3, 2, 20, 24, 3), dtype=np.uint8)  # (T, Z, Y, X, RGB)
    p = Pipeline([("gaussian", {"sigma": 1.5}), ("draw_text", {"text": "{index}", "size": 8})])
    lazy = p.apply(da.from_array(stack, chunks=(1, 1, 20, 24, 3)), frame_ndim=3)
    assert lazy.shape == stack.shape and lazy.dtype == np.uint8
    got = lazy.compute()
    for t, z in np.ndindex(3, 2):  # index follows the first axis
        np.testing.assert_array_equal(got[t, z], p(stack[t, z], index=t))
    one = p.apply(stack[0, 0], frame_ndim=3)
    assert one.shape == (20, 24, 3)
    np.testing.assert_array_equal(one.compute(), p(stack[0, 0], index=0))
    gray = Pipeline([("apply_colormap", {"colormap": "gray"})]).apply(stack[..., 0], frame_ndim=2)
    assert gray.shape == (3, 2, 20, 24, 3) and gray.dtype == np.uint8
    with pytest.raises(ValueError, match="frames are"):
        p.apply(stack[0, 0, 0], frame_ndim=3)


def test_display_range_follows_the_steps():
    lim = (100.0, 4000.0)
    keep = Pipeline([("gaussian", {}), ("crop", {"y": (0, 4)}), ("draw_text", {})])
    assert keep.display_range(lim, "uint16") == (lim, np.uint16)
    # a rescale to the limits shows the same picture over the full range
    r = Pipeline([("rescale", {"in_range": lim})])
    assert r.display_range(lim, "uint16") == ((0.0, 65535.0), np.uint16)
    inv = Pipeline([("invert", {"max_value": 4095})]).display_range(lim, "uint16")
    assert inv == ((95.0, 3995.0), np.uint16)
    conv = Pipeline([("convert_dtype", {"dtype": "uint8", "in_range": (0, 4095)})])
    assert conv.display_range(lim, "uint16") == ((6.0, 249.0), np.uint8)
    assert Pipeline([("clahe", {})]).display_range(lim, "uint16")[0] == (0.0, 65535.0)
    assert Pipeline([("clahe", {})]).display_range((0.2, 0.5), "float32")[0] == (0.2, 0.5)
    cmap = Pipeline([("apply_colormap", {"colormap": "hot"})]).display_range(lim, "uint16")
    assert cmap == ((0.0, 255.0), np.uint8)


def test_parameters_are_described_for_user_interfaces():
    from napari_imseq.transforms import available
    from napari_imseq.transforms._registry import describe

    for name in available():  # every parameter of every step has a kind the GUI can edit
        for p in describe(name):
            assert p.kind in (int, float, str, bool, "array"), (name, p)
    info = {p.name: p for p in describe("rescale")}
    assert info["in_range"].length == 2 and info["in_range"].optional
    assert info["in_range"].limits("uint16") == (0, 65535)
    assert info["in_range"].limits("float32") == (-np.inf, np.inf)
    offset = {p.name: p for p in describe("contrast")}["offset"]
    assert offset.limits("uint16") == (-65535, 65535) and offset.limits("uint8") == (-255, 255)
    assert "viridis" in {p.name: p for p in describe("apply_colormap")}["colormap"].choices
    assert {p.name: p for p in describe("flip")}["axis"].choices == ("horizontal", "vertical")
    assert {p.name: p for p in describe("gamma")}["gamma"].limits() == (0.01, 100.0)
