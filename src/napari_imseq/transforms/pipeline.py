"""Pipelines: ordered, named per-frame steps applied lazily, saved as JSON, picklable."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._registry import CONTEXT, DISPLAY, REGISTRY, dtype_range, get, parameters


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Pipeline:
    """Ordered steps ``[(name, {param: value}), ...]`` applied to one frame at a time.

    ``pipeline(frame)`` transforms one frame; ``pipeline.apply(seq_or_dask)`` returns a lazy
    dask array; ``to_json``/``from_json`` save and load it, so the same steps run in napari,
    in scripts, in ``imseq convert --pipeline`` and on dask workers.

    Examples
    --------
    >>> p = Pipeline([("gaussian", {"sigma": 1.0}), ("crop", {"y": (0, 4), "x": (0, 4)})])
    >>> p(np.zeros((8, 8), np.uint16)).shape
    (4, 4)
    >>> Pipeline.from_json(p.to_json()) == p
    True
    """

    def __init__(self, steps: Iterable[tuple[str, dict[str, Any]] | list] = ()):
        self.steps: list[tuple[str, dict[str, Any]]] = []
        for step in steps:
            name, params = (
                (step, {})
                if isinstance(step, str)
                else (step[0], dict(step[1] if len(step) > 1 else {}))
            )
            self.append(name, **params)

    def append(self, name: str, **params: Any) -> Pipeline:
        known = parameters(name)  # raises KeyError naming the known transforms
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise TypeError(
                f"transform {name!r} has no parameter(s) {unknown}; it takes {sorted(known)}"
            )
        self.steps.append((name, params))
        return self

    def __len__(self) -> int:
        return len(self.steps)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and json.loads(self.to_json()) == json.loads(
            other.to_json()
        )

    def __repr__(self) -> str:
        return f"Pipeline({self.steps!r})"

    # ---- applying ---------------------------------------------------------------------------
    def __call__(
        self, frame: np.ndarray, *, index: int | None = None, timestamp: float | None = None
    ) -> np.ndarray:
        out = np.asarray(frame)
        context = {"index": index, "timestamp": timestamp}
        for name, params in self.steps:
            func = get(name)
            accepted = _context_params(func)
            extra = {k: context[k] for k in accepted}
            try:
                out = func(out, **params, **extra)
            except Exception as err:
                raise _step_error(err, f"pipeline step {name!r} failed: {err}") from err
        return out

    def output_spec(
        self, frame_shape: tuple[int, ...], dtype: np.dtype
    ) -> tuple[tuple[int, ...], np.dtype]:
        """Output frame shape and dtype, from a blank frame (no data frame is computed)."""
        probe = self(np.zeros(frame_shape, dtype=dtype), index=0, timestamp=0.0)
        return probe.shape, probe.dtype

    def display_range(
        self, limits: tuple[float, float], dtype: np.dtype | str
    ) -> tuple[tuple[float, float], np.dtype]:
        """Where a display range (contrast limits) of the input ends up, and the output dtype.

        Point operations (rescale, gamma, contrast, invert, LUTs, dtype conversions) carry the
        limits through themselves; stretches and equalisations fill the output dtype's range;
        filters, geometry and annotation keep them; colormaps give uint8 0..255. So a layer
        made by the pipeline looks like its source: ``rescale`` to the source's limits shows
        the same picture at the full range. Nothing is computed on data.

        Examples
        --------
        >>> Pipeline([("rescale", {"in_range": (100, 4000)})]).display_range((100, 4000), "uint16")
        ((0.0, 65535.0), dtype('uint16'))
        """
        lo, hi = float(limits[0]), float(limits[1])
        dtype = np.dtype(dtype)
        for name, params in self.steps:
            rule = DISPLAY.get(name, "keep")
            if rule == "point":
                probe = (
                    np.array([[lo, hi]]).astype(dtype)
                    if dtype.kind in "ui"
                    else np.array([[lo, hi]], dtype)
                )
                func = get(name)
                extra = {k: None for k in _context_params(func)}
                out = func(probe, **params, **extra)
                lo, hi = sorted((float(out[0, 0]), float(out[0, 1])))
                dtype = out.dtype
            elif rule == "rgb8":
                (lo, hi), dtype = (0.0, 255.0), np.dtype(np.uint8)
            elif rule == "stretch" or (rule == "equalize" and dtype.kind in "ui"):
                lo, hi = dtype_range(dtype)
        return (lo, hi), dtype

    def apply(self, data: Any, *, frame_ndim: int | None = None, timestamps: Any = None):
        """A lazy dask array: the pipeline mapped over frames when they are computed.

        ``data`` is a Sequence (its timestamps reach ``{timestamp}`` in annotations) or an array
        of frames (numpy or dask). ``frame_ndim`` is 2 for gray frames and 3 for colour (Y, X,
        C) frames (default: every axis but the first); every axis before the frame's is looped
        over, so (T, Z, Y, X) stacks and single frames work too. ``index`` and ``timestamp``
        (from ``timestamps`` or the Sequence) follow the first axis. Frames are processed
        whole; the leading axes may be chunked.
        """
        import dask.array as da

        from ..io._base import Sequence

        if isinstance(data, Sequence):
            timestamps = data.timestamps if timestamps is None else timestamps
            arr = data.to_dask()
        elif isinstance(data, da.Array):
            arr = data
        else:
            arr = da.from_array(np.asarray(data), chunks=(1, *np.shape(data)[1:]))
        frame_ndim = arr.ndim - 1 if frame_ndim is None else int(frame_ndim)
        lead = arr.ndim - frame_ndim
        if lead < 0 or frame_ndim not in (2, 3):
            raise ValueError(
                f"frames of {frame_ndim} dimensions do not fit an array of shape {arr.shape}; "
                "frames are (Y, X) or (Y, X, C)"
            )
        if lead == 0:  # a single frame
            return self.apply(arr[np.newaxis], frame_ndim=frame_ndim, timestamps=timestamps)[0]
        arr = arr.rechunk({i: -1 for i in range(lead, arr.ndim)})
        out_shape, out_dtype = self.output_spec(arr.shape[lead:], arr.dtype)
        chunks = (*arr.chunks[:lead], *((s,) for s in out_shape))
        extra = len(out_shape) - frame_ndim
        kwargs: dict[str, Any] = {}
        if extra > 0:
            kwargs["new_axis"] = list(range(arr.ndim, arr.ndim + extra))
        elif extra < 0:
            kwargs["drop_axis"] = list(range(arr.ndim + extra, arr.ndim))
        return da.map_blocks(
            _apply_block, arr, self, timestamps, lead, dtype=out_dtype, chunks=chunks,
            meta=np.empty((0,) * (lead + len(out_shape)), dtype=out_dtype), **kwargs,
        )  # fmt: skip

    # ---- saving -----------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "napari-imseq-pipeline": 1,
                "steps": [[n, {k: _jsonable(v) for k, v in p.items()}] for n, p in self.steps],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Pipeline:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not a pipeline: invalid JSON ({err})") from err
        steps = data.get("steps") if isinstance(data, dict) else data
        if not isinstance(steps, list):
            raise ValueError("not a pipeline: expected {'steps': [[name, {params}], ...]}")
        return cls([(s[0], _tuples(s[1]) if len(s) > 1 else {}) for s in steps])

    def __reduce__(self):
        return Pipeline.from_json, (self.to_json(),)


def _step_error(err: Exception, message: str) -> Exception:
    """The same kind of error with the step named (ValueError when the type needs more)."""
    try:
        return type(err)(message)
    except Exception:
        return ValueError(message)


def _tuples(params: dict[str, Any]) -> dict[str, Any]:
    """JSON has no tuples: turn short numeric lists back into tuples (ranges, positions)."""
    return {k: tuple(v) if isinstance(v, list) and len(v) <= 4 and all(isinstance(x, (int, float)) for x in v) else v
            for k, v in params.items()}  # fmt: skip


def _context_params(func) -> tuple[str, ...]:
    sig = inspect.signature(func)
    return tuple(k for k in CONTEXT if k in sig.parameters)


def _apply_block(
    block: np.ndarray, pipeline: Pipeline, timestamps, lead: int = 1, block_info=None
) -> np.ndarray:
    start = block_info[0]["array-location"][0][0] if block_info else 0
    outer = block.shape[:lead]
    out = []
    for pos in np.ndindex(*outer):
        i = start + pos[0]
        t = float(timestamps[i]) if timestamps is not None and i < len(timestamps) else None
        out.append(pipeline(block[pos], index=i, timestamp=t))
    return np.stack(out).reshape(*outer, *out[0].shape)


def available() -> list[str]:
    """Names of every registered transform."""
    return sorted(REGISTRY)
