"""Names of the colormaps the transforms accept (vispy's, plus napari's single-hue ramps).

Kept apart from :mod:`.colour` so that the transform registry can list the choices without
importing the transforms themselves."""

from __future__ import annotations

_ALIASES = {"gray": "grays", "grey": "grays", "greys": "grays"}
_RAMPS = {
    "red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "magenta": (1, 0, 1),
    "cyan": (0, 1, 1), "yellow": (1, 1, 0),
}  # fmt: skip


def colormap_names() -> list[str]:
    """Every name :func:`.colour.colormap_lut` and :func:`.colour.apply_colormap` accept."""
    from vispy.color import get_colormaps

    return sorted({"gray", *_RAMPS, *get_colormaps()})
