"""Geometry: crop, pad, flip, rotate (90-degree steps or any angle), resize and rescale.

Shape rules: crop gives ``(y1 - y0, x1 - x0)``; pad adds ``2 * width`` to each side length;
``rotate`` keeps the shape unless ``reshape=True``; ``resize`` gives ``shape``; ``rescale``
gives ``round(side * scale)``. The dtype is kept; channels are never mixed; the alpha channel
of RGBA frames moves with the pixels (filled areas take ``value`` in every channel, so they
are transparent with the default 0).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np

from ._registry import Count, Intensity, Pixels, Spec, register, restore

_INTERPOLATION = {"nearest": 0, "linear": 1, "cubic": 2, "area": 3}


@register
def crop(
    frame: np.ndarray, *, y: tuple[int, int] = (0, -1), x: tuple[int, int] = (0, -1)
) -> np.ndarray:  # negative values count from the end
    """Keep rows ``y[0]:y[1]`` and columns ``x[0]:x[1]`` (negative counts from the end; an
    end of -1 keeps the last row/column).

    Examples
    --------
    >>> crop(np.zeros((10, 20)), y=(2, 8), x=(5, 15)).shape
    (6, 10)
    """
    h, w = frame.shape[:2]

    def span(lim, n):
        a, b = int(lim[0]), int(lim[1])
        a = a + n if a < 0 else a
        b = n if b == -1 else (b + n if b < 0 else b)
        a, b = max(0, min(a, n)), max(0, min(b, n))
        if b <= a:
            raise ValueError(f"crop range {tuple(lim)} is empty for a side of {n} pixels")
        return slice(a, b)

    return frame[span(y, h), span(x, w)].copy()


@register
def pad(
    frame: np.ndarray,
    *,
    width: Pixels = 10,
    mode: Literal["constant", "edge", "reflect"] = "constant",
    value: Intensity = 0.0,
) -> np.ndarray:
    """Pad ``width`` pixels on every side: ``constant`` (``value``), ``edge`` or ``reflect``.

    Examples
    --------
    >>> pad(np.ones((2, 3), np.uint8), width=1).shape
    (4, 5)
    """
    widths = ((width, width), (width, width)) + ((0, 0),) * (frame.ndim - 2)
    if mode == "constant":
        return np.pad(frame, widths, mode="constant", constant_values=value)
    return np.pad(frame, widths, mode=mode)


@register
def flip(
    frame: np.ndarray, *, axis: Literal["horizontal", "vertical"] = "horizontal"
) -> np.ndarray:
    """Mirror left-right (``horizontal``) or top-bottom (``vertical``).

    Examples
    --------
    >>> flip(np.array([[1, 2, 3]]), axis="horizontal").tolist()
    [[3, 2, 1]]
    """
    if frame.dtype in (np.uint8, np.uint16, np.float32) and (
        frame.ndim == 2 or frame.shape[2] <= 4
    ):
        import cv2

        out = cv2.flip(np.ascontiguousarray(frame), 1 if axis == "horizontal" else 0)
        return out.reshape(frame.shape)
    return np.ascontiguousarray(frame[:, ::-1] if axis == "horizontal" else frame[::-1])


@register
def rot90(frame: np.ndarray, *, k: int = 1) -> np.ndarray:
    """Rotate by ``k`` quarter turns counter-clockwise (exact, no interpolation).

    Examples
    --------
    >>> rot90(np.zeros((2, 5)), k=1).shape
    (5, 2)
    """
    return np.ascontiguousarray(np.rot90(frame, k=k, axes=(0, 1)))


@register
def rotate(
    frame: np.ndarray,
    *,
    angle: Annotated[float, Spec(min=-360.0, max=360.0)] = 0.0,
    interpolation: Literal["nearest", "linear", "cubic"] = "linear",
    reshape: bool = False,
    value: Intensity = 0.0,
) -> np.ndarray:
    """Rotate by ``angle`` degrees counter-clockwise about the centre (OpenCV warpAffine).

    ``reshape=True`` grows the frame to hold all of the rotated image; otherwise the shape is
    kept and corners are filled with ``value``.

    Examples
    --------
    >>> rotate(np.zeros((20, 40), np.uint8), angle=90, reshape=True).shape
    (40, 20)
    """
    import cv2

    h, w = frame.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    out_w, out_h = w, h
    if reshape:
        cos, sin = abs(m[0, 0]), abs(m[0, 1])
        out_w, out_h = int(round(h * sin + w * cos)), int(round(h * cos + w * sin))
        m[0, 2] += (out_w - w) / 2
        m[1, 2] += (out_h - h) / 2
    flags = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}[
        interpolation
    ]
    return _cv_apply(frame, lambda f: cv2.warpAffine(
        f, m, (out_w, out_h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=(float(value),) * 4))  # fmt: skip


def _cv_apply(frame: np.ndarray, op) -> np.ndarray:
    """Run an OpenCV op on a dtype it takes (uint8, uint16, float32), channel by channel if
    there are more than 4 channels, and return the input dtype."""
    work = frame if frame.dtype in (np.uint8, np.uint16, np.float32) else frame.astype(np.float32)
    work = np.ascontiguousarray(work)
    if work.ndim == 3 and work.shape[2] > 4:
        out = np.stack([op(np.ascontiguousarray(work[..., c])) for c in range(work.shape[2])], -1)
    else:
        out = op(work)
        if work.ndim == 3 and out.ndim == 2:
            out = out[..., None]
    return out if out.dtype == frame.dtype else restore(out, frame.dtype)


@register
def resize(
    frame: np.ndarray,
    *,
    shape: tuple[Count, Count] = (512, 512),
    interpolation: Literal["nearest", "linear", "cubic", "area"] = "linear",
) -> np.ndarray:
    """Resize to ``shape`` = (height, width). ``area`` averages when shrinking (no aliasing).

    Examples
    --------
    >>> resize(np.zeros((100, 200), np.uint16), shape=(50, 60)).shape
    (50, 60)
    """
    import cv2

    flags = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
             "area": cv2.INTER_AREA}[interpolation]  # fmt: skip
    h, w = int(shape[0]), int(shape[1])
    return _cv_apply(frame, lambda f: cv2.resize(f, (w, h), interpolation=flags))


@register
def rescale_size(
    frame: np.ndarray,
    *,
    scale: Annotated[float, Spec(min=0.001, max=100.0)] = 0.5,
    interpolation: Literal["nearest", "linear", "cubic", "area"] = "area",
) -> np.ndarray:
    """Resize by a factor: each side becomes ``round(side * scale)``.

    Examples
    --------
    >>> rescale_size(np.zeros((100, 201)), scale=0.5).shape
    (50, 100)
    """
    h, w = frame.shape[:2]
    return resize(
        frame,
        shape=(max(1, round(h * scale)), max(1, round(w * scale))),
        interpolation=interpolation,
    )
