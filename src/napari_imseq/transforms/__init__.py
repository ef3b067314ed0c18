"""Per-frame transforms: pure functions ``f(frame, *, params) -> frame`` and a lazy pipeline.

Headless (no napari, no Qt). Every function takes one frame, 2-D gray or (H, W, C) colour, and
documents what it does to the dtype (uint16 stays uint16 unless the function is a conversion).
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
