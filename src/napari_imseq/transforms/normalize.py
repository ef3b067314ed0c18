"""Normalisation: percentile stretch, histogram equalisation, CLAHE, and statistics estimated
from a subsample of a recording (so normalising a long recording reads it once, not twice)."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np

from ._registry import (
    Count,
    NonNegative,
    Percent,
    Spec,
    dtype_range,
    has_alpha,
    is_colour,
    on_luminance,
    register,
    restore,
)
from .intensity import rescale


@register(display="stretch")
def percentile_stretch(
    frame: np.ndarray, *, low: Percent = 0.5, high: Percent = 99.5
) -> np.ndarray:
    """Stretch the frame's own ``low``..``high`` percentiles to the dtype's full range.

    Colour frames use the percentiles of all colour channels together (one mapping, so hues
    are kept); the alpha channel is kept.

    Examples
    --------
    >>> f = np.arange(100, dtype=np.uint8).reshape(10, 10)
    >>> int(percentile_stretch(f, low=0, high=100).max())
    255
    """
    lo, hi = np.percentile(frame[..., :3] if has_alpha(frame) else frame, (low, high))
    return rescale(frame, in_range=(float(lo), float(hi)))


def _equalize_lut(hist: np.ndarray, dtype: np.dtype) -> np.ndarray:
    cdf = np.cumsum(hist, dtype=np.float64)
    nonzero = cdf[cdf > 0]
    first = nonzero[0] if len(nonzero) else 0.0
    span = max(cdf[-1] - first, 1.0)
    lo, hi = dtype_range(dtype)
    lut = lo + (cdf - first) / span * (hi - lo)
    return restore(np.clip(lut, lo, hi), dtype)


@register(display="stretch")
def equalize_hist(frame: np.ndarray, *, nbins: Annotated[int, Spec(min=2)] = 256) -> np.ndarray:
    """Global histogram equalisation; the dtype is kept.

    Integer frames use one bin per value (``nbins`` applies to floats only), so equalisation
    is exact; colour frames are equalised on their luminance (Y of YCrCb), so hues stay, and
    their alpha channel is kept.

    Examples
    --------
    >>> f = np.array([[10, 10, 20, 30]], np.uint8)
    >>> equalize_hist(f).tolist()
    [[0, 0, 128, 255]]
    """
    if is_colour(frame):
        return on_luminance(frame, lambda y: equalize_hist(y, nbins=nbins))
    if frame.dtype.kind == "u":
        size = 256 if frame.dtype == np.uint8 else int(frame.max()) + 1
        lut = _equalize_lut(np.bincount(frame.ravel(), minlength=size), frame.dtype)
        return lut[frame]
    lo, hi = float(np.min(frame)), float(np.max(frame))
    hist, edges = np.histogram(frame, bins=nbins, range=(lo, hi if hi > lo else lo + 1))
    cdf = np.cumsum(hist) / frame.size
    return np.interp(frame, edges[1:], cdf).astype(frame.dtype)


@register(display="equalize")
def clahe(
    frame: np.ndarray, *, clip_limit: NonNegative = 2.0, tile_grid: tuple[Count, Count] = (8, 8)
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV's implementation).

    Parameters
    ----------
    clip_limit : float
        Histogram clip level relative to an even distribution (OpenCV's convention: 1 is no
        contrast gain, 2-4 is typical).
    tile_grid : (rows, cols)
        Number of tiles the frame is divided into.

    Returns
    -------
    ndarray
        The dtype is kept: uint8 and uint16 natively, other types through uint16 over the
        frame's own min..max. Colour frames (any dtype) are equalised on their luminance (Y of
        YCrCb), so hues stay; the alpha channel is kept.

    Examples
    --------
    >>> f = (np.random.default_rng(0).random((64, 64)) * 40).astype(np.uint8)
    >>> int(clahe(f).max()) > int(f.max())
    True
    """
    import cv2

    if is_colour(frame):
        return on_luminance(frame, lambda y: clahe(y, clip_limit=clip_limit, tile_grid=tile_grid))
    grid = (int(tile_grid[1]), int(tile_grid[0]))  # OpenCV: (cols, rows)
    op = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=grid)
    if frame.dtype not in (np.uint8, np.uint16):
        lo, hi = float(np.min(frame)), float(np.max(frame))
        scaled = np.clip((frame.astype(np.float64) - lo) / max(hi - lo, 1e-12) * 65535, 0, 65535)
        out = clahe(scaled.astype(np.uint16), clip_limit=clip_limit, tile_grid=tile_grid)
        return restore(lo + out.astype(np.float64) / 65535 * (hi - lo), frame.dtype)
    return op.apply(np.ascontiguousarray(frame))


# ---- statistics from a subsample --------------------------------------------------------------
def _subsample(frames: Any, max_frames: int, downsample: int) -> np.ndarray:
    n = len(frames)
    picks = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    step = max(1, int(downsample))
    return np.stack([np.asarray(frames[int(i)])[::step, ::step] for i in picks])


def estimate_range(
    frames: Any,
    *,
    percentiles: tuple[float, float] = (0.5, 99.5),
    max_frames: int = 64,
    downsample: int = 4,
) -> tuple[float, float]:
    """Display range ``(lo, hi)`` of a whole recording from evenly spaced frames.

    ``frames`` is a Sequence, a numpy or dask array, or anything indexable by frame. Reads at
    most ``max_frames`` frames, each strided by ``downsample`` in Y and X: the cost follows the
    subsample, not the recording's length. Use the result with :func:`rescale`. NaN and
    infinite samples of float data are ignored; a subsample with no finite value raises
    ``ValueError``.

    Examples
    --------
    >>> movie = np.arange(1000, dtype=np.uint16).reshape(10, 10, 10)
    >>> estimate_range(movie, percentiles=(0, 100), downsample=1)
    (0.0, 999.0)
    """
    sample = _subsample(frames, max_frames, downsample)
    if sample.dtype.kind in "fc":
        sample = sample[np.isfinite(sample)]
        if not sample.size:
            raise ValueError(
                "the sampled frames hold no finite value (all NaN or infinite); give the "
                "range (lo, hi) explicitly"
            )
    lo, hi = np.percentile(sample, percentiles)
    return float(lo), float(hi)


def estimate_histogram(
    frames: Any,
    *,
    max_frames: int = 64,
    downsample: int = 4,
) -> np.ndarray:
    """An equalisation LUT for a whole recording, from evenly spaced, downsampled frames.

    Apply it to every frame with :func:`apply_lut` (integer frames): all frames then share one
    intensity mapping, so exposure stays comparable along the recording and across files.

    Examples
    --------
    >>> movie = np.random.default_rng(0).integers(0, 100, (20, 32, 32), dtype=np.uint8)
    >>> lut = estimate_histogram(movie)
    >>> lut.shape, lut.dtype
    ((256,), dtype('uint8'))
    """
    sample = _subsample(frames, max_frames, downsample)
    if sample.dtype.kind != "u":
        raise ValueError(f"estimate_histogram needs unsigned integer frames, not {sample.dtype}")
    size = 256 if sample.dtype == np.uint8 else 65536
    return _equalize_lut(np.bincount(sample.ravel(), minlength=size), sample.dtype)
