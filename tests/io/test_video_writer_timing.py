"""The video writer stores a distinct, increasing stamp for every frame or refuses the rate;
whatever it changes (rounded GIF delays, repeated input times, AVI's constant rate) it says."""

import av
import numpy as np
import pytest

import napari_imseq as imseq


def frames(n=6, h=16, w=16):
    return (np.arange(n, dtype=np.uint8)[:, None, None] * 37 + np.zeros((h, w), np.uint8)).copy()


@pytest.mark.parametrize(
    "name, fps, limit",
    [("a.mkv", 5000, "1000"), ("a.webm", 2000, "1000"), ("a.avi", 1e9, "1000"),
     ("a.avi", 1001, "1000"), ("a.gif", 150, "100")],
)  # fmt: skip
def test_rates_the_container_cannot_store_are_refused(tmp_path, name, fps, limit):
    path = tmp_path / name
    with pytest.raises(imseq.UnsupportedWriteError, match=rf"{name}.*fps=.*{limit} fps"):
        imseq.imwrite(path, frames(), fps=fps)
    assert not path.exists() and not (tmp_path / (name + ".partial")).exists()


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), -1, 0, 1e-9])
def test_invalid_fps_is_refused(tmp_path, fps):
    with pytest.raises(imseq.UnsupportedWriteError, match="fps"):
        imseq.imwrite(tmp_path / "a.mkv", frames(), fps=fps)


@pytest.mark.parametrize("name", ["a.mov", "a.mp4"])
def test_high_speed_rates_keep_their_stamps_in_mov_and_mp4(tmp_path, name):
    data = frames(6, 16, 16) if name.endswith("mov") else frames(6, 16, 16)
    imseq.imwrite(tmp_path / name, data, fps=100000)
    with imseq.open_sequence(tmp_path / name) as seq:
        assert len(seq) == 6
        np.testing.assert_allclose(seq.timestamps, np.arange(6) / 100000, atol=1e-9)
        assert seq.fps == pytest.approx(100000)


@pytest.mark.parametrize("name", ["a.mkv", "a.mov", "a.gif"])
@pytest.mark.parametrize("times", [[0.0] * 6, [0, 0.5, 0.2, 0.2, 0.9, 0.1]])
def test_repeated_or_backwards_timestamps_are_stored_increasing_with_a_warning(
    tmp_path, name, times
):
    path = tmp_path / name
    data = frames()
    with pytest.warns(imseq.SequenceWarning, match="not after the previous frame"):
        with imseq.open_writer(path, fps=10) as w:
            for frame, t in zip(data, times, strict=True):
                w.write(frame, t)
    with imseq.open_sequence(path) as seq:
        assert len(seq) == 6
        assert np.all(np.diff(seq.timestamps) > 0)
        if not name.endswith(".gif"):  # GIF's palette is fitted; others are lossless
            np.testing.assert_array_equal(seq[:], data)


def test_gif_rates_off_the_centisecond_grid_are_reported(tmp_path):
    with pytest.warns(imseq.SequenceWarning, match=r"29\.97 fps .* delays of 3 and 4"):
        imseq.imwrite(tmp_path / "a.gif", np.stack([frames()] * 3, -1), fps=29.97)
    with imseq.open_sequence(tmp_path / "a.gif") as seq:
        assert len(seq) == 6
        # delays rounded frame by frame keep the average rate
        assert seq.timestamps[-1] == pytest.approx(5 / 29.97, abs=0.006)
    imseq.imwrite(tmp_path / "b.gif", np.stack([frames()] * 3, -1), fps=25)  # 4 cs: exact


def test_avi_reports_timestamps_it_cannot_keep(tmp_path):
    with pytest.warns(imseq.SequenceWarning, match="AVI stores a constant frame rate"):
        with imseq.open_writer(tmp_path / "a.avi", fps=10) as w:
            for k, frame in enumerate(frames()):
                w.write(frame, k * 0.1 + (0.3 if k == 3 else 0))
    with imseq.open_sequence(tmp_path / "a.avi") as seq:
        np.testing.assert_allclose(seq.timestamps - seq.timestamps[0], np.arange(6) / 10)


@pytest.mark.parametrize("shape", [(1, 1), (2, 64), (3, 3), (64, 3), (3, 5, 3), (1, 7, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_ffv1_takes_frames_of_any_size(tmp_path, shape, dtype):
    rng = np.random.default_rng(1)
    data = rng.integers(0, np.iinfo(dtype).max, (3, *shape), dtype=dtype)
    imseq.imwrite(tmp_path / "tiny.mkv", data)
    with imseq.open_sequence(tmp_path / "tiny.mkv") as seq:
        np.testing.assert_array_equal(seq[:], data)


@pytest.mark.parametrize("shape", [(12, 16), (12, 16, 3)])
def test_sixteen_bit_rawvideo_is_refused_before_any_byte(tmp_path, shape):
    # an AVI header says "16 bits, BI_RGB" for RGB555: gray16 frames would read back as other
    # pixels, and 48-bit RGB has no raw AVI form
    data = np.random.default_rng(1).integers(0, 65536, (4, *shape), dtype=np.uint16)
    path = tmp_path / "r.avi"
    with pytest.raises(imseq.UnsupportedWriteError, match=r"r\.avi.*8-bit.*FFV1 \(\.mkv"):
        imseq.imwrite(path, data, fps=10, codec="rawvideo")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", [(12, 16), (12, 16, 3)])
def test_eight_bit_rawvideo_reads_back_exactly(tmp_path, shape):
    data = np.random.default_rng(2).integers(0, 256, (4, *shape), dtype=np.uint8)
    path = tmp_path / "r.avi"
    imseq.imwrite(path, data, fps=10, codec="rawvideo")
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[:], data)


@pytest.mark.parametrize(
    "times, fps",
    [([0, 0.5, 0.2, 0.2, 0.9, 0.1], 10), ([0, 0.1, 0.2, 5.0, 5.01, 9.0], 10),
     (list(np.cumsum(np.random.default_rng(3).uniform(0.01, 2, 30))), 30),
     (list(np.arange(60) / 997), 997)],
)  # fmt: skip
def test_matroska_truncation_is_judged_by_time_and_bytes_never_by_duration_times_fps(
    tmp_path, times, fps
):
    # Matroska declares a duration, not a frame count: irregular stamps make duration x fps
    # meaningless. A whole file never warns; a cut one does, even when only its last frame
    # (1 ms long here) is lost, and says so in seconds (frames_declared stays unknown)
    import warnings

    path = tmp_path / "v.mkv"
    data = np.random.default_rng(4).integers(0, 256, (len(times), 12, 16), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # repeated/backwards stamps are reported at writing
        with imseq.open_writer(path, fps=fps) as w:
            for frame, t in zip(data, times, strict=True):
                w.write(frame, t)
    with imseq.open_sequence(path) as seq:  # a warning here fails the test
        assert len(seq) == len(times) and seq.metadata["truncated"] is False
    raw = path.read_bytes()
    with imseq.open_sequence(path) as seq:
        last = seq.metadata["duration"]
    for keep in (0.5, 0.93):
        cut = tmp_path / f"cut{keep}.mkv"
        cut.write_bytes(raw[: int(len(raw) * keep)])
        with pytest.warns(
            imseq.SequenceWarning, match=rf"declares {last:.6g} s but the \d+ readable frames"
        ):
            seq = imseq.open_sequence(cut)
        with seq:
            assert len(seq) < len(times)
            assert seq.metadata["truncated"] is True and seq.metadata["frames_declared"] is None
            np.testing.assert_array_equal(seq[:], data[: len(seq)])
    # cut after the last frame (the cues and tags at the end are lost): every frame is there
    with av.open(str(path)) as c:
        last_packet = [p for p in c.demux(video=0) if p.size][-1]
        end = raw.find(bytes(last_packet)) + last_packet.size
    (tmp_path / "cues.mkv").write_bytes(raw[:end])
    with imseq.open_sequence(tmp_path / "cues.mkv") as seq:
        assert len(seq) == len(times) and seq.metadata["truncated"] is False
