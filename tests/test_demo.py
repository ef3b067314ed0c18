"""The README's main job runs end to end (offscreen, small): open, transform, export, mosaic."""

import json

import napari_imseq as imseq


def test_demo_writes_its_outputs(tmp_path, qtbot):
    from napari_imseq import demo

    assert demo.main(["--offscreen", "--frames", "40", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["layer_is_lazy"] and summary["processed_is_lazy"]
    assert summary["shape"] == [40, 480, 640] and summary["bit_depth"] == 12
    with imseq.open_sequence(tmp_path / "processed_rendered.mkv") as movie:
        assert len(movie) == 40 and movie.shape[1:] == (480, 640, 3)
    with imseq.open_sequence(tmp_path / "side_by_side.mkv") as side:
        assert side.shape == (40, 480, 1280, 3) and side.dtype == "uint16"
        with imseq.open_sequence(tmp_path / "synthetic_12bit.seq") as raw:
            # the left tile is the recording itself, gray replicated into RGB, values kept
            # (below its name label, drawn in the top-left corner)
            left, gray = side[7][240:, :640], raw[7][240:]
            assert (left[..., 0] == gray).all() and (left[..., 2] == gray).all()
    assert (tmp_path / "viewer.png").stat().st_size > 0
