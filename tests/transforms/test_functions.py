"""Per-frame functions against independent references (numpy, scipy, scikit-image)."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import color, exposure, filters, transform, util

from napari_imseq import transforms as T

DTYPES = [np.uint8, np.uint16, np.float32]


def frame(dtype, rgb=False, shape=(48, 64), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 0.5 + 0.3 * np.sin(x / 7.0) * np.cos(y / 5.0) + 0.05 * rng.standard_normal(shape)
    base = np.clip(base, 0, 1)
    f = np.stack([base, base[::-1], base[:, ::-1]], -1) if rgb else base
    if np.dtype(dtype).kind == "f":
        return f.astype(dtype)
    return (f * np.iinfo(dtype).max).astype(dtype)


def top(dtype):
    return np.iinfo(dtype).max if np.dtype(dtype).kind in "ui" else 1.0


def close(a, b, dtype, levels=1.0):
    """Equal within ``levels`` steps of an integer dtype (or 1e-3 of the float range)."""
    tol = levels if np.dtype(dtype).kind in "ui" else 1e-3 * levels
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rgb", [False, True])
def test_contrast_gamma_rescale_invert(dtype, rgb):
    f = frame(dtype, rgb)
    out = T.contrast(f, gain=1.5, offset=0.01 * top(dtype))
    ref = f.astype(np.float64) * 1.5 + 0.01 * top(dtype)
    if dtype != np.float32:  # integers are clipped to their range; floats are not
        ref = np.clip(ref, 0, top(dtype))
    assert out.dtype == f.dtype and out.shape == f.shape
    close(out, ref, dtype)
    g = T.gamma(f, gamma=0.6)
    assert g.dtype == f.dtype
    close(g, exposure.adjust_gamma(f, 0.6) if dtype != np.float32 else f ** np.float32(0.6), dtype)
    lo, hi = 0.2 * top(dtype), 0.8 * top(dtype)
    r = T.rescale(f, in_range=(lo, hi))
    close(
        r,
        exposure.rescale_intensity(
            f.astype(np.float64), in_range=(lo, hi), out_range=(0, top(dtype))
        ),
        dtype,
    )
    inv = T.invert(f)
    if dtype != np.float32:
        np.testing.assert_array_equal(inv, util.invert(f))
    else:
        close(inv, 1 - f, dtype)


def test_invert_12_bit_and_bit_depth_conversion():
    f = np.array([[0, 1000, 4095]], np.uint16)
    assert T.invert(f, max_value=4095).tolist() == [[4095, 3095, 0]]
    out = T.convert_dtype(f, dtype="uint8", in_range=(0, 4095))
    assert out.dtype == np.uint8 and out.tolist() == [[0, 62, 255]]
    assert T.convert_dtype(np.array([[0.5]], np.float32), dtype="uint16").tolist() == [[32768]]


def test_apply_lut_and_errors():
    lut = np.arange(256, dtype=np.uint16) * 10
    f = frame(np.uint8)
    np.testing.assert_array_equal(T.apply_lut(f, lut=lut), f.astype(np.uint16) * 10)
    with pytest.raises(ValueError, match="LUT has 10 entries"):
        T.apply_lut(f, lut=np.arange(10))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_percentile_stretch_and_equalize(dtype):
    f = frame(dtype)
    lo, hi = np.percentile(f, (2, 98))
    ref = np.clip((f.astype(np.float64) - lo) / (hi - lo), 0, 1) * top(dtype)
    close(T.percentile_stretch(f, low=2, high=98), ref, dtype)
    eq = T.equalize_hist(f)
    assert eq.dtype == f.dtype and eq.max() == top(dtype)
    # against scikit-image's CDF equalisation (float 0..1), up to its binning
    sk = exposure.equalize_hist(f, nbins=int(top(dtype)) + 1)
    assert np.corrcoef(eq.ravel(), sk.ravel())[0, 1] > 0.999
    # one mapping per value: equal inputs stay equal, order is kept
    order = np.argsort(f.ravel(), kind="stable")
    assert np.all(np.diff(eq.ravel()[order].astype(np.int64)) >= 0)


def luminance(a):
    """Y of YCrCb (BT.601), what colour frames are equalised on."""
    return a[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114] if a.ndim == 3 else a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rgb", [False, True])
def test_clahe(dtype, rgb):
    f = frame(dtype, rgb)
    out = T.clahe(f, clip_limit=2.0, tile_grid=(4, 4))
    assert out.dtype == f.dtype and out.shape == f.shape
    y, y_out = luminance(f), luminance(out)
    # local contrast goes up, and the result follows scikit-image's CLAHE closely
    assert np.std(y_out) >= np.std(y) * 0.99
    ref = exposure.equalize_adapthist(y / top(dtype), kernel_size=(12, 16), clip_limit=0.02)
    assert np.corrcoef(y_out.ravel(), ref.ravel())[0, 1] > (0.95 if rgb else 0.8)
    if rgb:  # colour is equalised on its luminance: the chroma (R - Y, B - Y) barely moves
        chroma = lambda a: a[..., [0, 2]].astype(np.float64) - luminance(a)[..., None]  # noqa: E731
        assert np.corrcoef(chroma(out).ravel(), chroma(f).ravel())[0, 1] > 0.9


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "step",
    [("contrast", {"gain": 1.5}), ("gamma", {"gamma": 0.5}), ("rescale", {"in_range": (0.2, 0.6)}),
     ("invert", {}), ("percentile_stretch", {}), ("equalize_hist", {}), ("clahe", {}),
     ("gaussian", {"sigma": 2.0}), ("unsharp_mask", {}), ("median", {"size": 3}),
     ("draw_text", {"text": "abc"}), ("convert_dtype", {"dtype": "uint16"})],
)  # fmt: skip
def test_rgba_keeps_alpha_and_shape(dtype, step):
    """Colour operations never touch transparency; the channel axis stays."""
    f = frame(dtype, rgb=True)
    alpha = np.zeros(f.shape[:2], dtype)
    alpha[30:45, 5:50] = top(dtype)  # opaque below the text drawn at (10, 10)
    rgba = np.concatenate([f, alpha[..., None]], -1)
    name, params = step
    if name == "rescale":
        params = {"in_range": tuple(v * top(dtype) for v in params["in_range"])}
    out = T.REGISTRY[name](rgba, **params)
    assert out.shape == rgba.shape
    if name == "convert_dtype":
        assert out.dtype == np.uint16
        np.testing.assert_array_equal(out[..., 3], (alpha > 0) * 65535)
        return
    assert out.dtype == rgba.dtype
    if name == "draw_text":  # text is opaque where it is drawn, untouched elsewhere
        assert (out[..., 3] >= alpha).all() and (out[..., 3] > alpha).any()
        return
    np.testing.assert_array_equal(out[..., 3], alpha)
    # the colour channels are what the RGB frame gives
    np.testing.assert_array_equal(out[..., :3], T.REGISTRY[name](f, **params))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rgb", [False, True])
def test_filters(dtype, rgb):
    f = frame(dtype, rgb)
    sig = (2.0, 2.0, 0) if rgb else 2.0
    g = T.gaussian(f, sigma=2.0)
    assert g.dtype == f.dtype
    close(g, ndi.gaussian_filter(f.astype(np.float64), sig, mode="reflect"), dtype)
    close(
        g,
        filters.gaussian(
            f,
            sigma=2.0,
            preserve_range=True,
            channel_axis=-1 if rgb else None,
            mode="reflect",
            truncate=4.0,
        ),
        dtype,
    )
    m = T.median(f, size=3)
    np.testing.assert_array_equal(
        m, ndi.median_filter(f, size=(3, 3, 1) if rgb else 3, mode="reflect")
    )
    u = T.unsharp_mask(f, sigma=1.5, amount=0.8)
    blurred = ndi.gaussian_filter(
        f.astype(np.float64), (1.5, 1.5, 0) if rgb else 1.5, mode="reflect"
    )
    ref = f + 0.8 * (f - blurred)
    close(u, np.clip(ref, 0, top(dtype)) if dtype != np.float32 else ref, dtype, levels=1)
    if not rgb and dtype != np.float32:
        sk = filters.unsharp_mask(f.astype(np.float64), radius=1.5, amount=0.8, preserve_range=True)
        close(u, np.clip(sk, 0, top(dtype)), dtype, levels=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rgb", [False, True])
def test_geometry_shape_rules_and_values(dtype, rgb):
    f = frame(dtype, rgb)
    c = T.crop(f, y=(5, 25), x=(10, -10))
    assert c.shape[:2] == (20, 44)
    np.testing.assert_array_equal(c, f[5:25, 10:-10])
    assert T.crop(f, y=(0, -1), x=(0, -1)).shape == f.shape
    with pytest.raises(ValueError, match="empty"):
        T.crop(f, y=(30, 10))
    for mode in ("constant", "edge", "reflect"):
        p = T.pad(f, width=3, mode=mode)
        assert p.shape[:2] == (54, 70) and p.dtype == f.dtype
        np.testing.assert_array_equal(p[3:-3, 3:-3], f)
    np.testing.assert_array_equal(T.flip(f, axis="horizontal"), f[:, ::-1])
    np.testing.assert_array_equal(T.flip(f, axis="vertical"), f[::-1])
    np.testing.assert_array_equal(T.rot90(f, k=3), np.rot90(f, 3, axes=(0, 1)))
    r = T.rotate(f, angle=30)
    assert r.shape == f.shape and r.dtype == f.dtype
    ref = transform.rotate(f.astype(np.float64), 30, order=1, preserve_range=True)
    inner = (slice(16, -16), slice(20, -20))
    close(r[inner], ref[inner], dtype, levels=0.02 * top(dtype) if dtype != np.float32 else 20)
    assert T.rotate(f, angle=90, reshape=True).shape[:2] == (64, 48)
    z = T.resize(f, shape=(24, 32), interpolation="area")
    assert z.shape[:2] == (24, 32) and z.dtype == f.dtype
    ref = transform.downscale_local_mean(f.astype(np.float64), (2, 2, 1) if rgb else (2, 2))
    close(z, ref, dtype)
    assert T.rescale_size(f, scale=1.5).shape[:2] == (72, 96)


def test_colour():
    f = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    rgb = T.apply_colormap(f, colormap="viridis")
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    from vispy.color import get_colormap

    expected = (
        np.asarray(get_colormap("viridis").map(np.array([0.0, 1.0], np.float32)))[:, :3] * 255
    )
    np.testing.assert_allclose(rgb[[0, -1], [0, -1]], expected, atol=1)
    assert T.apply_colormap(f, colormap="gray")[-1, -1].tolist() == [255, 255, 255]
    with pytest.raises(ValueError, match="unknown colormap"):
        T.apply_colormap(f, colormap="nope")
    c = frame(np.uint16, rgb=True)
    close(T.rgb_to_gray(c), color.rgb2gray(c.astype(np.float64) / 65535) * 65535, np.uint16)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rgb", [False, True])
def test_annotation(dtype, rgb):
    f = np.zeros((60, 120, 3) if rgb else (60, 120), dtype)
    a = T.draw_text(
        f, text="frame {index} t={timestamp:.2f}", index=3, timestamp=1.5, position=(5, 5), size=14
    )
    b = T.draw_text(
        f, text="frame {index} t={timestamp:.2f}", index=4, timestamp=1.5, position=(5, 5), size=14
    )
    assert a.dtype == f.dtype and a.shape == f.shape
    assert a.max() == top(dtype) and not np.array_equal(a, b)
    assert not a[30:].any(), "text stays near its position"
    s = T.scale_bar(f, length=40, thickness=5, corner="bottom-left", margin=10)
    on = (s > 0).any(-1) if rgb else s > 0
    assert on.sum() == 200 and on[45:50, 10:50].all()


def test_figure_to_array():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(3, 2), dpi=50)
    plt.plot([0, 1], [0, 1])
    arr = T.figure_to_array(fig)
    plt.close(fig)
    assert arr.shape == (100, 150, 3) and arr.dtype == np.uint8


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint32, np.uint64, np.float64])
@pytest.mark.parametrize("channels", [0, 3, 4])
def test_every_step_on_other_dtypes(dtype, channels):
    """Any dtype napari shows: every step runs (no overflow warnings), dtype and channels kept
    except for the documented conversions."""
    shape = (30, 40, channels) if channels else (30, 40)
    f = (np.random.default_rng(0).random(shape) * 100).astype(dtype)
    for name in T.available():
        if name == "apply_lut":
            continue  # unsigned integers only (an error says so)
        out = T.REGISTRY[name](f)
        if name == "apply_colormap":
            assert out.dtype == np.uint8 and out.shape == (30, 40, 4 if channels == 4 else 3)
        elif name == "convert_dtype":
            assert out.dtype == np.uint8 and out.shape == f.shape
        elif name == "rgb_to_gray":
            assert out.dtype == f.dtype and out.shape == (30, 40)
        else:
            assert out.dtype == f.dtype and out.shape[2:] == f.shape[2:], name
    if np.dtype(dtype).kind == "u":  # exact at every width; alpha kept
        expect = np.iinfo(dtype).max - f
        if channels == 4:
            expect[..., 3] = f[..., 3]
        np.testing.assert_array_equal(T.invert(f), expect)


@pytest.mark.parametrize("shape", [(7,), (3, 5), (3, 5, 3), (2, 3, 5, 3)])
def test_point_op_any_shape_uint8(shape):
    """The cv2 fast path for uint8 applies only to 2-D and (Y, X, C<=4) frames; 1-D and
    extra-axis arrays go through the table too, with the same values."""
    from napari_imseq.transforms._registry import point_op

    frame = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    out = point_op(frame, lambda v: 255 - v)
    assert out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, 255 - frame)
