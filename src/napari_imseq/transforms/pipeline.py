"""Pipelines: ordered, named per-frame steps applied lazily, saved as JSON, picklable."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._registry import CONTEXT, REGISTRY, get, parameters


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
                raise type(err)(f"pipeline step {name!r} failed: {err}") from err
        return out

    def output_spec(
        self, frame_shape: tuple[int, ...], dtype: np.dtype
    ) -> tuple[tuple[int, ...], np.dtype]:
        """Output frame shape and dtype, from a blank frame (no data frame is computed)."""
        probe = self(np.zeros(frame_shape, dtype=dtype), index=0, timestamp=0.0)
        return probe.shape, probe.dtype

    def apply(self, data: Any):
        """A lazy dask array: the pipeline mapped over frames when they are computed.

        ``data`` is a Sequence (its timestamps reach ``{timestamp}`` in annotations) or an array
        of frames (numpy or dask). Frames are processed whole; the frame axis may be chunked.
        """
        import dask.array as da

        from ..io._base import Sequence

        timestamps = None
        if isinstance(data, Sequence):
            timestamps = data.timestamps
            arr = data.to_dask()
        elif isinstance(data, da.Array):
            arr = data
        else:
            arr = da.from_array(np.asarray(data), chunks=(1, *np.shape(data)[1:]))
        arr = arr.rechunk({i: -1 for i in range(1, arr.ndim)})
        out_shape, out_dtype = self.output_spec(arr.shape[1:], arr.dtype)
        chunks = (arr.chunks[0], *((s,) for s in out_shape))
        extra = len(out_shape) + 1 - arr.ndim
        kwargs: dict[str, Any] = {}
        if extra > 0:
            kwargs["new_axis"] = list(range(arr.ndim, arr.ndim + extra))
        elif extra < 0:
            kwargs["drop_axis"] = list(range(arr.ndim + extra, arr.ndim))
        return da.map_blocks(
            _apply_block, arr, self, timestamps, dtype=out_dtype, chunks=chunks,
            meta=np.empty((0,) * (len(out_shape) + 1), dtype=out_dtype), **kwargs,
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


def _tuples(params: dict[str, Any]) -> dict[str, Any]:
    """JSON has no tuples: turn short numeric lists back into tuples (ranges, positions)."""
    return {k: tuple(v) if isinstance(v, list) and len(v) <= 4 and all(isinstance(x, (int, float)) for x in v) else v
            for k, v in params.items()}  # fmt: skip


def _context_params(func) -> tuple[str, ...]:
    sig = inspect.signature(func)
    return tuple(k for k in CONTEXT if k in sig.parameters)


def _apply_block(block: np.ndarray, pipeline: Pipeline, timestamps, block_info=None) -> np.ndarray:
    start = block_info[0]["array-location"][0][0] if block_info else 0
    out = []
    for k, frame in enumerate(block):
        i = start + k
        t = float(timestamps[i]) if timestamps is not None and i < len(timestamps) else None
        out.append(pipeline(frame, index=i, timestamp=t))
    return np.stack(out)


def available() -> list[str]:
    """Names of every registered transform."""
    return sorted(REGISTRY)
