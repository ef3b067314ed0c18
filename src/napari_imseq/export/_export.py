"""``export()``: stream what the viewer shows (or a layer's values) to a file.

The frames of an export are presented to :func:`napari_imseq.convert` as a virtual
:class:`~napari_imseq.io._base.Sequence`, so an export inherits the conversion machinery:
the writer chosen by the extension, ``.partial`` files, ``overwrite`` consent, fps and
timestamps, and the read and write worker threads joined by a bounded queue. Inside the
virtual sequence, each layer is read by its own prefetch thread (bounded queue, the format's
sequential iterator where the layer is an imseq file), so reading, compositing (the conversion's
read thread) and encoding (its write thread) overlap.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..convert import ConversionCancelled, convert
from ..io._base import Sequence
from ._composite import Compositor
from ._scene import DEFAULT_FPS, ExportError, LayerView, Scene, backing_sequence

__all__ = ["ExportCancelled", "ExportProgress", "export"]

ExportCancelled = ConversionCancelled
_PREFETCH = 4  # frames read ahead per layer
#: x264 preset of H.264 exports unless one is given: 1.5-2x less encoder CPU than x264's own
#: default (medium) for 0.1-0.6 dB less PSNR at about the same size (docs/export.md, Speed)
DEFAULT_H264_PRESET = "faster"


@dataclass
class ExportProgress:
    """What a progress callback receives after each written frame."""

    done: int
    total: int
    elapsed: float
    #: frames per second over the recent frames
    rate: float
    #: seconds left at that rate (None before the rate is known)
    remaining: float | None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


# ---- reading one layer ---------------------------------------------------------------------
class _LayerReader:
    """The 2-D slices of one layer along the exported time steps."""

    def __init__(self, layer: LayerView, scene: Scene):
        self.layer = layer
        self.scene = scene
        seq = backing_sequence(layer.data)
        frames_are_slices = scene.time_dim(layer) == 0 and layer.ndim == 3
        self.seq = seq if frames_are_slices else None

    def read(self, key: tuple | None) -> np.ndarray | None:
        if key is None:
            return None
        if self.seq is not None:
            return self.seq[key[0]]
        data = self.layer.data
        if hasattr(data, "dask") and isinstance(key[0], int):
            # a graph of our own: napari's opportunistic dask cache tracks tasks by key and
            # fails (KeyError) when the GUI slices the same key in another thread at that time
            return np.asarray(data[(slice(key[0], key[0] + 1), *key[1:])].compute())[0]
        block = data[key]
        if hasattr(block, "compute"):
            block = block.compute()
        return np.asarray(block)

    def stream(self, steps: range) -> Iterator[np.ndarray | None]:
        keys = self.scene.frame_keys(self.layer, steps)
        if self.seq is not None and keys and all(k is not None for k in keys):
            ts = [k[0] for k in keys]
            d = ts[1] - ts[0] if len(ts) > 1 else 1
            if d > 0 and ts == list(range(ts[0], ts[-1] + 1, d)):
                yield from self.seq.iter_frames(ts[0], ts[-1] + 1, d)
                return
        last_key, last = object(), None
        for key in keys:
            if key != last_key:  # a layer without the time axis is read once
                last_key, last = key, self.read(key)
            yield last


class _Prefetch:
    """A thread that runs a generator ahead into a bounded queue."""

    _END = object()

    def __init__(self, gen: Iterator, size: int, name: str):
        self.q: queue.Queue = queue.Queue(maxsize=size)
        self.stop = threading.Event()
        self.gen = gen
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self.gen:
                if not self._put(("ok", item)):
                    return
        except BaseException as err:  # handed to the consumer
            self._put(("err", err))
            return
        finally:
            close = getattr(self.gen, "close", None)
            if close is not None:
                close()
        self._put(("end", None))

    def get(self) -> Any:
        while True:
            try:
                kind, item = self.q.get(timeout=0.1)
            except queue.Empty:
                if not self.thread.is_alive() and self.q.empty():
                    raise RuntimeError("a reader thread ended without a frame") from None
                continue
            if kind == "err":
                raise item
            if kind == "end":
                raise RuntimeError("a layer ended before the export")
            return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)


# ---- the frames of an export as a Sequence ----------------------------------------------------
class _ExportFrames(Sequence):
    """Virtual sequence: frame ``i`` is what the export writes for time step ``i``."""

    format_name = "export"
    folder = True  # the base class checks the path it is given: ours is this package's folder

    def __init__(
        self,
        label: str,
        readers: list[_LayerReader],
        make_frame: Callable[[int, list], np.ndarray],
        n: int,
        fps: float | None,
        timestamps: np.ndarray | None,
        bit_depth: int | None,
        probe: int = 0,
        known: tuple[tuple[int, ...], np.dtype] | None = None,
    ):
        super().__init__(os.path.dirname(os.path.abspath(__file__)))
        self.path = label  # messages name the export, not a file
        self.readers, self.make_frame = readers, make_frame
        self._n = n
        self._fps, self._timestamps = fps, timestamps
        if known is None:  # render one frame to learn them (napari's renderer draws it)
            first = self._read(probe)
            known = first.shape, first.dtype
        self._frame_shape, self._dtype = tuple(known[0]), np.dtype(known[1])
        self._bit_depth = bit_depth

    def __len__(self) -> int:
        return self._n

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._frame_shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def bit_depth(self) -> int:
        return self._bit_depth or self._dtype.itemsize * 8

    def _format_metadata(self) -> dict[str, Any]:
        return {"fps": self._fps, "timestamps": self._timestamps}

    def _read(self, index: int) -> np.ndarray:
        slices = [r.read(r.scene.frame_keys(r.layer, [index])[0]) for r in self.readers]
        return self.make_frame(index, slices)

    def iter_frames(self, start=None, stop=None, step=None) -> Iterator[np.ndarray]:
        steps = range(*slice(start, stop, step).indices(len(self)))
        if not steps:
            return
        feeds = [
            _Prefetch(r.stream(steps), _PREFETCH, f"imseq-export-read-{k}")
            for k, r in enumerate(self.readers)
        ]
        try:
            for i in steps:
                yield self.make_frame(i, [f.get() for f in feeds])
        finally:
            for f in feeds:
                f.close()


# ---- the public function -----------------------------------------------------------------------
def _is_viewer(source: Any) -> bool:
    return hasattr(source, "layers") and hasattr(source, "dims") and hasattr(source, "screenshot")


def _camera(viewer: Any) -> Any:
    scene = getattr(viewer, "scene", None)  # napari >= 0.9; viewer.camera before
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _layer_list(source: Any, mode: str) -> list[Any]:
    if _is_viewer(source):
        if mode == "data":
            selected = list(getattr(source.layers, "selection", []))
            if len(selected) == 1:
                return selected
            active = getattr(source.layers.selection, "active", None)
            if active is not None:
                return [active]
            images = [lyr for lyr in source.layers if lyr.visible and _is_image(lyr)]
            if len(images) == 1:
                return images
            raise ExportError(
                "data mode writes one layer's values: select one layer in the layer list (or "
                "pass [layer])"
            )
        return [lyr for lyr in source.layers if lyr.visible]
    if isinstance(source, (list, tuple)):
        return list(source)
    if hasattr(source, "data") and hasattr(source, "name"):
        return [source]
    raise ExportError(
        f"export() takes a napari Viewer, a layer or a list of layers, not {type(source).__name__}"
    )


def _is_image(layer: Any) -> bool:
    return type(layer).__name__.lower() == "image" or getattr(layer, "_type_string", "") == "image"


def _frame_range(frames: Any, n: int) -> tuple[int | None, int | None, int | None]:
    if frames is None:
        return None, None, None
    if isinstance(frames, slice):
        return frames.start, frames.stop, frames.step
    if isinstance(frames, range):
        return frames.start, frames.stop, frames.step
    if isinstance(frames, (tuple, list)) and 1 <= len(frames) <= 3:
        parts = list(frames) + [None] * (3 - len(frames))
        return parts[0], parts[1], parts[2]
    raise ExportError(f"frames={frames!r}: pass a slice, a range or (start, stop[, step])")


def _view_region(viewer: Any, scene: Scene) -> tuple[int, int, int, int]:
    """The current field of view in output pixels of the data grid."""
    ya, xa = (scene.axes[d] for d in scene.displayed)
    camera = _camera(viewer)
    cy, cx = (float(c) for c in camera.center[-2:])
    zoom = float(camera.zoom)
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9; viewer._canvas_size before
    ch, cw = canvas.size if hasattr(canvas, "size") else viewer._canvas_size  # screen pixels
    hy, hx = ch / zoom / 2, cw / zoom / 2
    y0 = int(np.floor((cy - hy - ya.start) / ya.step + 0.5))
    x0 = int(np.floor((cx - hx - xa.start) / xa.step + 0.5))
    return y0, int(y0 + round(2 * hy / ya.step)), x0, int(x0 + round(2 * hx / xa.step))


def _nice_length(pixels: float, step: float) -> tuple[int, float]:
    """A round world length near ``pixels`` output pixels: (pixels, world units)."""
    world = pixels * step
    exp = 10 ** np.floor(np.log10(world))
    nice = min((m * exp for m in (1, 2, 5, 10)), key=lambda v: abs(v - world))
    return int(round(nice / step)), float(nice)


def _overlay(
    spec: dict | None, grid, scale_unit: str, time_of: Callable[[int], float]
) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """A function burning the asked overlays into an RGB frame (None when none asked)."""
    if not spec:
        return None
    from ..transforms import draw_text, scale_bar  # the package: see transforms/__init__

    unknown = set(spec) - {"timestamp", "scale_bar", "text"}
    if unknown:
        raise ExportError(
            f"unknown overlay(s) {sorted(unknown)}; known: timestamp, scale_bar, text"
        )
    h, w = grid.shape
    size = max(12, h // 30)

    def burn(frame: np.ndarray, index: int) -> np.ndarray:
        t = time_of(index)
        ts = spec.get("timestamp")
        if ts:
            fmt = ts if isinstance(ts, str) else "t = {timestamp:.3f} s"
            frame = draw_text(frame, text=fmt, position=(8, 8), size=size, index=index, timestamp=t)
        text = spec.get("text")
        if text:
            frame = draw_text(
                frame, text=str(text), position=(h - size - 12, 8), size=size, index=index,
                timestamp=t,
            )  # fmt: skip
        bar = spec.get("scale_bar")
        if bar:
            opts = dict(bar) if isinstance(bar, dict) else {}
            if "length" not in opts:
                px, world = _nice_length(w / 5, grid.xs.step)
                opts["length"] = px
                opts.setdefault("label", f"{world:g} {scale_unit}".strip())
            opts.setdefault("size", size)
            frame = scale_bar(frame, **opts)
        return frame

    return burn


def export(
    source: Any,
    path: str | os.PathLike,
    *,
    mode: str = "rendered",
    frames: Any = None,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool | Callable[[ExportProgress], Any] = True,
    cancel: threading.Event | Callable[[], bool] | None = None,
    region: tuple[int, int, int, int] | str | None = None,
    axis: int | None = None,
    overlays: dict | None = None,
    **codec_options: Any,
) -> dict[str, Any]:
    """Write what a napari viewer shows (``mode="rendered"``) or a layer's values (``"data"``).

    Parameters
    ----------
    source
        A napari ``Viewer`` (its visible layers; in data mode its selected layer), a layer or a
        list of layers (bottom to top).
    path
        Output file; its extension picks the writer (``.mkv`` FFV1, ``.mov`` PNG, ``.mp4``
        H.264, ``.webm``, ``.gif``, ``.tif``, ``.zarr``, a folder ending in ``/`` ...).
    mode
        ``"rendered"``: RGB frames composited like napari draws them (colormaps, contrast limits,
        gamma, opacity, blending; RGB and labels layers), at the data's resolution. ``"data"``:
        the layer's values, any dtype, 16 bits kept, lossless by default.
    frames
        The time steps to write: a slice, range or ``(start, stop[, step])``; default all.
    fps
        Output frame rate. Default: the layers' recording fps (``layer.metadata["fps"]``)
        divided by the step, with the recording's per-frame timestamps; when no layer has one,
        :data:`DEFAULT_FPS` (30), reported in the summary's ``fps_source``.
    size
        ``(height, width)`` of the rendered frames (default: data resolution).
    region
        ``(y0, y1, x0, x1)`` in data pixels, or ``"view"``: the viewer's field of view.
    axis
        World dimension exported as time (default: the first one not displayed); other
        dimensions stay at the viewer's current position.
    overlays
        Burnt into rendered frames: ``{"timestamp": True | "fmt", "scale_bar": True | dict,
        "text": "..."}`` (formats may use ``{index}`` and ``{timestamp}``).
    progress
        True: a progress bar on stderr; a callable receives an :class:`ExportProgress` after
        every frame; False: silent.
    cancel
        A ``threading.Event`` or a callable checked several times per second; when set, the
        export stops, keeps the ``.partial`` file and raises :class:`ExportCancelled`.
    codec_options
        Passed to the writer (``codec``, ``crf``, ``preset``, ``compression`` ...). H.264
        output is encoded with ``preset=DEFAULT_H264_PRESET`` ("faster") unless one is given.

    Returns the conversion summary plus ``mode``, ``fps``, ``fps_source``, ``layers`` and, when
    napari's renderer had to draw some layers, ``fallback`` (the reason).
    """
    if mode not in ("rendered", "data"):
        raise ExportError(f"mode={mode!r}: choose 'rendered' or 'data'")
    path = os.fspath(path)
    viewer = source if _is_viewer(source) else None
    raw_layers = _layer_list(source, mode)
    views = [LayerView.from_layer(lyr) for lyr in raw_layers]
    if mode == "data":
        if len(views) != 1:
            raise ExportError(f"data mode writes one layer's values; {len(views)} were given")
        if size is not None or overlays:
            raise ExportError("size= and overlays= change pixels; they apply to mode='rendered'")
    scene_views = [v for v in views if v.why_unsupported is None]
    fallback = [f"{v.name}: {v.why_unsupported}" for v in views if v.why_unsupported]
    if viewer is not None and getattr(viewer.dims, "ndisplay", 2) == 3:
        fallback.append("the viewer shows a 3-D view")
    if mode == "data" and fallback:
        raise ExportError(f"data mode cannot write {fallback[0]}")
    if fallback and viewer is None:
        raise ExportError(
            f"cannot composite {'; '.join(fallback)}; pass the viewer so napari's renderer can "
            f"draw it"
        )
    scene = _make_scene(viewer, scene_views or views, axis)
    if isinstance(region, str):
        if region != "view" or viewer is None:
            raise ExportError(f"region={region!r}: 'view' (with a viewer) or (y0, y1, x0, x1)")
        region = _view_region(viewer, scene)
    grid = scene.grid(region)

    rec_fps = scene.recording_fps()
    start, stop, step = _frame_range(frames, scene.n_frames)
    steps = range(*slice(start, stop, step).indices(scene.n_frames))
    if not steps:
        raise ExportError(
            f"frames={frames!r} selects no frame of the {scene.n_frames} on the time axis; "
            f"choose a range inside 0..{scene.n_frames - 1}"
        )
    timestamps = scene.timestamps()
    if fps is not None:
        if fps <= 0:
            raise ExportError(f"fps={fps}: the frame rate must be positive")
        fps_source = "given"
        stream_ts = None  # a chosen rate: frames evenly spaced at 1/fps
        stream_fps = float(fps) * abs(steps.step)  # convert() divides by the step
    elif rec_fps:
        fps_source = "recording"
        stream_ts, stream_fps = timestamps, rec_fps
    else:
        fps_source = f"default ({DEFAULT_FPS:g} fps: no layer records a frame rate)"
        stream_ts, stream_fps = None, DEFAULT_FPS * abs(steps.step)

    def time_of(i: int) -> float:
        if timestamps is not None:
            return float(timestamps[i] - timestamps[0])
        return i / (rec_fps or stream_fps)

    readers = [_LayerReader(v, scene) for v in scene.layers]
    bit_depth = main_calls = None
    if mode == "data":
        make_frame = _data_frames(grid, scene.layers[0])
        bit_depth = scene.layers[0].metadata.get("bit_depth")
        label = f"layer {scene.layers[0].name!r}"
        data = scene.layers[0].data
        known = (*grid.shape, *data.shape[scene.layers[0].ndim :]), np.dtype(data.dtype)
    elif fallback:
        make_frame, main_calls = _napari_frames(viewer, scene, grid, size)
        readers = []
        label = "the viewer (napari's renderer)"
        known = None
    else:
        make_frame = _rendered_frames(grid, size)
        label = "the rendered layers " + ", ".join(repr(v.name) for v in scene.layers)
        known = (*(int(s) for s in (size or grid.shape)), 3), np.dtype(np.uint8)
    if _h264(path, codec_options) and codec_options.get("preset") is None:
        codec_options["preset"] = DEFAULT_H264_PRESET
    if mode == "rendered":
        unit = scene.layers[0].unit or "px"
        burn = _overlay(overlays, grid, unit, time_of)
        if burn is not None:
            make_frame = _with_overlay(make_frame, burn)
        if path.lower().endswith((".mp4", ".m4v", ".webm")) or codec_options.get("codec") in (
            "libx264", "h264", "x264", "libx265", "hevc", "libvpx-vp9", "vp9", "mjpeg",
        ):  # fmt: skip
            make_frame = _even(make_frame)
            if known is not None:
                h, w, c = known[0]
                known = (h + h % 2, w + w % 2, c), known[1]
    frames_seq = _ExportFrames(label, readers, make_frame, scene.n_frames, stream_fps, stream_ts,
                               bit_depth, probe=steps.start, known=known)  # fmt: skip
    report = _reporter(progress, len(steps)) if callable(progress) else None
    run = dict(
        start=steps.start, stop=steps.stop, step=steps.step, overwrite=overwrite,
        progress=report if report is not None else bool(progress), cancel=cancel,
        **codec_options,
    )  # fmt: skip
    summary = _run(frames_seq, path, run, main_calls)
    out_fps = fps if fps is not None else stream_fps / abs(steps.step)
    summary["frames_per_second"] = summary.pop("fps")  # the speed of the export
    summary.update(
        mode=mode,
        fps=round(float(out_fps), 6),
        fps_source=fps_source,
        layers=[v.name for v in views],
        size=list(frames_seq.frame_shape[:2]),
    )
    if fallback:
        summary["fallback"] = "drawn by napari's renderer: " + "; ".join(fallback)
    return summary


def _h264(path: str, codec_options: dict) -> bool:
    codec = codec_options.get("codec")
    if codec is not None:
        return codec in ("libx264", "h264", "x264")
    return path.lower().endswith((".mp4", ".m4v"))


def _run(frames_seq: _ExportFrames, path: str, run: dict, calls: queue.Queue | None) -> dict:
    if calls is None:
        return convert(frames_seq, path, **run)
    # napari's renderer must be called on the main thread: run the conversion in a thread and
    # serve render requests here until it ends
    result: dict[str, Any] = {}

    def work():
        try:
            result["summary"] = convert(frames_seq, path, **run)
        except BaseException as err:  # re-raised on the calling thread
            result["error"] = err
        finally:
            calls.put(None)

    worker = threading.Thread(target=work, name="imseq-export", daemon=True)
    worker.start()
    while True:
        job = calls.get()
        if job is None:
            break
        job()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["summary"]


def _make_scene(viewer: Any, views: list[LayerView], axis: int | None) -> Scene:
    if viewer is None:
        return Scene(views, axis=axis)
    ndim = max(v.ndim for v in views)
    off = viewer.dims.ndim - ndim
    displayed = tuple(d - off for d in viewer.dims.displayed[-2:])
    if axis is None:
        free = [d - off for d in viewer.dims.not_displayed if d >= off]
        axis = free[0] if free else None
    return Scene(views, axis=axis, point=tuple(viewer.dims.point), displayed=displayed)


def _rendered_frames(grid, size) -> Callable[[int, list], np.ndarray]:
    import cv2

    comp = Compositor(grid)

    def make(index: int, slices: list) -> np.ndarray:
        rgb = comp(slices)
        if size is not None and tuple(size) != rgb.shape[:2]:
            h, w = int(size[0]), int(size[1])
            shrink = h < rgb.shape[0] and w < rgb.shape[1]
            rgb = cv2.resize(
                rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
        return rgb

    return make


def _data_frames(grid, layer: LayerView) -> Callable[[int, list], np.ndarray]:
    rows, cols, paste = grid.sampling(layer)
    if paste is None or paste != (slice(0, grid.shape[0]), slice(0, grid.shape[1])):
        raise ExportError(f"the region lies outside layer {layer.name!r}")

    def make(index: int, slices: list) -> np.ndarray:
        frame = slices[0]
        if frame is None:
            raise ExportError(f"layer {layer.name!r} has no data at time step {index}")
        whole = rows == slice(0, frame.shape[0]) and cols == slice(0, frame.shape[1])
        return frame if whole else np.ascontiguousarray(frame[rows][:, cols])

    return make


def _with_overlay(make, burn):
    def made(index: int, slices: list) -> np.ndarray:
        return burn(make(index, slices), index)

    return made


def _even(make):
    """4:2:0 codecs need even sizes: pad the bottom/right edge with one black row/column."""

    def made(index: int, slices: list) -> np.ndarray:
        rgb = make(index, slices)
        h, w = rgb.shape[:2]
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)))
        return rgb

    return made


def _napari_frames(viewer: Any, scene: Scene, grid, size) -> tuple[Callable, queue.Queue | None]:
    """Frames from napari's own renderer (screenshots at zoom 1 centred on the region)."""
    h, w = (int(s) for s in (size or grid.shape))
    requests: queue.Queue = queue.Queue()
    axis_world = scene.axis + (viewer.dims.ndim - scene.ndim) if scene.axis is not None else None
    centre = (grid.ys.world((grid.ys.n - 1) / 2).item(), grid.xs.world((grid.xs.n - 1) / 2).item())
    zoom = min(h / (grid.ys.n * grid.ys.step), w / (grid.xs.n * grid.xs.step))

    def shoot(index: int) -> np.ndarray:
        camera = _camera(viewer)
        saved = (camera.center, camera.zoom, viewer.dims.current_step)
        try:
            camera.zoom = zoom
            camera.center = (*camera.center[:-2], *centre)
            if axis_world is not None:
                viewer.dims.set_current_step(axis_world, index)
            img = viewer.screenshot(canvas_only=True, size=(h, w), flash=False)
        finally:
            camera.center, camera.zoom = saved[0], saved[1]
            viewer.dims.current_step = saved[2]
        return np.ascontiguousarray(np.asarray(img)[..., :3])

    on_main = threading.current_thread() is threading.main_thread()

    def make(index: int, slices: list) -> np.ndarray:
        if threading.current_thread() is threading.main_thread():
            return shoot(index)
        if on_main:  # export() waits on the main thread and runs our requests there
            done: queue.Queue = queue.Queue()
            requests.put(lambda: done.put(_call(shoot, index)))
            kind, value = done.get()
        else:  # export() runs in a worker: Qt's event loop runs the request
            from superqt.utils import ensure_main_thread

            kind, value = ensure_main_thread(await_return=True)(_call)(shoot, index)
        if kind == "err":
            raise value
        return value

    return make, (requests if on_main else None)


def _call(func, *args):
    try:
        return "ok", func(*args)
    except BaseException as err:
        return "err", err


def _reporter(callback: Callable[[ExportProgress], Any], total: int) -> Callable[[int, int], None]:
    t0 = time.perf_counter()
    recent: list[tuple[float, int]] = []

    def report(done: int, _total: int) -> None:
        now = time.perf_counter()
        recent.append((now, done))
        while len(recent) > 30:
            recent.pop(0)
        (ta, da), (tb, db) = recent[0], recent[-1]
        rate = (db - da) / (tb - ta) if tb > ta else done / max(now - t0, 1e-9)
        left = (total - done) / rate if rate > 0 else None
        callback(ExportProgress(done, total, now - t0, rate, left))

    return report
