"""Normalising a corpus from subsample statistics, on dask.distributed.

Pass 1 (statistics) reads a subsample: the lowest-resolution level of a pyramidal TIFF when the
file has one, otherwise every 5th pixel in Y and X of up to 8 evenly spaced frames, in evenly
spaced files (at most ``max_files``). Its histograms (one bin per value: exact for 8- and 16-bit
data) and derived ranges are saved as JSON. Pass 2 maps every frame of every file through a
look-up table built from them, in parallel, with the batch machinery of
:func:`napari_imseq.batch.convert_batch` (outputs written as ``.partial``, re-runs skip complete
outputs, failures reported per file).

Methods (uint8 and uint16, gray or RGB(A); alpha is kept):

* ``stretch``: the ``percentiles`` (default 0.5 and 99.5) map linearly to the dtype's full range,
  clipped;
* ``equalize``: histogram equalisation (the LUT of
  :func:`napari_imseq.transforms.equalize_hist`);
* ``match``: the histogram is matched to a reference file's (``reference=``).

Colour (``channels=``): ``joint`` (all channels share one mapping, so hues stay; the default for
``stretch``), ``per-channel`` (each channel its own mapping: a white balance), ``luminance``
(the mapping is applied to Y of YCrCb; the default for ``equalize`` and ``match``).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..io._base import SequenceError
from ..transforms._registry import has_alpha, keep_alpha, on_luminance
from ..transforms.intensity import rescale
from ..transforms.normalize import _equalize_lut
from ._convert import output_path
from ._engine import BatchReport, Skipped, cluster, run_tasks

__all__ = [
    "FileList",
    "NormaliseError",
    "Normaliser",
    "compute_stats",
    "load_stats",
    "normalise",
    "sample_file",
    "save_stats",
]

METHODS = ("stretch", "equalize", "match")
CHANNEL_MODES = ("joint", "per-channel", "luminance")
STATS_FORMAT = "napari-imseq normalisation statistics"
#: the statistics pass reads at most this share of the pixels
BUDGET = 0.05
STRIDE = 5  # every 5th pixel in Y and X: 4% of a frame
MAX_FRAMES = 8


class NormaliseError(SequenceError, ValueError):
    """Normalisation cannot be done as asked (dtype, method, statistics that do not fit)."""


class FileList:
    """The paths of a text file, one per line, read lazily each time it is iterated (so a list
    of 10^6 files is never held in memory); ``len()`` counts the lines once."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._n: int | None = None

    def __iter__(self) -> Iterator[str]:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.strip():
                    yield line

    def __len__(self) -> int:
        if self._n is None:
            self._n = sum(1 for _ in self)
        return self._n


def _levels(dtype: np.dtype, path: str) -> int:
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 256
    if dtype == np.uint16:
        return 65536
    raise NormaliseError(
        f"{path}: {dtype} data cannot be normalised here; normalisation takes uint8 or uint16 "
        f"(gray or RGB) frames"
    )


def _channel_mode(method: str, channels: str | None) -> str:
    if method not in METHODS:
        raise NormaliseError(f"method={method!r}: choose one of {', '.join(METHODS)}")
    mode = channels or ("joint" if method == "stretch" else "luminance")
    if mode not in CHANNEL_MODES:
        raise NormaliseError(f"channels={channels!r}: choose one of {', '.join(CHANNEL_MODES)}")
    return mode


def _planes(block: np.ndarray, colour: bool, mode: str) -> list[np.ndarray]:
    """The sample values each mapping is built from: one array (gray, joint, luminance) or
    one per colour channel (per-channel). ``block`` is (..., Y, X[, C])."""
    if not colour:
        return [block]
    rgb = block[..., :3]
    if mode == "joint":
        return [rgb]
    if mode == "per-channel":
        return [rgb[..., c] for c in range(3)]
    import cv2

    flat = np.ascontiguousarray(rgb.reshape(-1, rgb.shape[-2], 3))
    return [cv2.cvtColor(flat, cv2.COLOR_RGB2YCrCb)[..., 0]]


def _pyramid_level(path: str) -> tuple[np.ndarray, bool, int, str] | None:
    """(lowest level as (N, Y, X[, C]), colour, full-resolution pixels, description) for a
    pyramidal TIFF, else None. Only that level is decoded."""
    if not path.lower().endswith((".tif", ".tiff")) or not os.path.isfile(path):
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            if len(series.levels) < 2:
                return None
            low = series.levels[-1]
            colour = series.axes.endswith("S") and series.shape[-1] in (3, 4)
            full = math.prod(series.shape[:-1] if colour else series.shape)
            data = low.asarray()
            shape = low.shape
    except Exception:  # not a TIFF tifffile reads: the generic path reports it
        return None
    tail = 3 if colour else 2
    data = data.reshape((-1, *data.shape[-tail:]))
    spatial = "x".join(str(s) for s in shape[-tail:][:2])
    return data, colour, full, f"pyramid level {len(series.levels) - 1} ({spatial})"


def sample_file(
    path: str | os.PathLike,
    *,
    method: str = "stretch",
    channels: str | None = None,
    stride: int = STRIDE,
    max_frames: int = MAX_FRAMES,
    whole: bool = False,
) -> dict[str, Any]:
    """Histograms of a subsample of one file (one bin per value), at most 5% of its pixels.

    ``whole=True`` (per-file statistics, where every pixel is read anyway to be mapped) uses
    every pixel of a file of at most ``max_frames`` frames: the tails of one small image's
    histogram are too thin in a 4% sample.

    Returns ``{"hists": [array per mapping], "dtype", "colour", "pixels_read",
    "pixels_total", "source"}``; ``pixels_*`` count spatial samples (a colour pixel is one).
    """
    from ..io._registry import open_sequence

    path = os.fspath(path)
    mode = _channel_mode(method, channels)
    pyr = _pyramid_level(path)
    if pyr is not None:
        data, colour, total, source = pyr
        read = math.prod(data.shape[:3])
        if read > BUDGET * total:  # a shallow pyramid: stride its lowest level too
            s = math.ceil(math.sqrt(read / (BUDGET * total)))
            data = data[:, ::s, ::s]
            source += f", every {s}th pixel"
        block = data
    else:
        with open_sequence(path) as seq:
            n = len(seq)
            picks = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
            colour = len(seq.frame_shape) == 3 and seq.frame_shape[2] in (3, 4)
            total = n * seq.frame_shape[0] * seq.frame_shape[1]
            s = 1 if whole and n <= max_frames else max(int(stride), 1)
            block = np.stack([np.asarray(seq[int(i)])[::s, ::s] for i in picks])
            source = f"every {s}th pixel of {len(picks)} of {n} frames" if s > 1 else "all pixels"
    levels = _levels(block.dtype, path)
    hists = [np.bincount(p.ravel(), minlength=levels) for p in _planes(block, colour, mode)]
    return {
        "hists": hists,
        "dtype": str(block.dtype),
        "colour": bool(colour),
        "pixels_read": int(math.prod(block.shape[:3])),
        "pixels_total": int(total),
        "source": source,
    }


# ---- statistics: histograms, percentiles, JSON --------------------------------------------
def _percentile(hist: np.ndarray, q: float) -> float:
    """numpy.percentile (linear interpolation) of the samples counted by ``hist``."""
    cdf = np.cumsum(hist)
    total = int(cdf[-1])
    if total == 0:
        return 0.0
    pos = q / 100.0 * (total - 1)
    k = math.floor(pos)
    lo = int(np.searchsorted(cdf, k, side="right"))
    hi = int(np.searchsorted(cdf, min(k + 1, total - 1), side="right"))
    return float(lo + (pos - k) * (hi - lo))


def _sparse(hist: np.ndarray) -> dict[str, list[int]]:
    nz = np.flatnonzero(hist)
    return {"values": nz.tolist(), "counts": hist[nz].tolist()}


def _dense(entry: dict[str, list[int]], levels: int) -> np.ndarray:
    hist = np.zeros(levels, np.int64)
    hist[np.asarray(entry["values"], np.int64)] = np.asarray(entry["counts"], np.int64)
    return hist


def _summary(hists: list[np.ndarray], percentiles: tuple[float, float]) -> dict[str, Any]:
    return {
        "lo": [_percentile(h, percentiles[0]) for h in hists],
        "hi": [_percentile(h, percentiles[1]) for h in hists],
    }


def save_stats(stats: dict[str, Any], path: str | os.PathLike) -> None:
    """Write statistics as JSON (through a temporary name, so a reader never sees half)."""
    path = os.fspath(path)
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1)
    os.replace(tmp, path)


def load_stats(path: str | os.PathLike) -> dict[str, Any]:
    """Statistics saved by :func:`save_stats` / ``imseq normalise --stats``."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            stats = json.load(f)
    except (OSError, ValueError) as err:
        raise NormaliseError(f"{path}: cannot read the statistics ({err})") from err
    if not isinstance(stats, dict) or stats.get("format") != STATS_FORMAT:
        raise NormaliseError(
            f"{path} does not hold napari-imseq normalisation statistics; compute them with "
            f"`imseq normalise ... --stats {os.path.basename(path)}` (a missing file is created)"
        )
    return stats


# ---- the mapping ------------------------------------------------------------------------------
def _match_lut(src: np.ndarray, ref: np.ndarray, dtype: np.dtype) -> np.ndarray:
    s = np.cumsum(src, dtype=np.float64)
    r = np.cumsum(ref, dtype=np.float64)
    s /= max(s[-1], 1.0)
    r /= max(r[-1], 1.0)
    lut = np.searchsorted(r, s - 1e-12, side="left")
    # values the source sample never held map inside the reference's range, not to 0
    present = np.flatnonzero(ref)
    lo, hi = (present[0], present[-1]) if len(present) else (0, len(ref) - 1)
    return np.clip(lut, lo, hi).astype(dtype)


class Normaliser:
    """The per-frame mapping: look-up tables (one, or one per colour channel) applied as
    ``channels`` says; picklable, so it travels to workers."""

    def __init__(self, luts: list[np.ndarray], mode: str, dtype: str):
        self.luts, self.mode, self.dtype = luts, mode, np.dtype(dtype)

    @classmethod
    def build(
        cls,
        method: str,
        mode: str,
        dtype: str,
        hists: list[np.ndarray],
        percentiles: tuple[float, float] = (0.5, 99.5),
        reference: list[np.ndarray] | None = None,
    ) -> Normaliser:
        dtype_ = np.dtype(dtype)
        levels = _levels(dtype_, "")
        ramp = np.arange(levels, dtype=dtype_)[None]  # 2-D: rescale takes frames
        luts = []
        for k, hist in enumerate(hists):
            if method == "stretch":
                lo, hi = (_percentile(hist, q) for q in percentiles)
                luts.append(rescale(ramp, in_range=(lo, hi))[0])
            elif method == "equalize":
                luts.append(_equalize_lut(hist, dtype_))
            else:
                if reference is None:
                    raise NormaliseError("method='match' needs a reference histogram")
                luts.append(_match_lut(hist, reference[min(k, len(reference) - 1)], dtype_))
        return cls(luts, mode, dtype)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if frame.dtype != self.dtype:
            raise NormaliseError(
                f"a {frame.dtype} frame cannot take a mapping built for {self.dtype} data; "
                f"compute statistics for each dtype separately"
            )
        if not (frame.ndim == 3 and frame.shape[2] in (3, 4)):
            return self.luts[0][frame]
        if self.mode == "luminance":
            return on_luminance(frame, lambda y: self.luts[0][y])
        if self.mode == "per-channel":
            rgb = np.stack([self.luts[c][frame[..., c]] for c in range(3)], -1)
        else:
            rgb = self.luts[0][frame[..., :3]]
        if has_alpha(frame):
            return keep_alpha(frame, np.concatenate([rgb, frame[..., 3:]], -1))
        return rgb


# ---- the passes -------------------------------------------------------------------------------
def _sample_task(path: str, *, cancel, method: str, channels: str | None) -> dict[str, Any]:
    out = sample_file(path, method=method, channels=channels)
    out["hists"] = [_sparse(h) for h in out["hists"]]  # small to send back
    return out


def _every(sources: Any, max_files: int) -> tuple[Iterable[str], int, int]:
    """Evenly spaced sources (at most ``max_files``), their count, and the total count."""
    n = len(sources)
    step = max(1, math.ceil(n / max(1, int(max_files))))
    return itertools.islice(iter(sources), 0, None, step), len(range(0, n, step)), n


def compute_stats(
    sources: Iterable[str | os.PathLike],
    *,
    method: str = "stretch",
    percentiles: tuple[float, float] = (0.5, 99.5),
    channels: str | None = None,
    reference: str | os.PathLike | None = None,
    max_files: int = 500,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Global statistics of a corpus from a subsample (pass 1), as a JSON-ready dict.

    ``sources`` is a list of paths or a :class:`FileList`; at most ``max_files`` evenly spaced
    files are sampled with :func:`sample_file`. The dict records what was read
    (``sample.pixels_read``, ``sample.fraction`` of the corpus's pixels, estimated from the
    sampled files) and, for ``match``, the reference file's histogram.
    """
    mode = _channel_mode(method, channels)
    lo_q, hi_q = (float(q) for q in percentiles)
    if not 0 <= lo_q < hi_q <= 100:
        raise NormaliseError(f"percentiles={percentiles!r}: give 0 <= low < high <= 100")
    if method == "match" and reference is None:
        raise NormaliseError("method='match' needs reference= (an image or sequence to match)")
    if not hasattr(sources, "__len__"):
        sources = list(sources)
    picked, k, n = _every(sources, max_files)
    if n == 0:
        raise NormaliseError("no input files were given")
    acc: dict[str, Any] = {"hists": None, "read": 0, "total": 0, "dtype": None, "pyr": 0}
    acc["colour"] = None
    errors: list[tuple[str, str]] = []

    def add(item: Any, status: str, value: Any) -> None:
        if status != "done":
            return
        if acc["dtype"] is None:
            acc["dtype"], acc["colour"] = value["dtype"], value["colour"]
        elif value["dtype"] != acc["dtype"] or value["colour"] != acc["colour"]:
            kind = lambda d, c: f"{d} {'colour' if c else 'gray'}"  # noqa: E731
            errors.append(
                (item, f"{item} holds {kind(value['dtype'], value['colour'])} frames, the "
                       f"first sampled file {kind(acc['dtype'], acc['colour'])}; normalise "
                       f"each kind of data separately")
            )  # fmt: skip
            return
        levels = _levels(np.dtype(value["dtype"]), item)
        hists = [_dense(h, levels) for h in value["hists"]]
        acc["hists"] = (
            hists
            if acc["hists"] is None
            else [a + b for a, b in zip(acc["hists"], hists, strict=True)]
        )
        acc["read"] += value["pixels_read"]
        acc["total"] += value["pixels_total"]
        acc["pyr"] += value["source"].startswith("pyramid")

    with cluster(client, workers=workers, scheduler=scheduler, quiet=not progress) as c:
        report = run_tasks(
            c,
            _sample_task,
            picked,
            kwargs={"method": method, "channels": mode},
            total=k,
            desc="statistics",
            progress=progress,
            on_result=add,
            keep_results=False,
        )
    failures = report.failed + errors
    if acc["hists"] is None:
        why = "; ".join(f"{w}" for _, w in failures[:3])
        raise NormaliseError(f"no sampled file could be read ({why})")
    hists = acc["hists"]
    stats: dict[str, Any] = {
        "format": STATS_FORMAT,
        "version": 1,
        "method": method,
        "scope": "global",
        "channels": mode,
        "dtype": acc["dtype"],
        "colour": acc["colour"],
        "percentiles": [lo_q, hi_q],
        **_summary(hists, (lo_q, hi_q)),
        "histograms": [_sparse(h) for h in hists],
        "sample": {
            "files": len(report.done) - len(errors),
            "files_total": n,
            "pyramid_files": acc["pyr"],
            "pixels_read": acc["read"],
            "pixels_total_estimate": round(acc["total"] * n / max(1, k)),
            "fraction": acc["read"] / max(1.0, acc["total"] * n / max(1, k)),
            "failed": [[str(s), w] for s, w in failures],
        },
    }
    if reference is not None:
        ref = sample_file(reference, method=method, channels=mode)
        if ref["dtype"] != acc["dtype"]:
            raise NormaliseError(
                f"{reference}: the reference holds {ref['dtype']} data, the corpus {acc['dtype']}"
            )
        stats["reference"] = {
            "path": os.fspath(reference),
            "histograms": [_sparse(h) for h in ref["hists"]],
        }
    return stats


def _normaliser_from(stats: dict[str, Any]) -> Normaliser:
    levels = _levels(np.dtype(stats["dtype"]), "statistics")
    hists = [_dense(h, levels) for h in stats["histograms"]]
    ref = stats.get("reference")
    reference = [_dense(h, levels) for h in ref["histograms"]] if ref else None
    return Normaliser.build(
        stats["method"], stats["channels"], stats["dtype"], hists, tuple(stats["percentiles"]),
        reference,
    )  # fmt: skip


_TIFF_EXTS = (".tif", ".tiff")


def _plain_tiff(
    src: str, dst: str, mapping: Normaliser | None, cancel, per_file: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """A plain one-page TIFF to a new TIFF through the mapping, in two reads and one write
    (:func:`~napari_imseq.io.tiff.read_plain_page`, :func:`~napari_imseq.io.tiff.write_plain_page`:
    the same output as :func:`~napari_imseq.convert.convert`, byte for byte); None for any other
    file, which then takes the general path (and its error reports). With ``per_file`` the
    mapping is built from all the frame's pixels, as :func:`sample_file` (``whole=True``) does
    for a one-frame file, without reading it twice."""
    import time

    from ..convert import ConversionCancelled, _cancel_requested
    from ..io.tiff import read_plain_page, write_plain_page

    if not (src.lower().endswith(_TIFF_EXTS) and dst.lower().endswith(_TIFF_EXTS)):
        return None
    t0 = time.perf_counter()
    got = read_plain_page(src)
    if got is None:
        return None
    frame, fps = got
    stats = None
    if per_file is not None:
        colour = frame.ndim == 3
        planes = _planes(frame[None], colour, per_file["channels"])
        levels = _levels(frame.dtype, src)
        hists = [np.bincount(p.ravel(), minlength=levels) for p in planes]
        mapping = Normaliser.build(
            per_file["method"], per_file["channels"], str(frame.dtype), hists,
            tuple(per_file["percentiles"]), per_file.get("reference"),
        )  # fmt: skip
        pixels = frame.shape[0] * frame.shape[1]
        stats = {"pixels_read": pixels, "pixels_total": pixels}
        if per_file["method"] == "stretch":
            stats.update(_summary(hists, tuple(per_file["percentiles"])))
    out = mapping(frame)
    if out.dtype != frame.dtype or out.shape != frame.shape:
        return None
    if _cancel_requested(cancel):
        raise ConversionCancelled(f"conversion to {dst} cancelled; nothing was written")
    path = os.path.abspath(dst)
    written = write_plain_page(path, out, fps)
    seconds = time.perf_counter() - t0
    return {
        "source": os.path.abspath(src), "path": path, "frames": 1, "bytes": written,
        "seconds": round(seconds, 3), "fps": round(1 / seconds, 1) if seconds else None,
        "lossy": False, "stats": stats,
    }  # fmt: skip


def _normalise_one(
    src: str,
    *,
    cancel,
    to: str,
    fmt: str | None,
    mapping: Normaliser | None,
    per_file: dict[str, Any] | None,
    overwrite: bool,
) -> dict[str, Any] | Skipped:
    """On a worker: normalise one file into ``to``."""
    from ..convert import convert
    from ..io._writer import partial_path

    ext = fmt or os.path.splitext(os.path.normpath(src))[1].lstrip(".") or "tif"
    dst = output_path(src, to, ext)
    if os.path.lexists(dst) and not overwrite:
        return Skipped(f"{dst} exists")
    redo = overwrite or os.path.lexists(partial_path(os.path.abspath(dst)))
    if not redo:
        out = _plain_tiff(src, dst, mapping, cancel, per_file)
        if out is not None:
            return out
    stats = None
    if per_file is not None:  # this file's own statistics, from its subsample
        s = sample_file(src, method=per_file["method"], channels=per_file["channels"], whole=True)
        ref = per_file.get("reference")
        mapping = Normaliser.build(
            per_file["method"], per_file["channels"], s["dtype"], s["hists"],
            tuple(per_file["percentiles"]), ref,
        )  # fmt: skip
        stats = {"pixels_read": s["pixels_read"], "pixels_total": s["pixels_total"]}
        if per_file["method"] == "stretch":
            stats.update(_summary(s["hists"], tuple(per_file["percentiles"])))
    out = convert(src, dst, transform=mapping, overwrite=redo, progress=False, cancel=cancel)
    out["stats"] = stats
    return out


def normalise(
    sources: Iterable[str | os.PathLike],
    to: str | os.PathLike,
    *,
    method: str = "stretch",
    per_file: bool = False,
    stats: dict[str, Any] | str | os.PathLike | None = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
    channels: str | None = None,
    reference: str | os.PathLike | None = None,
    format: str | None = None,
    max_files: int = 500,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> BatchReport:
    """Normalise every source into ``to`` (same name; ``format`` changes the extension).

    Global statistics (the default) come from :func:`compute_stats`; ``stats`` may be a dict,
    or a JSON path: an existing file is reused (the same mapping on new data), a missing one is
    written (default ``TO/imseq-stats.json``), so an interrupted run resumes with the same
    mapping. ``per_file=True`` gives each file its own statistics (each image's exposure standardised):
    from all its pixels when it has at most 8 frames (they are read to be mapped anyway, so the
    mapping pass then finds them in the page cache), else from its subsample; the JSON then holds the parameters and, for ``stretch``,
    each file's range. Returns the :class:`BatchReport` of pass 2 with ``report.stats`` (the
    statistics) and ``report.stats_seconds`` (pass 1's time).
    """
    import time

    to = os.fspath(to)
    os.makedirs(to, exist_ok=True)
    mode = _channel_mode(method, channels)
    if not hasattr(sources, "__len__"):
        sources = list(sources)
    stats_path = None
    if stats is None or isinstance(stats, (str, os.PathLike)):
        stats_path = os.fspath(stats) if stats is not None else os.path.join(to, "imseq-stats.json")
        stats = load_stats(stats_path) if os.path.exists(stats_path) else None
    with cluster(client, workers=workers, scheduler=scheduler, quiet=not progress) as c:
        t0 = time.perf_counter()
        mapping = per = None
        if per_file:
            earlier = stats.get("files", {}) if stats and stats.get("scope") == "per-file" else {}
            ref_hists = None
            if method == "match":
                if reference is None:
                    raise NormaliseError("method='match' needs reference=")
                ref_hists = sample_file(reference, method=method, channels=mode)["hists"]
            stats = {
                "format": STATS_FORMAT,
                "version": 1,
                "method": method,
                "scope": "per-file",
                "channels": mode,
                "percentiles": [float(q) for q in percentiles],
                "files": dict(earlier),  # a resumed run keeps the files done before
            }
            per = {**stats, "reference": ref_hists}
            del per["files"]
        elif stats is None:
            stats = compute_stats(
                sources, method=method, percentiles=percentiles, channels=mode,
                reference=reference, max_files=max_files, client=c, progress=progress,
            )  # fmt: skip
        elif stats.get("method") != method:
            raise NormaliseError(
                f"{stats_path or 'stats'} holds statistics for method {stats.get('method')!r}, "
                f"not {method!r}; choose another --stats file to compute new ones"
            )
        elif stats.get("scope") != "global":
            raise NormaliseError(
                f"{stats_path or 'stats'}: per-file statistics cannot be applied to other files; "
                f"give global statistics or per_file=True"
            )
        if not per_file:
            mapping = _normaliser_from(stats)
        stats_seconds = time.perf_counter() - t0
        if stats_path is not None and not per_file:
            save_stats(stats, stats_path)
        # the mapping (a LUT of at most 65536 entries per channel) travels with each task group;
        # a scattered future inside the task arguments is lost when the client is not dask's
        # default (we never make ours the default: the caller's dask work stays theirs)
        shared = mapping
        report = run_tasks(
            c,
            _normalise_one,
            (os.fspath(s) for s in sources),
            kwargs={
                "to": to, "fmt": format, "mapping": shared, "per_file": per,
                "overwrite": overwrite,
            },
            total=len(sources),
            desc="normalise",
            progress=progress,
            keep_results=per_file,  # per-file statistics go to the JSON
        )  # fmt: skip
    if per_file:
        stats["files"].update(
            (src, value["stats"]) for src, value in report.results.items() if value.get("stats")
        )
        if stats_path is not None:
            save_stats(stats, stats_path)
    report.stats = stats  # type: ignore[attr-defined]
    report.stats_seconds = stats_seconds  # type: ignore[attr-defined]
    return report
