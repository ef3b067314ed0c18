"""Per-frame transforms: pure functions ``f(frame, *, params) -> frame`` and a lazy pipeline.

Headless (no napari, no Qt). Every function takes one frame, 2-D gray or (H, W, C) colour, and
documents what it does to the dtype (uint16 stays uint16 unless the function is a conversion).

Code that imports transforms lazily, in a thread (tile lanes, export and writer threads), imports
names from this package (``from ..transforms import resize``), not from a submodule: importing a
submodule first holds that submodule's import lock while Python imports this package, whose
``__init__`` imports every submodule; two threads doing that at once can each hold what the
other waits for, and Python then hands one of them a half-made module ("cannot import name ...
from partially initialized module"). Importing the package first waits for its ``__init__``.
"""

from . import annotate, colour, filters, geometry, intensity, normalize
from ._registry import REGISTRY, parameters, register
from .annotate import draw_text, figure_to_array, scale_bar
from .colour import apply_colormap, colormap_lut, rgb_to_gray
from .filters import gaussian, median, unsharp_mask
from .geometry import crop, flip, pad, rescale_size, resize, rot90, rotate
from .intensity import apply_lut, contrast, convert_dtype, gamma, invert, rescale
from .normalize import clahe, equalize_hist, estimate_histogram, estimate_range, percentile_stretch
from .pipeline import Pipeline, available

__all__ = [
    "REGISTRY", "Pipeline", "annotate", "apply_colormap", "apply_lut", "available", "clahe",
    "colormap_lut", "colour", "contrast", "convert_dtype", "crop", "draw_text", "equalize_hist",
    "estimate_histogram", "estimate_range", "figure_to_array", "filters", "flip", "gamma",
    "gaussian", "geometry", "intensity", "invert", "median", "normalize", "pad", "parameters",
    "percentile_stretch", "register", "rescale", "rescale_size", "resize", "rgb_to_gray",
    "rot90", "rotate", "scale_bar", "unsharp_mask",
]  # fmt: skip
