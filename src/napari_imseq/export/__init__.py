"""Export what napari shows (rendered RGB) or a layer's values (data), streamed to a file.

Headless: layers are read duck-typed, so neither napari nor Qt is imported here; napari's own
renderer is used only for layers the compositor cannot draw, and only when a viewer is given.
See docs/export.md.
"""

from ._composite import Compositor
from ._export import ExportCancelled, ExportProgress, export
from ._scene import DEFAULT_FPS, ExportError, LayerView, Scene, backing_sequence

__all__ = [
    "DEFAULT_FPS",
    "Compositor",
    "ExportCancelled",
    "ExportError",
    "ExportProgress",
    "LayerView",
    "Scene",
    "backing_sequence",
    "export",
]
