"""convert(): streaming conversion, transforms, summaries, interruption."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io.seq import write_seq

from .conftest import sample
from .io import videomaker as vm


def make_seq(path, n=40, shape=(32, 48)):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 4096, (n, *shape), dtype=np.uint16)
    write_seq(path, frames, fps=200, bit_depth=12, timestamps=1_700_000_000 + np.arange(n) / 200)
    return frames


def test_seq_to_ffv1_keeps_every_bit_and_the_clock(tmp_path, capsys):
    frames = make_seq(tmp_path / "a.seq")
    summary = imseq.convert(tmp_path / "a.seq", tmp_path / "a.mkv")
    assert summary["frames"] == 40 and summary["bytes"] > 0 and not summary["lossy"]
    assert {"seconds", "fps", "path"} <= set(summary)
    with imseq.open_sequence(tmp_path / "a.mkv") as out:
        np.testing.assert_array_equal(out[:], frames)
        np.testing.assert_allclose(np.diff(out.timestamps), 1 / 200, atol=1e-3)
    assert "Done" in capsys.readouterr().err


def test_range_step_transform_and_quiet(tmp_path, capsys):
    frames = make_seq(tmp_path / "a.seq")
    summary = imseq.convert(
        tmp_path / "a.seq", tmp_path / "b.tif", start=5, stop=30, step=5,
        transform=lambda f: f[::2, ::2], progress=False,
    )  # fmt: skip
    assert summary["frames"] == 5
    with imseq.open_sequence(tmp_path / "b.tif") as out:
        np.testing.assert_array_equal(out[:], frames[5:30:5, ::2, ::2])
        assert out.fps == pytest.approx(40, rel=1e-3)  # 200 fps, every 5th frame
    assert capsys.readouterr().err == ""


def test_display_range_auto_to_mp4_says_lossy(tmp_path):
    make_seq(tmp_path / "a.seq", shape=(32, 48))
    summary = imseq.convert(
        tmp_path / "a.seq", tmp_path / "a.mp4", display_range="auto", progress=False
    )
    assert summary["lossy"]
    with imseq.open_sequence(tmp_path / "a.mp4") as out:
        assert out.dtype == np.uint8 and len(out) == 40


def test_real_sample_conversion_is_exact(tmp_path):
    src = sample("dlc_tests_vid.avi")
    imseq.convert(src, tmp_path / "d.mkv", stop=60, progress=False)
    truth = vm.sequential(src)[:60]
    np.testing.assert_array_equal(imseq.open_sequence(tmp_path / "d.mkv")[:], truth)


def test_a_failing_transform_keeps_the_partial_file(tmp_path):
    frames = make_seq(tmp_path / "a.seq")
    seen = []

    def transform(f):
        if len(seen) == 12:
            raise ValueError("bad frame")
        seen.append(1)
        return f

    with pytest.raises(ValueError, match="bad frame") as info:
        imseq.convert(tmp_path / "a.seq", tmp_path / "a.mkv", transform=transform, progress=False)
    assert not (tmp_path / "a.mkv").exists()
    assert any("partial" in n for n in getattr(info.value, "__notes__", []))
    with imseq.open_sequence(str(tmp_path / "a.mkv") + ".partial") as part:
        assert len(part) == 12
        np.testing.assert_array_equal(part[:], frames[:12])


def test_existing_destination_is_refused(tmp_path):
    make_seq(tmp_path / "a.seq", n=3)
    (tmp_path / "a.mkv").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite"):
        imseq.convert(tmp_path / "a.seq", tmp_path / "a.mkv", progress=False)
    assert (tmp_path / "a.mkv").read_bytes() == b"keep me"


def test_ctrl_c_midway_keeps_every_frame_written(tmp_path):
    frames = make_seq(tmp_path / "a.seq", n=400, shape=(32, 32))
    script = textwrap.dedent(f"""
        import time, sys
        import napari_imseq as imseq
        def slow(f):
            time.sleep(0.02)
            return f
        try:
            imseq.convert({str(tmp_path / "a.seq")!r}, {str(tmp_path / "a.mkv")!r}, transform=slow, progress=False)
        except KeyboardInterrupt as err:
            print("INTERRUPTED:", err, file=sys.stderr)
            sys.exit(130)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    partial = str(tmp_path / "a.mkv") + ".partial"
    deadline = time.time() + 60
    while time.time() < deadline and not (
        os.path.exists(partial) and os.path.getsize(partial) > 20000
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "partial file" in err and partial in err
    assert not (tmp_path / "a.mkv").exists()
    with imseq.open_sequence(partial) as part:
        n = len(part)
        assert 0 < n < 400
        np.testing.assert_array_equal(part[:], frames[:n])
    assert vm.sequential(partial).shape[0] == n


def test_peak_memory_does_not_grow_with_length(tmp_path):
    """Converting 100 or 1600 frames of 256x256 uint16 (13 MB or 210 MB) peaks the same."""
    write = textwrap.dedent("""
        import sys, numpy as np
        from napari_imseq.io.seq import write_seq
        write_seq(sys.argv[1], (np.full((256, 256), i, np.uint16) for i in range(int(sys.argv[2]))), fps=100)
    """)
    convert = textwrap.dedent("""
        import resource, sys
        import napari_imseq as imseq
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        imseq.convert(sys.argv[1], sys.argv[2], progress=False)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
    """)
    peaks = []
    for n in (100, 1600):
        src, dst = str(tmp_path / f"{n}.seq"), str(tmp_path / f"{n}.mkv")
        subprocess.run([sys.executable, "-c", write, src, str(n)], check=True)
        out = subprocess.run(
            [sys.executable, "-c", convert, src, dst], capture_output=True, text=True, check=True
        )
        peaks.append(int(out.stdout.strip()))
    # 1500 more frames are 197 MB of pixels; the growth must stay far below that
    assert peaks[1] - peaks[0] < 40_000, peaks  # KiB


def test_auto_display_range_comes_from_the_frames_written(tmp_path):
    # frames 0-9 hold 0..1000, frames 10-19 are saturated: converting only 0-9 must stretch
    # 0..1000 to 0..255, not squeeze it by the range of frames that are not written
    ramp = np.tile(np.linspace(0, 1000, 64, dtype=np.uint16), (48, 1))
    frames = [ramp] * 10 + [np.full((48, 64), 60000, np.uint16)] * 10
    write_seq(tmp_path / "a.seq", frames, fps=10)
    imseq.convert(
        tmp_path / "a.seq", tmp_path / "a.mp4", stop=10, display_range="auto", progress=False
    )
    with imseq.open_sequence(tmp_path / "a.mp4") as out:
        assert out[5].max() > 240 and out[5][:, :4].mean() < 15
    # and through the transform: doubled values still fill the 8 bits
    imseq.convert(tmp_path / "a.seq", tmp_path / "b.mp4", stop=10, display_range="auto",
                  transform=lambda f: f * 2, progress=False)  # fmt: skip
    with imseq.open_sequence(tmp_path / "b.mp4") as out:
        assert out[5].max() > 240


def nan_ramp(n=4, shape=(32, 40)):
    frames = np.linspace(0, 1000, n * shape[0] * shape[1], dtype=np.float32).reshape(n, *shape)
    frames[0, 0, 0] = np.nan  # one NaN pixel must not blacken the video
    frames[1, 3, 4] = np.inf
    return frames


def test_display_range_auto_ignores_nan_and_inf(tmp_path):
    from napari_imseq.io._writer import to_uint8

    frames = nan_ramp()
    w = imseq.imwrite(tmp_path / "a.mkv", frames, display_range="auto")
    lo, hi = w.display_range
    assert np.isfinite([lo, hi]).all() and 0 <= lo < 20 and 950 < hi <= 1000
    with imseq.open_sequence(tmp_path / "a.mkv") as out:
        got = out[:]
    np.testing.assert_array_equal(got, to_uint8(frames, (lo, hi)))
    assert got[0, 0, 0] == 0 and got[1, 3, 4] == 255 and got.mean() > 100
    imseq.imwrite(tmp_path / "a.zarr", frames)
    summary = imseq.convert(
        tmp_path / "a.zarr", tmp_path / "b.mkv", display_range="auto", progress=False
    )
    with imseq.open_sequence(summary["path"]) as out:
        np.testing.assert_array_equal(out[:], got)


def test_display_range_auto_of_all_nan_frames_is_a_clear_error(tmp_path):
    frames = np.full((3, 8, 8), np.nan, np.float32)
    with pytest.raises(imseq.UnsupportedWriteError, match=r"a\.mkv.*no finite value.*\(lo, hi\)"):
        imseq.imwrite(tmp_path / "a.mkv", frames, display_range="auto")
    imseq.imwrite(tmp_path / "n.zarr", frames)
    with pytest.raises(imseq.UnsupportedWriteError, match="no finite value"):
        imseq.convert(tmp_path / "n.zarr", tmp_path / "b.mp4", display_range="auto")
    assert sorted(os.listdir(tmp_path)) == ["n.zarr"]


def test_to_uint8_maps_nan_and_infinities_explicitly():
    from napari_imseq.io._writer import to_uint8

    frame = np.array([[np.nan, np.inf, -np.inf, 0.0, 5.0, 10.0, 20.0]], np.float64)
    np.testing.assert_array_equal(to_uint8(frame, (0, 10)), [[0, 255, 0, 0, 128, 255, 255]])
    with pytest.raises(ValueError, match="finite"):
        to_uint8(frame, (0, np.nan))


def test_a_source_with_a_damaged_rate_and_clock_converts_with_a_warning(tmp_path):
    import zarr

    frames = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    imseq.imwrite(tmp_path / "a.zarr", frames, fps=10)
    group = zarr.open_group(tmp_path / "a.zarr", mode="r+")
    group.attrs["fps"] = -5.0
    group["timestamps"][1] = np.nan
    with pytest.warns(imseq.SequenceWarning, match="timestamps are not finite"):
        imseq.convert(tmp_path / "a.zarr", tmp_path / "b.zarr", progress=False)
    with imseq.open_sequence(tmp_path / "b.zarr") as out:
        np.testing.assert_array_equal(out[:], frames)
        assert out.fps is None and np.isfinite(out.timestamps).all()
    group["timestamps"][1] = 0.1
    with pytest.raises(imseq.UnsupportedWriteError, match="fps=0"):
        imseq.convert(tmp_path / "a.zarr", tmp_path / "c.zarr", fps=0, progress=False)


def test_a_selection_of_no_frame_is_our_error_and_writes_nothing(tmp_path):
    make_seq(tmp_path / "a.seq", n=5)
    with pytest.raises(imseq.UnsupportedWriteError, match=r"select none of its 5 frames"):
        imseq.convert(tmp_path / "a.seq", tmp_path / "b.tif", start=10, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["a.seq"]


def test_bit_depth_travels_only_when_the_frames_are_unchanged(tmp_path):
    make_seq(tmp_path / "a.seq", n=4)  # 12-bit
    imseq.convert(tmp_path / "a.seq", tmp_path / "same.seq", progress=False)
    imseq.convert(
        tmp_path / "a.seq", tmp_path / "eight.seq", progress=False,
        transform=lambda f: (f >> 4).astype(np.uint8),
    )  # fmt: skip
    with (
        imseq.open_sequence(tmp_path / "same.seq") as a,
        imseq.open_sequence(tmp_path / "eight.seq") as b,
    ):
        assert a.bit_depth == 12 and b.dtype == np.uint8 and b.bit_depth == 8
