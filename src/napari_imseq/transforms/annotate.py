"""Annotation burnt into frames: text (with the frame index and timestamp), a scale bar, and
matplotlib figures as RGB arrays so plots can be stacked with frames and written to video."""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np

from ._registry import Count, Fraction, Pixels, dtype_range, register, restore


@functools.lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _blend(frame: np.ndarray, mask: np.ndarray, color: tuple[float, ...]) -> np.ndarray:
    """Paint ``color`` (fractions of the dtype's top value) where ``mask`` (0..1) is set."""
    lo, hi = dtype_range(frame.dtype)
    if frame.dtype.kind == "f":
        hi = 1.0
    if frame.ndim == 2:
        target = lo + float(np.mean(color[:3])) * (hi - lo)
        a = mask
    else:
        ch = frame.shape[2]
        target = np.array(
            [lo + c * (hi - lo) for c in (list(color[:3]) + [1.0] * ch)[:ch]], np.float32
        )
        a = mask[..., None]
    out = frame.astype(np.float32) * (1 - a) + target * a
    return restore(out, frame.dtype)


@register
def draw_text(
    frame: np.ndarray,
    *,
    text: str = "{index}",
    position: tuple[int, int] = (10, 10),
    size: Count = 16,
    color: tuple[Fraction, Fraction, Fraction] = (1.0, 1.0, 1.0),
    index: int | None = None,
    timestamp: float | None = None,
) -> np.ndarray:
    """Draw ``text`` at ``position`` = (y, x) of the top-left corner.

    ``text`` is a format string: ``{index}`` is the frame number and ``{timestamp}`` its time
    in seconds, both supplied by a pipeline (e.g. ``"frame {index}  t={timestamp:.3f} s"``).
    ``color`` is a fraction of the dtype's full range per channel (R, G, B on colour frames,
    whose alpha becomes opaque under the text; gray frames use the mean).

    Examples
    --------
    >>> out = draw_text(np.zeros((40, 120), np.uint8), text="t={index}", index=7)
    >>> int(out.max())
    255
    """
    from PIL import Image, ImageDraw

    label = text.format(index="" if index is None else index,
                        timestamp=float("nan") if timestamp is None else timestamp)  # fmt: skip
    font = _font(int(size))
    h, w = frame.shape[:2]
    y0, x0 = int(position[0]), int(position[1])
    left, top, right, bottom = font.getbbox(label)
    # render only the text's box, then blend that region (not the whole frame)
    ya, yb = max(y0 + top, 0), min(y0 + bottom, h)
    xa, xb = max(x0 + left, 0), min(x0 + right, w)
    out = frame.copy()
    if yb <= ya or xb <= xa:
        return out
    mask = Image.new("L", (xb - xa, yb - ya), 0)
    ImageDraw.Draw(mask).text((x0 - xa, y0 - ya), label, fill=255, font=font)
    out[ya:yb, xa:xb] = _blend(
        frame[ya:yb, xa:xb], np.asarray(mask, np.float32) / 255.0, tuple(color)
    )
    return out


@register
def scale_bar(
    frame: np.ndarray,
    *,
    length: Pixels = 100,
    thickness: Pixels = 6,
    corner: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right",
    margin: Pixels = 12,
    label: str = "",
    size: Count = 14,
    color: tuple[Fraction, Fraction, Fraction] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """A bar of ``length`` pixels (and an optional ``label`` such as ``"50 µm"``) in a corner.

    Examples
    --------
    >>> out = scale_bar(np.zeros((100, 200), np.uint16), length=50, thickness=4)
    >>> int((out > 0).sum())
    200
    """
    h, w = frame.shape[:2]
    length = min(int(length), w - 2 * margin)
    y0 = h - margin - thickness if corner.startswith("bottom") else margin
    x0 = w - margin - length if corner.endswith("right") else margin
    region = (slice(max(y0, 0), y0 + thickness), slice(max(x0, 0), x0 + length))
    out = frame.copy()
    out[region] = _blend(frame[region], np.ones(out[region].shape[:2], np.float32), tuple(color))
    if label:
        ty = y0 - size - 4 if corner.startswith("bottom") else y0 + thickness + 4
        out = draw_text(out, text=label, position=(ty, x0), size=size, color=color)
    return out


def figure_to_array(fig: Any) -> np.ndarray:
    """A matplotlib figure rasterised to a (H, W, 3) uint8 RGB array.

    matplotlib is optional and imported only by the figure's own canvas; size the figure in
    pixels (``figsize`` x ``dpi``) to match the frames it is stacked with.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")  # doctest: +SKIP
    >>> import matplotlib.pyplot as plt  # doctest: +SKIP
    >>> fig = plt.figure(figsize=(3, 2), dpi=100)  # doctest: +SKIP
    >>> figure_to_array(fig).shape  # doctest: +SKIP
    (200, 300, 3)
    """
    canvas = fig.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
