"""Screenshots for docs/napari.md, made from the real samples so the pictures stay true.

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/docs_screenshots.py

Rerunnable: it rewrites docs/images/napari_*.png. Every dock widget that napari.yaml declares
gets a picture (new widgets are picked up without editing this script); widgets this script
knows get a prepared state (steps added, a layer selected) first. Pictures are reduced to a
256-colour palette so each stays small (< 300 KB).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"
MAX_BYTES = 300_000


def manifest_widgets() -> list[tuple[str, str]]:
    """(display name, python name) of every widget in our manifest, in manifest order."""
    from npe2 import PluginManifest

    mf = PluginManifest.from_file(ROOT / "napari.yaml")
    commands = {c.id: c.python_name for c in mf.contributions.commands or ()}
    return [(w.display_name, commands.get(w.command, "")) for w in mf.contributions.widgets or ()]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def save_small(image, path: Path) -> int:
    """Save a QImage/QPixmap as a palette PNG under MAX_BYTES (downscaled if it must be)."""
    from PIL import Image

    tmp = path.with_suffix(".raw.png")
    image.save(str(tmp))
    img = Image.open(tmp).convert("RGB")
    tmp.unlink()
    while True:
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        size = path.stat().st_size
        if size <= MAX_BYTES:
            return size
        img = img.resize((int(img.width * 0.85), int(img.height * 0.85)), Image.Resampling.LANCZOS)


def prepare(name: str, widget, viewer) -> None:
    """Put a known widget into a state worth showing (unknown widgets are shown as they open)."""
    if hasattr(widget, "add_step") and "transform" in name.lower():
        layer = viewer.layers.selection.active
        lo, hi = (float(v) for v in layer.contrast_limits)
        widget.add_step("rescale", in_range=(lo, hi))
        widget.add_step("clahe")
        widget.add_step("draw_text", text="frame {index}")
        if hasattr(widget, "wait"):
            widget.wait()


def shoot(out: Path, frames: int = 120) -> list[tuple[str, int]]:
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_imseq._napari._sample import synthetic_frame
    from napari_imseq.io.seq import write_seq

    out.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, int]] = []
    failed: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="imseq-shots-"))
    rec = work / "recording_12bit.seq"
    write_seq(
        rec,
        (synthetic_frame(i, (480, 640)) for i in range(frames)),
        fps=100.0,
        bit_depth=12,
        overwrite=True,
    )

    def settle(viewer) -> None:
        for _ in range(5):
            QApplication.processEvents()

    def window_shot(viewer, name: str) -> None:
        settle(viewer)
        path = out / f"napari_{name}.png"
        made.append((path.name, save_small(viewer.window._qt_window.grab(), path)))

    def new_viewer():
        viewer = napari.Viewer(title="napari-imseq")
        viewer.window._qt_window.resize(1280, 820)
        return viewer

    viewer = new_viewer()

    # 1. opening: a 12-bit SEQ recording, lazily, with time in seconds
    [layer] = viewer.open(str(rec), plugin="napari-imseq")
    viewer.dims.set_current_step(0, frames // 2)
    window_shot(viewer, "open_seq")

    # 2. every widget the manifest declares, docked next to that recording
    for display_name, _ in manifest_widgets():
        viewer.layers.selection.active = layer
        try:
            dock, widget = viewer.window.add_plugin_dock_widget("napari-imseq", display_name)
            prepare(display_name, widget, viewer)
        except Exception as err:  # one broken widget must not cost the other pictures
            print(f"widget {display_name!r} failed, its picture is not updated: {err!r}")
            failed.append(display_name)
            continue
        settle(viewer)
        path = out / f"napari_widget_{slug(display_name)}.png"
        made.append((path.name, save_small(dock.grab(), path)))

    # 3. a typical session: the recording, its transforms preview, all widgets docked
    viewer.reset_view()
    window_shot(viewer, "session")
    viewer.close()  # a fresh viewer each: no widget of this one reacts to later layers

    # 4. 16-bit data that does not fill its dtype: limits from the data, not 0..65535
    calcium = SAMPLES / "imageio_calcium_imaging.tif"
    if calcium.exists():
        viewer = new_viewer()
        [cal] = viewer.open(str(calcium), plugin="napari-imseq")
        viewer.dims.set_current_step(0, 500)
        viewer.reset_view()
        window_shot(viewer, "contrast_uint16")
        viewer.close()

    # 5. a video: RGB, H.264, time from the container's timestamps
    video = SAMPLES / "imageio_cockatoo.mp4"
    if video.exists():
        viewer = new_viewer()
        viewer.open(str(video), plugin="napari-imseq")
        viewer.dims.set_current_step(0, 140)
        viewer.reset_view()
        window_shot(viewer, "video")
        viewer.close()
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    if failed:
        raise SystemExit(f"widgets without a new picture: {failed}")
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("no display: run under xvfb-run -a", file=sys.stderr)
        return 2
    for name, size in shoot(Path(args.out)):
        print(f"{name:40s} {size / 1000:6.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
