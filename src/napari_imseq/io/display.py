"""Display range of a sequence from a small, time-bounded subsample (headless).

Viewers need two ranges: the *contrast limits* (what black and white map to) and the range a
user can drag them over. The second is the data's significant bit depth (0..4095 for a 12-bit
camera in uint16). The first comes from the data: a few frames spread over the file,
downsampled, read in a worker thread that the caller waits on for at most ``budget`` seconds.
Whatever was read by then decides; if not even one frame arrived, the bit-depth range is used.
The cost therefore never depends on the file's length, and a slow disk or codec cannot make
opening a file slow.

8-bit data is display-referred (video, 8-bit cameras): it keeps 0..255 and is not sampled.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DisplayRange", "estimate_display_range", "spread_order"]

#: frames the estimate looks at (at most), and pixels kept per frame after striding
MAX_FRAMES = 8
PIXELS_PER_FRAME = 40_000
PERCENTILES = (0.1, 99.9)


@dataclass(frozen=True)
class DisplayRange:
    """Contrast limits, the range they may move in, and how they were found."""

    limits: tuple[float, float]
    range: tuple[float, float]
    source: str  # "metadata", "bit depth", "estimate" or "bit depth (estimate timed out)"
    frames: tuple[int, ...] = field(default=())
    seconds: float = 0.0

    def as_metadata(self) -> dict[str, Any]:
        return {
            "contrast_limits": list(self.limits),
            "contrast_limits_range": list(self.range),
            "source": self.source,
            "frames": list(self.frames),
            "seconds": round(self.seconds, 4),
        }


def spread_order(n: int) -> list[int]:
    """``range(n)`` reordered so that every prefix is spread over the whole range.

    >>> spread_order(7)
    [3, 1, 5, 0, 2, 4, 6]
    """
    out: list[int] = []
    queue = [(0, n - 1)]
    while queue:
        lo, hi = queue.pop(0)
        if lo > hi:
            continue
        mid = (lo + hi) // 2
        out.append(mid)
        queue += [(lo, mid - 1), (mid + 1, hi)]
    return out


def _bit_depth_range(dtype: np.dtype, bit_depth: int) -> tuple[float, float] | None:
    if dtype.kind == "u":
        return 0.0, float(2 ** min(bit_depth, dtype.itemsize * 8) - 1)
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if dtype.kind == "b":
        return 0.0, 1.0
    return None


def _picks(n: int, max_frames: int) -> list[int]:
    picks = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    return [int(picks[k]) for k in spread_order(len(picks))]


def estimate_display_range(
    seq: Any, *, budget: float = 0.06, max_frames: int = MAX_FRAMES
) -> DisplayRange:
    """Contrast limits for ``seq`` (a :class:`~napari_imseq.io._base.Sequence`).

    A ``display_range`` in the file's metadata wins. 8-bit data keeps 0..255. Otherwise up to
    ``max_frames`` frames spread over the file are read (middle first, then ever finer),
    strided to about 40,000 pixels each, until ``budget`` seconds have passed; the
    0.1..99.9 percentiles of what was read are the limits. ``range`` is the significant
    bit-depth range for integers (so the full range stays reachable), the sampled minimum and
    maximum for floats. The budget counts from after the metadata, which the caller needs
    anyway (a SEQ reads its timestamp table for it).
    """
    dtype = np.dtype(seq.dtype)
    full = _bit_depth_range(dtype, int(getattr(seq, "bit_depth", dtype.itemsize * 8)))
    declared = seq.metadata.get("display_range")  # (the layer needs the metadata anyway)
    t0 = time.perf_counter()
    if declared is not None:
        lo, hi = float(declared[0]), float(declared[1])
        rng = full or (lo, hi)
        return DisplayRange((lo, hi), (min(rng[0], lo), max(rng[1], hi)), "metadata")
    if dtype == np.uint8 or dtype.kind == "b" or len(seq) == 0:
        rng = full or (0.0, 1.0)
        return DisplayRange(rng, rng, "bit depth")

    frame_shape = tuple(seq.frame_shape)
    rgb = bool(getattr(seq, "rgb", False))
    spatial = frame_shape[-3:-1] if rgb else frame_shape[-2:]
    step = max(1, math.ceil(math.sqrt(math.prod(spatial) / PIXELS_PER_FRAME)))
    picks = _picks(len(seq), max_frames)
    got: list[tuple[int, np.ndarray]] = []
    deadline = t0 + budget
    stop = threading.Event()

    def work() -> None:
        for i in picks:
            if stop.is_set() or (got and time.perf_counter() > deadline):
                return
            try:
                frame = np.asarray(seq[i])
            except Exception:  # a damaged frame: the others still estimate the range
                continue
            part = frame[..., ::step, ::step, :] if rgb else frame[..., ::step, ::step]
            got.append((i, np.ascontiguousarray(part)))

    worker = threading.Thread(target=work, name="imseq-display-range", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.perf_counter()))
    stop.set()
    samples = list(got)  # what arrived in time; a late frame is ignored
    if not samples:
        rng = full or (0.0, 1.0)
        return DisplayRange(rng, rng, "bit depth (estimate timed out)", (), _since(t0))
    data = np.concatenate([s.ravel() for _, s in samples])
    limits, rng = _percentile_limits(data, full)
    return DisplayRange(limits, rng, "estimate", _frames(samples), _since(t0))


def frame_display_range(frame: np.ndarray, bit_depth: int, *, rgb: bool = False) -> DisplayRange:
    """Contrast limits from one frame already in memory (strided to about 40,000 pixels):
    for a view that has just composed its current frame and must not read more to show it."""
    frame = np.asarray(frame)
    full = _bit_depth_range(frame.dtype, bit_depth)
    if frame.dtype == np.uint8 or frame.dtype.kind == "b" or frame.size == 0:
        rng = full or (0.0, 1.0)
        return DisplayRange(rng, rng, "bit depth")
    spatial = frame.shape[-3:-1] if rgb else frame.shape[-2:]
    step = max(1, math.ceil(math.sqrt(math.prod(spatial) / PIXELS_PER_FRAME)))
    part = frame[..., ::step, ::step, :] if rgb else frame[..., ::step, ::step]
    limits, rng = _percentile_limits(part.ravel(), full)
    return DisplayRange(limits, rng, "estimate (current frame)", ())


def _percentile_limits(data: np.ndarray, full: tuple[float, float] | None):
    """The 0.1..99.9 percentiles of ``data`` and the range the limits may move in: the
    bit-depth range for integers, the sampled extremes for floats (NaN/inf left out)."""
    if data.dtype.kind == "f":
        data = data[np.isfinite(data)]
        if data.size == 0:
            return (0.0, 1.0), (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(data, PERCENTILES))
    if hi <= lo:
        hi = lo + 1.0
    if full is None:  # floats: the sampled extremes bound the slider
        return (lo, hi), (min(float(data.min()), lo), max(float(data.max()), hi))
    return (lo, hi), (min(full[0], lo), max(full[1], hi))


def _frames(samples: list[tuple[int, np.ndarray]]) -> tuple[int, ...]:
    return tuple(sorted(i for i, _ in samples))


def _since(t0: float) -> float:
    return time.perf_counter() - t0
