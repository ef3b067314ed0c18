"""Intensity: contrast, gamma, look-up tables, display ranges, bit depth, inversion.

Integer frames keep their dtype (results are rounded and clipped) unless the function is a
conversion (:func:`convert_dtype`, :func:`apply_lut` returns the LUT's dtype). Colour frames
are mapped channel by channel; the alpha channel of RGBA frames is kept.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ._registry import (
    DTypeName,
    Intensity,
    Offset,
    Spec,
    dtype_range,
    has_alpha,
    keep_alpha,
    point_op,
    register,
)


@register(display="point")
def contrast(frame: np.ndarray, *, gain: float = 1.0, offset: Offset = 0.0) -> np.ndarray:
    """Linear contrast and brightness: ``frame * gain + offset``.

    Parameters
    ----------
    frame : ndarray
        One frame, 2-D gray or (H, W, C) colour.
    gain : float
        Multiplier (1 leaves the frame unchanged).
    offset : float
        Added after the gain, in the frame's units.

    Returns
    -------
    ndarray
        Same shape and dtype; integer results are rounded and clipped to the dtype's range.

    Examples
    --------
    >>> contrast(np.array([[10, 200]], np.uint8), gain=2).tolist()
    [[20, 255]]
    """
    if frame.dtype.kind == "f":
        return keep_alpha(
            frame, (frame * np.float32(gain) + np.float32(offset)).astype(frame.dtype)
        )
    return point_op(frame, lambda v: v * gain + offset)


@register(display="point")
def gamma(
    frame: np.ndarray,
    *,
    gamma: Annotated[float, Spec(min=0.01, max=100.0)] = 1.0,
    in_range: tuple[Intensity, Intensity] | None = None,
) -> np.ndarray:
    """Gamma correction within ``in_range`` (default: the dtype's range, or 0..1 for floats).

    Values are normalised to 0..1 over ``in_range``, raised to ``gamma`` and mapped back; the
    dtype is kept.

    Examples
    --------
    >>> gamma(np.array([[0, 64, 255]], np.uint8), gamma=0.5).tolist()
    [[0, 128, 255]]
    """
    lo, hi = in_range if in_range is not None else dtype_range(frame.dtype)
    return point_op(
        frame,
        lambda v: lo + np.power(np.clip((v - lo) / max(hi - lo, 1e-12), 0, 1), gamma) * (hi - lo),
    )


@register(display="point")
def apply_lut(frame: np.ndarray, *, lut: np.ndarray | list) -> np.ndarray:
    """Map every value of an integer frame through ``lut`` (``lut[value]``).

    The result has the LUT's dtype; the LUT must cover the frame's values (256 entries for
    uint8, up to 65536 for uint16).

    Examples
    --------
    >>> apply_lut(np.array([[0, 1, 2]], np.uint8), lut=np.array([5, 6, 7], np.uint8)).tolist()
    [[5, 6, 7]]
    """
    if frame.dtype.kind not in "u":
        raise ValueError(f"apply_lut needs an unsigned integer frame, not {frame.dtype}")
    if lut is None:
        raise ValueError("apply_lut needs a look-up table: lut=[...] with one entry per value")
    lut = np.asarray(lut)
    colour = frame[..., :3] if has_alpha(frame) else frame  # alpha is kept, not looked up
    top = int(colour.max()) if colour.size else 0
    if top >= len(lut):
        raise ValueError(f"the LUT has {len(lut)} entries but the frame holds the value {top}")
    return keep_alpha(frame, lut[frame])


@register(display="point")
def rescale(
    frame: np.ndarray,
    *,
    in_range: tuple[Intensity, Intensity] | None = None,
    out_range: tuple[Intensity, Intensity] | None = None,
) -> np.ndarray:
    """Map ``in_range`` linearly onto ``out_range``, clipped; both default to the dtype's
    range (0..1 for floats), so ``rescale(frame)`` changes nothing.

    This is a display range: values below ``in_range[0]`` go to the bottom, above
    ``in_range[1]`` to the top (pass a layer's contrast limits to burn in what napari shows).
    The dtype is kept.

    Examples
    --------
    >>> rescale(np.array([[100, 300, 500]], np.uint16), in_range=(100, 500), out_range=(0, 1000)).tolist()
    [[0, 500, 1000]]
    """
    lo, hi = (float(v) for v in (in_range if in_range is not None else dtype_range(frame.dtype)))
    olo, ohi = out_range if out_range is not None else dtype_range(frame.dtype)
    return point_op(
        frame, lambda v: olo + np.clip((v - lo) / max(hi - lo, 1e-12), 0, 1) * (ohi - olo)
    )


@register(display="point")
def convert_dtype(
    frame: np.ndarray,
    *,
    dtype: DTypeName = "uint8",
    in_range: tuple[Intensity, Intensity] | None = None,
) -> np.ndarray:
    """Convert to another dtype, mapping ``in_range`` onto the target's full range.

    A conversion, and lossy when the target is narrower: 12-bit data in uint16 becomes uint8
    with ``in_range=(0, 4095)``. ``in_range`` defaults to the source dtype's range. The alpha
    channel of RGBA frames is scaled between the two dtypes' full ranges.

    Examples
    --------
    >>> convert_dtype(np.array([[0, 2048, 4095]], np.uint16), dtype="uint8", in_range=(0, 4095)).tolist()
    [[0, 128, 255]]
    """
    target = np.dtype(dtype)
    lo, hi = in_range if in_range is not None else dtype_range(frame.dtype)
    olo, ohi = dtype_range(target)
    return point_op(
        frame, lambda v: olo + np.clip((v - lo) / max(hi - lo, 1e-12), 0, 1) * (ohi - olo), target
    )


@register(display="point")
def invert(frame: np.ndarray, *, max_value: Intensity | None = None) -> np.ndarray:
    """``max_value - frame`` (default max: the dtype's maximum, 1.0 for floats).

    Pass ``max_value=4095`` to invert 12-bit data stored in uint16.

    Examples
    --------
    >>> invert(np.array([[0, 255]], np.uint8)).tolist()
    [[255, 0]]
    """
    if max_value is None and frame.dtype.kind == "u":  # exact for every width (uint32/64 too)
        return keep_alpha(frame, np.invert(frame))
    top = max_value if max_value is not None else dtype_range(frame.dtype)[1]
    return point_op(frame, lambda v: top - v)
