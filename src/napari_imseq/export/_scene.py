"""What an export draws: layer snapshots, the time axis, and the output pixel grid.

Layers are taken duck-typed (napari ``Image``/``Labels`` layers or anything with the same
attributes), so this module imports neither napari nor Qt. A snapshot is taken once at the
start of an export: later changes in the viewer do not alter a running export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io._base import Sequence, SequenceError

#: fps used when no layer carries a recording rate (stated in the summary and the widget)
DEFAULT_FPS = 30.0


class ExportError(SequenceError, ValueError):
    """The export cannot be done as asked (nothing to draw, bad range, unsupported layer...)."""


def _kind(layer: Any) -> str:
    kind = getattr(layer, "_type_string", None) or type(layer).__name__
    return str(kind).lower()


def _is_identity_affine(layer: Any) -> bool:
    for attr in ("rotate", "shear"):
        value = getattr(layer, attr, None)
        if value is None:
            continue
        arr = np.asarray(value, dtype=float)
        ref = np.eye(arr.shape[0]) if attr == "rotate" and arr.ndim == 2 else np.zeros_like(arr)
        if not np.allclose(arr, ref):
            return False
    affine = getattr(layer, "affine", None)
    matrix = getattr(affine, "affine_matrix", None)
    return matrix is None or np.allclose(np.asarray(matrix), np.eye(np.asarray(matrix).shape[0]))


def _unit(layer: Any) -> str:
    units = getattr(layer, "units", None)
    if not units:
        return ""
    unit = str(units[-1])
    return "" if unit in ("pixel", "px", "") else unit


def backing_sequence(data: Any) -> Sequence | None:
    """The imseq Sequence behind a dask array made by ``Sequence.to_dask`` (else None).

    Reading it directly uses the format's sequential iterator (one decoder run for a video)
    instead of one dask task per frame.
    """
    name = getattr(data, "name", None)
    graph = getattr(data, "dask", None)
    if not isinstance(name, str) or not name.startswith("imseq-") or graph is None:
        return None
    layer = getattr(graph, "layers", {}).get("original-" + name)
    if layer is None:
        return None
    for value in layer.values():
        if isinstance(value, Sequence) and tuple(value.shape) == tuple(data.shape):
            return value
    return None


@dataclass
class LayerView:
    """The display state of one layer, frozen at the start of an export."""

    name: str
    kind: str  # "image" or "labels" (others are drawn by napari's own renderer)
    data: Any  # full-resolution array (T..., Y, X[, C])
    rgb: bool = False
    contrast_limits: tuple[float, float] = (0.0, 1.0)
    gamma: float = 1.0
    colormap: Any = None  # an object with .map(values in 0..1) -> (N, 4) RGBA, napari's API
    opacity: float = 1.0
    blending: str = "translucent"
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    translate: np.ndarray = field(default_factory=lambda: np.zeros(0))
    metadata: dict = field(default_factory=dict)
    why_unsupported: str | None = None
    unit: str = ""  # world unit of the last axis ("" when pixels), for the scale bar

    @property
    def ndim(self) -> int:
        """Spatial/time dimensions (the RGB channel axis excluded)."""
        return int(np.ndim(self.data) if not hasattr(self.data, "ndim") else self.data.ndim) - (
            1 if self.rgb else 0
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape[: self.ndim])

    @classmethod
    def from_layer(cls, layer: Any) -> LayerView:
        kind = _kind(layer)
        data = layer.data
        if getattr(layer, "multiscale", False):
            data = data[0]  # data resolution: the full-resolution level
        why = None
        if kind not in ("image", "labels"):
            why = f"{kind} layers are drawn by napari's renderer"
        elif not _is_identity_affine(layer):
            why = "rotated, sheared or affine-transformed layers are drawn by napari's renderer"
        elif kind == "labels" and (
            getattr(layer, "contour", 0) or getattr(layer, "show_selected_label", False)
        ):
            why = "labels contours and selected-label display are drawn by napari's renderer"
        ndim = int(data.ndim) - (1 if getattr(layer, "rgb", False) else 0)
        scale = np.asarray(getattr(layer, "scale", np.ones(ndim)), float)
        translate = np.asarray(getattr(layer, "translate", np.zeros(ndim)), float)
        limits = getattr(layer, "contrast_limits", None)
        return cls(
            name=str(getattr(layer, "name", "layer")),
            kind=kind,
            data=data,
            rgb=bool(getattr(layer, "rgb", False)),
            contrast_limits=(float(limits[0]), float(limits[1])) if limits is not None else None,
            gamma=float(getattr(layer, "gamma", 1.0)),
            colormap=getattr(layer, "colormap", None),
            opacity=float(getattr(layer, "opacity", 1.0)),
            blending=str(getattr(layer, "blending", "translucent")),
            scale=scale,
            translate=translate,
            metadata=dict(getattr(layer, "metadata", None) or {}),
            why_unsupported=why,
            unit=_unit(layer),
        )

    # ---- time metadata ----------------------------------------------------------------------
    def recording_fps(self) -> float | None:
        fps = self.metadata.get("fps")
        try:
            return float(fps) if fps and float(fps) > 0 else None
        except (TypeError, ValueError):
            return None

    def recording_timestamps(self) -> np.ndarray | None:
        ts = self.metadata.get("timestamps")
        if ts is None:
            return None
        ts = np.asarray(ts, dtype=np.float64)
        return ts if ts.ndim == 1 and len(ts) == self.shape[0] else None


class Axis:
    """A world axis sampled on a regular grid: ``start + k * step`` for ``k < n``."""

    def __init__(self, start: float, step: float, n: int):
        self.start, self.step, self.n = float(start), float(step), int(n)

    def world(self, k: np.ndarray | int) -> np.ndarray:
        return self.start + np.asarray(k, dtype=np.float64) * self.step


def _union_axis(extents: list[tuple[float, float, int]]) -> Axis:
    """The grid over layers given as (translate, scale, size): finest step, union extent."""
    step = min(s for _, s, _ in extents)
    start = min(t for t, _, _ in extents)
    end = max(t + (n - 1) * s for t, s, n in extents)
    return Axis(start, step, int(round((end - start) / step)) + 1)


def data_index(layer: LayerView, dim: int, world: np.ndarray) -> np.ndarray:
    """Data indices of ``layer`` along its dim ``dim`` for world coordinates (-1: outside)."""
    j = np.rint((np.asarray(world, float) - layer.translate[dim]) / layer.scale[dim]).astype(
        np.int64
    )
    j[(j < 0) | (j >= layer.shape[dim])] = -1
    return j


class Scene:
    """Layers (bottom to top) on a common world grid: a time axis and two displayed axes.

    ``axis`` is the world dimension exported as time; ``point`` holds the world position of
    the other non-displayed dimensions (the viewer's current position).
    """

    def __init__(
        self,
        layers: list[LayerView],
        *,
        axis: int | None = None,
        point: tuple[float, ...] | None = None,
        displayed: tuple[int, int] | None = None,
    ):
        if not layers:
            raise ExportError("nothing to export: no visible image or labels layer was given")
        self.layers = layers
        self.ndim = max(layer.ndim for layer in layers)
        if self.ndim < 2:
            raise ExportError(f"layer {layers[0].name!r} has fewer than two dimensions")
        self.displayed = (
            tuple(displayed) if displayed is not None else (self.ndim - 2, self.ndim - 1)
        )
        free = [d for d in range(self.ndim) if d not in self.displayed]
        if axis is None:
            axis = free[0] if free else None
        elif axis < 0:
            axis += self.ndim
        if axis is not None and axis not in free:
            raise ExportError(f"axis {axis} is displayed; choose one of the other axes {free}")
        self.axis = axis
        self.axes = [self._world_axis(d) for d in range(self.ndim)]
        if point is None:
            point = tuple(a.world(0).item() for a in self.axes)
        self.point = tuple(float(p) for p in point[-self.ndim :])
        self.n_frames = self.axes[axis].n if axis is not None else 1

    def _offset(self, layer: LayerView) -> int:
        return self.ndim - layer.ndim

    def _world_axis(self, d: int) -> Axis:
        extents = []
        for layer in self.layers:
            k = d - self._offset(layer)
            if k >= 0:
                extents.append((layer.translate[k], layer.scale[k], layer.shape[k]))
        return _union_axis(extents)

    # ---- per layer indexing -------------------------------------------------------------
    def frame_keys(self, layer: LayerView, steps: range | list[int]) -> list[tuple | None]:
        """For each time step, the index tuple of ``layer``'s 2-D slice (None: not drawn)."""
        off = self._offset(layer)
        held: list[Any] = []
        t_dim = None
        outside = False
        for d in range(self.ndim):
            k = d - off
            if k < 0:
                continue
            if d in self.displayed:
                held.append(slice(None))
            elif d == self.axis:
                t_dim = k
                held.append(None)
            else:
                j = int(data_index(layer, k, np.array([self.point[d]]))[0])
                outside |= j < 0
                held.append(j)
        if outside:
            return [None] * len(steps)
        if t_dim is None:
            key = tuple(held)
            return [key] * len(steps)
        js = data_index(layer, t_dim, self.axes[self.axis].world(np.asarray(list(steps))))
        keys: list[tuple | None] = []
        for j in js:
            if j < 0:
                keys.append(None)
            else:
                key = list(held)
                key[t_dim] = int(j)
                keys.append(tuple(key))
        return keys

    def time_dim(self, layer: LayerView) -> int | None:
        if self.axis is None:
            return None
        k = self.axis - self._offset(layer)
        return k if k >= 0 else None

    # ---- output grid ------------------------------------------------------------------------
    def grid(self, region: tuple[int, int, int, int] | None = None) -> Grid:
        ya, xa = (self.axes[d] for d in self.displayed)
        y0, y1, x0, x1 = region if region is not None else (0, ya.n, 0, xa.n)
        y0, x0 = max(int(y0), 0), max(int(x0), 0)
        y1, x1 = min(int(y1), ya.n), min(int(x1), xa.n)
        if y1 <= y0 or x1 <= x0:
            raise ExportError(
                f"the region {region} lies outside the data ({ya.n} x {xa.n} pixels); choose a "
                f"region inside it"
            )
        return Grid(
            self, Axis(ya.world(y0), ya.step, y1 - y0), Axis(xa.world(x0), xa.step, x1 - x0)
        )

    def timestamps(self) -> np.ndarray | None:
        """True time of each step from the first layer that records it (seconds)."""
        for layer in self.layers:
            t_dim = self.time_dim(layer)
            ts = layer.recording_timestamps() if t_dim == 0 else None
            if ts is None:
                continue
            js = data_index(layer, 0, self.axes[self.axis].world(np.arange(self.n_frames)))
            if (js >= 0).all():
                return ts[js]
        return None

    def recording_fps(self) -> float | None:
        for layer in self.layers:
            if self.time_dim(layer) is not None and layer.recording_fps():
                # world steps finer than the layer's frames play the layer at its own rate
                ratio = self.axes[self.axis].step / layer.scale[self.time_dim(layer)]
                return layer.recording_fps() / ratio
        return None


class Grid:
    """Output pixels: for each layer, which data rows and columns land on them."""

    def __init__(self, scene: Scene, ys: Axis, xs: Axis):
        self.scene, self.ys, self.xs = scene, ys, xs
        self.shape = (ys.n, xs.n)

    def sampling(self, layer: LayerView) -> tuple[Any, Any, tuple[slice, slice] | None]:
        """(rows, cols, paste): ``data[rows][:, cols]`` is the layer on the grid's ``paste``
        window; rows/cols are slices when the layer is an exact pixel-aligned crop."""
        off = self.scene._offset(layer)
        dy, dx = (d - off for d in self.scene.displayed)
        rows = data_index(layer, dy, self.ys.world(np.arange(self.ys.n)))
        cols = data_index(layer, dx, self.xs.world(np.arange(self.xs.n)))
        ry, rx = np.flatnonzero(rows >= 0), np.flatnonzero(cols >= 0)
        if not len(ry) or not len(rx):
            return None, None, None
        paste = (slice(ry[0], ry[-1] + 1), slice(rx[0], rx[-1] + 1))
        rows, cols = rows[paste[0]], cols[paste[1]]
        if (rows < 0).any() or (cols < 0).any():  # holes would need masks; never for a grid
            raise ExportError(f"layer {layer.name!r} does not map onto the output grid")
        return _as_slice(rows), _as_slice(cols), paste


def _as_slice(idx: np.ndarray) -> Any:
    if len(idx) == 1 or (np.diff(idx) == 1).all():
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx
