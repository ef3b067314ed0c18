"""The Mosaic dock widget through a headless napari viewer: layers and files in, one lazy
mosaic layer out (created, then updated in place), equal to napari_imseq.mosaic."""

import numpy as np

import napari_imseq as imseq
from napari_imseq._napari._mosaic_widget import MosaicWidget, layer_source
from napari_imseq.io.array import ArraySequence


def coded(n, shape, dtype):
    values = np.arange(1, n + 1).reshape(-1, *([1] * len(shape)))
    return (values * np.ones((1, *shape))).astype(dtype)


def setup(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(coded(20, (30, 40), np.uint16), name="fast",
                     metadata={"fps": 40.0, "bit_depth": 12})  # fmt: skip
    viewer.add_image(coded(6, (20, 20, 3), np.uint8), name="slow", rgb=True,
                     metadata={"fps": 10.0})  # fmt: skip
    viewer.add_image(np.zeros((8, 8)), name="single image")  # no time axis: not offered
    widget = MosaicWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def names(widget):
    return [widget.table.item(r, 0).text() for r in range(widget.table.rowCount())]


def test_widget_builds_one_lazy_mosaic_layer(make_napari_viewer, tmp_path):
    """Layers in, one lazy layer out and updated; files; errors; contribution; layer_source."""
    viewer, widget = setup(make_napari_viewer)
    assert names(widget) == ["fast", "slow"]
    widget.grid.setText("1x2")
    widget.set_row("slow", offset=0.5)
    widget.labels.setChecked(True)
    widget.update_mosaic()
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    layer = widget.layer
    assert layer is not None and layer in viewer.layers
    assert type(layer.data).__module__.startswith("dask"), "the layer is lazy"
    fast, slow = (layer_source(viewer.layers[n]) for n in ("fast", "slow"))
    want = imseq.mosaic([fast, slow], grid="1x2", offsets=[0, 0.5], labels=True)
    assert layer.data.shape == want.shape and layer.rgb and layer.data.dtype == want.dtype
    for k in (0, 15, len(want) - 1):
        np.testing.assert_array_equal(np.asarray(layer.data[k]), want[k])
    assert layer.metadata["tiles"][1]["name"] == "slow"
    assert "2 tiles (1x2)" in widget.status.text()

    # a change updates the same layer, at once on the current frame
    viewer.dims.set_current_step(0, 7)
    widget.fit.setCurrentText("pad")
    widget.grid.setText("2x1")
    widget.wait()
    assert [lyr for lyr in viewer.layers if lyr.name.startswith("mosaic")] == [layer]
    assert layer.data.shape[1:3] == (2 * 30, 40)
    assert 7 in widget.mosaic._recent, "the current frame was composed off the GUI thread"

    # a file as a source, the layers unticked
    data = coded(5, (16, 16), np.uint16)
    imseq.imwrite(tmp_path / "cam.tif", data, fps=20.0)
    widget.grid.setText("auto")
    widget.labels.setChecked(False)
    widget.add_files([tmp_path / "cam.tif"])
    widget.set_row("fast", use=False)
    widget.set_row("slow", use=False)
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    assert widget.layer.data.shape == (5, 16, 16), "gray again: the layer is made anew"
    assert widget.layer is not layer and widget.layer.rgb is False
    np.testing.assert_array_equal(np.asarray(widget.layer.data[3]), data[3])
    assert sum(lyr.name.startswith("mosaic") for lyr in viewer.layers) == 1

    # bad settings: shown in the widget, the layer kept
    widget.grid.setText("0x0x0")
    widget.wait()
    assert "grid" in widget.status.text() and widget.layer in viewer.layers

    # a source's bit depth in its row: the 16-bit file said to hold 12 bits keeps its values
    # and the 12-bit layer beside it is no longer spread onto 16 bits
    widget.grid.setText("1x2")
    widget.set_row("fast", use=True)
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    assert widget.mosaic.bit_depth == 16 and (widget.mosaic[0][:, :40] == 16).all()  # 1 x 16
    widget.set_row("cam.tif", bits=12)
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    fast = layer_source(viewer.layers["fast"])
    with imseq.open_sequence(tmp_path / "cam.tif") as cam:
        want = imseq.mosaic([fast, cam], grid="1x2", fit="pad", bit_depths=[None, 12])
        assert widget.mosaic.bit_depth == 12 and (widget.mosaic[0][:, :40] == 1).all()
        for k in (0, 3):
            np.testing.assert_array_equal(np.asarray(widget.layer.data[k]), want[k])
        want.close()
    widget.set_row("cam.tif", bits="twelve")
    widget.wait()
    assert "bits 'twelve' of cam.tif" in widget.status.text()
    widget.cleanup()

    # the manifest contributes it (one viewer for every check: viewers are slow to make)
    _, contributed = viewer.window.add_plugin_dock_widget("napari-imseq", "Mosaic")
    assert isinstance(contributed, MosaicWidget)
    contributed.cleanup()

    # a layer without a rate gets one in its row
    widget = MosaicWidget(viewer)
    viewer.add_image(coded(4, (10, 10), np.uint8), name="no rate")
    widget.set_row("no rate", fps=8.0)
    for name in ("fast", "slow"):
        widget.set_row(name, use=False)
    widget.update_mosaic()
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    assert widget.mosaic.fps == 8.0 and len(widget.mosaic) == 4
    widget.set_row("no rate", fps=0)
    widget.wait()
    assert "no source states a frame rate" in widget.status.text()
    widget.cleanup()

    # a layer's frames keep the fps, timestamps and bit depth of its metadata
    ts = np.array([0.0, 0.1, 0.3])
    layer = viewer.add_image(np.zeros((3, 4, 4), np.uint16), name="a",
                             metadata={"timestamps": ts, "bit_depth": 12})  # fmt: skip
    seq = layer_source(layer)
    assert isinstance(seq, ArraySequence) and seq.bit_depth == 12
    np.testing.assert_array_equal(seq.timestamps, ts)
    assert seq.path == "a"


def test_contrast_follows_the_composed_frame_not_the_bit_depth(make_napari_viewer):
    """8-bit tiles beside a 16-bit one give a 16-bit mosaic whose values stay small: limits at
    the bit depth (0..65535) showed it black; they come from the frame just composed, while
    the slider still reaches the whole bit-depth range."""
    viewer = make_napari_viewer()
    viewer.add_image(coded(10, (20, 30), np.uint16) * 20, name="wide",
                     metadata={"fps": 10.0, "bit_depth": 16})  # fmt: skip
    viewer.add_image(coded(10, (20, 30, 3), np.uint8) * 20, name="video", rgb=True,
                     metadata={"fps": 10.0})  # fmt: skip
    widget = MosaicWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.dims.set_current_step(0, 5)
    widget.grid.setText("1x2")
    widget.promote.setCurrentText("keep")  # values kept: the 8-bit tile stays 0..255
    widget.update_mosaic()
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    layer = widget.layer
    assert layer.data.dtype == np.uint16
    lo, hi = layer.contrast_limits
    frame = np.asarray(layer.data[5])
    assert lo <= frame.max() and 0 < hi <= 255, (lo, hi)  # the values shown: 0..120
    assert tuple(layer.contrast_limits_range) == (0.0, 65535.0)


def test_widget_positions_cache_and_promotion(make_napari_viewer, tmp_path):
    """Explicit positions per source (all or none), the zarr cache folder, promote; each
    equal to napari_imseq.mosaic with the same options."""
    viewer, widget = setup(make_napari_viewer)
    widget.set_row("fast", position=(0, 0))
    widget.set_row("slow", position=(5, 45, 40, 40))
    widget.cache.setText(str(tmp_path / "cache"))
    widget.update_mosaic()
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    fast, slow = (layer_source(viewer.layers[n]) for n in ("fast", "slow"))
    want = imseq.mosaic([fast, slow], positions=[(0, 0), (5, 45, 40, 40)])
    m = widget.mosaic
    assert m.grid is None and "positions" in widget.status.text()
    assert [t["cell"] for t in m.metadata["tiles"]] == [(0, 0, 30, 40), (5, 45, 40, 40)]
    assert widget.layer.data.shape == want.shape == (24, 45, 85, 3)
    # the cache: a zarr store under the folder, holding the frame composed in the worker
    assert m.cache_path is not None and m.cache_path.startswith(str(tmp_path / "cache"))
    assert "cache" in widget.status.text()
    for k in (0, 9, 19):
        np.testing.assert_array_equal(np.asarray(widget.layer.data[k]), want[k])
    with imseq.open_sequence(m.cache_path) as cached:
        np.testing.assert_array_equal(cached[9], want[9])
    # promote: the 8-bit tile spans the 12-bit range by default, keeps its values if asked
    # (output frame 20 is 0.5 s: the 10 fps layer's frame 5, whose pixels are 6)
    assert m.bit_depth == 12 and np.asarray(widget.layer.data[20])[25, 65, 0] == round(
        6 * 4095 / 255
    )
    widget.promote.setCurrentText("keep")
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    assert np.asarray(widget.layer.data[20])[25, 65, 0] == 6
    # back to the grid when no position is given; a partial set is refused, layer kept
    widget.set_row("slow", position="")
    widget.wait()
    assert "position to every ticked source" in widget.status.text()
    assert widget.layer in viewer.layers
    widget.set_row("fast", position="")
    widget.cache.setText("")
    widget.grid.setText("1x2")
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    assert widget.mosaic.grid == (1, 2) and widget.mosaic.cache_path is None
    widget.set_row("fast", position=(0, 0))
    widget.table.item(0, 4).setText("here")  # not pixels
    widget.wait()
    assert "not 'y,x'" in widget.status.text()
    widget.cleanup()


def test_new_mosaic_layer_shows_the_frame_it_composed(make_napari_viewer, tmp_path):
    """napari puts the slider of the first layer of an empty viewer at its middle, where a short
    recording's tile is background; the widget keeps the frame it has just composed."""
    viewer = make_napari_viewer()
    for name, n in (("short.tif", 4), ("long.tif", 120)):
        imseq.imwrite(tmp_path / name, coded(n, (10, 12), np.uint16), fps=10.0)
    widget = MosaicWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.add_files([tmp_path / "short.tif", tmp_path / "long.tif"])
    widget.update_mosaic()
    widget.wait()
    assert widget.last_error is None, widget.status.text()
    assert len(widget.mosaic) == 120 and widget.layer is not None
    assert viewer.dims.current_step[0] == 0
    np.testing.assert_array_equal(np.asarray(widget.layer.data[0]), widget.mosaic[0])
