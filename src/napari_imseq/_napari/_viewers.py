"""One helper object per napari viewer (time read-out, read-ahead), dropped with the viewer."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def per_viewer(registry: dict[int, Any], viewer: Any, factory: Callable[[Any], T]) -> T:
    """``registry``'s object for ``viewer`` (made by ``factory`` on first use).

    Objects hold their viewer weakly (``obj._viewer()``), so a recycled ``id`` of a closed
    viewer is never mistaken for a live one; the entry goes when the viewer is collected.
    """
    key = id(viewer)
    obj = registry.get(key)
    if obj is not None and obj._viewer() is viewer:
        return obj
    obj = factory(viewer)
    registry[key] = obj
    weakref.finalize(viewer, registry.pop, key, None)
    return obj
