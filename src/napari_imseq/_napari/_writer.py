"""npe2 writer: an image layer to any format of ``napari_imseq.imwrite``, streamed.

Lazy (dask) layers are written chunk by chunk without being loaded. Formats that hold only
8 bits (.mp4, .webm, .gif) receive what the viewer shows: the layer's contrast limits map
wider data to 8 bits.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..io._writer import imwrite

_EIGHT_BIT_EXTENSIONS = (".mp4", ".m4v", ".webm", ".gif")


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    if isinstance(data, list):  # multiscale: the full-resolution level
        data = data[0]
    md = meta.get("metadata") or {}
    options: dict[str, Any] = {"overwrite": True}  # napari's save dialog asked already
    if md.get("fps"):
        options["fps"] = float(md["fps"])
    if md.get("bit_depth") and path.lower().endswith(".seq"):
        options["bit_depth"] = int(md["bit_depth"])
    if path.lower().endswith(_EIGHT_BIT_EXTENSIONS) and np.dtype(data.dtype) != np.uint8:
        lo, hi = meta.get("contrast_limits") or (0, 1)
        options["display_range"] = (float(lo), float(hi))
    if getattr(data, "ndim", 0) == 2 or (meta.get("rgb") and data.ndim == 3):
        data = data[np.newaxis]  # a single image is a one-frame sequence
    writer = imwrite(path, data, **options)
    return [os.fspath(writer.path)]
