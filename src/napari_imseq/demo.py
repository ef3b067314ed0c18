"""The main job: write a synthetic 12-bit SEQ recording, open it lazily in napari, transform it.

The workflow a user follows, step by step in one viewer:

1. open: our reader gives a lazy layer (contrast limits from a subsample of the data, the
   12-bit range on the slider, time in seconds, playback at the recording's fps);
2. transform: the "Frame transforms" dock widget builds a pipeline (rescale to the displayed
   range, CLAHE, the frame number), previews it and applies it as a new lazy layer;
3. export: the "Export movie" dock widget is docked, and ``napari_imseq.export`` writes what
   the viewer shows (the processed layer with its contrast limits) for the first seconds of
   the recording to a lossless FFV1 movie, streamed frame by frame at the recording's fps.

``python -m napari_imseq.demo`` opens a viewer window; ``--offscreen`` runs the same steps
without showing it, saves a screenshot of the viewer with its widgets docked and prints a
summary. Outputs go to ``--out`` (default ``demo_output/``).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="napari_imseq.demo", description=__doc__)
    parser.add_argument("--out", default="demo_output", help="folder for the outputs")
    parser.add_argument("--frames", type=int, default=300, help="frames in the synthetic file")
    parser.add_argument("--offscreen", action="store_true", help="no window: save a screenshot")
    args = parser.parse_args(argv)

    import numpy as np

    import napari_imseq as imseq
    from napari_imseq._napari._sample import synthetic_frame
    from napari_imseq.io.seq import write_seq

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "synthetic_12bit.seq")
    t = time.perf_counter()
    write_seq(
        path,
        (synthetic_frame(i, (480, 640)) for i in range(args.frames)),
        fps=100.0,
        bit_depth=12,
        description="napari-imseq demo",
        overwrite=True,
    )
    write_s = time.perf_counter() - t

    import napari

    viewer = napari.Viewer(show=not args.offscreen, title="napari-imseq demo")
    viewer.window._qt_window.resize(1280, 860)
    # -- 1. open ----------------------------------------------------------------------------
    t = time.perf_counter()
    layers = viewer.open(path, plugin="napari-imseq")
    open_s = time.perf_counter() - t
    layer = layers[0]
    viewer.dims.set_current_step(0, args.frames // 2)

    # -- 2. transform -------------------------------------------------------------------------
    _, transforms = viewer.window.add_plugin_dock_widget("napari-imseq", "Frame transforms")
    lo, hi = (float(v) for v in layer.contrast_limits)
    transforms.add_step("rescale", in_range=(lo, hi))
    transforms.add_step("clahe")
    transforms.add_step("draw_text", text="frame {index}")
    transforms.wait()
    t = time.perf_counter()
    processed = transforms.apply()
    apply_s = time.perf_counter() - t
    if processed is None:
        raise SystemExit(f"the transforms widget could not apply: {transforms.status.text()}")
    layer.visible = False

    # -- 3. export ----------------------------------------------------------------------------
    viewer.window.add_plugin_dock_widget("napari-imseq", "Export movie")
    movie = os.path.join(args.out, "processed_rendered.mkv")
    t = time.perf_counter()
    exported = imseq.export(
        viewer,
        movie,
        mode="rendered",
        frames=(0, min(args.frames, 100)),
        overwrite=True,
        progress=False,
    )
    export_s = time.perf_counter() - t
    with imseq.open_sequence(movie) as out:
        exported_shape, exported_fps = list(out.shape), out.fps

    # -- 4. mosaic: the recording next to its exported rendering, in sync, written lossless ------
    side_path = os.path.join(args.out, "side_by_side.mkv")
    t = time.perf_counter()
    side = imseq.mosaic([path, movie], grid="1x2", labels=True)
    imseq.convert(side, side_path, stop=min(args.frames, 50), overwrite=True, progress=False)
    mosaic_s = time.perf_counter() - t
    with imseq.open_sequence(side_path) as out:
        mosaic_shape, mosaic_dtype = list(out.shape), str(out.dtype)

    viewer.reset_view()
    from napari_imseq._napari._time import attach

    time_display = attach(viewer)
    with imseq.open_sequence(path) as seq:
        md = seq.metadata
        middle = seq[args.frames // 2]
        summary = {
            "file": path,
            "file_bytes": os.path.getsize(path),
            "shape": list(seq.shape),
            "dtype": str(seq.dtype),
            "bit_depth": seq.bit_depth,
            "header_fps": md["header_fps"],
            "timestamp_fps": round(md["timestamp_fps"], 3),
            "duration_s": round(float(md["timestamps"][-1] - md["timestamps"][0]), 3),
            "layer": layer.name,
            "layer_is_lazy": type(layer.data).__module__.startswith("dask"),
            "contrast_limits": [round(float(v), 1) for v in layer.contrast_limits],
            "contrast_limits_range": [float(v) for v in layer.contrast_limits_range],
            "frame_shown": args.frames // 2,
            "frame_mean": float(np.mean(middle)),
            "time_shown": time_display.text,
            "playback_fps": time_display.playback_fps(0),
            "pipeline": [name for name, _ in transforms.steps],
            "processed_layer": processed.name,
            "processed_is_lazy": type(processed.data).__module__.startswith("dask"),
            "export_file": movie,
            "export_shape": exported_shape,
            "export_fps": exported_fps,
            "export_summary": {
                k: v for k, v in exported.items() if isinstance(v, (str, int, float))
            },
            "export_seconds": round(export_s, 3),
            "mosaic_file": side_path,
            "mosaic_shape": mosaic_shape,
            "mosaic_dtype": mosaic_dtype,
            "mosaic_tiles": [(t["name"], list(t["box"])) for t in side.metadata["tiles"]],
            "mosaic_seconds": round(mosaic_s, 3),
            "write_seconds": round(write_s, 3),
            "open_seconds": round(open_s, 3),
            "apply_seconds": round(apply_s, 3),
        }
    if args.offscreen:
        shot = os.path.join(args.out, "viewer.png")
        viewer.screenshot(shot, canvas_only=False)
        summary["screenshot"] = shot
        viewer.close()
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print("napari-imseq demo")
    for key, value in summary.items():
        print(f"  {key:16s} {value}")
    if not args.offscreen:
        napari.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
