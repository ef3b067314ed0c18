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
