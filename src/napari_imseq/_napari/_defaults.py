"""Make napari-imseq the reader napari uses for our formats, without overriding the user.

napari picks a reader without asking when ``settings.plugins.extension2reader`` maps the file's
pattern to a plugin (or when only one plugin matches). napari's builtin reader claims ``*.tif``,
``*.avi``, ``*.mp4``, ``*.seq`` ... as well, so without a preference every drop opens a choice
dialog, and the builtin reads the whole file into memory.

When napari activates this plugin (npe2 ``on_activate``: the first time any of its commands
runs in a session) we fill in the preference for each of our filename patterns that has *no*
preference yet. A pattern the user mapped to another plugin is never touched, and a pattern we
filled once is recorded, so a user who later removes or changes it is not overruled again.
Folders are not claimed: napari's preferences match folders by name only, so a pattern for
"every folder" would also capture zarr stores and other plugins' folder formats.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

PLUGIN = "napari-imseq"
_STATE_FILE = "napari-imseq-reader-defaults.json"
_log = logging.getLogger(__name__)


def reader_patterns() -> list[str]:
    """The filename patterns of our reader contribution, from the installed manifest."""
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(Path(__file__).parents[1] / "napari.yaml")
    patterns: list[str] = []
    for reader in manifest.contributions.readers or ():
        patterns.extend(p for p in reader.filename_patterns if p and p not in patterns)
    return patterns


def _state_path(settings: Any) -> Path | None:
    config = getattr(settings, "config_path", None)
    return Path(config).parent / _STATE_FILE if config else None


def _load_filled(path: Path | None) -> set[str]:
    if path is None or not path.is_file():
        return set()
    try:
        return set(json.loads(path.read_text())["filled"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def set_default_reader(patterns: list[str] | None = None, *, force: bool = False) -> dict[str, str]:
    """Map our patterns to napari-imseq in napari's reader preferences.

    Only patterns with no preference are set, and (unless ``force``) only patterns we have not
    set before: what the user chose, changed or removed stays as it is. ``force=True`` sets
    every unset pattern again (still never one mapped to another plugin). Returns the patterns
    set by this call.
    """
    from napari.settings import get_settings

    settings = get_settings()
    current = dict(settings.plugins.extension2reader)
    state = _state_path(settings)
    filled = set() if force else _load_filled(state)
    added = {
        p: PLUGIN
        for p in (patterns if patterns is not None else reader_patterns())
        if p not in current and p not in filled
    }
    if added:
        settings.plugins.extension2reader = {**current, **added}
        if state is not None:
            try:
                state.parent.mkdir(parents=True, exist_ok=True)
                state.write_text(json.dumps({"filled": sorted(filled | set(added))}, indent=1))
            except OSError as err:  # a read-only profile: the preference still holds this session
                _log.warning("napari-imseq could not record its reader defaults: %s", err)
    return added


def activate(ctx: Any = None) -> None:
    """npe2 ``on_activate`` hook: fill in reader preferences nobody has set (never raises).

    The user is told which patterns were set and where to change them.
    """
    try:
        added = set_default_reader()
    except Exception as err:  # activation must not fail because of a settings problem
        _log.warning("napari-imseq could not set its reader preferences: %s", err)
        return
    if added:
        from napari.utils.notifications import show_info

        show_info(
            f"napari-imseq now opens {', '.join(sorted(added))} (patterns that had no reader "
            "preference). Change this in Preferences > Plugins > File extension readers."
        )
