"""npe2 reader: lazy layers for every format the core reads."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

from ..io._base import Sequence, SequenceWarning
from ..io._registry import find_format, open_sequence
from ..io.display import estimate_display_range


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


def axis_labels(seq: Sequence) -> tuple[str, ...]:
    """``t`` for the frame axis, ``y``/``x`` for the image, napari's defaults in between."""
    ndim = seq.ndim - (1 if seq.rgb else 0)
    middle = tuple(str(k - ndim) for k in range(1, ndim - 2))
    return ("t", *middle, "y", "x")


def layer_data(seq: Sequence) -> tuple[Any, dict[str, Any], str]:
    """One napari layer tuple for an opened sequence.

    Contrast limits come from :func:`~napari_imseq.io.display.estimate_display_range` (a
    time-bounded subsample, never a scan); ``metadata["display"]`` keeps the bit-depth range
    that the viewer hook applies as the layer's ``contrast_limits_range``.
    """
    name = os.path.basename(os.path.normpath(seq.path))
    display = estimate_display_range(seq)
    metadata = dict(seq.metadata)
    metadata["display"] = display.as_metadata()
    kwargs: dict[str, Any] = {
        "name": name,
        "metadata": metadata,
        "rgb": seq.rgb,
        "contrast_limits": display.limits,
        "axis_labels": axis_labels(seq),
    }
    return seq.to_dask(), kwargs, "image"


def _notify(path: str, caught: list[warnings.WarningMessage]) -> None:
    """Show each warning the core raised while opening ``path`` as a napari notification."""
    if not caught:
        return
    from napari.utils.notifications import show_warning

    for w in caught:
        text = str(w.message)
        show_warning(text if os.path.basename(path) in text else f"{path}: {text}")


def read_layers(path: str | list[str]) -> list[tuple]:
    """Open each path lazily; errors propagate with the file named (npe2 shows them).

    Warnings about the file (a truncated or damaged file: fewer frames than its header
    declares) become napari notifications, and the layer has exactly the readable frames.
    """
    from ._time import attach_open_viewers

    attach_open_viewers()  # time read-out, playback fps and contrast range for new layers
    layers = []
    for p in _paths(path):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SequenceWarning)
            seq = open_sequence(p)
            layer = layer_data(seq)
        ours = [w for w in caught if issubclass(w.category, SequenceWarning)]
        for w in caught:
            if w not in ours:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if ours:
            layer[1]["metadata"]["warnings"] = [str(w.message) for w in ours]
        _notify(p, ours)
        layers.append(layer)
    return layers
