"""The transforms dock widget through a headless napari viewer: every step on a gray 12-bit
uint16 recording and an RGB uint8 recording, typed parameters, one preview layer, apply."""

import inspect

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq._napari._transforms_widget import PREVIEW_SUFFIX, TransformWidget
from napari_imseq.transforms import REGISTRY, Pipeline, available

from ..io import seqmaker

#: steps that change the frame's shape with their default parameters
RESHAPES = {"pad", "resize", "rescale_size", "rot90"}


def open_layer(viewer, tmp_path, kind):
    if kind == "gray16":
        data = seqmaker.frames(6, (40, 50), np.uint16)
        seqmaker.raw_seq(tmp_path / "a.seq", data, real_bits=12)
    else:  # an RGB uint8 recording: (T, Y, X, 3)
        data = seqmaker.frames(6, (40, 50, 3), np.uint8)
        seqmaker.raw_seq(tmp_path / "a.seq", data, layout="BGR")
    [layer] = viewer.open(str(tmp_path / "a.seq"), plugin="napari-imseq")
    assert layer.rgb == (kind == "rgb8")
    return layer, data


def setup(make_napari_viewer, tmp_path, kind="gray16"):
    viewer = make_napari_viewer()
    layer, data = open_layer(viewer, tmp_path, kind)
    widget = TransformWidget(viewer)
    widget.async_after = float("inf")  # previews on the GUI thread unless a test asks
    viewer.window.add_dock_widget(widget)
    return viewer, layer, widget, data


def previews(viewer):
    return [layer for layer in viewer.layers if layer.name.endswith(PREVIEW_SUFFIX)]


def preview_data(viewer):
    [preview] = previews(viewer)
    return np.asarray(preview.data)


def shown(layer):
    """The frame napari displays for ``layer`` at the current dims position."""
    return np.asarray(layer._slice.image.raw)


def test_widget_is_contributed(make_napari_viewer):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-imseq", "Frame transforms")
    assert isinstance(widget, TransformWidget)


@pytest.mark.parametrize("kind", ["gray16", "rgb8"])
def test_every_step_previews_what_apply_shows(make_napari_viewer, tmp_path, kind, monkeypatch):
    # napari runs a full gc.collect for every removed layer (half a second here, 46 times)
    monkeypatch.setattr("napari._vispy.canvas.gc.collect", lambda *a: 0)
    viewer, layer, widget, data = setup(make_napari_viewer, tmp_path, kind)
    rgb = kind == "rgb8"
    for name in available():
        widget.steps = []
        widget.preview_button.setChecked(True)
        widget.add_step(name)  # every parameter at its default, ranges from the layer
        assert "error" not in widget.status.text(), (name, widget.status.text())
        seen = {}
        for t in (0, 3, 5):
            viewer.dims.set_current_step(0, t)
            assert len(previews(viewer)) == 1, name
            seen[t] = preview_data(viewer)
            np.testing.assert_array_equal(seen[t], widget.pipeline(data[t], index=t), name)
        new = widget.apply()
        assert new is not None, (name, widget.status.text())
        assert previews(viewer) == [], "applying removes the preview"
        assert type(new.data).__module__.startswith("dask"), "the applied layer is lazy"
        out = seen[0]
        # shape and dtype are kept, or changed as documented
        if name == "apply_colormap":
            assert out.shape == (40, 50, 3) and out.dtype == np.uint8 and new.rgb
        elif name == "convert_dtype":
            assert out.dtype == np.uint8 and out.shape == data.shape[1:]
        elif name == "rgb_to_gray":
            assert out.shape == (40, 50) and out.dtype == data.dtype and not new.rgb
        elif name in RESHAPES:
            assert out.shape[2:] == data.shape[3:] and out.dtype == data.dtype
            assert new.rgb == rgb
        else:
            assert out.shape == data.shape[1:] and out.dtype == data.dtype, name
            assert new.rgb == rgb
        assert new.data.shape == (6, *out.shape) and new.data.dtype == out.dtype
        for t in (0, 3, 5):  # the applied layer shows what the preview showed
            viewer.dims.set_current_step(0, t)
            np.testing.assert_array_equal(shown(new), seen[t], name)
        viewer.layers.remove(new)


def test_12_bit_range_and_negative_offset_typed_into_the_fields(make_napari_viewer, tmp_path):
    viewer, layer, widget, data = setup(make_napari_viewer, tmp_path)
    viewer.dims.set_current_step(0, 2)
    limits = tuple(float(v) for v in layer.contrast_limits)
    widget.add_step("rescale")
    assert widget.steps[0][1]["in_range"] == limits, "rescale starts at the contrast limits"
    np.testing.assert_array_equal(preview_data(viewer), widget.pipeline(data[2], index=2))
    lo, hi = widget.field("in_range")
    assert (lo.min, lo.max) == (0, 65535) and (hi.min, hi.max) == (0, 65535)
    lo.value, hi.value = 100, 4000  # a 12-bit range, typed
    assert widget.steps[0][1]["in_range"] == (100, 4000)
    expect = Pipeline([("rescale", {"in_range": (100, 4000)})])(data[2])
    np.testing.assert_array_equal(preview_data(viewer), expect)
    [preview] = previews(viewer)
    assert tuple(preview.contrast_limits) == (0, 65535), "the rescaled frame looks like the source"
    # out_range is automatic (the dtype's range) until "auto" is unticked
    *out_fields, auto = widget._fields["out_range"].items + [widget._fields["out_range"].auto]
    assert auto.value and [w.value for w in out_fields] == [0, 65535]
    auto.value = False
    out_fields[1].value = 4095
    assert widget.steps[0][1]["out_range"] == (0, 4095)

    widget.add_step("contrast")
    offset = widget.field("offset")
    assert offset.min == -65535 and offset.max == 65535
    offset.value = -500
    widget.field("gain").value = 1.5
    assert widget.steps[1][1] == {"gain": 1.5, "offset": -500}
    expect = Pipeline([("rescale", {"in_range": (100, 4000), "out_range": (0, 4095)}),
                       ("contrast", {"gain": 1.5, "offset": -500})])(data[2])  # fmt: skip
    np.testing.assert_array_equal(preview_data(viewer), expect)

    # every parameter of every step has a control
    for name in available():
        widget.add_step(name)
        expected = set(inspect.signature(REGISTRY[name]).parameters) - {
            "frame",
            "index",
            "timestamp",
        }
        assert set(widget._fields) == expected, name
        widget.remove_step(2)
    widget.add_step("gamma")
    widget.field("gamma").value = 0.5
    gamma_lo, gamma_hi = widget.field("in_range")
    gamma_lo.value = 200
    assert widget.steps[-1][1]["gamma"] == 0.5 and widget.steps[-1][1]["in_range"][0] == 200
    widget.add_step("apply_colormap")
    colormap = widget.field("colormap")
    assert {"viridis", "hot", "magenta", "gray"} <= set(colormap.choices)
    colormap.value = "hot"
    assert widget.steps[-1][1]["colormap"] == "hot"
    [preview] = previews(viewer)
    assert preview.rgb and preview_data(viewer).dtype == np.uint8


def test_float_layer_fields_are_unbounded(make_napari_viewer):
    viewer = make_napari_viewer()
    data = np.random.default_rng(0).normal(0, 1, (3, 20, 30)).astype(np.float32)
    viewer.add_image(data, name="f", contrast_limits=(-2.0, 2.0))
    widget = TransformWidget(viewer)
    widget.add_step("rescale")
    lo, hi = widget.field("in_range")
    assert lo.min <= -1e9 and hi.max >= 1e9 and widget.steps[0][1]["in_range"] == (-2.0, 2.0)
    lo.value = -3.25
    np.testing.assert_array_equal(
        preview_data(viewer), Pipeline([("rescale", {"in_range": (-3.25, 2.0)})])(data[1])
    )
    widget.add_step("contrast")
    widget.field("offset").value = -0.125
    assert widget.steps[1][1]["offset"] == -0.125


def test_one_preview_layer_updated_in_place(make_napari_viewer, tmp_path):
    viewer, layer, widget, data = setup(make_napari_viewer, tmp_path)
    widget.add_step("gaussian", sigma=1.0)
    [preview] = previews(viewer)
    for t in (1, 4, 0):
        viewer.dims.set_current_step(0, t)
        widget.field("sigma").value = 1.0 + t
        widget.add_step("crop", y=(0, 30 - t))
        widget.remove_step(1)
        assert previews(viewer) == [preview], "the same layer object, never re-created"
        expect = Pipeline([("gaussian", {"sigma": 1.0 + t})])(data[t])
        np.testing.assert_array_equal(preview.data, expect)
    # the user's contrast limits on the preview survive parameter changes that keep the range,
    # and the applied layer looks like the preview
    layer.contrast_limits = (200, 3500)  # the source's display range reaches the preview
    assert tuple(preview.contrast_limits) == (200, 3500)
    preview.contrast_limits = (500, 3000)
    preview.gamma = 0.7
    preview.colormap = "magma"
    widget.field("sigma").value = 2.5
    assert tuple(preview.contrast_limits) == (500, 3000)
    new = widget.apply()
    assert tuple(new.contrast_limits) == (500, 3000)
    assert new.gamma == 0.7 and new.colormap.name == "magma"
    assert previews(viewer) == [] and not widget.preview_button.isChecked()
    viewer.dims.set_current_step(0, 3)
    assert previews(viewer) == [], "moving through frames does not bring it back"
    widget.field("sigma").value = 1.5  # editing the pipeline again previews it again
    assert len(previews(viewer)) == 1 and widget.preview_button.isChecked()
    widget.close()
    assert previews(viewer) == [], "closing the widget removes the preview"
    viewer.dims.set_current_step(0, 2)
    assert previews(viewer) == [], "a closed widget no longer follows the viewer"


def test_preview_dropped_when_the_dock_closes(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    open_layer(viewer, tmp_path, "gray16")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-imseq", "Frame transforms")
    widget.add_step("invert")
    assert len(previews(viewer)) == 1
    viewer.window.remove_dock_widget(dock)
    assert previews(viewer) == []


def test_preview_follows_the_dock_visibility(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer(show=True)
    open_layer(viewer, tmp_path, "gray16")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-imseq", "Frame transforms")
    qtbot.waitUntil(widget.isVisible)
    widget.add_step("invert")
    assert len(previews(viewer)) == 1
    dock.close()  # the dock's close button
    qtbot.waitUntil(lambda: previews(viewer) == [])
    dock.show()
    qtbot.waitUntil(lambda: len(previews(viewer)) == 1)


def test_step_list_follows_edits(make_napari_viewer, tmp_path):
    viewer, layer, widget, data = setup(make_napari_viewer, tmp_path)

    def listed():
        return [widget.step_list.item(i).text() for i in range(widget.step_list.count())]

    widget.add_step("gaussian", sigma=1.0)
    widget.add_step("crop", y=(5, 25), x=(0, 30))
    widget.add_step("apply_colormap", colormap="magenta", in_range=(0, 4095))
    assert listed() == ["1. gaussian(sigma=1)", "2. crop(y=(5, 25), x=(0, 30))",
                        "3. apply_colormap(colormap='magenta', in_range=(0, 4095))"]  # fmt: skip
    assert previews(viewer)[0].rgb
    widget.field("colormap").value = "cyan"  # editing a control shows in the list at once
    assert listed()[2].startswith("3. apply_colormap(colormap='cyan'")
    widget.move_step(2, -1)
    assert [n for n, _ in widget.steps] == ["gaussian", "apply_colormap", "crop"]
    assert listed()[1].startswith("2. apply_colormap") and listed()[2].startswith("3. crop")
    assert widget.step_list.currentRow() == 1 and "colormap" in widget._fields
    widget.remove_step(1)
    assert listed() == ["1. gaussian(sigma=1)", "2. crop(y=(5, 25), x=(0, 30))"]
    layer.name = "renamed"  # the widget stays on the same layer
    assert widget.layer_box.value == "renamed" and widget.layer is layer
    assert len(previews(viewer)) == 1 and not previews(viewer)[0].rgb
    widget.step_list.setCurrentRow(0)  # selecting a step shows its controls
    assert set(widget._fields) == {"sigma"}
    widget.field("sigma").value = 2.0
    assert listed()[0] == "1. gaussian(sigma=2)"
    new = widget.apply()
    assert new.data.shape == (6, 20, 30) and new.data.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(new.data[5]), widget.pipeline(data[5], index=5))
    assert Pipeline.from_json(new.metadata["pipeline"]) == widget.pipeline


def test_errors_show_in_the_widget(make_napari_viewer, tmp_path):
    viewer, layer, widget, _ = setup(make_napari_viewer, tmp_path)
    widget.add_step("crop", y=(30, 10))  # an empty crop fails on the frame
    assert "error" in widget.status.text() and "empty" in widget.status.text()
    widget.add_step("no_such_step")
    assert "no transform named" in widget.status.text()
    assert widget.apply() is None and "error" in widget.status.text()
    widget.remove_step(0)
    widget.add_step("gaussian", radius=3)
    assert "has no parameter" in widget.status.text()
    # a parameter that does not fit this layer's dtype
    viewer.add_image(np.zeros((2, 8, 8), np.float32), name="float")
    widget.layer_box.value = "float"
    widget.steps = []
    widget.add_step("apply_lut", lut=[0, 1, 2])
    assert "unsigned integer" in widget.status.text()
    widget.steps = [("gaussian", {})]
    viewer.dims.ndisplay = 3  # a 2-D frame cannot preview a 3-D view: said, not raised
    assert "2-D view" in widget.status.text()
    viewer.dims.ndisplay = 2
    assert "preview of frame" in widget.status.text()


def test_async_preview_drops_stale_frames(make_napari_viewer, tmp_path):
    viewer, layer, widget, data = setup(make_napari_viewer, tmp_path)
    widget.async_after = 0.0  # every preview off the GUI thread
    widget.add_step("median", size=5)  # the first is measured on the GUI thread
    for t in (1, 2, 3, 4, 5, 0, 3):
        viewer.dims.set_current_step(0, t)
    widget.wait()
    assert len(previews(viewer)) == 1
    np.testing.assert_array_equal(preview_data(viewer), widget.pipeline(data[3], index=3))
    widget.field("size").value = 3
    widget.wait()
    np.testing.assert_array_equal(preview_data(viewer), widget.pipeline(data[3], index=3))


def test_leading_axes_and_single_frames(make_napari_viewer):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 255, (3, 2, 20, 24, 4), dtype=np.uint8)  # (T, Z, Y, X, RGBA)
    layer = viewer.add_image(stack, name="tz", rgb=True)
    widget = TransformWidget(viewer)
    widget.async_after = float("inf")
    widget.add_step("gaussian", sigma=1.5)
    widget.add_step("draw_text", text="{index}", size=8)
    seen = {}
    for t, z in ((0, 1), (2, 0), (1, 1)):
        viewer.dims.set_current_step(0, t)
        viewer.dims.set_current_step(1, z)
        seen[t, z] = preview_data(viewer)
        np.testing.assert_array_equal(seen[t, z], widget.pipeline(stack[t, z], index=t))
        assert (seen[t, z][19:, ..., 3] == stack[t, z, 19:, :, 3]).all(), (
            "alpha kept below the text"
        )
    new = widget.apply()
    assert new.rgb and new.data.shape == stack.shape
    for (t, z), frame in seen.items():
        viewer.dims.set_current_step(0, t)
        viewer.dims.set_current_step(1, z)
        np.testing.assert_array_equal(shown(new), frame)
    viewer.layers.remove(new)
    viewer.layers.remove(layer)
    single = viewer.add_image(stack[0, 0, ..., 0], name="single")
    widget.layer_box.value = "single"
    widget.preview_button.setChecked(True)
    np.testing.assert_array_equal(preview_data(viewer), widget.pipeline(single.data, index=0))
    new = widget.apply()
    assert new.data.shape == (20, 24)
    np.testing.assert_array_equal(shown(new), widget.pipeline(single.data, index=0))


def test_save_and_load_json(make_napari_viewer, tmp_path):
    viewer, layer, widget, _ = setup(make_napari_viewer, tmp_path)
    widget.add_step("clahe", clip_limit=3.0)
    widget.add_step("draw_text", text="{index}")
    widget.save(str(tmp_path / "p.json"))
    assert Pipeline.from_json((tmp_path / "p.json").read_text()) == widget.pipeline
    widget.remove_step(0)
    widget.remove_step(0)
    widget.load(str(tmp_path / "p.json"))
    assert [n for n, _ in widget.steps] == ["clahe", "draw_text"]
    assert widget.step_list.count() == 2
    (tmp_path / "bad.json").write_text("{nope")
    widget.load(str(tmp_path / "bad.json"))
    assert "error" in widget.status.text()
    out = imseq.convert(
        tmp_path / "a.seq", tmp_path / "out.tif", transform=widget.pipeline, progress=False
    )
    assert out["frames"] == 6


def test_fields_follow_the_dtype_reaching_each_step(make_napari_viewer, tmp_path):
    viewer, layer, widget, data = setup(make_napari_viewer, tmp_path)
    widget.add_step("convert_dtype", dtype="uint8", in_range=(0, 4095))
    widget.add_step("rescale")  # after a conversion to uint8: 0..255, starting at what shows
    lo, hi = widget.field("in_range")
    assert (lo.min, hi.max) == (0, 255)
    assert (
        widget.steps[1][1]["in_range"]
        == Pipeline(widget.steps[:1]).display_range(tuple(layer.contrast_limits), np.uint16)[0]
    )
    widget.add_step("rescale")  # a rescale after a rescale changes nothing on the screen
    assert widget.steps[2][1]["in_range"] == (0, 255)
    widget.step_list.setCurrentRow(0)
    lo, hi = widget.field("in_range")
    assert hi.max == 65535


def test_showing_controls_changes_no_parameter(make_napari_viewer):
    viewer = make_napari_viewer()
    data = np.random.default_rng(0).integers(300, 5000, (3, 20, 30), dtype=np.uint16)
    viewer.add_image(data, name="u16", contrast_limits=(368.193, 5277.315))
    widget = TransformWidget(viewer)
    widget.add_step("rescale")
    widget.add_step("gamma", gamma=0.8)
    widget.step_list.setCurrentRow(0)  # controls rebuilt: values stay exact
    assert widget.steps[0][1] == {"in_range": (368.193, 5277.315), "out_range": None}
    assert widget.step_list.item(0).text() == "1. rescale(in_range=(368.2, 5277), out_range=auto)"


def test_lookup_tables_in_the_widget(make_napari_viewer, tmp_path):
    viewer, layer, widget, data = setup(make_napari_viewer, tmp_path)
    widget.add_step("apply_lut")  # starts as the identity of the layer's dtype
    assert len(widget.steps[0][1]["lut"]) == 65536
    np.testing.assert_array_equal(preview_data(viewer), data[viewer.dims.current_step[0]])
    widget._fields["lut"]._estimate()  # "Equalise (from layer)": a LUT from a subsample
    lut = np.asarray(widget.steps[0][1]["lut"])
    assert lut.shape == (65536,) and lut.max() == 65535
    assert widget.step_list.item(0).text() == "1. apply_lut(lut=<65536 values>)"
    short = np.arange(4096, dtype=np.uint16) * 16  # shorter than the layer's contrast range
    widget.set_param(0, lut=short)
    t = viewer.dims.current_step[0]
    np.testing.assert_array_equal(preview_data(viewer), short[data[t]])
    new = widget.apply()
    np.testing.assert_array_equal(shown(new), short[data[t]])
    viewer.add_image(np.zeros((2, 8, 8), np.float32), name="float")
    widget.layer_box.value = "float"
    widget.steps = []
    widget.add_step("apply_lut")
    assert "unsigned integer" in widget.status.text()
