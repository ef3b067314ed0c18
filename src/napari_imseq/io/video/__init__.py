"""Video and animated GIF through PyAV (FFmpeg); see :mod:`._reader`."""

from ._reader import *  # noqa: F401,F403
from ._reader import (  # noqa: F401
    _INDEX_KIND,
    _Decoder,
    _ffv1_slices_intact,
    _Renumber,
    _sniff_video,
)
