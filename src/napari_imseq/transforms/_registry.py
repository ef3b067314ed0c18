"""The registry of per-frame functions that pipelines refer to by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

REGISTRY: dict[str, Callable[..., np.ndarray]] = {}
#: keyword arguments a pipeline supplies itself, when a function accepts them
CONTEXT = ("index", "timestamp")


def register(func: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Make ``func`` available to pipelines under its own name."""
    REGISTRY[func.__name__] = func
    return func


def get(name: str) -> Callable[..., np.ndarray]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"no transform named {name!r}; known: {', '.join(sorted(REGISTRY))}"
        ) from None


def parameters(name: str) -> dict[str, inspect.Parameter]:
    """The tunable keyword parameters of a transform (context parameters excluded)."""
    sig = inspect.signature(get(name))
    return {
        k: p for k, p in sig.parameters.items() if p.kind == p.KEYWORD_ONLY and k not in CONTEXT
    }


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """Full range of an integer dtype; (0, 1) for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if dtype.kind == "b":
        return 0.0, 1.0
    return 0.0, 1.0


def restore(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip float results back to an integer dtype; floats pass through."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        lo, hi = dtype_range(dtype)
        return np.clip(np.rint(values), lo, hi).astype(dtype)
    return values.astype(dtype, copy=False)


def spatial(frame: np.ndarray) -> tuple[int, int]:
    return frame.shape[0], frame.shape[1]


def is_colour(frame: np.ndarray) -> bool:
    return frame.ndim == 3 and frame.shape[2] in (3, 4)


def point_op(frame: np.ndarray, func, out_dtype: np.dtype | None = None) -> np.ndarray:
    """Apply an elementwise ``func(values: float64 array) -> float array`` to ``frame``.

    uint8 and uint16 frames go through a look-up table of every possible value (computed once
    per call, exact by construction, and much faster than float math on every pixel);
    other dtypes are computed directly. Results are rounded and clipped to ``out_dtype``
    (default: the frame's dtype).
    """
    out_dtype = np.dtype(out_dtype or frame.dtype)
    if frame.dtype == np.uint8 or frame.dtype == np.uint16:
        n = 256 if frame.dtype == np.uint8 else 65536
        lut = restore(np.asarray(func(np.arange(n, dtype=np.float64))), out_dtype)
        if frame.dtype == np.uint8 and frame.shape[-1:] != (0,):
            import cv2

            if out_dtype == np.uint8 and (frame.ndim == 2 or frame.shape[2] <= 4):
                return cv2.LUT(np.ascontiguousarray(frame), lut)
        return np.take(lut, frame)
    return restore(np.asarray(func(frame.astype(np.float64))), out_dtype)
