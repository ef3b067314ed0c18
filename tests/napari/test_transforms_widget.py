"""The transforms dock widget through a headless napari viewer."""

import numpy as np

import napari_imseq as imseq
from napari_imseq._napari._transforms_widget import PREVIEW_SUFFIX, TransformWidget
from napari_imseq.transforms import Pipeline

from ..io import seqmaker


def setup(make_napari_viewer, tmp_path):
    data = seqmaker.frames(6, (40, 50), np.uint16)
    seqmaker.raw_seq(tmp_path / "a.seq", data, real_bits=12)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "a.seq"), plugin="napari-imseq")
    widget = TransformWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, layer, widget, data


def test_widget_is_contributed(make_napari_viewer):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-imseq", "Frame transforms")
    assert isinstance(widget, TransformWidget)


def test_steps_preview_and_apply(make_napari_viewer, tmp_path):
    viewer, layer, widget, data = setup(make_napari_viewer, tmp_path)
    assert widget.layer_box.value == layer.name
    viewer.dims.set_current_step(0, 2)
    widget.add_step("gaussian", sigma=1.0)
    preview = viewer.layers[layer.name + PREVIEW_SUFFIX]
    np.testing.assert_array_equal(preview.data, Pipeline([("gaussian", {"sigma": 1.0})])(data[2]))
    first = preview.data.copy()
    widget.set_param(0, sigma=3.0)  # moving a parameter updates the preview
    assert not np.array_equal(preview.data, first)
    # the parameter controls come from the type annotations
    assert {w.name for w in widget._param_box} == {"sigma"}
    widget._param_box["sigma"].value = 2.0
    assert widget.steps[0][1]["sigma"] == 2.0
    np.testing.assert_array_equal(preview.data, Pipeline([("gaussian", {"sigma": 2.0})])(data[2]))
    viewer.dims.set_current_step(0, 4)  # the preview follows the current frame
    np.testing.assert_array_equal(preview.data, Pipeline([("gaussian", {"sigma": 2.0})])(data[4]))
    widget.add_step("crop", y=(5, 25), x=(0, 30))
    widget.add_step("apply_colormap", colormap="magenta", in_range=(0, 4095))
    assert viewer.layers[layer.name + PREVIEW_SUFFIX].rgb
    widget.move_step(2, -1)
    assert [n for n, _ in widget.steps] == ["gaussian", "apply_colormap", "crop"]
    widget.remove_step(1)
    new = widget.apply()
    assert type(new.data).__module__.startswith("dask")  # lazy: nothing computed ahead
    assert new.data.shape == (6, 20, 30) and new.data.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(new.data[5]), widget.pipeline(data[5], index=5))
    assert "pipeline" in new.metadata


def test_errors_show_in_the_widget(make_napari_viewer, tmp_path):
    viewer, layer, widget, _ = setup(make_napari_viewer, tmp_path)
    widget.add_step("crop", y=(30, 10))  # an empty crop fails on the frame
    assert "error" in widget.status.text() and "empty" in widget.status.text()
    widget.add_step("no_such_step")
    assert "no transform named" in widget.status.text()


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
    (tmp_path / "bad.json").write_text("{nope")
    widget.load(str(tmp_path / "bad.json"))
    assert "error" in widget.status.text()
    out = imseq.convert(
        tmp_path / "a.seq", tmp_path / "out.tif", transform=widget.pipeline, progress=False
    )
    assert out["frames"] == 6
