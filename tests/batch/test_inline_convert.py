"""convert() of a short job (fewer frames than its queue) runs in the calling thread: same
results, cancel and Ctrl-C behave as in the threaded path."""

import threading

import numpy as np
import pytest

import napari_imseq as imseq


@pytest.fixture
def short(tmp_path):
    data = np.random.default_rng(0).integers(0, 4096, (5, 16, 24), dtype=np.uint16)
    imseq.imwrite(tmp_path / "s.seq", data, fps=50.0)
    return tmp_path / "s.seq", data


def test_short_job_runs_inline_and_exact(short, tmp_path):
    src, data = short
    before = threading.active_count()
    seen = []

    def spy(frame):
        seen.append(threading.current_thread() is threading.main_thread())
        return frame + 1

    out = imseq.convert(src, tmp_path / "o.tif", transform=spy, progress=False)
    assert out["frames"] == 5 and all(seen) and threading.active_count() == before
    with imseq.open_sequence(tmp_path / "o.tif") as seq:
        np.testing.assert_array_equal(seq[:], data + 1)


def test_short_job_cancel_keeps_only_a_partial_file(short, tmp_path):
    src, _ = short
    cancel = threading.Event()

    def after_two(frame, index, timestamp):
        if index == 1:
            cancel.set()
        return frame

    with pytest.raises(imseq.ConversionCancelled, match="partial"):
        imseq.convert(src, tmp_path / "o.mkv", transform=after_two, cancel=cancel, progress=False)
    assert not (tmp_path / "o.mkv").exists()
    with imseq.open_sequence(tmp_path / "o.mkv.partial") as part:
        assert len(part) == 1  # the first frame was written before the cancel was seen


def test_short_job_ctrl_c_is_conversion_interrupted(short, tmp_path):
    src, data = short

    def ctrl_c_at_3(frame, index, timestamp):
        if index == 3:
            raise KeyboardInterrupt
        return frame

    with pytest.raises(imseq.ConversionInterrupted, match="3 frames written"):
        imseq.convert(src, tmp_path / "o.mkv", transform=ctrl_c_at_3, progress=False)
    assert not (tmp_path / "o.mkv").exists()
    with imseq.open_sequence(tmp_path / "o.mkv.partial") as part:
        np.testing.assert_array_equal(part[:], data[:3])
