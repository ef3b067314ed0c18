"""Dock widget: build a per-frame pipeline on an image layer, preview it live, apply it lazily.

The widget only arranges the public API (:mod:`napari_imseq.transforms`):

* steps and their parameters, with controls generated from the transforms' signatures
  (:func:`~napari_imseq.transforms._registry.describe`): numbers bounded by the layer's dtype
  (0..65535 for uint16, unbounded for floats, signed offsets), pairs for ranges, lists for
  colormaps and dtypes, "auto" for optional values; ranges start at the layer's contrast limits;
* one preview layer, the pipeline applied to the current frame only, updated in place when the
  frame or a parameter changes (computed off the GUI thread once a frame takes longer than
  ``async_after`` seconds, stale requests dropped), removed when the widget closes or hides
  and when the pipeline is applied;
* "Apply": a new lazy layer (the pipeline mapped over frames by dask) that looks like the
  preview (contrast limits, colormap, gamma, opacity, blending, rgb);
* JSON save/load (the same steps as ``imseq convert --pipeline``).

Gray and RGB(A) layers of any dtype and any number of leading axes are handled: frames are
the last two axes (plus the colour axis of RGB layers); ``{index}`` and ``{timestamp}`` follow
the first axis. Errors are shown in the widget, never raised into napari.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..transforms import Pipeline, available, estimate_histogram
from ..transforms._registry import ParamInfo, describe, dtype_range

PREVIEW_SUFFIX = " [preview]"
_BIG = 1e12  # "unbounded" for spin boxes
_INT_MAX = 2**31 - 1


# ---- parameter fields ---------------------------------------------------------------------------
class _Field:
    """An editor for one parameter: magicgui widgets built from a :class:`ParamInfo`."""

    def __init__(self, info: ParamInfo, value: Any, dtype: np.dtype, on_change, layer_data=None):
        self.info, self.on_change = info, on_change
        self._layer_data = layer_data
        self.auto: CheckBox | None = None
        parts: list = []
        if info.kind == "array":
            self._array = None if value is None else np.asarray(value)
            self._label = Label(value=self._array_text())
            estimate = PushButton(text="Equalise (from layer)")
            load = PushButton(text="Load .npy/.json...")
            estimate.changed.connect(lambda *_: self._estimate())
            load.changed.connect(lambda *_: self._load())
            self.widget = Container(
                widgets=[self._label, estimate, load], layout="horizontal", labels=False
            )
            self.widget.label = info.name
            return
        n = max(info.length, 1)
        if value is None and info.spec.unit == "intensity":  # "auto": show the dtype's range
            lo, hi = dtype_range(dtype) if np.dtype(dtype).kind in "uib" else (0.0, 1.0)
            items = [lo, hi][-n:] if n <= 2 else [hi] * n
        else:
            items = list(value) if info.length and value is not None else [value] * n
        self.items = [self._leaf(info, v, dtype) for v in items]
        parts = list(self.items)
        if info.optional:
            self.auto = CheckBox(text="auto", value=value is None)
            self.auto.changed.connect(self._auto_changed)
            parts.append(self.auto)
            self._enable()
        for w in self.items:
            w.changed.connect(self._changed)
        if len(parts) == 1:
            self.widget = parts[0]
        else:
            self.widget = Container(widgets=parts, layout="horizontal", labels=False)
        self.widget.label = info.name

    def _leaf(self, info: ParamInfo, value: Any, dtype: np.dtype):
        if info.kind is bool:
            return CheckBox(value=bool(value))
        if info.choices:
            choices = list(info.choices)
            if value is not None and str(value) not in choices:
                choices.append(str(value))
            return ComboBox(choices=choices, value=str(value) if value is not None else choices[0])
        if info.kind is str:
            return LineEdit(value="" if value is None else str(value))
        lo, hi = info.limits(dtype)
        if info.kind is int:
            lo, hi = max(lo, -_INT_MAX), min(hi, _INT_MAX)
            v = 0 if value is None else int(value)
            return SpinBox(value=min(max(v, lo), hi), min=int(lo), max=int(hi))
        lo, hi = max(lo, -_BIG), min(hi, _BIG)
        whole = info.spec.unit in ("intensity", "offset") and np.dtype(dtype).kind in "uib"
        v = 0.0 if value is None else float(value)
        step = 1.0 if whole else (0.01 if info.spec.unit else 0.1)
        w = FloatSpinBox(value=min(max(v, lo), hi), min=lo, max=hi, step=step)
        w.native.setDecimals(0 if whole else (4 if info.spec.unit else 3))
        w.native.setMinimumWidth(100)
        w.native.setKeyboardTracking(False)  # one update per typed number, not per digit
        w.value = min(max(v, lo), hi)  # again: the decimals may have rounded it
        return w

    def _enable(self) -> None:
        for w in self.items:
            w.enabled = not self.auto.value

    def _auto_changed(self, *_: Any) -> None:
        self._enable()
        self._changed()

    def _changed(self, *_: Any) -> None:
        self.on_change(self.info.name, self.value)

    @property
    def value(self) -> Any:
        if self.info.kind == "array":
            return None if self._array is None else self._array.tolist()
        if self.auto is not None and self.auto.value:
            return None
        values = [w.value for w in self.items]
        return tuple(values) if self.info.length else values[0]

    # -- look-up tables ----------------------------------------------------------------------
    def _array_text(self) -> str:
        return "no table" if self._array is None else f"{len(self._array)} entries"

    def _set_array(self, arr: np.ndarray) -> None:
        self._array = np.asarray(arr)
        self._label.value = self._array_text()
        self._changed()

    def _estimate(self) -> None:
        try:
            self._set_array(estimate_histogram(self._layer_data))
        except Exception as err:  # shown by the widget
            self.on_change(self.info.name, err)

    def _load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(None, "Load look-up table", "", "*.npy *.json")
        if not path:
            return
        try:
            if path.endswith(".npy"):
                self._set_array(np.load(path))
            else:
                with open(path) as f:
                    self._set_array(np.asarray(json.load(f)))
        except (OSError, ValueError) as err:
            self.on_change(self.info.name, err)


def _short(value: Any) -> str:
    if value is None:
        return "auto"
    if isinstance(value, (list, np.ndarray)) and len(value) > 4:
        return f"<{len(value)} values>"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


# ---- the widget ---------------------------------------------------------------------------------
class TransformWidget(QWidget):
    """Pipeline editor with live preview; ``napari_viewer`` is injected by napari."""

    #: previews slower than this (seconds) are computed off the GUI thread from then on
    async_after = 0.05

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._steps: list[tuple[str, dict[str, Any]]] = []
        self._fields: dict[str, _Field] = {}
        self._param_box: Container | None = None
        self._editing = -1
        self._preview = None  # the one preview layer
        self._auto_limits: tuple[float, float] | None = None
        self._version = 0  # bumped by every change of steps or parameters
        self._shown_key: Any = None
        self._slow = False
        self._worker = None
        self._pending: dict | None = None
        self._closed = False
        self._showing = False  # adding the preview layer moves dims: no re-entry
        self._detached = False  # taken out of its dock (napari's remove_dock_widget)
        self._followed = None  # the layer whose contrast limits are followed
        self._resume_preview = False  # set by apply: the next edit turns the preview back on

        self.layer_box = ComboBox(label="layer", choices=self._image_layer_names)
        self.step_choice = ComboBox(label="transform", choices=available())
        self.add_button = QPushButton("Add step")
        self.remove_button = QPushButton("Remove")
        self.up_button = QPushButton("Up")
        self.down_button = QPushButton("Down")
        self.step_list = QListWidget()
        self.params_area = QVBoxLayout()
        self.preview_button = QPushButton("Preview on")
        self.preview_button.setCheckable(True)
        self.preview_button.setChecked(True)
        self.apply_button = QPushButton("Apply (new lazy layer)")
        self.save_button = QPushButton("Save JSON...")
        self.load_button = QPushButton("Load JSON...")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.layer_box.native)
        row = QHBoxLayout()
        row.addWidget(self.step_choice.native)
        row.addWidget(self.add_button)
        layout.addLayout(row)
        layout.addWidget(self.step_list)
        row = QHBoxLayout()
        for b in (self.remove_button, self.up_button, self.down_button):
            row.addWidget(b)
        layout.addLayout(row)
        layout.addLayout(self.params_area)
        layout.addWidget(self.preview_button)
        layout.addWidget(self.apply_button)
        row = QHBoxLayout()
        row.addWidget(self.save_button)
        row.addWidget(self.load_button)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.add_button.clicked.connect(lambda: self.add_step(self.step_choice.value))
        self.remove_button.clicked.connect(lambda: self.remove_step(self.step_list.currentRow()))
        self.up_button.clicked.connect(lambda: self.move_step(self.step_list.currentRow(), -1))
        self.down_button.clicked.connect(lambda: self.move_step(self.step_list.currentRow(), 1))
        self.step_list.currentRowChanged.connect(self._show_params)
        self.preview_button.toggled.connect(self._preview_toggled)
        self.apply_button.clicked.connect(self.apply)
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button.clicked.connect(self._load_dialog)
        self.layer_box.changed.connect(self._layer_changed)
        self._connections = [
            (self.viewer.layers.events.inserted, self._on_inserted),
            (self.viewer.layers.events.removed, self._on_removed),
            (self.viewer.dims.events.current_step, self._on_dims),
            (self.viewer.dims.events.ndisplay, self._on_dims),
            (self.viewer.dims.events.order, self._on_dims),
        ]
        for emitter, callback in self._connections:
            emitter.connect(callback)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._on_renamed)
        self._follow(self.layer)

    # ---- layers ------------------------------------------------------------------------------
    def _image_layer_names(self, *_: Any) -> list[str]:
        from napari.layers import Image

        return [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Image) and layer is not self._preview
        ]

    def _refresh_layers(self, *_: Any) -> None:
        self.layer_box.reset_choices()

    def _on_inserted(self, event: Any = None) -> None:
        if event is not None:
            event.value.events.name.connect(self._on_renamed)
        self._refresh_layers()

    def _on_renamed(self, *_: Any) -> None:
        """A layer was renamed: the choice stays on the same layer object."""
        chosen = self._followed
        self.layer_box.reset_choices()
        if chosen is not None and chosen in self.viewer.layers and chosen is not self._preview:
            if self.layer_box.value != chosen.name:
                self.layer_box.value = chosen.name

    def _on_removed(self, event: Any = None) -> None:
        if event is not None and event.value is self._preview:
            self._preview = None  # removed by the user: made again on the next update
            self._shown_key = None
        self._refresh_layers()
        if self.layer is None:
            self._drop_preview()

    def _follow(self, layer) -> None:
        """Follow the contrast limits of the chosen layer (the preview's range derives from
        them)."""
        if self._followed is not None:
            try:
                self._followed.events.contrast_limits.disconnect(self._source_limits_changed)
            except (RuntimeError, TypeError, ValueError):
                pass
        self._followed = layer
        if layer is not None:
            layer.events.contrast_limits.connect(self._source_limits_changed)

    def _source_limits_changed(self, *_: Any) -> None:
        layer, preview = self.layer, self._preview
        if layer is None or preview is None or self._showing:
            return
        try:
            limits = _display_limits(self.pipeline, layer, preview.dtype)
        except Exception:  # a broken step: its error is shown by the preview
            return
        if limits != self._auto_limits:
            _set_range(preview, preview.dtype, limits)
            preview.contrast_limits = limits
            self._auto_limits = limits

    def _layer_changed(self, *_: Any) -> None:
        self._follow(self.layer)
        self._drop_preview()
        self._slow = False
        self._show_params(self._editing)
        self.update_preview()

    @property
    def layer(self):
        name = self.layer_box.value
        if name is None or name not in self.viewer.layers:
            return None
        layer = self.viewer.layers[name]
        return None if layer is self._preview else layer

    @staticmethod
    def _frame_ndim(layer) -> int:
        return 3 if layer.rgb else 2

    def _source(self, layer):
        if getattr(layer, "multiscale", False):
            raise ValueError(
                f"layer {layer.name!r} is multiscale; transforms work on single-scale layers"
            )
        return layer.data

    def _position(self, layer) -> tuple[int, ...]:
        """Index of the frame napari shows: the layer's leading axes at the current dims point."""
        data = self._source(layer)
        lead = data.ndim - self._frame_ndim(layer)
        offset = self.viewer.dims.ndim - layer.ndim  # layer axes are the viewer's last ones
        shown = {d - offset for d in self.viewer.dims.displayed}
        if shown != {layer.ndim - 2, layer.ndim - 1}:
            raise ValueError(
                "the preview shows (Y, X) frames, the last two axes of the layer: switch to the "
                "2-D view and display those axes (transpose back) to preview"
            )
        if lead <= 0:
            return ()
        coords = np.asarray(layer.world_to_data(self.viewer.dims.point), dtype=float)[:lead]
        return tuple(
            int(min(max(round(c) if math.isfinite(c) else 0, 0), n - 1))
            for c, n in zip(coords, data.shape[:lead], strict=True)
        )

    # ---- steps -------------------------------------------------------------------------------
    @property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.steps)

    @property
    def steps(self) -> list[tuple[str, dict[str, Any]]]:
        """The pipeline's steps ``[(name, params), ...]``; assigning a new list updates the
        step list, the controls and the preview."""
        return self._steps

    @steps.setter
    def steps(self, steps: list) -> None:
        self._steps = [(name, dict(params)) for name, params in Pipeline(steps).steps]
        self._changed(select=0 if self._steps else -1)

    def _input(self, row: int) -> tuple[tuple[float, float], np.dtype] | None:
        """Display range and dtype of the frames reaching step ``row``: the layer's contrast
        limits and dtype carried through the steps before it (no data is computed)."""
        layer = self.layer
        if layer is None:
            return None
        try:
            return Pipeline(self.steps[:row]).display_range(_limits(layer), layer.dtype)
        except Exception:  # a step before it is broken: its own error is shown elsewhere
            return _limits(layer), np.dtype(layer.dtype)

    def _defaults(self, name: str) -> dict[str, Any]:
        """Every parameter of ``name``; ranges start at what the viewer would show at the end
        of the pipeline (the layer's contrast limits for a first step)."""
        state = self._input(len(self.steps))
        out: dict[str, Any] = {}
        for info in describe(name):
            value = info.default
            if state is not None and info.name == "in_range" and info.spec.unit == "intensity":
                value = state[0]
            if info.kind == "array" and value is None and state is not None:
                if state[1] in (np.uint8, np.uint16):  # a table: identity to start with
                    value = np.arange(np.iinfo(state[1]).max + 1, dtype=state[1])
            out[info.name] = value
        return out

    def add_step(self, name: str, **params: Any) -> None:
        """Add step ``name``; parameters not given take their defaults (from the layer)."""
        try:
            params = {**self._defaults(name), **params}
            Pipeline([(name, params)])  # validates the name and the parameters
        except (KeyError, TypeError) as err:
            self._error(err)
            return
        self.steps.append((name, dict(params)))
        self._changed(select=len(self.steps) - 1)

    def remove_step(self, row: int) -> None:
        if 0 <= row < len(self.steps):
            del self.steps[row]
            self._changed(select=min(row, len(self.steps) - 1))

    def move_step(self, row: int, delta: int) -> None:
        new = row + delta
        if 0 <= row < len(self.steps) and 0 <= new < len(self.steps):
            self.steps[row], self.steps[new] = self.steps[new], self.steps[row]
            self._changed(select=new)

    def set_param(self, row: int, **params: Any) -> None:
        """Change parameters of step ``row`` (its controls follow)."""
        name, current = self.steps[row]
        try:
            Pipeline([(name, {**current, **params})])
        except (KeyError, TypeError) as err:
            self._error(err)
            return
        self.steps[row] = (name, {**current, **params})
        self._changed(select=row, rebuild=True)

    def _field_changed(self, row: int, key: str, value: Any) -> None:
        if isinstance(value, Exception):
            self._error(value)
            return
        if not 0 <= row < len(self.steps):
            return
        name, current = self.steps[row]
        self.steps[row] = (name, {**current, key: value})
        self._changed(select=row, rebuild=False)

    def _changed(self, select: int, rebuild: bool = True) -> None:
        """After any edit: the list shows the pipeline, the controls the selected step."""
        self._version += 1
        if self._resume_preview:  # applied, then edited again: preview the new pipeline
            self._resume_preview = False
            self.preview_button.blockSignals(True)
            self.preview_button.setChecked(True)
            self.preview_button.blockSignals(False)
        self._sync_list(select)
        if rebuild or select != self._editing:
            self._show_params(select)
        self.update_preview()

    def _sync_list(self, select: int) -> None:
        self.step_list.blockSignals(True)
        while self.step_list.count() > len(self.steps):
            self.step_list.takeItem(self.step_list.count() - 1)
        while self.step_list.count() < len(self.steps):
            self.step_list.addItem("")
        for i, (name, params) in enumerate(self.steps):
            shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
            self.step_list.item(i).setText(f"{i + 1}. {name}({shown})")
        if 0 <= select < len(self.steps):
            self.step_list.setCurrentRow(select)
        self.step_list.blockSignals(False)

    def _show_params(self, row: int) -> None:
        if self._param_box is not None:
            self.params_area.removeWidget(self._param_box.native)
            self._param_box.native.setParent(None)
            self._param_box = None
        self._fields = {}
        self._editing = row
        if not 0 <= row < len(self.steps):
            return
        name, values = self.steps[row]
        layer = self.layer
        state = self._input(row)  # fields are bounded by the dtype reaching this step
        dtype = state[1] if state is not None else np.dtype(np.float32)
        data = None
        if layer is not None and not getattr(layer, "multiscale", False):
            data = layer.data
        for info in describe(name):
            value = values.get(info.name, info.default)
            self._fields[info.name] = _Field(
                info, value, dtype, lambda k, v, r=row: self._field_changed(r, k, v), data
            )
        box = Container(widgets=[f.widget for f in self._fields.values()])
        self._param_box = box
        self.params_area.addWidget(box.native)

    def field(self, name: str):
        """The control of parameter ``name`` of the selected step: a widget with ``.value`` for
        scalars, a list of them (``.items``) for pairs and triples."""
        f = self._fields[name]
        return f.items if f.info.length else f.items[0]

    # ---- preview -----------------------------------------------------------------------------
    def _request(self) -> dict | None:
        layer = self.layer
        if layer is None or not self.steps or not self.preview_button.isChecked():
            return None
        pos = self._position(layer)
        ts = (layer.metadata or {}).get("timestamps")
        i = pos[0] if pos else 0
        t = float(ts[i]) if ts is not None and i < len(ts) else None
        return {
            "layer": layer,
            "pos": pos,
            "index": i,
            "timestamp": t,
            "pipeline": self.pipeline,
            "key": (id(layer), pos, self._version),
        }

    def update_preview(self) -> None:
        """Show the pipeline on the current frame (only that frame is read and computed)."""
        if self._closed or self._showing or self._detached:
            return
        try:
            req = self._request()
        except Exception as err:  # no frame to preview (e.g. a 3-D view): no preview
            self._drop_preview()
            self._error(err)
            return
        if req is None:
            self._drop_preview()
            return
        if req["key"] == self._shown_key and self._preview is not None:
            return
        if self._worker is not None:  # one computation at a time; only the newest waits
            self._pending = req
            return
        if not self._slow:
            try:
                start = time.perf_counter()
                out = self._compute(req)
                self._slow = time.perf_counter() - start > self.async_after
            except Exception as err:
                self._error(err)
                return
            self._show(req, out)
            return
        self._start_worker(req)

    @staticmethod
    def _compute(req: dict) -> np.ndarray:
        frame = np.asarray(req["layer"].data[req["pos"]])
        return req["pipeline"](frame, index=req["index"], timestamp=req["timestamp"])

    def _start_worker(self, req: dict) -> None:
        from napari.qt.threading import create_worker

        worker = create_worker(self._compute, req, _start_thread=False)
        worker.returned.connect(lambda out, r=req: self._worker_done(r, out))
        worker.errored.connect(lambda err, r=req: self._worker_done(r, err))
        self._worker = worker
        self.status.setText(f"computing frame {req['index']}...")
        worker.start()

    def _worker_done(self, req: dict, out: Any) -> None:
        self._worker = None
        pending, self._pending = self._pending, None
        if self._closed:
            return
        if pending is not None and pending["key"] != req["key"]:
            self._start_worker(pending)  # the shown frame or parameters moved on: drop this
            return
        if isinstance(out, Exception):
            self._error(out)
        else:
            self._show(req, out)

    def wait(self, timeout: float = 30.0) -> None:
        """Process events until no preview is being computed (for scripts and tests)."""
        from qtpy.QtWidgets import QApplication

        end = time.monotonic() + timeout
        while (self._worker is not None or self._pending is not None) and time.monotonic() < end:
            QApplication.processEvents()
            time.sleep(0.005)

    def _show(self, req: dict, out: np.ndarray) -> None:
        self._showing = True
        try:
            self._show_frame(req, out)
        finally:
            self._showing = False

    def _show_frame(self, req: dict, out: np.ndarray) -> None:
        layer = req["layer"]
        rgb = out.ndim == 3 and out.shape[-1] in (3, 4)
        if out.ndim != (3 if rgb else 2):
            self._error(f"the pipeline made a frame of shape {out.shape}, not an image")
            return
        limits = _display_limits(req["pipeline"], layer, out.dtype)
        preview = self._preview
        if preview is not None and preview not in self.viewer.layers:
            preview = self._preview = None
        if preview is not None and preview.rgb != rgb:
            self._drop_preview()  # napari cannot switch a layer between gray and RGB
            preview = None
        if preview is None:
            self._preview = self.viewer.add_image(
                out, **_look(layer, rgb, limits), name=layer.name + PREVIEW_SUFFIX,
                scale=layer.scale[-2:], translate=layer.translate[-2:],
            )  # fmt: skip
            _set_range(self._preview, out.dtype, limits)
            self._refresh_layers()
        else:
            preview.data = out
            _set_range(preview, out.dtype, limits)
            if limits != self._auto_limits:  # the pipeline moved the range; else keep the user's
                preview.contrast_limits = limits
        self._auto_limits = limits
        self._shown_key = req["key"]
        where = f"frame {req['pos']}" if len(req["pos"]) > 1 else f"frame {req['index']}"
        self.status.setText(f"preview of {where}: {out.shape} {out.dtype}")
        self.status.setStyleSheet("")

    def _drop_preview(self) -> None:
        preview, self._preview = self._preview, None
        self._shown_key = None
        self._auto_limits = None
        if preview is not None and preview in self.viewer.layers:
            self.viewer.layers.remove(preview)

    def _preview_toggled(self, *_: Any) -> None:
        self._resume_preview = False  # the user decides
        self.update_preview()

    def _on_dims(self, *_: Any) -> None:
        if self._preview is not None or self.steps:
            self.update_preview()

    # ---- apply -------------------------------------------------------------------------------
    def apply(self):
        """Add a lazy layer with the pipeline applied to every frame; returns it.

        It looks like the preview: same contrast limits, colormap, gamma, opacity, blending.
        """
        layer = self.layer
        if layer is None or not self.steps:
            self._error("choose an image layer and add at least one step")
            return None
        pipeline = self.pipeline
        md = {k: v for k, v in (layer.metadata or {}).items() if k != "display"}
        try:
            data = pipeline.apply(
                self._source(layer), frame_ndim=self._frame_ndim(layer),
                timestamps=md.get("timestamps"),
            )  # fmt: skip
        except Exception as err:
            self._error(err)
            return None
        lead = self._source(layer).ndim - self._frame_ndim(layer)
        rgb = data.ndim - lead == 3 and data.shape[-1] in (3, 4)
        look = _look(layer, rgb, _display_limits(pipeline, layer, data.dtype))
        if self._preview is not None and self._preview.rgb == rgb:
            look = _look(self._preview, rgb, tuple(self._preview.contrast_limits))
        md["pipeline"] = pipeline.to_json()
        new = self.viewer.add_image(
            data, **look, name=f"{layer.name} [{len(self.steps)} steps]", metadata=md,
            scale=layer.scale, translate=layer.translate,
        )  # fmt: skip
        _set_range(new, data.dtype, look["contrast_limits"])
        self._drop_preview()
        self.preview_button.setChecked(False)  # applied: no preview until the next edit
        self._resume_preview = True
        self.status.setText(f"added lazy layer {new.name!r}")
        self.status.setStyleSheet("")
        return new

    # ---- files ---------------------------------------------------------------------------
    def save(self, path: str) -> None:
        try:
            with open(path, "w") as f:
                f.write(self.pipeline.to_json())
        except OSError as err:
            self._error(f"{path}: {err}")
            return
        self.status.setText(f"saved {path}")

    def load(self, path: str) -> None:
        try:
            with open(path) as f:
                pipeline = Pipeline.from_json(f.read())
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            self._error(f"{path}: {err}")
            return
        self.steps = pipeline.steps

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save pipeline", "pipeline.json", "JSON (*.json)"
        )
        if path:
            self.save(path)

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load pipeline", "", "JSON (*.json)")
        if path:
            self.load(path)

    def _error(self, err: Any) -> None:
        self._shown_key = None  # the next update computes again and reports
        self.status.setText(f"error: {err}")
        self.status.setStyleSheet("color: #e04040")

    # ---- lifetime ----------------------------------------------------------------------------
    def event(self, event) -> bool:
        from qtpy.QtCore import QEvent

        if event.type() == QEvent.Type.ParentChange:
            self._detached = self.parent() is None and self._had_parent
            self._had_parent = self.parent() is not None
            if self._detached:
                self._drop_preview()
        return super().event(event)

    _had_parent = False

    def hideEvent(self, event) -> None:  # docked away or closed: no preview left behind
        if not event.spontaneous():  # (a minimised window keeps it)
            self._drop_preview()
        super().hideEvent(event)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not event.spontaneous():
            self.update_preview()

    def closeEvent(self, event) -> None:
        self.cleanup()
        super().closeEvent(event)

    def cleanup(self) -> None:
        """Remove the preview and stop following the viewer (the widget is closing)."""
        self._drop_preview()
        self._closed = True
        self._pending = None
        if self._worker is not None:
            self._worker.quit()
        for emitter, callback in self._connections:
            emitter.disconnect(callback)
        self._connections = []
        for layer in self.viewer.layers:
            layer.events.name.disconnect(self._on_renamed)
        self._follow(None)


# ---- how a result layer looks ---------------------------------------------------------------------
def _limits(layer) -> tuple[float, float]:
    return float(layer.contrast_limits[0]), float(layer.contrast_limits[1])


def _display_limits(pipeline: Pipeline, layer, dtype: np.dtype) -> tuple[float, float]:
    """Contrast limits for the pipeline's output: the layer's carried through the steps, or
    the output dtype's range when a step cannot map them (e.g. a LUT shorter than the range)."""
    try:
        limits, _ = pipeline.display_range(_limits(layer), layer.dtype)
    except Exception:
        limits = dtype_range(dtype) if np.dtype(dtype).kind in "uib" else (0.0, 1.0)
    return _valid_limits(limits, dtype)


def _valid_limits(limits: tuple[float, float], dtype: np.dtype) -> tuple[float, float]:
    lo, hi = float(limits[0]), float(limits[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = (0.0, 1.0) if np.dtype(dtype).kind == "f" else (0.0, 255.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _look(layer, rgb: bool, limits: tuple[float, float]) -> dict[str, Any]:
    """Display settings of ``layer`` for a result with these contrast limits."""
    look: dict[str, Any] = {
        "rgb": rgb,
        "contrast_limits": limits,
        "gamma": float(layer.gamma),
        "opacity": float(layer.opacity),
        "blending": str(layer.blending),
    }
    if not rgb and not layer.rgb:
        look["colormap"] = layer.colormap
    return look


def _set_range(layer, dtype: np.dtype, limits: tuple[float, float]) -> None:
    """The whole dtype stays reachable from the layer controls (integers), with ``limits``."""
    lo, hi = limits
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        lo, hi = min(lo, float(info.min)), max(hi, float(info.max))
    else:
        r = layer.contrast_limits_range
        lo, hi = min(lo, float(r[0])), max(hi, float(r[1]))
    if tuple(float(v) for v in layer.contrast_limits_range) == (lo, hi):
        return  # (every frame of a preview lands here: no events)
    current = tuple(layer.contrast_limits)
    layer.contrast_limits_range = (lo, hi)
    layer.contrast_limits = current
