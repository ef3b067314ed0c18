"""Mosaics: several sequences side by side in one lazy Sequence, synchronised in time."""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io._base import Sequence, SequenceError
from ..io._cache import file_stamp, identity
from ..io.array import ArraySequence, init_sequence_state
from . import _layout
from ._cache import FrameCache
from ._timeline import MosaicError, Timeline, build_timeline

if TYPE_CHECKING:  # transforms import scipy and OpenCV: only when a tile needs them
    from ..transforms.pipeline import Pipeline

__all__ = ["PROMOTIONS", "MosaicSequence", "mosaic"]

#: bumped when the composition changes, so old cache stores are not reused
_CACHE_VERSION = 2

#: how tiles of fewer bits go into a deeper integer mosaic (``promote=``)
PROMOTIONS = ("scale", "keep")

#: where tiles are read (``lanes=``): "auto" measures the first frames in a thread per tile,
#: then reads the cheap tiles in the thread that composes, beside the costliest in their own;
#: "all" keeps a thread per tile
LANES = ("auto", "all")

#: frames timed before ``lanes="auto"`` chooses which tiles the composing thread reads
_PROBE_FRAMES = 4


# ---- sources -------------------------------------------------------------------------------------
def _open_source(src: Any, fps: Any) -> tuple[Sequence, bool]:
    """(Sequence, owned) for a path, an opened Sequence or an array."""
    if isinstance(src, Sequence):
        return src, False
    if isinstance(src, (str, os.PathLike)):
        from ..io._registry import open_sequence

        return open_sequence(src), True
    if hasattr(src, "shape") and hasattr(src, "dtype"):
        return ArraySequence(src, fps=fps), True
    if (
        isinstance(src, tuple) and len(src) == 2
        and hasattr(src[0], "shape") and hasattr(src[0], "dtype")
    ):  # (array, fps)  # fmt: skip
        return ArraySequence(src[0], fps=src[1]), True
    raise MosaicError(
        f"mosaic: a source must be a path, an opened Sequence or a numpy/dask array, not "
        f"{type(src).__name__}"
    )


def _name(seq: Sequence, k: int) -> str:
    if isinstance(seq, ArraySequence) and seq.path.startswith("<array"):
        return f"array {k}"
    return os.path.basename(os.path.normpath(seq.path)) or seq.path


def _identity(seq: Sequence) -> Any:
    """What makes a source's frames what they are, for the cache key and dask names."""
    if isinstance(seq, MosaicSequence):
        return ("mosaic", seq.fingerprint)
    if isinstance(seq, ArraySequence):
        from dask.base import tokenize

        return ("array", tokenize(seq.array), seq.fps, seq.timestamps)
    stamp = file_stamp(seq.path)
    if stamp is None:
        st = getattr(seq, "_stat", None)
        stamp = identity(st) if st is not None else id(seq)
    return (type(seq).__name__, seq.path, stamp, getattr(seq, "_options", None))


def _per_source(value: Any, names: list[str], what: str, default: Any) -> list[Any]:
    """A per-source list from None, a list (one per source) or a dict by name or position."""
    n = len(names)
    if value is None:
        return [default] * n
    if isinstance(value, dict):
        out = [default] * n
        for key, v in value.items():
            if isinstance(key, int) and 0 <= key < n:
                out[key] = v
            elif key in names:
                out[names.index(key)] = v
            else:
                raise MosaicError(f"mosaic: {what} names {key!r}, which is not a source {names}")
        return out
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise MosaicError(f"mosaic: {what} takes one entry per source (a list) or a dict")
    if len(value) != n:
        raise MosaicError(f"mosaic: {len(value)} {what} for {n} sources; give one per source")
    return list(value)


def _pipeline(value: Any) -> Pipeline | None:
    if value is None:
        return None
    from ..transforms import Pipeline

    if value is None or isinstance(value, Pipeline):
        return value if value is None or len(value) else None
    try:
        p = Pipeline.from_json(value) if isinstance(value, str) else Pipeline(value)
    except (KeyError, TypeError, ValueError) as err:
        raise MosaicError(f"mosaic: a tile pipeline is not valid: {err}") from err
    return p if len(p) else None


# ---- promotion -----------------------------------------------------------------------------------
#: frames read, evenly spread, to estimate the bit depth of a source that states none
#: (``bit_depths="estimate"``)
_ESTIMATE_FRAMES = 16


def _source_bits(
    seqs: list[Sequence], names: list[str], value: Any
) -> tuple[list[int | None], set[int]]:
    """Each source's significant bits as given by ``bit_depths=`` (None: the source's own),
    and the positions of those estimated.

    ``"estimate"`` (for all sources, or per source) estimates the depth of an unsigned source
    of more than 8 bits that states none (its bit depth is its type's) from
    :data:`_ESTIMATE_FRAMES` frames: the bits of their largest value, rounded up to an even
    number and at least 8 (cameras give 8, 10, 12, 14, 16); a source that states a depth, and
    8-bit data (made to be shown as it is), keep theirs."""
    if isinstance(value, str):
        value = [value] * len(seqs)
    given = _per_source(value, names, "bit_depths", None)
    out: list[int | None] = []
    guessed: set[int] = set()
    for k, (seq, name, bits) in enumerate(zip(seqs, names, given, strict=True)):
        dt = np.dtype(seq.dtype)
        full = dt.itemsize * 8
        if bits is None or (
            bits == "estimate" and (dt.kind != "u" or full <= 8 or seq.bit_depth < full)
        ):
            out.append(None)
            continue
        if bits == "estimate":
            out.append(_estimate_bits(seq, full))
            guessed.add(k)
            continue
        whole = isinstance(bits, (int, np.integer)) and not isinstance(bits, bool)
        if dt.kind not in "ui" or not whole or not 0 < bits <= full:
            raise MosaicError(
                f"{name}: bit depth {bits!r} is not valid for its {dt} frames; give a whole "
                f"number 1..{full}, 'estimate' or None (integer sources only)"
            )
        out.append(int(bits))
    return out, guessed


def _estimate_bits(seq: Sequence, full: int) -> int:
    n = len(seq)
    picks = sorted({round(i * (n - 1) / max(_ESTIMATE_FRAMES - 1, 1)) for i in
                    range(min(n, _ESTIMATE_FRAMES))})  # fmt: skip
    top = max((int(np.max(seq[j])) for j in picks), default=0)
    bits = max(top.bit_length(), 8)
    return min(full, bits + bits % 2)


def _channels(shape: tuple[int, ...], name: str) -> int:
    """0 for gray (Y, X) or (Y, X, 1) frames, 3 or 4 for colour."""
    if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
        return 0
    if len(shape) == 3 and shape[2] in (3, 4):
        return shape[2]
    raise MosaicError(
        f"{name}: its frames have shape {shape}; mosaic tiles are gray (Y, X) or colour "
        f"(Y, X, 3|4) frames (use a tile pipeline to make them so)"
    )


def _pipeline_bits(pipe: Pipeline, in_dtype: np.dtype, bits: int, out_dtype: np.dtype) -> int:
    """Significant bits of what a tile pipeline makes from data of ``bits`` bits."""
    full = out_dtype.itemsize * 8
    if out_dtype.kind not in "u":
        return full
    try:
        (_, hi), _ = pipe.display_range((0.0, _top(np.dtype(in_dtype), bits)), in_dtype)
    except Exception:
        return full
    return int(min(full, max(1, math.ceil(math.log2(max(hi, 1.0) + 1)))))


def _lossless(src: np.dtype, dst: np.dtype) -> bool:
    """True when every value of ``src`` is exactly a value of ``dst`` (numpy calls int64 to
    float64 safe; it is not above 2**53)."""
    if not np.can_cast(src, dst, "safe"):
        return False
    if src.kind in "ui" and dst.kind == "f":
        return src.itemsize * 8 - (src.kind == "i") <= np.finfo(dst).nmant + 1
    return True


def _full_top(dtype: np.dtype) -> float:
    """Opaque in an alpha channel of ``dtype``: its largest value (1.0 for floats)."""
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


def _top(dtype: np.dtype, bits: int) -> float:
    """The value white has in ``dtype`` data of ``bits`` significant bits."""
    if dtype.kind in "ui":
        return float(min(2**bits - 1, np.iinfo(dtype).max))
    return 1.0


class _Tile:
    """One source and everything needed to turn its frame ``j`` into its pixels of the output."""

    def __init__(self, seq, name, pipeline, in_shape, in_dtype, bits):
        self.seq, self.name, self.pipeline = seq, name, pipeline
        self.shape, self.dtype, self.bits = in_shape, np.dtype(in_dtype), bits
        self.channels = _channels(in_shape, name)
        self.gray = None  # "replicate" or a colormap name, when gray goes into colour output
        self.out_channels = self.channels
        self.scale: tuple[float, float, float] | None = None  # (in lo, in hi, out hi)
        self._lut: np.ndarray | None = None  # the scale as a table, for 8/16-bit unsigned input
        # RGBA tiles: alpha is opacity, mapped from the tile type's full range onto the
        # output's (never by the colour's bit depth): (in top, out top), or None when equal
        self.alpha: tuple[float, float] | None = None
        self._alpha_lut: np.ndarray | None = None
        self.estimated = False  # bits estimated (bit_depths="estimate"): warn once on a clip
        self.last: tuple[int, np.ndarray] | None = None  # (j, pixels) kept for the next frames
        self.out_dtype = self.dtype
        self.placement: _layout.Placement | None = None
        self.interpolation = "area"
        self.timestamps = seq.timestamps

    def frame(self, j: int, into: np.ndarray | None = None) -> np.ndarray | None:
        """Frame ``j`` through the tile's pipeline, cut and resized to its box; gray stays
        gray (replicated when pasted) and the dtype is converted only when scaled.

        ``into``: the tile's box in the output; when the last step is a lookup whose result
        has the box's layout, it writes there (no copy) and None is returned."""
        frame = self.seq[j]
        if self.pipeline is not None:
            t = float(self.timestamps[j]) if self.timestamps is not None else None
            frame = self.pipeline(frame, index=j, timestamp=t)
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[..., 0]
        p = self.placement
        frame = frame[p.crop]  # fitted first: colour and type work on the smaller frame
        if p.resize is not None:
            from ..transforms import resize

            frame = resize(frame, shape=p.resize, interpolation=self.interpolation)
        if self.out_channels and not self.channels and self.gray not in (None, "replicate"):
            from ..transforms import apply_colormap

            frame = apply_colormap(frame, colormap=self.gray, in_range=(0.0, self._top_in))
        alpha = frame[..., 3] if self.alpha is not None and frame.ndim == 3 else None
        if self.estimated and self.scale is not None and frame.size:
            self._check_estimate(frame, j)
        if self.scale is not None:  # (a 12-bit tile in uint16 is scaled in its own type)
            direct = into is not None and alpha is None and into.shape == frame.shape
            frame = self._scale_colour(frame, into if direct else None)
            if frame is into:
                return None
        elif alpha is not None:
            frame = frame.astype(self.out_dtype)  # a copy: the source's array is not touched
        if alpha is not None:
            frame[..., 3] = self._alpha_values(alpha)
        return frame

    def _check_estimate(self, frame: np.ndarray, j: int) -> None:
        top = frame[..., :3].max() if frame.ndim == 3 else frame.max()
        if top > self.scale[1]:
            import warnings

            self.estimated = False  # once
            warnings.warn(
                f"{self.name}: frame {j} has values up to {top}, above the {self.bits} bits "
                f"estimated from a sample of its frames (bit_depths='estimate'): they show as "
                f"its white; give its bit depth (bit_depths=) to keep them apart",
                UserWarning, stacklevel=2,
            )  # fmt: skip

    def _scale_colour(self, frame: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
        """``frame`` through :attr:`scale`: a new array, or ``into`` when the lookup could
        write there (8-bit input, ``into`` of the output's type with rows of whole pixels)."""
        if frame.dtype == np.uint8 and frame.ndim in (2, 3) and frame.shape[-1] <= 512:
            import cv2  # a lookup that releases the GIL: 4x numpy's on a 640x360 RGB tile

            table = self._table(frame.dtype)
            if into is not None and into.dtype == table.dtype and _whole_pixels(into):
                return cv2.LUT(np.ascontiguousarray(frame), table, dst=into)
            return cv2.LUT(np.ascontiguousarray(frame), table)
        if frame.dtype.kind == "u" and frame.dtype.itemsize <= 2:
            return np.take(self._table(frame.dtype), frame)  # one lookup per pixel
        return self._scaled(frame)

    def _alpha_values(self, alpha: np.ndarray) -> np.ndarray:
        """An RGBA tile's alpha in the output's type: opaque stays opaque (255 -> 65535)."""
        in_top, out_top = self.alpha
        if alpha.dtype.kind == "u" and alpha.dtype.itemsize <= 2:
            if self._alpha_lut is None:
                values = np.arange(2 ** (alpha.dtype.itemsize * 8), dtype=np.float64)
                self._alpha_lut = self._cast_alpha(values, in_top, out_top)
            return np.take(self._alpha_lut, alpha)
        return self._cast_alpha(alpha.astype(np.float64), in_top, out_top)

    def _cast_alpha(self, values: np.ndarray, in_top: float, out_top: float) -> np.ndarray:
        from ..transforms import _registry

        return _registry.restore(np.clip(values * (out_top / in_top), 0, out_top), self.out_dtype)

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        """``values`` mapped linearly from the tile's range onto the output's (clipped)."""
        from ..transforms import _registry

        restore = _registry.restore
        lo, hi, top = self.scale
        values = (values.astype(np.float64) - lo) * (top / (hi - lo))
        return restore(np.clip(values, 0, top), self.out_dtype)

    def _table(self, dtype: np.dtype) -> np.ndarray:
        """:meth:`_scaled` of every value of ``dtype`` (made once, read-only)."""
        lut = self._lut
        if lut is None or len(lut) != 2 ** (dtype.itemsize * 8):
            lut = self._scaled(np.arange(2 ** (dtype.itemsize * 8), dtype=dtype))
            lut.flags.writeable = False
            self._lut = lut
        return lut

    @property
    def _top_in(self) -> float:
        return _top(self.dtype, self.bits)

    def paste(self, out: np.ndarray, pixels: np.ndarray) -> None:
        """Write ``pixels`` (from :meth:`frame`) into the tile's box of ``out``: gray is
        replicated into colour, colour gets an opaque alpha in RGBA mosaics, the value is cast
        to the mosaic's type (checked lossless when the mosaic was made)."""
        region = out[self.placement.box.slices]
        if out.ndim == 2:
            region[...] = pixels
            return
        code = _TO_COLOUR.get((pixels.shape[2] if pixels.ndim == 3 else 1, out.shape[2]))
        if code is not None and pixels.dtype == out.dtype and pixels.dtype in _CV_TYPES:
            import cv2  # one pass that releases the GIL (gray: 6x three channel copies);
            # the alpha it adds is the type's largest value (1.0 for floats): opaque, as here

            if _whole_pixels(region):
                cv2.cvtColor(np.ascontiguousarray(pixels), code, dst=region)
                return
        if pixels.ndim == 3:
            region[..., :3] = pixels[..., :3]
        else:  # gray replicated: a plain copy per channel is 4x a broadcast one
            for c in range(3):
                region[..., c] = pixels
        if out.shape[2] == 4:
            if pixels.ndim == 3 and pixels.shape[2] == 4:
                region[..., 3] = pixels[..., 3]
            else:
                region[..., 3] = _top(out.dtype, 64)


#: OpenCV conversions that paste a tile of (channels) into a colour mosaic of (channels)
_TO_COLOUR = {(1, 3): 8, (1, 4): 9, (3, 4): 0}  # cv2.COLOR_GRAY2RGB, GRAY2RGBA, RGB2RGBA
_CV_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def _whole_pixels(region: np.ndarray) -> bool:
    """True when ``region``'s rows hold whole pixels one after another (a box of a C-ordered
    frame), so OpenCV can write into it."""
    return region.strides[1:] == np.empty((1, *region.shape[1:]), region.dtype).strides[1:]


# ---- the sequence --------------------------------------------------------------------------------
class _Done:
    """A finished job's result or error, standing in for a future (a tile read inline): an
    error is raised when the frame is finished, in order, as a lane's would be."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value, self.error = value, error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def cancel(self) -> bool:
        return False


class _Part:
    """Tile ``n`` of a job that reads several tiles in one lane (its result is their list)."""

    __slots__ = ("future", "n")

    def __init__(self, future: Any, n: int):
        self.future, self.n = future, n

    def result(self) -> Any:
        return self.future.result()[self.n]

    def cancel(self) -> bool:
        return self.future.cancel()


def _rebuild(sources, kwargs):
    return MosaicSequence(sources, _owned=True, **kwargs)


class MosaicSequence(Sequence):
    """Several sequences side by side, synchronised in time; made by :func:`mosaic`.

    A lazy :class:`~napari_imseq.Sequence`: ``len``, ``shape``, ``dtype``, ``fps`` and
    ``metadata`` (with ``"timestamps"`` and ``"tiles"``) come from the sources' headers; a
    frame is composed when it is read, its tiles read in parallel threads.
    """

    format_name = "mosaic"

    def __init__(
        self,
        sources,
        *,
        grid: Any = None,
        positions: Any = None,
        cell: Any = None,
        gap: int = 0,
        fit: str = "resize",
        interpolation: str = "area",
        sync: str = "timestamps",
        fps: float | None = None,
        offsets: Any = None,
        span: str = "union",
        outside: str = "background",
        absolute: bool = False,
        labels: Any = False,
        time_labels: bool = False,
        background: Any = 0,
        gray: str = "replicate",
        dtype: Any = None,
        promote: str = "scale",
        pipelines: Any = None,
        cache: str | os.PathLike | None = None,
        threads: int | None = None,
        lanes: str = "auto",
        recent: int = 0,
        source_fps: Any = None,
        bit_depths: Any = None,
        _owned: bool = False,
    ):
        if isinstance(sources, (str, os.PathLike, Sequence)) or (
            hasattr(sources, "shape") and hasattr(sources, "dtype")
        ):
            sources = [sources]
        sources = list(sources)
        init_sequence_state(self, "mosaic", {})
        self._seqs: list[Sequence] = []
        self._owned: list[bool] = []
        self._pool: list[ThreadPoolExecutor] | None = None
        self._ahead: dict[int, tuple] = {}  # frames iter_frames started before they are read
        self._composing = 0  # frames being composed by _read (not started ahead)
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()
        if not sources:
            raise MosaicError("mosaic: no sources; give at least one path, Sequence or array")
        try:
            rates = _per_source(
                source_fps, [str(k) for k in range(len(sources))], "source_fps", None
            )
            self._rates = rates
            for src, rate in zip(sources, rates, strict=True):
                seq, owned = _open_source(src, rate)
                self._seqs.append(seq)
                self._owned.append(owned or _owned)
            self._setup(locals())
        except BaseException:
            self._close()
            raise

    def _setup(self, args: dict[str, Any]) -> None:
        names = [_name(s, k) for k, s in enumerate(self._seqs)]
        self.names = names
        self.path = "mosaic of " + ", ".join(names)
        self._kwargs = {k: args[k] for k in (
            "grid", "positions", "cell", "gap", "fit", "interpolation", "sync", "fps", "offsets",
            "span", "outside", "absolute", "labels", "time_labels", "background", "gray",
            "dtype", "promote", "pipelines", "cache", "threads", "lanes", "recent",
            "bit_depths")}  # fmt: skip
        self._kwargs["source_fps"] = self._rates
        a = self._kwargs
        if a["fit"] not in _layout.FITS:
            raise MosaicError(f"mosaic: fit must be one of {_layout.FITS}, not {a['fit']!r}")
        if a["interpolation"] not in _layout.INTERPOLATIONS:
            raise MosaicError(
                f"mosaic: interpolation must be one of {_layout.INTERPOLATIONS}, not "
                f"{a['interpolation']!r}"
            )
        offsets = _per_source(a["offsets"], names, "offsets", 0.0)
        try:
            offsets = [float(o) for o in offsets]
        except (TypeError, ValueError):
            raise MosaicError(
                f"mosaic: offsets are seconds (numbers), not {a['offsets']!r}"
            ) from None
        self.timeline: Timeline = build_timeline(
            self._seqs, names, sync=a["sync"], fps=a["fps"], offsets=offsets, span=a["span"],
            outside=a["outside"], absolute=bool(a["absolute"]), rates=self._rates,
        )  # fmt: skip
        self._offsets = offsets

        # tiles: what each pipeline makes (computed on a blank frame: no pixel is read)
        pipes = [_pipeline(p) for p in _per_source(a["pipelines"], names, "pipelines", None)]
        depths, guessed = _source_bits(self._seqs, names, a["bit_depths"])
        a["bit_depths"] = depths  # estimates fixed: a pickled mosaic makes the same frames
        self._tiles: list[_Tile] = []
        for k, (seq, name, pipe, bits) in enumerate(zip(self._seqs, names, pipes, depths,
                                                        strict=True)):  # fmt: skip
            shape, dt = tuple(seq.frame_shape), np.dtype(seq.dtype)
            estimated = k in guessed
            bits = int(seq.bit_depth) if bits is None else bits
            if pipe is not None:
                try:
                    shape, dt = pipe.output_spec(shape, dt)
                except Exception as err:
                    raise MosaicError(f"{name}: its tile pipeline fails: {err}") from err
                bits = _pipeline_bits(pipe, seq.dtype, bits, dt)
            tile = _Tile(seq, name, pipe, tuple(shape), dt, bits)
            tile.estimated = estimated and pipe is None
            tile.interpolation = a["interpolation"]
            self._tiles.append(tile)
        self._promote(a["gray"], a["dtype"], a["promote"])
        self._layout(a)
        self._background_frame(a["background"])
        self._labels = self._label_texts(a["labels"], names)
        self._time_labels = bool(a["time_labels"])
        self._import_tools()
        threads = a["threads"]
        if threads is not None and (int(threads) != threads or threads < 1):
            raise MosaicError(f"mosaic: threads must be a positive whole number, not {threads!r}")
        self._threads = int(threads) if threads else len(self._tiles)
        if a["lanes"] not in LANES:
            raise MosaicError(f"mosaic: lanes must be one of {LANES}, not {a['lanes']!r}")
        self._inline: frozenset[int] | None = None if a["lanes"] == "auto" else frozenset()
        self._heavy: int | None = None  # the costliest tile (lanes="auto", once chosen)
        self._uncovered: dict[tuple[bool, ...], list] = {}  # background parts, by tiles shown
        self._costs: list[list[float]] = [[] for _ in self._tiles]
        recent = a["recent"]
        if not isinstance(recent, (int, np.integer)) or recent < 0:
            raise MosaicError(f"mosaic: recent must be a whole number >= 0, not {recent!r}")
        self._keep = int(recent)
        self._fingerprint: str | None = None
        self._cache = None
        if a["cache"] is not None:
            self._cache = FrameCache(
                a["cache"], self.fingerprint, self.shape, self.dtype,
                times=self.timeline.times, fps=self.timeline.fps, bit_depth=self.bit_depth,
            )  # fmt: skip

    # ---- promotion and layout -----------------------------------------------------------------
    def _promote(self, gray: str, dtype: Any, promote: str = "scale") -> None:
        tiles = self._tiles
        if promote not in PROMOTIONS:
            raise MosaicError(f"mosaic: promote must be one of {PROMOTIONS}, not {promote!r}")
        channels = max(t.channels for t in tiles)
        if gray != "replicate":
            from ..transforms.colour import colormap_names  # (not in a tile thread)

            if gray not in colormap_names():
                raise MosaicError(
                    f"mosaic: gray must be 'replicate' or a colormap name, not {gray!r}"
                )
        for t in tiles:
            t.out_channels = channels
            if channels and not t.channels:
                t.gray = gray
        # a colormap makes 8-bit colour (asked for by choosing one)
        mapped = [bool(channels and not t.channels and gray != "replicate") for t in tiles]
        kinds = [np.dtype(np.uint8) if m else t.dtype for t, m in zip(tiles, mapped, strict=True)]
        tile_bits = [8 if m else t.bits for t, m in zip(tiles, mapped, strict=True)]
        if dtype is None:
            out = np.result_type(*kinds)
            for t, k in zip(tiles, kinds, strict=True):
                if not _lossless(k, out):
                    raise MosaicError(
                        f"{t.name}: its {k} values do not fit the mosaic's {out} without "
                        f"loss; pass dtype= to choose the output type (each tile is then "
                        f"scaled from its own range)"
                    )
        else:
            try:
                out = np.dtype(dtype)
            except TypeError as err:
                raise MosaicError(f"mosaic: dtype {dtype!r} is not a numpy dtype") from err
            if out.kind not in "uif":
                raise MosaicError(f"mosaic: dtype {out} is not an image type (uint, int, float)")
        self._dtype = out
        # promote="scale": unsigned tiles of fewer significant bits span the deepest one's
        # range (0..255 onto 0..4095 beside a 12-bit camera), so they do not look dim; each
        # value keeps its own output value (the map widens: invertible, nothing is lost)
        deep = [b for k, b in zip(kinds, tile_bits, strict=True) if k.kind == "u"]
        widen = promote == "scale" and out.kind == "u" and bool(deep)
        target = min(max(deep), out.itemsize * 8) if widen else 0
        bits_out = []
        for t, k, bits in zip(tiles, kinds, tile_bits, strict=True):
            t.out_dtype = out
            if _lossless(k, out):
                t.scale = None
                if widen and k.kind == "u" and bits < target:
                    t.scale = (0.0, _top(k, bits), float(2**target - 1))
                    bits = target
                bits_out.append(bits if out.kind in "ui" and k.kind in "uib" else None)
            else:  # asked for a narrower type: the tile's range maps onto the output's
                lo, hi = (0.0, _top(k, bits)) if k.kind in "ui" else (0.0, 1.0)
                top = _top(out, out.itemsize * 8)
                t.scale = (lo, hi, top)
                bits_out.append(None)
            if t.channels == 4:  # alpha is opacity: the type's full range onto the output's
                t.alpha = (_full_top(k), _full_top(out))
                if t.alpha[0] == t.alpha[1] and k == out:
                    t.alpha = None
        full = out.itemsize * 8
        self._bits = full if None in bits_out or out.kind != "u" else max(bits_out)
        self._channels = channels

    def _layout(self, a: dict[str, Any]) -> None:
        sizes = [t.shape[:2] for t in self._tiles]
        gap = a["gap"]
        if not isinstance(gap, (int, np.integer)) or gap < 0:
            raise MosaicError(f"mosaic: gap must be a whole number of pixels >= 0, not {gap!r}")
        if a["positions"] is not None:
            if a["grid"] is not None:
                raise MosaicError("mosaic: give grid= or positions=, not both")
            cells, (h, w) = _layout.position_cells(list(a["positions"]), sizes)
            self.grid = None
        else:
            rows, cols = _layout.parse_grid(a["grid"], len(self._tiles))
            if a["cell"] is None:
                cell = (max(s[0] for s in sizes), max(s[1] for s in sizes))
            else:
                cell = _layout.size_pair(a["cell"], "cell")
            cells, (h, w) = _layout.grid_cells(len(self._tiles), rows, cols, cell, int(gap))
            self.grid = (rows, cols)
        for t, cell in zip(self._tiles, cells, strict=True):
            t.placement = _layout.place(t.shape[:2], cell, a["fit"], t.name)
        self._disjoint = _layout.disjoint([t.placement.box for t in self._tiles])
        self._frame_shape = (h, w, self._channels) if self._channels else (h, w)
        from ..io._base import check_frame_size

        check_frame_size(self.path, self._frame_shape, self._dtype)

    def _background_frame(self, background: Any) -> None:
        value = np.asarray(background, dtype=np.float64).reshape(-1)
        c = self._channels or 1
        if len(value) == 1:
            value = np.repeat(value, c)
        if len(value) != c or not np.all(np.isfinite(value)):
            raise MosaicError(
                f"mosaic: background must be one number or {c} (one per channel), not "
                f"{background!r}"
            )
        if self._channels == 4 and np.ndim(background) == 0:  # opaque
            value[3] = _top(self._dtype, 64)
        if self._dtype.kind in "ui":
            info = np.iinfo(self._dtype)
            if np.any(value < info.min) or np.any(value > info.max) or np.any(value % 1):
                raise MosaicError(
                    f"mosaic: background {background!r} is not a value of the mosaic's "
                    f"{self._dtype} ({info.min}..{info.max})"
                )
            colour = value[:3]  # an alpha is opacity, not a value of the bit depth
            if self._bits < self._dtype.itemsize * 8 and np.any(colour > 2**self._bits - 1):
                self._bits = self._dtype.itemsize * 8
        self._background = value.astype(self._dtype)

    def _import_tools(self) -> None:
        """Import here, once, what composing will use (transforms, OpenCV): tile threads that
        import a package with circular imports at the same moment can get it half made
        ("cannot import name 'crop' from partially initialized module ...")."""
        tiles = self._tiles
        if any(self._labels) or self._time_labels or any(
            t.placement.resize is not None or t.gray not in (None, "replicate")
            or t.scale is not None or t.alpha is not None
            for t in tiles
        ):  # fmt: skip
            from .. import transforms  # noqa: F401

        if self._channels or any(t.scale is not None or t.placement.resize for t in tiles):
            import cv2  # noqa: F401

    def _label_texts(self, labels: Any, names: list[str]) -> list[str | None]:
        if labels is True:
            return list(names)
        if labels is False or labels is None:
            return [None] * len(names)
        texts = _per_source(labels, names, "labels", None)
        return [None if t is None else str(t) for t in texts]

    # ---- Sequence protocol --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.timeline)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._frame_shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def bit_depth(self) -> int:
        return self._bits

    @property
    def rgb(self) -> bool:
        return bool(self._channels)

    @property
    def sources(self) -> list[Sequence]:
        return list(self._seqs)

    @property
    def cache_path(self) -> str | None:
        """The zarr store composed frames are kept in (``cache=``), or None."""
        return None if self._cache is None else self._cache.path

    @property
    def fingerprint(self) -> str:
        """A key for what the frames are: sources (files and their size and time, arrays'
        contents) and every setting."""
        if self._fingerprint is None:
            from dask.base import tokenize

            kw = {k: v for k, v in self._kwargs.items()
                  if k not in ("cache", "threads", "lanes", "recent")}  # fmt: skip
            kw["pipelines"] = [None if t.pipeline is None else t.pipeline.to_json()
                               for t in self._tiles]  # fmt: skip
            self._fingerprint = tokenize(
                _CACHE_VERSION, [_identity(s) for s in self._seqs], repr(sorted(kw.items()))
            )
        return self._fingerprint

    def tile_frames(self, index: int) -> list[int]:
        """For mosaic frame ``index``: the frame each source shows (-1: background)."""
        return self.timeline.frame(self._frame_index(index))

    def _format_metadata(self) -> dict[str, Any]:
        tiles = []
        for t, offset in zip(self._tiles, self._offsets, strict=True):
            p = t.placement
            tiles.append({
                "name": t.name, "box": p.box.as_tuple(), "cell": p.cell.as_tuple(),
                "source": t.seq.path, "frames": len(t.seq), "fps": t.seq.fps,
                "offset": offset, "dtype": str(t.seq.dtype),
            })  # fmt: skip
        tl = self.timeline
        return {
            "fps": tl.fps,
            "timestamps": tl.times.copy(),
            "tiles": tiles,
            "grid": self.grid,
            "sync": self._kwargs["sync"],
            "span": self._kwargs["span"],
            "cache": self.cache_path,
            "source": {"sources": [s.path for s in self._seqs]},
        }

    # ---- composing ------------------------------------------------------------------------------
    def _lanes(self) -> list[ThreadPoolExecutor]:
        """One reading thread per tile: a source's frames are read in order, one at a time
        (a video decoder is never raced by the next frame), while the tiles run side by side
        and the next frame's tiles start as soon as their own lane is free."""
        if self._pool is None:
            with self._state_lock:
                if self._pool is None:
                    self._pool = [
                        ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"imseq-mosaic-{s}")
                        for s in range(len(self._tiles))
                    ]
        return self._pool

    def _tile_pixels(self, job: tuple, into: np.ndarray | None = None) -> np.ndarray | None:
        """Tile ``s``'s pixels of its frame ``j`` for mosaic frame ``k`` (``job``), or None
        when they were written into ``into``. A frame that a neighbouring mosaic frame shows
        too (``keep``: a slower source, or one held after its end) is kept, read-only, and
        not read and fitted again while it is shown."""
        k, s, j, keep = job
        tile = self._tiles[s]
        last = tile.last
        if last is not None and last[0] == j:
            return last[1]
        try:
            pixels = tile.frame(j, None if keep else into)
            if keep:
                pixels.flags.writeable = False
                tile.last = (j, pixels)
            return pixels
        except SequenceError as err:
            err.add_note(f"while composing mosaic frame {k}: tile {s} ({tile.name}), frame {j}")
            raise
        except Exception as err:
            raise MosaicError(
                f"{tile.name}: mosaic frame {k} failed on its frame {j} "
                f"({type(err).__name__}: {err})"
            ) from err

    def _read(self, index: int) -> np.ndarray:
        if self._keep:
            with self._recent_lock:
                hit = self._recent.get(index)
                if hit is not None:
                    self._recent.move_to_end(index)
                    return hit.copy()
        with self._recent_lock:
            started = self._ahead.pop(index, None)
        out = None
        if started is None and self._cache is not None:
            out = self._cache.get(index)
        if out is None:
            if started is None:
                with self._state_lock:  # alone: no other frame composed or started ahead
                    solo = self._solo and self._composing == 0 and not self._ahead
                    self._composing += 1
                try:
                    out = self._finish(self._start(index, solo=solo))
                finally:
                    with self._state_lock:
                        self._composing -= 1
            else:
                out = self._finish(started)
            if self._cache is not None:
                self._cache.put(index, out)
        if self._keep:
            with self._recent_lock:
                self._recent[index] = out.copy()
                while len(self._recent) > self._keep:
                    self._recent.popitem(last=False)
        return out

    def _tile_into(self, out: np.ndarray, job: tuple) -> None:
        tile = self._tiles[job[1]]
        pixels = self._tile_pixels(job, out[tile.placement.box.slices])
        if pixels is not None:
            tile.paste(out, pixels)

    def _timed(self, fn, out: np.ndarray | None, job: tuple):
        """``fn`` run for ``job`` in the tile's lane, its CPU time kept while probing (the
        lane thread's own: wall time would count the waits for the cores and the GIL that
        the other lanes cause)."""
        t = time.thread_time()
        result = fn(job) if out is None else fn(out, job)
        if self._inline is None:
            self._costs[job[1]].append(time.thread_time() - t)
        return result

    def _choose_inline(self) -> None:
        """After :data:`_PROBE_FRAMES` frames: the composing thread takes the cheapest tiles
        while their summed time stays within the costliest tile's (which, like every tile
        that does not fit, keeps its own thread), so the threads finish together and no
        cheap tile waits for the GIL behind another. Fixed from then on: a source is read
        by one thread at a time in frame order, as before."""
        with self._state_lock:
            if self._inline is not None or min(len(c) for c in self._costs) < _PROBE_FRAMES:
                return
            costs = [float(np.median(c)) for c in self._costs]
            heavy = int(np.argmax(costs))
            inline, total = set(), 0.0
            for s in sorted(range(len(costs)), key=costs.__getitem__):
                if s != heavy and total + costs[s] <= costs[heavy]:
                    inline.add(s)
                    total += costs[s]
            self.lane_costs = costs
            self._heavy = heavy
            self._inline = frozenset(inline)

    def _start(self, index: int, solo: bool = False) -> tuple:
        """Begin composing frame ``index``: the background, and each tile's job in its lane
        (run here at once when there is one tile to read or ``threads=1``).

        ``solo`` (a frame read on its own, nothing else in flight: a napari slider step): with
        ``lanes="auto"`` the costliest tile is read here at once and the cheap tiles in one job
        in its lane, so the frame's longest read starts without waiting for a thread to wake
        and take the GIL, and usually ends with the other tiles done (no hand-off back)."""
        frames = self.timeline.frame(index)
        n = len(self)
        around = [self.timeline.frame(i) for i in (index - 1, index + 1) if 0 <= i < n]
        jobs = [(index, s, j, any(f[s] == j for f in around))
                for s, j in enumerate(frames) if j >= 0]  # fmt: skip
        out = np.empty(self._frame_shape, self._dtype)
        present = tuple(j >= 0 for j in frames)
        rects = self._uncovered.get(present)
        if rects is None:  # the background where no tile of this frame goes (tiles fill the rest)
            boxes = [t.placement.box for t, p in zip(self._tiles, present, strict=True) if p]
            rects = [r.slices for r in _layout.uncovered(boxes, *self._frame_shape[:2])]
            self._uncovered[present] = rects
        bg = self._background
        uniform = bool(np.all(bg == bg[0]))
        for sl in rects:
            if uniform:
                out[sl].fill(bg[0])  # a memset, where broadcasting per channel is 10x slower
            else:
                out[sl] = bg
        if len(jobs) > 1 and self._threads > 1:
            lanes = self._lanes()
            if self._inline is None:
                self._choose_inline()
            inline = self._inline or frozenset()
            # tiles whose boxes do not overlap paste themselves; else pasted in source order
            work, arg = (self._tile_into, out) if self._disjoint else (self._tile_pixels, None)
            heavy = self._heavy
            if solo and heavy is not None and any(job[1] == heavy for job in jobs):
                futures = self._start_solo(jobs, heavy, inline, work, arg)
                return out, frames, jobs, futures
            futures = [
                _Done(None) if job[1] in inline
                else lanes[job[1]].submit(self._timed, work, arg, job)
                for job in jobs
            ]  # fmt: skip
            for n, job in enumerate(jobs):  # the cheap tiles, here, while the lanes work
                if job[1] in inline:
                    try:
                        futures[n] = _Done(self._tile_into(out, job) if arg is not None
                                           else self._tile_pixels(job))  # fmt: skip
                    except Exception as err:  # raised by _finish: frames before come first
                        futures[n] = _Done(error=err)
        else:
            futures = None
            for job in jobs:
                self._tile_into(out, job)
        return out, frames, jobs, futures

    def _start_solo(self, jobs, heavy, inline, work, arg) -> list:
        lanes = self._lanes()
        cheap = [job for job in jobs if job[1] in inline]
        group = lanes[heavy].submit(self._group, work, arg, cheap) if cheap else None
        parts = iter(range(len(cheap)))
        futures: list[Any] = [
            _Part(group, next(parts)) if job[1] in inline
            else None if job[1] == heavy
            else lanes[job[1]].submit(self._timed, work, arg, job)
            for job in jobs
        ]  # fmt: skip
        n = next(n for n, job in enumerate(jobs) if job[1] == heavy)
        try:
            futures[n] = _Done(work(arg, jobs[n]) if arg is not None else work(jobs[n]))
        except Exception as err:  # raised by _finish: frames before come first
            futures[n] = _Done(error=err)
        return futures

    @staticmethod
    def _group(work, arg, jobs) -> list:
        """Several tiles' jobs one after another (in one lane)."""
        return [work(arg, job) if arg is not None else work(job) for job in jobs]

    def _finish(self, started: tuple) -> np.ndarray:
        out, frames, jobs, futures = started
        if futures is not None:
            try:
                results = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            if not self._disjoint:
                for job, pixels in zip(jobs, results, strict=True):
                    self._tiles[job[1]].paste(out, pixels)
        if any(self._labels) or self._time_labels:
            self._draw_labels(out, frames)
        return out

    def _compose(self, index: int) -> np.ndarray:
        return self._finish(self._start(index))

    def iter_frames(
        self, start: int | None = None, stop: int | None = None, step: int | None = None
    ):
        """Frames ``start:stop:step`` in order, for conversion and export: up to
        :attr:`read_ahead` following frames are started while one is handed out, so each
        tile's thread goes on to its next frame instead of waiting for the slowest tile."""
        self._check_open()
        indices = range(*slice(start, stop, step).indices(len(self)))
        ahead = self.read_ahead if self._threads > 1 and len(self._tiles) > 1 else 0
        try:
            for n, i in enumerate(indices):
                for nxt in indices[n + 1 : n + 1 + ahead]:
                    self._start_ahead(nxt)
                yield self._get(i)
        finally:
            with self._recent_lock:
                left, self._ahead = list(self._ahead.values()), {}
            for _, _, _, futures in left:  # started but not wanted: cancelled or let finish
                for f in futures or ():
                    f.cancel()

    #: frames :meth:`iter_frames` starts ahead of the one it hands out (memory: that many
    #: frames more)
    read_ahead = 2

    #: a frame read alone reads its costliest tile in the calling thread (see :meth:`_start`);
    #: False keeps it in its lane (the benchmark compares the two)
    _solo = True

    def _start_ahead(self, index: int) -> None:
        with self._recent_lock:
            if index in self._ahead or (self._keep and index in self._recent):
                return
        if self._cache is not None and self._cache.has(index):
            return
        started = self._start(index)
        with self._recent_lock:
            self._ahead[index] = started

    def _draw_labels(self, out: np.ndarray, frames: list[int]) -> None:
        from ..transforms import _registry, draw_text

        dtype_range = _registry.dtype_range

        top = _top(self._dtype, self._bits)
        lo, hi = dtype_range(self._dtype)
        white = (top - lo) / (hi - lo) if self._dtype.kind in "ui" else 1.0
        colour = (white, white, white)
        rates = self.timeline.rates
        for s, (tile, text, j) in enumerate(zip(self._tiles, self._labels, frames, strict=True)):
            cell = tile.placement.cell
            size = _layout.label_size(cell)
            region = out[cell.slices]
            if text:
                region[...] = draw_text(region, text=text, position=(4, 4), size=size,
                                        color=colour)  # fmt: skip
            if self._time_labels and j >= 0:
                ts = tile.timestamps
                if ts is not None:  # the tile's own time, from its first frame
                    t = float(ts[j] - ts[0])
                else:
                    t = j / rates[s] if rates[s] else j / self.timeline.fps
                region[...] = draw_text(
                    region, text=f"{t:.3f} s  #{j}", position=(cell.h - size - 6, 4),
                    size=size, color=colour,
                )  # fmt: skip

    def to_dask(self, chunks: int | tuple | None = None):
        """A lazy dask array over the composed frames (one frame per chunk by default)."""
        import dask.array as da

        if chunks is None:
            chunks = (1, *self.frame_shape)
        elif isinstance(chunks, int):
            chunks = (chunks, *self.frame_shape)
        name = "imseq-mosaic-" + self.fingerprint
        meta = np.empty((0,) * self.ndim, dtype=self.dtype)
        return da.from_array(self, chunks=chunks, name=name, asarray=False, fancy=False, meta=meta)

    # ---- life cycle -----------------------------------------------------------------------------
    def _close(self) -> None:
        lanes, self._pool = self._pool, None
        for lane in lanes or ():
            lane.shutdown(wait=False, cancel_futures=True)
        for seq, owned in zip(self._seqs, self._owned, strict=False):
            if owned:
                seq.close()
        with self._recent_lock:
            self._recent.clear()

    def __reduce__(self):
        return _rebuild, (self._seqs, self._kwargs)

    def __repr__(self) -> str:
        return (
            f"<MosaicSequence of {len(self._seqs)} tiles shape={self.shape} dtype={self.dtype} "
            f"fps={self.timeline.fps:.4g}>"
        )


def mosaic(
    sources,
    *,
    grid: Any = None,
    sync: str = "timestamps",
    fps: float | None = None,
    offsets: Any = None,
    fit: str = "resize",
    labels: Any = False,
    background: Any = 0,
    pipelines: Any = None,
    cache: str | os.PathLike | None = None,
    **options: Any,
) -> MosaicSequence:
    """Several recordings side by side, synchronised in time, as one lazy Sequence.

    Parameters
    ----------
    sources
        Paths, opened Sequences (not closed by the mosaic) and numpy/dask arrays ``(T, Y, X)``
        or ``(T, Y, X, C)`` (give their rates as ``(array, fps)`` pairs, with
        ``source_fps=[...]``, or wrap them in
        :class:`~napari_imseq.io.array.ArraySequence` with ``fps=``/``timestamps=``).
        ``source_fps=[None, 30.0, ...]`` (or a dict by position) also gives, or replaces, the
        rate of files that state none or a wrong one (their timestamps still rule).
    grid
        ``"RxC"`` or ``(rows, cols)`` (one side may be 0: filled in); default near-square.
        ``positions=[(y, x) | (y, x, h, w), ...]`` places tiles explicitly instead.
    sync
        ``"timestamps"`` (per-frame timestamps relative to each source's first frame;
        ``absolute=True`` keeps the clocks as they are), ``"fps"`` (nominal rates) or
        ``"index"`` (frame k of every source together).
    fps
        Output frame rate (default: the fastest source's).
    offsets
        Seconds added to each source's clock (a list, or a dict by source name or position).
    fit
        ``"resize"`` (aspect kept), ``"stretch"``, ``"pad"`` or ``"crop"`` into the cell;
        ``cell=(h, w)`` (default: the largest frame), ``gap=`` pixels between cells,
        ``interpolation=`` ``"area"`` (default), ``"linear"``, ``"cubic"`` or ``"nearest"``.
    labels
        True (the source names), or one text (or None) per source, drawn in each cell;
        ``time_labels=True`` also draws each tile's own time and frame number.
    background
        Value of pixels no tile covers (one number, or one per channel).
    pipelines
        A per-tile :class:`~napari_imseq.transforms.Pipeline` (or its steps or JSON), applied
        to the source frame before it is fitted; a list or a dict by name or position.
    cache
        A folder for a zarr store of the frames composed so far (scrubbing back reads them
        from there); without it nothing but the last few frames is kept.

    Other options: ``span`` (``"union"`` or ``"intersection"`` of the sources' times),
    ``outside`` (``"background"`` or ``"hold"``: a source before its start or after its end
    shows the background or its first/last frame), ``gray`` (``"replicate"`` or a colormap
    name: how gray tiles go into colour mosaics), ``dtype`` (the output type; default the
    smallest that holds every tile without loss, see ``docs/mosaic.md``), ``promote``
    (``"scale"``, default: in an unsigned integer mosaic, tiles of fewer significant bits are
    mapped from their range onto the deepest tile's, e.g. 8-bit 0..255 onto 0..4095 next to a
    12-bit camera, so they do not look dim; distinct values stay distinct; ``"keep"``: values
    as they are), ``bit_depths`` (each source's significant bits, a list or a dict by name or
    position; None: the source's own; ``"estimate"``: from 16 frames, for unsigned sources of
    more than 8 bits that state none), ``lanes`` (``"auto"``, default: the first frames are read in a thread
    per tile and timed, then the cheap tiles are read in the composing thread beside the
    costliest; ``"all"``: a thread per tile throughout), ``threads``
    (``1`` reads the tiles one after another; by default each tile has its own reading
    thread), ``recent`` (how many of the
    newest composed frames to keep in memory, e.g. for a preview shown again; default 0).

    Examples
    --------
    >>> fast = np.zeros((50, 32, 32), np.uint16)   # 500 fps
    >>> slow = np.zeros((3, 24, 60, 3), np.uint8)  # 30 fps, RGB
    >>> m = mosaic([fast, slow], source_fps=[500, 30], grid="1x2", cell=(32, 32))
    >>> m.shape, m.dtype, m.fps
    ((50, 32, 64, 3), dtype('uint16'), 500.0)
    >>> m.metadata["tiles"][1]["box"]  # (y, x, height, width): resized, aspect kept, centred
    (9, 32, 13, 32)
    """
    return MosaicSequence(
        sources, grid=grid, sync=sync, fps=fps, offsets=offsets, fit=fit, labels=labels,
        background=background, pipelines=pipelines, cache=cache, **options,
    )  # fmt: skip
