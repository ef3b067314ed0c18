"""Colour: gray to RGB through a named colormap (vispy's, the ones napari shows; no
matplotlib), and RGB to gray."""

from __future__ import annotations

import numpy as np

from ._colormaps import _ALIASES, _RAMPS
from ._colormaps import colormap_names as colormap_names  # re-exported
from ._registry import (
    ColormapName,
    Intensity,
    dtype_range,
    has_alpha,
    is_colour,
    point_op,
    register,
    restore,
)


def colormap_lut(name: str, size: int = 256) -> np.ndarray:
    """``size`` x 3 uint8 RGB table of a colormap: vispy's (``viridis``, ``hot``, ``fire``,
    ``ice`` ...) and napari's everyday names (``gray``, ``red``, ``green``, ``magenta`` ...)."""
    from vispy.color import get_colormap

    ramp = _RAMPS.get(name.lower())
    if ramp is not None:  # napari's single-hue colormaps: black to the colour
        t = np.linspace(0, 1, size)[:, None]
        return np.clip(t * np.asarray(ramp) * 255 + 0.5, 0, 255).astype(np.uint8)
    name = _ALIASES.get(name.lower(), name)
    try:
        cmap = get_colormap(name)
    except KeyError:
        from vispy.color import get_colormaps

        raise ValueError(
            f"unknown colormap {name!r}; known: {', '.join(sorted(get_colormaps()))}"
        ) from None
    rgba = cmap.map(np.linspace(0, 1, size, dtype=np.float32))
    return np.clip(np.asarray(rgba)[:, :3] * 255 + 0.5, 0, 255).astype(np.uint8)


@register(display="rgb8")
def apply_colormap(
    frame: np.ndarray,
    *,
    colormap: ColormapName = "viridis",
    in_range: tuple[Intensity, Intensity] | None = None,
) -> np.ndarray:
    """Gray frame to uint8 RGB through ``colormap``; ``in_range`` is the value range mapped
    onto the colormap (default: the dtype's range, 0..1 for floats). A conversion.

    Colour frames are mapped by their luminance (:func:`rgb_to_gray`); an RGBA frame keeps its
    alpha channel (scaled to uint8), so the result is (H, W, 4).

    Examples
    --------
    >>> apply_colormap(np.zeros((2, 3), np.uint16), colormap="gray").shape
    (2, 3, 3)
    """
    if is_colour(frame):
        out = apply_colormap(rgb_to_gray(frame), colormap=colormap, in_range=in_range)
        if has_alpha(frame):
            lo, hi = dtype_range(frame.dtype)
            alpha = point_op(frame[..., 3], lambda v: (v - lo) / (hi - lo) * 255, np.uint8)
            out = np.concatenate([out, alpha[..., None]], -1)
        return out
    if frame.ndim != 2:
        raise ValueError(f"apply_colormap takes a gray or RGB(A) frame, not shape {frame.shape}")
    lut = colormap_lut(colormap)
    lo, hi = in_range if in_range is not None else dtype_range(frame.dtype)
    scale = 255.0 / max(hi - lo, 1e-12)
    idx = point_op(frame, lambda v: np.clip((v - lo) * scale, 0, 255), np.uint8)
    import cv2

    return cv2.LUT(cv2.cvtColor(idx, cv2.COLOR_GRAY2RGB), lut.reshape(256, 1, 3))


@register
def rgb_to_gray(
    frame: np.ndarray, *, weights: tuple[float, float, float] = (0.2125, 0.7154, 0.0721)
) -> np.ndarray:
    """Weighted sum of R, G, B (ITU-R BT.709 luminance by default); the dtype is kept and an
    alpha channel is dropped (a gray frame has none); gray frames are returned as they are.

    Examples
    --------
    >>> rgb_to_gray(np.full((1, 1, 3), 100, np.uint8)).tolist()
    [[100]]
    """
    if frame.ndim == 2:
        return frame  # already gray: pipelines work on gray and colour sources alike
    if frame.ndim != 3 or frame.shape[2] < 3:
        raise ValueError(f"rgb_to_gray takes (H, W) or (H, W, 3|4) frames, not shape {frame.shape}")
    if frame.dtype in (np.uint8, np.uint16, np.float32):
        import cv2

        m = np.asarray([weights], np.float32)
        return cv2.transform(np.ascontiguousarray(frame[..., :3]), m)  # rounded and saturated
    gray = frame[..., :3].astype(np.float32) @ np.asarray(weights, np.float32)
    return restore(gray, frame.dtype)
