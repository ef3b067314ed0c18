"""``imseq mosaic``: an FFV1 file that reads back exactly equal to the composed frames; bad
input is an error before anything is written."""

import os
import subprocess
import sys

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq import cli
from napari_imseq.mosaic import mosaic


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "napari_imseq.cli", "mosaic", *map(str, args)],
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4096, (20, 30, 40), dtype=np.uint16)
    with imseq.open_writer(tmp_path / "a.seq", fps=40.0, bit_depth=12) as w:
        for f in a:
            w.write(f)
    imseq.imwrite(tmp_path / "b.mkv", rng.integers(0, 256, (8, 24, 50, 3), np.uint8), fps=15.0)
    imseq.imwrite(tmp_path / "c.tif", rng.integers(0, 4096, (12, 36, 36), np.uint16), fps=20.0)
    return [tmp_path / "a.seq", tmp_path / "b.mkv", tmp_path / "c.tif"]


def test_cli_writes_ffv1_that_reads_back_equal(paths, tmp_path):
    out = tmp_path / "side_by_side.mkv"
    res = run(*paths, "-o", out, "--grid", "1x3", "--sync", "timestamps", "--fps", 30,
              "--offsets", "0,0.1,-0.05", "--labels", "--time-labels", "--gap", 2)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "3 tiles (1x3)" in res.stderr
    with mosaic(paths, grid="1x3", fps=30, offsets=[0, 0.1, -0.05], labels=True,
                time_labels=True, gap=2) as m, imseq.open_sequence(out) as back:  # fmt: skip
        assert back.metadata["codec"] == "ffv1"
        assert len(back) == len(m) and back.dtype == m.dtype == np.uint16 and back.rgb
        np.testing.assert_array_equal(back[:], m[:])
        np.testing.assert_allclose(back.fps, 30.0)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


def test_cli_refuses_bad_input_before_writing(paths, tmp_path, capsys):
    out = tmp_path / "m.mkv"
    for args, words in [
        (("--grid", "1x2"), "2 cells for 3 sources"),
        (("--fps", "0"), "fps"),
        (("--span", "intersection", "--offsets", "0,100,0"), "never overlap"),
        (("--cell", "0x10"), "cell height"),
        (("--label", "one"), "--label"),
        (("--source-fps", "0,0"), "--source-fps"),
    ]:
        try:  # in this process: quicker than a subprocess per case
            status = cli.main(["mosaic", *map(str, paths), "-o", str(out), *args])
        except SystemExit as exit:  # argument errors
            status = exit.code
        err = capsys.readouterr().err + (status if isinstance(status, str) else "")
        assert status and words in err and "Traceback" not in err, (args, err)
        assert os.listdir(tmp_path) == [], args
    out.write_bytes(b"mine")
    assert cli.main(["mosaic", *map(str, paths), "-o", str(out), "-q"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"


def test_cli_promote(paths, tmp_path):
    """--promote keep writes the 8-bit tile's values as they are; the default spans the
    12-bit range (the same frames as mosaic(promote=...))."""
    for promote in ("scale", "keep"):
        out = tmp_path / f"{promote}.mkv"
        args = ["mosaic", *map(str, paths[:2]), "-o", str(out), "--sync", "index", "--stop", "3",
                "-q", *(["--promote", promote] if promote == "keep" else [])]  # fmt: skip
        assert cli.main(args) == 0
        with mosaic(paths[:2], sync="index", promote=promote) as m, imseq.open_sequence(out) as b:
            np.testing.assert_array_equal(b[:], m[:3])
            y, x, h, w = m.metadata["tiles"][1]["box"]
            top = b[1][y : y + h, x : x + w].max()
            assert top > 255 if promote == "scale" else top <= 255
