"""Mixed bit depths in a mosaic: each tile spans the output range by its significant bit depth
(declared by the source, given with ``bit_depths=`` or estimated when asked), losslessly; the
alpha of RGBA tiles is opacity (the type's full range), the same in every tile and mode."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io.array import ArraySequence
from napari_imseq.mosaic import MosaicError, mosaic

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "samples")


def sample(name):
    path = os.path.join(SAMPLES, name)
    if not os.path.exists(path):
        pytest.skip(f"sample {name} not found in {SAMPLES}")
    return path


def scaled(values, bits, target):
    """The documented map of a ``bits``-bit value onto ``target`` bits."""
    top = 2**target - 1
    return np.rint(np.asarray(values, np.float64) * (top / (2**bits - 1))).astype(np.uint16)


def rgba8():
    """Two 8x8 RGBA frames: white, alpha 255 below row 4, 128 in rows 0..3, 0 in row 0."""
    a = np.full((2, 8, 8, 4), 255, np.uint8)
    a[:, :4, :, 3] = 128
    a[:, 0, :, 3] = 0
    a[:, :, :, 0] = 10
    return ArraySequence(a, fps=1, name="rgba")


def test_rgba_alpha_is_opacity_beside_a_12_bit_tile():
    """An 8-bit RGBA tile beside a 12-bit camera: its colour spans 0..4095 like any 8-bit
    tile, its alpha maps 0..255 onto 0..65535 (opaque stays opaque: napari reads alpha at the
    type's full range) like the opaque alpha of the other tiles and the background, and the
    mosaic's bit depth stays 12 (it was 16: the opaque background counted as a value)."""
    g12 = ArraySequence(np.full((2, 8, 8), 4095, np.uint16), fps=1, bit_depth=12, name="g12")
    with mosaic([g12, rgba8()], grid="1x2", gap=2) as m:
        assert (m.dtype, m.bit_depth, m.frame_shape[-1]) == (np.uint16, 12, 4)
        f = m[0]
        assert tuple(f[6, 4]) == (4095, 4095, 4095, 65535), "gray: replicated, opaque"
        assert tuple(f[6, 12]) == (scaled(10, 8, 12), 4095, 4095, 65535)
        assert tuple(f[2, 12]) == (scaled(10, 8, 12), 4095, 4095, 128 * 257)
        assert f[0, 12, 3] == 0, "transparent stays transparent"
        assert tuple(f[4, 9]) == (0, 0, 0, 65535), "the gap: black, opaque"
    with mosaic([g12, rgba8()], grid="1x2", promote="keep") as m:
        f = m[0]
        assert tuple(f[6, 12]) == (10, 255, 255, 65535), "keep: values kept, alpha opaque"
        assert f[2, 12, 3] == 128 * 257


def test_rgba_alpha_in_float_and_narrower_mosaics():
    f32 = ArraySequence(np.full((2, 8, 8), 0.5, np.float32), fps=1)
    with mosaic([f32, rgba8()], grid="1x2") as m:
        f = m[0]
        assert m.dtype == np.float32
        assert tuple(f[6, 12]) == (10.0, 255.0, 255.0, 1.0), "colour kept, alpha 0..1"
        assert f[2, 12, 3] == np.float32(128 / 255) and tuple(f[6, 4]) == (0.5, 0.5, 0.5, 1.0)
    a16 = np.full((2, 8, 8, 4), 65535, np.uint16)
    a16[:, :4, :, 3] = 257 * 100
    src = ArraySequence(a16, fps=1)
    with mosaic([src, rgba8()], grid="1x2", dtype="uint8") as m:  # narrower: asked for
        f = m[0]
        assert tuple(f[6, 4]) == (255, 255, 255, 255) and f[2, 4, 3] == 100
        assert tuple(f[2, 12]) == (10, 255, 255, 128)


def test_gray_rgb_and_rgba_mix_is_opaque_where_opaque():
    g8 = ArraySequence(np.full((2, 8, 8), 7, np.uint8), fps=1)
    rgb16 = ArraySequence(np.full((2, 8, 8, 3), 1000, np.uint16), fps=1)
    with mosaic([g8, rgb16, rgba8()], grid="1x3") as m:
        f = m[0]
        assert (m.dtype, m.bit_depth) == (np.uint16, 16)
        assert tuple(f[6, 4]) == (7 * 257,) * 3 + (65535,)
        assert tuple(f[6, 12]) == (1000, 1000, 1000, 65535)
        assert tuple(f[6, 20]) == (10 * 257, 65535, 65535, 65535)
        assert f[2, 20, 3] == 128 * 257


def test_colour_paste_codes_are_opencvs():
    import cv2

    from napari_imseq.mosaic._mosaic import _TO_COLOUR

    want = {(1, 3): cv2.COLOR_GRAY2RGB, (1, 4): cv2.COLOR_GRAY2RGBA, (3, 4): cv2.COLOR_RGB2RGBA}
    assert want == _TO_COLOUR  # written as numbers: the mosaic imports OpenCV only when used


def test_given_bit_depths_make_a_dim_16_bit_tile_span_the_range():
    """A uint16 source that states no depth keeps its values (it may use all 16 bits);
    bit_depths= gives its depth, and every tile then spans that range exactly."""
    dim = np.arange(0, 16269, 16269 // 63, dtype=np.uint16)[:64].reshape(8, 8)
    calcium = ArraySequence(np.stack([dim, dim]), fps=1, name="calcium")
    ramp12 = np.arange(0, 4096, 64, dtype=np.uint16).reshape(8, 8)
    cam = ArraySequence(np.stack([ramp12, ramp12]), fps=1, bit_depth=12, name="cam")
    g8 = ArraySequence(np.full((2, 8, 8), 255, np.uint8), fps=1, name="g8")
    with mosaic([cam, g8, calcium], grid="1x3") as m:  # nothing declared: kept
        assert m.bit_depth == 16
        np.testing.assert_array_equal(m[0][:, 16:], dim)
        np.testing.assert_array_equal(m[0][:, :8], scaled(ramp12, 12, 16))
    for given in ({"calcium": 14}, [None, None, 14], {2: 14}):
        with mosaic([cam, g8, calcium], grid="1x3", bit_depths=given) as m:
            f = m[1]
            assert (m.dtype, m.bit_depth) == (np.uint16, 14)
            np.testing.assert_array_equal(f[:, 16:], dim)  # the deepest: untouched
            np.testing.assert_array_equal(f[:, :8], scaled(ramp12, 12, 14))
            assert (f[:, 8:16] == 16383).all()
            back = np.rint(f[:, :8] * (4095 / 16383)).astype(np.uint16)
            np.testing.assert_array_equal(back, ramp12)  # invertible: nothing lost
    with mosaic([cam, g8, calcium], grid="1x3", bit_depths=[None, None, 14]) as m:
        clone = pickle.loads(pickle.dumps(m))
        np.testing.assert_array_equal(clone[0], m[0])
        assert mosaic([cam, g8, calcium]).fingerprint != m.fingerprint
    for bad in ([None, None, 17], [None, None, 0], [None, None, 12.5], [None, 9, None], "six"):
        with pytest.raises(MosaicError, match="bit depth"):
            mosaic([cam, g8, calcium], bit_depths=bad)
    f32 = ArraySequence(np.zeros((2, 8, 8), np.float32), fps=1, name="f")
    with pytest.raises(MosaicError, match="integer sources only"):
        mosaic([cam, f32], bit_depths=[None, 12])


def test_estimated_bit_depth_from_a_sample_and_a_warning_when_it_clips():
    frames = np.full((40, 8, 8), 3000, np.uint16)  # 12 bits ...
    frames[1, 0, 0] = 9000  # ... but one frame, left out of the 16 sampled, has 14
    src = ArraySequence(frames, fps=1, name="undeclared")
    cam = ArraySequence(np.full((40, 8, 8), 4095, np.uint16), fps=1, bit_depth=10, name="cam")
    g8 = ArraySequence(np.full((40, 8, 8), 20, np.uint8), fps=1, name="g8")
    with mosaic([src, cam, g8], grid="1x3", bit_depths="estimate") as m:
        assert [t.bits for t in m._tiles] == [12, 10, 8], "stated depths and 8-bit kept"
        assert m.bit_depth == 12
        np.testing.assert_array_equal(m[0][:, :8], 3000)
        assert (m[0][:, 16:] == scaled(20, 8, 12)).all()
        clone = pickle.loads(pickle.dumps(m))
        assert [t.bits for t in clone._tiles] == [12, 10, 8]
    deep = ArraySequence(np.zeros((40, 8, 8), np.uint16), fps=1, bit_depth=14, name="deep")
    with mosaic([src, deep], grid="1x2", bit_depths=["estimate", None]) as m:
        np.testing.assert_array_equal(m[0][:, :8], scaled(3000, 12, 14))
        with pytest.warns(UserWarning, match="frame 1 has values up to 9000"):
            f = m[1]
        assert f[0, 0] == 16383, "a value above the estimate shows as the tile's white"
        assert f[1, 1] == scaled(3000, 12, 14)


def test_real_samples_12_bit_seq_8_bit_seq_and_calcium_tiff():
    """The 12-bit Celeritas SEQ, an 8-bit SEQ and the calcium TIFF (uint16, values up to
    16268, no depth stated): with bit_depths 'estimate' for the TIFF every tile spans 14 bits;
    exact values against the sources' own frames (fit="pad": no resampling)."""
    paths = [sample(n) for n in ("celeritas_top_256.seq", "pims_sample_norpix6.seq",
                                 "imageio_calcium_imaging.tif")]  # fmt: skip
    with mosaic(paths, sync="index", fit="pad", grid="1x3",
                bit_depths=[None, None, "estimate"]) as m:  # fmt: skip
        assert [t.bits for t in m._tiles] == [12, 8, 14] and m.bit_depth == 14
        boxes = [t["box"] for t in m.metadata["tiles"]]
        with imseq.open_sequence(paths[0]) as a, imseq.open_sequence(paths[1]) as b, \
                imseq.open_sequence(paths[2]) as c:  # fmt: skip
            for k in (0, 4):
                f = m[k]
                for (y, x, h, w), seq, bits in zip(boxes, (a, b, c), (12, 8, 14), strict=True):
                    want = scaled(seq[k], bits, 14) if bits < 14 else seq[k]
                    np.testing.assert_array_equal(f[y : y + h, x : x + w], want)


def test_cli_bit_depths(tmp_path):
    src = tmp_path / "dim.tif"
    imseq.imwrite(src, np.full((3, 8, 8), 1000, np.uint16), fps=10.0)
    cam = tmp_path / "cam.seq"
    with imseq.open_writer(cam, fps=10.0, bit_depth=12) as w:
        for _ in range(3):
            w.write(np.full((8, 8), 4095, np.uint16))
    out = tmp_path / "m.mkv"
    cmd = [sys.executable, "-m", "napari_imseq.cli", "mosaic", str(cam), str(src), "-o",
           str(out), "--grid", "1x2", "-q", "--bit-depths", "0,12"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with imseq.open_sequence(out) as back:
        f = back[0]
        assert (f[:, 8:] == 1000).all() and (f[:, :8] == 4095).all(), "both 12-bit"
    res = subprocess.run([*cmd[:-1], "estimate", "--overwrite"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with imseq.open_sequence(out) as back:  # 1000 needs 10 bits: spread onto the camera's 12
        assert (back[0][:, 8:] == scaled(1000, 10, 12)).all() and (back[0][:, :8] == 4095).all()
    res = subprocess.run([*cmd[:-1], "0,x", "--overwrite"], capture_output=True, text=True)
    assert res.returncode != 0 and "--bit-depths" in res.stderr
