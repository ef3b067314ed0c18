"""Frame-exact video and animated GIF reading through PyAV (FFmpeg).

Frame ``i`` is the ``i``-th frame a plain sequential decode of the file yields.

* **Index.** On open the packets of the video stream are demuxed, not decoded: their
  timestamps, keyframe flags and byte positions make the index (cached on disk, keyed by path,
  size and modification time). How a decoded frame is recognised is chosen per file and
  checked while decoding (:class:`_Index`): by presentation stamp, by the packet it came from
  (codecs without delay, whatever the stamps), by counting outputs from keyframes whose GOP
  proves closed (AVI decode stamps), or by counting from the start. Decoding loops consume a
  packet per step, so every read ends.
* **Random access.** A read takes an idle decoder state (its own container), preferring one
  that is already positioned earlier in the same GOP as the target so that it decodes forward
  without seeking; otherwise it seeks to the keyframe at or before the target, decodes forward,
  and checks which frame came out first (re-seeking earlier on an overshoot). Decoder states
  are never shared between threads at the same time. Random access uses slice threading only,
  so a jump pays no frame-threading latency; recent frames stay in the frame cache that all
  open files share (:data:`napari_imseq.io._cache.frames`, bounded in bytes).
* **Sequential reads** (:meth:`VideoFile.iter_frames`) use a fresh decoder with frame and
  slice threading.
* **Pixels.** Gray stays gray in its own depth (``gray`` -> uint8, ``gray10/12/16`` -> uint16
  with unscaled samples); planar 16-bit RGB (``gbrp16le``) -> uint16 RGB; alpha is kept (a GIF
  is RGBA only when its headers allow transparency); 8-bit YUV -> uint8 RGB; YUV above 8 bits
  -> uint16 RGB (``rgb48``).

Modules: :mod:`._index` (container index, sniffing, FFV1 slice CRCs, Matroska/EBML size),
:mod:`._pixfmt` (pixel formats to arrays, GIF transparency), :mod:`._decode` (one decoder
state), :mod:`._reader` (:class:`VideoFile`, its decoder pool), :mod:`._writer`
(:class:`VideoWriter`).
"""

# the private names stay importable from the package for the tests and tools that use them
# (napari_imseq.io.video._Decoder, _Renumber, _INDEX_KIND ...)
from ._decode import _Decoder, _Renumber, _Reslice  # noqa: F401
from ._index import (  # noqa: F401
    _NO_TS,
    _ffv1_slices_intact,
    _Index,
    _matroska_segment_end,
    _sniff_video,
)
from ._pixfmt import _GifAlpha, _Plan  # noqa: F401
from ._reader import _INDEX_ARRAYS, _INDEX_KIND, VideoFile  # noqa: F401
from ._writer import VideoWriter

__all__ = ["VideoFile", "VideoWriter"]

# ---- registration (napari_imseq.io._formats) -----------------------------------------------
from .._formats import register  # noqa: E402

register("video", reader=VideoFile, writer=VideoWriter)
