"""The mosaic's clock: one output timeline, and which frame of each source it shows.

Every source gets frame times on a common clock (seconds): its own timestamps (relative to its
first frame unless absolute clocks are asked for), or its nominal rate, or the output rate
(``sync="index"``), shifted by its offset. A source covers ``[first time, last time + one
frame)``. The output runs at ``fps`` over the union or the intersection of what the sources
cover; at output time ``t`` a source shows its last frame stamped at or before ``t`` and,
outside what it covers, nothing (the background) or its first/last frame (``outside="hold"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence as Seq
from dataclasses import dataclass

import numpy as np

from ..io._base import SequenceFormatError

SYNC_MODES = ("timestamps", "fps", "index")
SPANS = ("union", "intersection")
OUTSIDE = ("background", "hold")
#: a source frame stamped up to this fraction of an output period after an output time counts
#: as shown at that time (timestamps rounded to microseconds, float sums)
TOLERANCE = 1e-3


class MosaicError(SequenceFormatError):
    """A mosaic that cannot be made as asked (no sources, a grid too small, sources that
    never overlap, a bad size or rate); raised before anything is read or written."""


def _rate(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _timestamps(seq, name: str) -> np.ndarray | None:
    ts = seq.timestamps
    if ts is None:
        return None
    ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    if len(ts) != len(seq) or not np.all(np.isfinite(ts)):
        return None  # damaged stamps: the nominal rate is used instead
    if np.any(np.diff(ts) < 0):
        raise MosaicError(
            f"{name}: its frame timestamps go back in time (after frame "
            f"{int(np.argmax(np.diff(ts) < 0))}), so it cannot be synchronised by them; use "
            f"sync='fps' or sync='index'"
        )
    return ts


def nominal_fps(seq) -> float | None:
    """A source's frame rate: its stated fps, else frames over the span of its timestamps."""
    rate = _rate(seq.fps)
    if rate is None and seq.timestamps is not None and len(seq) > 1:
        ts = np.asarray(seq.timestamps, dtype=np.float64)
        span = float(ts[-1] - ts[0]) if np.all(np.isfinite(ts)) else 0.0
        rate = (len(seq) - 1) / span if span > 0 else None
    return rate


@dataclass(frozen=True)
class Timeline:
    """Output times and, for each source, its frame times on the same clock."""

    times: np.ndarray
    fps: float
    starts: tuple[float, ...]
    ends: tuple[float, ...]
    source_times: tuple[np.ndarray, ...]
    outside: str
    #: each source's frame rate as used (given, stated, or from its timestamps), or None
    rates: tuple[float | None, ...] = ()

    def __len__(self) -> int:
        return len(self.times)

    @property
    def tolerance(self) -> float:
        return TOLERANCE / self.fps

    def frames_at(self, t: float | np.ndarray, source: int) -> np.ndarray:
        """Frame of ``source`` shown at time(s) ``t``; -1 where it shows the background."""
        st = self.source_times[source]
        t = np.asarray(t, dtype=np.float64)
        j = np.searchsorted(st, t + self.tolerance, side="right") - 1
        before = j < 0
        after = t >= self.ends[source] - self.tolerance
        if self.outside == "hold":
            return np.where(before, 0, np.where(after, len(st) - 1, j)).astype(np.int64)
        return np.where(before | after, -1, j).astype(np.int64)

    def frame(self, k: int) -> list[int]:
        """For output frame ``k``: the frame index of each source (-1: background).

        :meth:`frames_at` for one time, without its array steps (a frame asks for three)."""
        t, tol = float(self.times[k]), self.tolerance
        hold = self.outside == "hold"
        out = []
        for st, end in zip(self.source_times, self.ends, strict=True):
            j = int(st.searchsorted(t + tol, side="right")) - 1
            if j < 0:
                out.append(0 if hold else -1)
            elif t >= end - tol:
                out.append(len(st) - 1 if hold else -1)
            else:
                out.append(j)
        return out

    def table(self) -> np.ndarray:
        """(frames, sources) table of :meth:`frame` for the whole timeline."""
        cols = [self.frames_at(self.times, s) for s in range(len(self.source_times))]
        return np.stack(cols, axis=1) if cols else np.empty((len(self), 0), np.int64)


def build_timeline(
    seqs: Seq,
    names: Seq[str],
    *,
    sync: str = "timestamps",
    fps: float | None = None,
    offsets: Seq[float] | None = None,
    span: str = "union",
    outside: str = "background",
    absolute: bool = False,
    rates: Seq[float | None] | None = None,
) -> Timeline:
    """The timeline of a mosaic of ``seqs`` (see the module docstring); reads no pixels."""
    if sync not in SYNC_MODES:
        raise MosaicError(f"mosaic: sync must be one of {SYNC_MODES}, not {sync!r}")
    if span not in SPANS:
        raise MosaicError(f"mosaic: span must be one of {SPANS}, not {span!r}")
    if outside not in OUTSIDE:
        raise MosaicError(f"mosaic: outside must be one of {OUTSIDE}, not {outside!r}")
    n = len(seqs)
    offsets = [0.0] * n if offsets is None else [float(o) for o in offsets]
    if len(offsets) != n or not all(math.isfinite(o) for o in offsets):
        raise MosaicError(
            f"mosaic: offsets must be {n} finite numbers of seconds (one per source), not "
            f"{offsets!r}"
        )
    given = [None] * n if rates is None else list(rates)
    if len(given) != n:
        raise MosaicError(f"mosaic: {len(given)} source rates for {n} sources; give one per source")
    for name, r in zip(names, given, strict=True):
        if r is not None and _rate(r) is None:
            raise MosaicError(f"{name}: its rate {r!r} is not a finite positive fps")
    # a rate given for a source replaces the one it states (its timestamps still rule)
    rates = [
        _rate(r) if r is not None else nominal_fps(s) for s, r in zip(seqs, given, strict=True)
    ]
    if fps is not None:
        out_fps = _rate(fps)
        if out_fps is None:
            raise MosaicError(f"mosaic: fps {fps!r} is not a finite positive number")
    else:
        known = [r for r in rates if r is not None]
        if not known:
            raise MosaicError(
                "mosaic: no source states a frame rate; pass fps= (the output frame rate), and "
                "the sources' rates with source_fps="
            )
        out_fps = max(known)

    source_times, starts, ends = [], [], []
    for seq, name, rate, offset in zip(seqs, names, rates, offsets, strict=True):
        count = len(seq)
        if count == 0:
            raise MosaicError(f"{name}: it has no frames; a mosaic tile needs at least one")
        if sync == "index":
            t = np.arange(count, dtype=np.float64) / out_fps
            duration = 1.0 / out_fps
        elif sync == "fps":
            if rate is None:
                raise MosaicError(
                    f"{name}: it states no frame rate, so sync='fps' cannot place it; give its "
                    f"rate with source_fps= (--source-fps), or use sync='index'"
                )
            t = np.arange(count, dtype=np.float64) / rate
            duration = 1.0 / rate
        else:
            ts = _timestamps(seq, name)
            if ts is None and rate is None:
                raise MosaicError(
                    f"{name}: it has neither timestamps nor a frame rate, so sync='timestamps' "
                    f"cannot place it; give its rate with source_fps= (--source-fps), or use "
                    f"sync='index'"
                )
            if ts is None:
                t = np.arange(count, dtype=np.float64) / rate
            else:
                t = ts if absolute else ts - ts[0]
            steps = np.diff(t)
            steps = steps[steps > 0]
            if rate is not None:  # the last frame lasts one nominal frame
                duration = 1.0 / rate
            else:
                duration = float(np.median(steps)) if len(steps) else 1.0 / out_fps
        t = t + offset
        source_times.append(t)
        starts.append(float(t[0]))
        ends.append(float(t[-1]) + duration)

    if span == "union":
        t0, t1 = min(starts), max(ends)
    else:
        t0, t1 = max(starts), min(ends)
        if t1 - t0 <= TOLERANCE / out_fps:
            spans = ", ".join(
                f"{name} {a:.6g}..{b:.6g} s" for name, a, b in zip(names, starts, ends, strict=True)
            )
            raise MosaicError(
                f"mosaic: the sources never overlap in time ({spans}), so their intersection is "
                f"empty; use span='union', or shift them with offsets="
            )
    count = max(1, math.ceil((t1 - t0) * out_fps - TOLERANCE))
    times = t0 + np.arange(count, dtype=np.float64) / out_fps
    return Timeline(
        times=times,
        fps=out_fps,
        starts=tuple(starts),
        ends=tuple(ends),
        source_times=tuple(source_times),
        outside=outside,
        rates=tuple(rates),
    )
