"""Property tests of the lossless writers: any frame shape, dtype and fps either round-trips
bit-exactly (frames, dtype, shape, count; fps within the format's precision) or is refused with
UnsupportedWriteError before anything is written (no file and no ``.partial`` left).

Each writer also has a model of what it must accept (its documented support), so a writer
that refused everything, or accepted something it cannot store, fails here too. Examples are
few and derandomized (a fixed set per run); every example writes into its own temporary folder.
"""

import math
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import napari_imseq as imseq

DTYPES = [
    "bool", "uint8", "uint16", "int8", "int16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", ">u2", ">f4", "complex64",
]  # fmt: skip
GOOD_FPS = st.one_of(
    st.sampled_from([1.0, 12.5, 24.0, 25.0, 29.97, 30000 / 1001, 60.0, 100.0, 240.0]),
    st.floats(min_value=1.0, max_value=240.0, allow_nan=False, allow_infinity=False),
)
BAD_FPS = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-9, 1e10])
FPS = st.one_of(st.none(), GOOD_FPS, BAD_FPS)


def fps_ok(fps):
    return fps is None or (math.isfinite(fps) and 1e-6 <= fps <= 1e9)


def _gray_or_colour(shape, channels=(3, 4)):
    return len(shape) == 2 or (len(shape) == 3 and shape[2] in channels)


def _video(shape, dtype):
    # FFV1 / PNG: gray (2-D, or (H, W, 1) kept by a container tag) or RGB(A), 8 or 16 bits
    return _gray_or_colour(shape, (1, 3, 4)) and dtype in ("uint8", "uint16", ">u2")


def _tiff(shape, dtype):
    return np.dtype(dtype).kind in "uif"


def _zarr(shape, dtype):
    return np.dtype(dtype).kind in "biuf"


def _seq(shape, dtype):
    return (len(shape) == 2 and dtype in ("uint8", "uint16", ">u2")) or (
        len(shape) == 3 and shape[2] == 3 and dtype == "uint8"
    )


def _png_folder(shape, dtype):
    return _gray_or_colour(shape) and dtype in ("uint8", "uint16", ">u2")


def _relative(tolerance):
    return lambda got, fps: got == pytest.approx(fps, rel=tolerance)


def _interval(seconds):
    return lambda got, fps: got is not None and abs(1 / got - 1 / fps) <= seconds


#: name, options, what it must accept, how fps comes back (None: not stored)
FORMATS = {
    "ffv1": ("a.mkv", {}, _video, _relative(1e-3)),
    "png-mov": ("a.mov", {}, _video, _relative(1e-3)),
    "tiff": ("a.tif", {}, _tiff, _relative(1e-12)),
    "tiff-zstd": ("a.tif", {"compression": "zstd"}, _tiff, _relative(1e-12)),
    "zarr": ("a.zarr", {}, _zarr, _relative(1e-12)),
    # microsecond camera timestamps on the epoch clock: each of two stamps is rounded to 1 us
    # and an epoch time in float64 resolves ~0.24 us, so an interval is exact to 2 us (1.01 us
    # failed now and then: 1.23 us, depending on the wall-clock second the test started in)
    "seq": ("a.seq", {}, _seq, _interval(2e-6)),
    "png-folder": ("frames/", {}, _png_folder, None),
    "tif-folder": ("frames/", {"image_format": "tif"}, _zarr, None),  # every real dtype
}


@st.composite
def movies(draw):
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.sampled_from([1, 2, 2, 2, 3, 3, 3, 4]))
    shape = [draw(st.integers(1, 9)) for _ in range(ndim)]
    if ndim == 3 and draw(st.booleans()):
        shape[2] = draw(st.sampled_from([1, 2, 3, 4]))
    if draw(st.integers(0, 19)) == 0:
        shape[draw(st.integers(0, ndim - 1))] = 0  # an empty axis: refused
    n = draw(st.integers(1, 3))
    frames = draw(hnp.arrays(np.dtype(dtype), (n, *shape)))  # NaN and infinities included
    return frames, draw(FPS)


def _files(folder):
    return sorted(os.listdir(folder))


def _same_bits(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def check_round_trip(fmt, frames, fps):
    name, options, accepts, fps_matches = FORMATS[fmt]
    shape, dtype = frames.shape[1:], frames.dtype.str if frames.dtype.byteorder == ">" else None
    dtype = dtype or frames.dtype.name
    must = accepts(shape, dtype) and fps_ok(fps) and len(shape) >= 2 and 0 not in shape
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        try:
            imseq.imwrite(path, frames, fps=fps, **options)
        except imseq.UnsupportedWriteError as err:
            assert not must, f"{fmt} refused {shape} {dtype} fps={fps}: {err}"
            assert _files(tmp) == [], "a refused write must leave nothing behind"
            return
        assert must, f"{fmt} accepted {shape} {dtype} fps={fps}, which it cannot store"
        assert _files(tmp) == [os.path.basename(path.rstrip("/"))], _files(tmp)
        native = frames.astype(frames.dtype.newbyteorder("="))
        with imseq.open_sequence(path) as seq:
            assert len(seq) == len(frames)
            assert seq.frame_shape == native.shape[1:]
            assert seq.dtype == native.dtype
            got = seq[:]
            assert _same_bits(got, native), f"{fmt}: pixels differ for {shape} {dtype}"
            assert _same_bits(seq[len(seq) - 1], native[-1])
            if fps is not None and fps_matches is not None:
                assert fps_matches(seq.fps, fps), (seq.fps, fps)


#: IMSEQ_PROPERTY_EXAMPLES=500 (and IMSEQ_PROPERTY_RANDOM=1 for new examples each run) for a
#: longer search than the CI's fixed 25 examples per writer
SETTINGS = settings(
    max_examples=int(os.environ.get("IMSEQ_PROPERTY_EXAMPLES", 25)),
    deadline=None,
    derandomize=not os.environ.get("IMSEQ_PROPERTY_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_lossless_writer_round_trips_exactly_or_refuses_before_writing(fmt):
    @SETTINGS
    @given(movies())
    def prop(movie):
        check_round_trip(fmt, *movie)

    prop()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_writer_takes_its_documented_frames(fmt):
    """The model's positive side: the frames each format documents always round-trip."""
    name, _, accepts, _ = FORMATS[fmt]
    rng = np.random.default_rng(3)
    cases = [((6, 8), "uint8"), ((6, 8), "uint16"), ((6, 8, 3), "uint8")]
    if fmt.startswith("tiff"):
        cases += [((6, 8), "float32"), ((5, 6, 8), "int16"), ((6, 8, 2), "float64")]
    if fmt == "zarr":
        cases += [((6, 8), "bool"), ((2, 6, 8, 3), "int64")]
    for shape, dtype in cases:
        assert accepts(shape, dtype), (fmt, shape, dtype)
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
        if info is not None:
            frames = rng.integers(info.min, info.max, (3, *shape), dtype=dtype, endpoint=True)
        else:
            frames = (rng.random((3, *shape)) > 0.5).astype(dtype)
        check_round_trip(fmt, frames, 25.0)


EDGE_CASES = {
    "gray-1px": ((1, 1), "uint8"),
    "one-channel": ((5, 6, 1), "uint8"),
    "two-channels": ((5, 6, 2), "uint16"),
    "rgba16": ((5, 6, 4), "uint16"),
    "stack": ((2, 5, 6), "uint8"),
    "bool": ((5, 6), "bool"),
    "big-endian": ((5, 6), ">u2"),
    "float16": ((5, 6), "float16"),
    "uint64": ((5, 6), "uint64"),
    "complex": ((5, 6), "complex64"),
    "line": ((6,), "uint8"),
    "empty": ((0, 6), "uint8"),
}
#: (format, case) pairs that fail today, each reported to the owner of the writer
KNOWN: dict[tuple[str, str], str] = {}  # (format, case): why it cannot pass yet


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_edge_cases_round_trip_or_are_refused(fmt, case, request):
    if (fmt, case) in KNOWN:
        request.applymarker(pytest.mark.xfail(reason=KNOWN[fmt, case], strict=True))
    shape, dtype = EDGE_CASES[case]
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, (2, *shape, np.dtype(dtype).itemsize), dtype=np.uint8)
    frames = raw.view(dtype).reshape(2, *shape)
    if np.dtype(dtype).kind == "b":
        frames = raw[..., 0].reshape(2, *shape) > 127
    for fps in (None, 25.0, math.nan):
        check_round_trip(fmt, frames, fps)
