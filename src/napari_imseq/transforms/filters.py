"""Filters: gaussian blur, unsharp-mask sharpening, median (scipy.ndimage). The dtype is
kept; colour frames are filtered per channel (never across channels)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._registry import register, restore


def _per_axis(frame: np.ndarray, value: float) -> tuple[float, ...]:
    return (value, value) + (0,) * (frame.ndim - 2)


@register
def gaussian(frame: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (reflecting borders).

    Examples
    --------
    >>> f = np.zeros((5, 5), np.float32); f[2, 2] = 1
    >>> round(float(gaussian(f, sigma=1).sum()), 3)
    1.0
    """
    out = ndi.gaussian_filter(
        frame.astype(np.float32), sigma=_per_axis(frame, sigma), mode="reflect"
    )
    return restore(out, frame.dtype)


@register
def unsharp_mask(frame: np.ndarray, *, sigma: float = 1.0, amount: float = 1.0) -> np.ndarray:
    """Sharpen: ``frame + amount * (frame - gaussian(frame, sigma))``, clipped to the dtype.

    Examples
    --------
    >>> f = np.array([[0, 0, 100, 100]] * 4, np.uint8)
    >>> int(unsharp_mask(f, sigma=1, amount=1)[0, 2]) > 100
    True
    """
    f = frame.astype(np.float32)
    blurred = ndi.gaussian_filter(f, sigma=_per_axis(frame, sigma), mode="reflect")
    return restore(f + amount * (f - blurred), frame.dtype)


@register
def median(frame: np.ndarray, *, size: int = 3) -> np.ndarray:
    """Median filter over a ``size`` x ``size`` window (good against salt-and-pepper noise).

    Examples
    --------
    >>> f = np.zeros((5, 5), np.uint8); f[2, 2] = 255
    >>> int(median(f, size=3).max())
    0
    """
    return ndi.median_filter(frame, size=(size, size) + (1,) * (frame.ndim - 2), mode="reflect")
