"""Filters: gaussian blur, unsharp-mask sharpening, median. The dtype is kept; colour frames
are filtered per channel (never across channels) and keep their channel axis; the alpha
channel of RGBA frames is kept as it was (transparency is not blurred). OpenCV does the work where it takes the
dtype (uint8, uint16, float32), with the kernel support of ``scipy.ndimage`` (4 sigma) and
reflecting borders; other dtypes go through scipy.ndimage."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ._registry import Count, NonNegative, keep_alpha, register, restore

_CV_DTYPES = (np.uint8, np.uint16, np.float32)


def _cv_ok(frame: np.ndarray) -> bool:
    return frame.dtype in _CV_DTYPES and (frame.ndim == 2 or frame.shape[2] <= 4)


def _blur(frame: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur in float32 (unrounded), per channel."""
    f = np.ascontiguousarray(frame, dtype=np.float32)
    if sigma <= 0:
        return f
    if _cv_ok(frame):
        import cv2

        r = int(4.0 * sigma + 0.5)
        out = cv2.GaussianBlur(
            f, (2 * r + 1, 2 * r + 1), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT
        )
        return out.reshape(f.shape)
    return ndi.gaussian_filter(f, sigma=(sigma, sigma) + (0,) * (frame.ndim - 2), mode="reflect")


@register
def gaussian(frame: np.ndarray, *, sigma: NonNegative = 1.0) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (reflecting borders).

    Examples
    --------
    >>> f = np.zeros((9, 9), np.float32); f[4, 4] = 1
    >>> round(float(gaussian(f, sigma=1).sum()), 3)
    1.0
    """
    if frame.dtype in (np.uint8, np.uint16) and _cv_ok(frame) and sigma > 0:
        return keep_alpha(frame, _blur_native(frame, sigma))
    return keep_alpha(frame, restore(_blur(frame, sigma), frame.dtype))


def _blur_native(frame: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV's blur in the frame's own integer dtype (rounded; no float copy of the frame)."""
    import cv2

    r = int(4.0 * sigma + 0.5)
    out = cv2.GaussianBlur(np.ascontiguousarray(frame), (2 * r + 1, 2 * r + 1), sigmaX=sigma, sigmaY=sigma,
                           borderType=cv2.BORDER_REFLECT)  # fmt: skip
    return out.reshape(frame.shape)


@register
def unsharp_mask(frame: np.ndarray, *, sigma: NonNegative = 1.0, amount: float = 1.0) -> np.ndarray:
    """Sharpen: ``frame + amount * (frame - gaussian(frame, sigma))``, clipped to integer dtypes.

    Examples
    --------
    >>> f = np.array([[0, 0, 100, 100]] * 4, np.uint8)
    >>> int(unsharp_mask(f, sigma=1, amount=1)[0, 2]) > 100
    True
    """
    if frame.dtype in (np.uint8, np.uint16) and _cv_ok(frame) and sigma > 0:
        import cv2

        blurred = _blur_native(frame, sigma)
        out = cv2.addWeighted(np.ascontiguousarray(frame), 1.0 + amount, blurred, -amount, 0.0)
        return keep_alpha(frame, out.reshape(frame.shape))  # rounded and saturated by OpenCV
    f = frame.astype(np.float32)
    return keep_alpha(frame, restore(f + amount * (f - _blur(frame, sigma)), frame.dtype))


@register
def median(frame: np.ndarray, *, size: Count = 3) -> np.ndarray:
    """Median filter over a ``size`` x ``size`` window (good against salt-and-pepper noise);
    borders repeat the edge pixels.

    Examples
    --------
    >>> f = np.zeros((5, 5), np.uint8); f[2, 2] = 255
    >>> int(median(f, size=3).max())
    0
    """
    size = int(size)
    fast = size % 2 == 1 and _cv_ok(frame) and (frame.dtype == np.uint8 or size in (3, 5))
    if fast:
        import cv2

        return keep_alpha(
            frame, cv2.medianBlur(np.ascontiguousarray(frame), size).reshape(frame.shape)
        )
    out = ndi.median_filter(frame, size=(size, size) + (1,) * (frame.ndim - 2), mode="nearest")
    return keep_alpha(frame, out)
