"""open_sequence(fps=) for files, and the io modules import alone (no import circle)."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_imseq import SequenceFormatError, open_sequence

IO_MODULES = [
    "_base", "_errors", "_files", "_source", "_registry", "_formats", "_dask", "_writer",
    "_writer_base", "_target", "array", "folder", "seq", "tiff", "zarr_", "video",
]  # fmt: skip


@pytest.mark.parametrize("module", IO_MODULES)
def test_each_io_module_imports_first_in_a_fresh_interpreter(module):
    code = f"import napari_imseq.io.{module}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def stack(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7))
    return path


def test_fps_gives_a_tiff_stack_its_rate_and_timestamps(stack):
    with open_sequence(stack) as seq:
        assert seq.metadata["fps"] is None
    with open_sequence(stack, fps=4) as seq:
        assert seq.fps == 4.0
        assert seq.metadata["file_fps"] is None
        np.testing.assert_array_equal(seq.timestamps, np.arange(5) / 4.0)
        np.testing.assert_array_equal(seq[2], np.arange(210, dtype=np.uint16).reshape(5, 6, 7)[2])
        again = pickle.loads(pickle.dumps(seq))
    with again:
        assert again.fps == 4.0


def test_fps_replaces_a_declared_rate_and_its_grid(tmp_path):
    path = tmp_path / "rated.tif"
    tifffile.imwrite(
        path, np.zeros((3, 4, 4), np.uint8), imagej=True, metadata={"fps": 10.0, "axes": "TYX"}
    )
    with open_sequence(path, fps=25.0) as seq:
        assert seq.metadata["file_fps"] == 10.0
        assert seq.fps == 25.0
        np.testing.assert_allclose(seq.timestamps, np.arange(3) / 25.0)


def test_fps_works_for_bytes_too(stack):
    with open_sequence(stack.read_bytes(), fps=2) as seq:
        assert seq.fps == 2.0 and seq.timestamps[-1] == 2.0


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "fast"])
def test_bad_fps_is_a_clear_value_error(stack, bad):
    with pytest.raises(SequenceFormatError, match="fps"):
        open_sequence(stack, fps=bad)
    assert issubclass(SequenceFormatError, ValueError)
