"""Compose layers the way napari draws them, with numpy and OpenCV, on the CPU.

For each layer, bottom to top, on a black background (the model of napari's image shader and
its GL blending, see docs/export.md):

1. normalise by the contrast limits: ``n = clip((v - lo) / (hi - lo), 0, 1)``;
2. gamma: ``n ** gamma``;
3. colormap: ``rgba = colormap.map(n)`` (RGB layers skip it; labels map their values);
4. blend with ``a = opacity * alpha``: translucent ``out * (1 - a) + rgb * a``, additive
   ``min(out + rgb * a, 1)``, opaque ``rgb``, minimum ``min(out, rgb)``, multiplicative
   ``out * rgb``.

Steps 1-3 (and the opacity when it is one number) fold into one look-up table per layer,
built once: 256 or 65536 entries for 8/16-bit data (floats are quantised to 16 bits after
normalisation). A frame then costs one table look-up per layer plus one saturating OpenCV
blend on 8-bit RGBX pixels.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from ._scene import ExportError, Grid, LayerView

_BLENDINGS = ("translucent", "translucent_no_depth", "additive", "opaque", "minimum",
              "multiplicative")  # fmt: skip
_Q = 65535  # quantisation of normalised float data


def _gray_map(n: np.ndarray) -> np.ndarray:
    return np.stack([n, n, n, np.ones_like(n)], axis=-1)


def _colours(colormap: Any, n: np.ndarray) -> np.ndarray:
    """RGBA in 0..1 for normalised values, through napari's ``Colormap.map``."""
    if colormap is None:
        return _gray_map(n.astype(np.float32))
    rgba = np.asarray(colormap.map(n), dtype=np.float32)
    if rgba.ndim != 2 or rgba.shape[1] not in (3, 4):
        raise ExportError(f"colormap {colormap!r} returned {rgba.shape}; expected (N, 4)")
    if rgba.shape[1] == 3:
        rgba = np.concatenate([rgba, np.ones((len(rgba), 1), np.float32)], axis=1)
    return rgba


def _domain(dtype: np.dtype) -> tuple[np.ndarray, str] | None:
    """All values of an 8/16-bit dtype and how a frame indexes them ('u': as is, 'v': view)."""
    if dtype in (np.uint8, np.uint16):
        return np.arange(2 ** (8 * dtype.itemsize), dtype=np.float64), "u"
    if dtype == np.bool_:
        return np.arange(2, dtype=np.float64), "b"
    if dtype in (np.int8, np.int16):
        unsigned = np.dtype(f"u{dtype.itemsize}")
        return np.arange(2 ** (8 * dtype.itemsize)).astype(unsigned).view(dtype).astype(float), "v"
    return None


def _index(frame: np.ndarray, how: str) -> np.ndarray:
    if how == "u":
        return frame
    if how == "b":
        return frame.view(np.uint8)
    return frame.view(np.dtype(f"u{frame.dtype.itemsize}"))


class _Painter:
    """One layer's contribution: table look-up, then blending into the RGBX accumulator."""

    def __init__(self, layer: LayerView, dtype: np.dtype):
        if layer.blending not in _BLENDINGS:
            raise ExportError(f"layer {layer.name!r}: unknown blending {layer.blending!r}")
        self.layer = layer
        self.dtype = np.dtype(dtype)
        self.opacity = float(np.clip(layer.opacity, 0.0, 1.0))
        self.blending = (
            "translucent" if layer.blending.startswith("translucent") else layer.blending
        )
        # premultiply by opacity where the blend multiplies the source by its alpha
        self.premultiply = self.blending in ("translucent", "additive")
        lo, hi = layer.contrast_limits if layer.contrast_limits is not None else (0.0, 1.0)
        self.lo, self.hi = float(lo), float(hi)
        self.lut4: np.ndarray | None = None  # (N,) uint32 packed RGBX, opacity folded in
        self.lut_rgba: np.ndarray | None = None  # (N, 4) float32, per-pixel alpha path
        self.lut8: np.ndarray | None = None  # RGB layers: one table for every channel
        self._labels_lut: np.ndarray | None = None
        if layer.kind == "labels":
            self._prepare_labels()
        elif layer.rgb:
            self._prepare_rgb()
        else:
            self._prepare_gray()

    # ---- tables -------------------------------------------------------------------------
    def _normalise(self, values: np.ndarray) -> np.ndarray:
        span = self.hi - self.lo
        n = (values - self.lo) / span if span else (values > self.lo).astype(np.float64)
        n = np.clip(n, 0.0, 1.0)
        return n**self.layer.gamma if self.layer.gamma != 1.0 else n

    def _set_rgba_table(self, rgba: np.ndarray) -> None:
        if np.all(rgba[:, 3] >= 1.0):
            scale = self.opacity if self.premultiply else 1.0
            lut = np.empty((len(rgba), 4), np.uint8)
            lut[:, :3] = np.rint(np.clip(rgba[:, :3], 0, 1) * (255.0 * scale))
            lut[:, 3] = 255
            self.lut4 = lut.view(np.uint32).ravel()
        else:
            self.lut_rgba = rgba

    def _prepare_gray(self) -> None:
        domain = _domain(self.dtype)
        if domain is not None:
            values, self.how = domain
            n = self._normalise(values)
        else:  # floats and wide integers: normalise per frame, quantise to 16 bits
            self.how = "q"
            n = np.arange(_Q + 1, dtype=np.float64) / _Q
            n = n**self.layer.gamma if self.layer.gamma != 1.0 else n
        self._set_rgba_table(_colours(self.layer.colormap, n))

    def _prepare_rgb(self) -> None:
        domain = _domain(self.dtype)
        if domain is None:
            self.how = "q"
            n = np.arange(_Q + 1, dtype=np.float64) / _Q
            n = n**self.layer.gamma if self.layer.gamma != 1.0 else n
        else:
            values, self.how = domain
            n = self._normalise(values)
        scale = self.opacity if self.premultiply else 1.0
        self.lut8 = np.rint(n * 255.0 * scale).astype(np.uint8)
        self.lut_n = n.astype(np.float32)  # RGBA data: alpha from the data, per pixel

    def _prepare_labels(self) -> None:
        if self.layer.colormap is None:
            raise ExportError(f"labels layer {self.layer.name!r} has no colormap")
        domain = _domain(self.dtype)
        if domain is not None and self.dtype.itemsize <= 2:
            values, self.how = domain
            self._labels_lut = _colours_labels(self.layer.colormap, values.astype(np.int64))
        else:
            self.how = "labels"

    # ---- per frame ------------------------------------------------------------------------
    def _quantise(self, frame: np.ndarray) -> np.ndarray:
        span = self.hi - self.lo
        n = (frame.astype(np.float32) - self.lo) * (np.float32(_Q / span) if span else 0.0)
        return np.clip(np.rint(n), 0, _Q).astype(np.uint16)

    def writes_rgbx(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` is painted as 8-bit RGBX (no per-pixel alpha)."""
        if self.layer.kind == "labels":
            return False
        if self.layer.rgb:
            return frame.shape[-1] != 4
        return self.lut4 is not None

    def source(
        self, frame: np.ndarray, into: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(rgbx uint8 or rgb float32 image, per-pixel alpha float32 or None). An RGBX result
        is written into ``into`` (a C-contiguous (h, w, 4) uint8 array) when one is given."""
        if self.layer.kind == "labels":
            if self._labels_lut is not None:
                rgba = self._labels_lut[_index(frame, self.how)]
            else:
                rgba = _colours_labels_frame(self.layer.colormap, frame)
            return rgba[..., :3], rgba[..., 3] * np.float32(self.opacity)
        if self.layer.rgb:
            idx = self._quantise(frame) if self.how == "q" else _index(frame, self.how)
            if frame.shape[-1] == 4:  # RGBA data: per-pixel alpha
                n = self.lut_n[idx]
                return n[..., :3], n[..., 3] * np.float32(self.opacity)
            if self.how == "u" and self.dtype == np.uint8:
                img = cv2.LUT(np.ascontiguousarray(idx), self.lut8)
            else:  # every index is inside the table: 'wrap' skips numpy's bounds buffering
                img = np.take(self.lut8, idx, mode="wrap")
            if into is None:
                return cv2.cvtColor(img, cv2.COLOR_RGB2RGBA), None
            cv2.cvtColor(img, cv2.COLOR_RGB2RGBA, dst=into)
            return into, None
        idx = self._quantise(frame) if self.how == "q" else _index(frame, self.how)
        if self.lut4 is not None:
            if into is None:
                into = np.empty((*idx.shape, 4), np.uint8)
            np.take(self.lut4, idx, out=into.view(np.uint32)[..., 0], mode="wrap")
            return into, None
        rgba = self.lut_rgba[idx]
        return rgba[..., :3], rgba[..., 3] * np.float32(self.opacity)

    def paint(
        self, out: np.ndarray, frame: np.ndarray, fresh: bool, scratch: np.ndarray | None = None
    ) -> None:
        """Blend ``frame`` (already sampled onto ``out``'s window) into ``out`` (RGBX uint8).

        ``fresh``: nothing is painted yet and ``out``'s values are undefined (they stand for
        black). ``scratch``: a C-contiguous array of ``out``'s shape for the layer's colours.
        """
        rgbx = self.writes_rgbx(frame)
        if fresh and rgbx and self.blending in ("opaque", "translucent", "additive"):
            # on black, out * (1 - a) + rgb * a is the premultiplied rgb: write it in place
            self.source(frame, into=out)
            return
        if fresh:
            out.fill(0)
        src, alpha = self.source(frame, into=scratch if rgbx else None)
        if alpha is None:
            self._blend_uint8(out, src)
        else:
            self._blend_alpha(out, src, alpha)

    def _blend_uint8(self, out: np.ndarray, img: np.ndarray) -> None:
        mode = self.blending
        if mode == "opaque":
            out[...] = img
        elif mode == "translucent":
            cv2.addWeighted(out, 1.0 - self.opacity, img, 1.0, 0.0, dst=out)
        elif mode == "additive":
            cv2.add(out, img, dst=out)
        elif mode == "minimum":
            cv2.min(out, img, dst=out)
        else:  # multiplicative
            cv2.multiply(out, img, dst=out, scale=1.0 / 255.0)

    def _blend_alpha(self, out: np.ndarray, rgb: np.ndarray, alpha: np.ndarray) -> None:
        mode = self.blending
        base = out[..., :3].astype(np.float32) * np.float32(1 / 255)
        rgb = rgb.astype(np.float32, copy=False)
        a = alpha[..., None]
        if mode == "translucent":
            res = base * (1 - a) + rgb * a
        elif mode == "additive":
            res = base + rgb * a
        elif mode == "opaque":
            res = rgb
        elif mode == "minimum":
            res = np.minimum(base, rgb)
        else:
            res = base * rgb
        out[..., :3] = np.clip(np.rint(res * 255), 0, 255).astype(np.uint8)


def _colours_labels(colormap: Any, values: np.ndarray) -> np.ndarray:
    rgba = np.asarray(colormap.map(values), dtype=np.float32)
    return rgba


def _colours_labels_frame(colormap: Any, frame: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(frame, return_inverse=True)
    return _colours_labels(colormap, uniq)[inverse.reshape(frame.shape)]


class Compositor:
    """Turns one 2-D slice per layer into the RGB uint8 frame napari would draw.

    >>> from napari_imseq.export import Compositor, LayerView
    >>> from napari_imseq.export._scene import Scene
    >>> import numpy as np
    >>> layer = LayerView("a", "image", np.zeros((2, 4, 6), np.uint16), contrast_limits=(0, 10),
    ...                   scale=np.ones(3), translate=np.zeros(3))
    >>> comp = Compositor(Scene([layer]).grid())
    >>> comp([np.full((4, 6), 5, np.uint16)]).shape
    (4, 6, 3)
    """

    def __init__(self, grid: Grid):
        self.grid = grid
        self.painters: list[_Painter] = []
        self.sampling = []
        for layer in grid.scene.layers:
            self.painters.append(_Painter(layer, np.dtype(layer.data.dtype)))
            self.sampling.append(grid.sampling(layer))
        # the RGBX accumulator and a layer's colours, allocated once per calling thread
        self._buffers = threading.local()

    def _scratch(self) -> tuple[np.ndarray, np.ndarray]:
        bufs = getattr(self._buffers, "arrays", None)
        if bufs is None:
            h, w = self.grid.shape
            bufs = self._buffers.arrays = (np.empty((h, w, 4), np.uint8),
                                           np.empty((h, w, 4), np.uint8))  # fmt: skip
        return bufs

    def __call__(self, frames: list[np.ndarray | None]) -> np.ndarray:
        """``frames[i]`` is layer i's full 2-D slice (None where the layer is not drawn).

        Returns a new (h, w, 3) uint8 array (the caller may keep it)."""
        h, w = self.grid.shape
        acc, scratch = self._scratch()
        fresh = True  # nothing painted yet: acc holds the previous frame
        for painter, (rows, cols, paste), frame in zip(
            self.painters, self.sampling, frames, strict=True
        ):
            if frame is None or paste is None:
                continue
            sub = frame[rows][:, cols]
            if paste == (slice(0, h), slice(0, w)):
                painter.paint(acc, sub, fresh, scratch)
            else:
                if fresh:
                    acc.fill(0)
                painter.paint(acc[paste], sub, False)
            fresh = False
        if fresh:
            acc.fill(0)
        return cv2.cvtColor(acc, cv2.COLOR_RGBA2RGB)
