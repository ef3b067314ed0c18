"""Dock widget: build a per-frame pipeline on an image layer, preview it live, apply it lazily.

The widget only arranges the public API (:mod:`napari_imseq.transforms`): steps and their
parameters (magicgui controls made from the functions' type annotations), a preview of the
current frame (computed for that frame only), "Apply" (a new lazy layer, nothing computed
ahead), and JSON save/load. Errors are shown in the widget, never raised into napari.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, create_widget
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..transforms import Pipeline, available, parameters
from ..transforms._registry import get

PREVIEW_SUFFIX = " [preview]"


def _hints(name: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(get(name))
    except Exception:
        return {}


class TransformWidget(QWidget):
    """Pipeline editor with live preview; ``napari_viewer`` is injected by napari."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.steps: list[tuple[str, dict[str, Any]]] = []
        self._param_box: Container | None = None

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
        self.preview_button.toggled.connect(lambda _: self.update_preview())
        self.apply_button.clicked.connect(self.apply)
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button.clicked.connect(self._load_dialog)
        self.layer_box.changed.connect(lambda _: self.update_preview())
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.dims.events.current_step.connect(lambda _: self.update_preview())

    # ---- layers ------------------------------------------------------------------------------
    def _image_layer_names(self, *_: Any) -> list[str]:
        from napari.layers import Image

        return [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Image) and not layer.name.endswith(PREVIEW_SUFFIX)
        ]

    def _refresh_layers(self, *_: Any) -> None:
        self.layer_box.reset_choices()

    @property
    def layer(self):
        name = self.layer_box.value
        return self.viewer.layers[name] if name in self.viewer.layers else None

    # ---- steps -------------------------------------------------------------------------------
    @property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.steps)

    def add_step(self, name: str, **params: Any) -> None:
        try:
            Pipeline([(name, params)])  # validates the name and the parameters
        except (KeyError, TypeError) as err:
            self._error(err)
            return
        self.steps.append((name, dict(params)))
        self._refresh_list(len(self.steps) - 1)
        self.update_preview()

    def remove_step(self, row: int) -> None:
        if 0 <= row < len(self.steps):
            del self.steps[row]
            self._refresh_list(min(row, len(self.steps) - 1))
            self.update_preview()

    def move_step(self, row: int, delta: int) -> None:
        new = row + delta
        if 0 <= row < len(self.steps) and 0 <= new < len(self.steps):
            self.steps[row], self.steps[new] = self.steps[new], self.steps[row]
            self._refresh_list(new)
            self.update_preview()

    def set_param(self, row: int, **params: Any) -> None:
        name, current = self.steps[row]
        self.steps[row] = (name, {**current, **params})
        self._refresh_list(row)
        self.update_preview()

    def _refresh_list(self, select: int) -> None:
        self.step_list.blockSignals(True)
        self.step_list.clear()
        for name, params in self.steps:
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            self.step_list.addItem(f"{name}({shown})")
        self.step_list.blockSignals(False)
        if 0 <= select < len(self.steps):
            self.step_list.setCurrentRow(select)
            self._show_params(select)
        else:
            self._show_params(-1)

    def _show_params(self, row: int) -> None:
        if self._param_box is not None:
            self.params_area.removeWidget(self._param_box.native)
            self._param_box.native.setParent(None)
            self._param_box = None
        if not 0 <= row < len(self.steps):
            return
        name, values = self.steps[row]
        hints = _hints(name)
        widgets = []
        for key, p in parameters(name).items():
            value = values.get(key, p.default)
            try:
                w = create_widget(value=value, annotation=hints.get(key), name=key, label=key)
            except Exception:
                continue  # not editable here (e.g. a LUT array): keeps its value
            widgets.append(w)
        box = Container(widgets=widgets)

        def changed(*_: Any) -> None:
            self.steps[row] = (name, {**self.steps[row][1], **{w.name: w.value for w in box}})
            self.update_preview()

        box.changed.connect(changed)
        self._param_box = box
        self.params_area.addWidget(box.native)

    # ---- preview and apply -----------------------------------------------------------------
    def _current_index(self, layer) -> int:
        if layer.ndim <= (3 if layer.rgb else 2):
            return 0
        return int(self.viewer.dims.current_step[0])

    def update_preview(self) -> None:
        layer = self.layer
        if layer is None or not self.preview_button.isChecked() or not self.steps:
            self._drop_preview()
            return
        try:
            i = self._current_index(layer)
            frame = np.asarray(layer.data[i])
            ts = (layer.metadata or {}).get("timestamps")
            t = float(ts[i]) if ts is not None and i < len(ts) else None
            out = self.pipeline(frame, index=i, timestamp=t)
        except Exception as err:
            self._error(err)
            return
        name = layer.name + PREVIEW_SUFFIX
        rgb = out.ndim == 3 and out.shape[-1] in (3, 4)
        if name in self.viewer.layers and self.viewer.layers[name].rgb == rgb:
            self.viewer.layers[name].data = out
        else:
            self._drop_preview()
            self.viewer.add_image(out, name=name, rgb=rgb)
        self.status.setText(f"preview of frame {i}: {out.shape} {out.dtype}")
        self.status.setStyleSheet("")

    def _drop_preview(self) -> None:
        layer = self.layer
        if layer is not None and layer.name + PREVIEW_SUFFIX in self.viewer.layers:
            self.viewer.layers.remove(layer.name + PREVIEW_SUFFIX)

    def apply(self):
        """Add a lazy layer with the pipeline applied to every frame; returns it."""
        layer = self.layer
        if layer is None or not self.steps:
            self._error("choose an image layer and add at least one step")
            return None
        try:
            data = self.pipeline.apply(
                layer.data if layer.ndim > (3 if layer.rgb else 2) else layer.data[np.newaxis]
            )
        except Exception as err:
            self._error(err)
            return None
        rgb = data.ndim == 4 and data.shape[-1] in (3, 4)
        kwargs: dict[str, Any] = {"name": f"{layer.name} [{len(self.steps)} steps]", "rgb": rgb}
        if data.dtype.kind in "ui":
            info = np.iinfo(data.dtype)
            same = data.dtype == layer.data.dtype
            kwargs["contrast_limits"] = (
                tuple(layer.contrast_limits) if same else (info.min, info.max)
            )
        else:
            kwargs["contrast_limits"] = (0.0, 1.0)
        md = dict(layer.metadata or {})
        md["pipeline"] = self.pipeline.to_json()
        new = self.viewer.add_image(data, metadata=md, **kwargs)
        self._drop_preview()
        self.status.setText(f"added lazy layer {new.name!r}")
        return new

    # ---- files ---------------------------------------------------------------------------
    def save(self, path: str) -> None:
        with open(path, "w") as f:
            f.write(self.pipeline.to_json())
        self.status.setText(f"saved {path}")

    def load(self, path: str) -> None:
        try:
            with open(path) as f:
                pipeline = Pipeline.from_json(f.read())
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
            self._error(f"{path}: {err}")
            return
        self.steps = list(pipeline.steps)
        self._refresh_list(0)
        self.update_preview()

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
        self.status.setText(f"error: {err}")
        self.status.setStyleSheet("color: #e04040")
