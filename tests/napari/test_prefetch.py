"""Video read-ahead: the next frame is decoded while napari draws the current one."""

import time

import numpy as np

from napari_imseq._napari._prefetch import attach_prefetch

from ..conftest import sample
from ..io import seqmaker
from ..io import videomaker as vm


def _wait(pre, count, timeout=20.0):
    end = time.monotonic() + timeout
    while pre.done < count and time.monotonic() < end:
        time.sleep(0.01)


def test_video_frames_are_read_ahead_and_stay_exact(make_napari_viewer):
    path = sample("imageio_realshort.mp4")
    truth = vm.sequential(path)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-imseq")
    pre = attach_prefetch(viewer)
    assert attach_prefetch(viewer) is pre
    for i in (1, 2, 3, 10, 9, 8):  # forward, a jump, then backward
        before = pre.done
        viewer.dims.set_current_step(0, i)
        np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), truth[i])
        _wait(pre, before + 1)
        assert pre.done == before + 1
    viewer.dims.set_current_step(0, len(truth) - 1)  # nothing after the last frame
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), truth[-1])


def test_only_video_layers_are_read_ahead(make_napari_viewer, tmp_path):
    seqmaker.raw_seq(tmp_path / "a.seq", seqmaker.frames(6, (16, 12), np.uint8))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "a.seq"), plugin="napari-imseq")
    pre = attach_prefetch(viewer)
    viewer.dims.set_current_step(0, 2)
    time.sleep(0.2)
    assert pre.done == 0
