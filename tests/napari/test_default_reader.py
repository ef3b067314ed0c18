"""napari-imseq is the reader napari uses for our formats, without overriding the user's choices.

Each test runs in a private napari profile: the settings file lives in ``tmp_path`` and starts
with no reader preferences, like a fresh install where napari's builtin reader also claims
``*.tif``, ``*.mp4``, ``*.seq`` ...
"""

import json

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq._napari import _defaults

from ..conftest import sample
from ..io import videomaker as vm


@pytest.fixture
def profile(make_napari_viewer, monkeypatch, tmp_path):
    """A fresh napari profile in tmp_path (requested after the viewer fixture resets settings)."""
    from napari.settings import get_settings

    settings = get_settings()
    monkeypatch.setattr(settings, "config_path", tmp_path / "profile" / "settings.yaml")
    settings.plugins.extension2reader = {}
    yield settings
    settings.plugins.extension2reader = {}


def _files(tmp_path):
    """One small file per format, from the shared samples where they exist."""
    frames = vm.pattern(4, 32, 48)
    imseq.imwrite(tmp_path / "clip.mov", np.stack(frames), fps=25)
    imseq.imwrite(tmp_path / "clip.webm", np.stack(frames), fps=25)
    return {
        "seq": sample("celeritas_top_256.seq"),
        "avi": sample("dlc_tests_vid.avi"),
        "mkv": sample("mediaconch_ffv1_gray_coder-1_level-3.mkv"),
        "mp4": sample("imageio_realshort.mp4"),
        "mov": tmp_path / "clip.mov",
        "webm": tmp_path / "clip.webm",
        "gif": sample("imageio_newtonscradle.gif"),
        "tif": sample("imageio_calcium_imaging.tif"),
    }


def test_manifest_activates_the_defaults_hook():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-imseq")
    assert manifest.on_activate == "napari_imseq._napari._defaults:activate"
    patterns = _defaults.reader_patterns()
    assert {"*.seq", "*.tif", "*.avi", "*.mkv", "*.mp4", "*.mov", "*.webm", "*.gif"} <= set(
        patterns
    )


def test_without_preference_napari_asks(profile, make_napari_viewer, tmp_path):
    from napari.errors import MultipleReaderError

    viewer = make_napari_viewer()
    with pytest.raises(MultipleReaderError):  # the situation the activation hook resolves
        viewer.open(str(sample("celeritas_top_256.seq")), plugin=None)


def test_every_format_opens_with_our_lazy_reader(profile, make_napari_viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    before = len(notification_manager.records)
    _defaults.activate(None)  # what npe2 runs when napari first uses the plugin
    told = [str(n.message) for n in notification_manager.records[before:]]
    assert any("*.seq" in m and "Preferences > Plugins" in m for m in told), told
    for ext, path in _files(tmp_path).items():
        assert profile.plugins.extension2reader[f"*.{ext}"] == "napari-imseq"
        [layer] = viewer.open(str(path), plugin=None)  # preference, no dialog
        assert type(layer.data).__module__.startswith("dask"), ext
        assert layer.source.reader_plugin == "napari-imseq", ext
        assert layer.metadata["format"], ext
    # File > Open, drag and drop and `napari FILE` go through the Qt viewer's _qt_open
    viewer.layers.clear()
    viewer.window._qt_viewer._qt_open([str(sample("celeritas_top_256.seq"))], stack=False)
    assert len(viewer.layers) == 1
    assert viewer.layers[0].source.reader_plugin == "napari-imseq"
    # the patterns we filled are recorded next to the settings file
    state = json.loads((tmp_path / "profile" / _defaults._STATE_FILE).read_text())
    assert "*.seq" in state["filled"]


def test_a_users_choice_is_kept(profile, make_napari_viewer):
    profile.plugins.extension2reader = {"*.tif": "napari"}
    added = _defaults.set_default_reader()
    assert "*.tif" not in added and "*.seq" in added
    assert profile.plugins.extension2reader["*.tif"] == "napari"
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(sample("imageio_calcium_imaging.tif")), plugin=None)
    assert layer.source.reader_plugin == "napari"  # the builtin the user chose
    assert not type(layer.data).__module__.startswith("dask")


def test_a_removed_default_is_not_restored(profile):
    assert "*.mp4" in _defaults.set_default_reader()
    prefs = dict(profile.plugins.extension2reader)
    del prefs["*.mp4"]  # the user removes it in Preferences > Plugins
    profile.plugins.extension2reader = prefs
    assert _defaults.set_default_reader() == {}  # next activation: left alone
    assert "*.mp4" not in profile.plugins.extension2reader
    assert "*.mp4" in _defaults.set_default_reader(force=True)


def test_folders_are_not_claimed(profile):
    _defaults.set_default_reader()
    assert all(not p.endswith(("/", "*")) for p in profile.plugins.extension2reader)
