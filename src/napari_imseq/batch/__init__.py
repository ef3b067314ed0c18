"""Batch jobs on dask.distributed: convert many files, encode one long file in segments,
normalise a corpus from subsample statistics.

Runs on a LocalCluster (``workers=N``), a running scheduler (``scheduler="tcp://host:8786"``)
or an existing ``distributed.Client`` (``client=``). See docs/scaling.md. Names load on first
use, so importing this package imports neither dask.distributed nor the transforms.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "BatchError": "_engine",
    "BatchInterrupted": "_engine",
    "BatchReport": "_engine",
    "cluster": "_engine",
    "run_tasks": "_engine",
    "convert_batch": "_convert",
    "convert_segments": "_convert",
    "output_path": "_convert",
    "FileList": "_normalise",
    "NormaliseError": "_normalise",
    "Normaliser": "_normalise",
    "compute_stats": "_normalise",
    "load_stats": "_normalise",
    "normalise": "_normalise",
    "sample_file": "_normalise",
    "save_stats": "_normalise",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
