"""Mosaics: several recordings side by side, synchronised in time, as one lazy Sequence.

See :func:`mosaic` and ``docs/mosaic.md``.
"""

from ._layout import FITS
from ._mosaic import PROMOTIONS, MosaicSequence, mosaic
from ._timeline import OUTSIDE, SPANS, SYNC_MODES, MosaicError, Timeline

__all__ = ["FITS", "OUTSIDE", "PROMOTIONS", "SPANS", "SYNC_MODES", "MosaicError", "MosaicSequence", "Timeline",
           "mosaic"]  # fmt: skip
