"""npe2 reader: lazy layers for every format the core reads."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..io._base import Sequence
from ..io._registry import find_format, open_sequence


def _paths(path: str | list[str]) -> list[str]:
    return [os.fspath(p) for p in path] if isinstance(path, (list, tuple)) else [os.fspath(path)]


def get_reader(path: str | list[str]) -> Callable | None:
    """The reader function when every path is something we read, else None (never raises)."""
    try:
        paths = _paths(path)
        if not paths or any(find_format(p) is None for p in paths):
            return None
    except Exception:
        return None
    return read_layers


def contrast_limits(seq: Sequence) -> tuple[float, float]:
    """Display range from the format's significant bits: napari never scans lazy data."""
    display = seq.metadata.get("display_range")
    if display is not None:
        return float(display[0]), float(display[1])
    dtype = seq.dtype
    if dtype.kind in "ui":
        if dtype.kind == "i":
            info = np.iinfo(dtype)
            return float(info.min), float(info.max)
        return 0.0, float(2**seq.bit_depth - 1)
    # floating point: one frame is cheap and the only honest guess
    frame = seq[len(seq) // 2]
    lo, hi = float(np.nanmin(frame)), float(np.nanmax(frame))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def layer_data(seq: Sequence) -> tuple[Any, dict[str, Any], str]:
    """One napari layer tuple for an opened sequence."""
    name = os.path.basename(os.path.normpath(seq.path))
    kwargs: dict[str, Any] = {
        "name": name,
        "metadata": dict(seq.metadata),
        "rgb": seq.rgb,
        "contrast_limits": contrast_limits(seq),
    }
    return seq.to_dask(), kwargs, "image"


def read_layers(path: str | list[str]) -> list[tuple]:
    """Open each path lazily; errors propagate with the file named (npe2 shows them)."""
    return [layer_data(open_sequence(p)) for p in _paths(path)]
