"""The imseq command, through subprocess as a user runs it."""

import os
import subprocess
import sys

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq import cli

from .conftest import sample


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "napari_imseq.cli", *map(str, args)], capture_output=True, text=True
    )


def test_info_on_real_samples():
    out = run("info", sample("celeritas_top_256.seq"), sample("imageio_realshort.mp4"))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for word in (
        "norpix-seq",
        "5x128x256",
        "uint16",
        "bit depth",
        "12",
        "video",
        "h264",
        "30.02",
        "duration",
    ):
        assert word in text, word


def test_convert_one_file(tmp_path):
    out = run("convert", sample("nwbvw_stub_mjpeg.avi"), tmp_path / "o.mkv")
    assert out.returncode == 0, out.stderr
    assert "Done" in out.stderr
    assert imseq.open_sequence(tmp_path / "o.mkv").shape == (3, 120, 160, 3)
    again = run("convert", sample("nwbvw_stub_mjpeg.avi"), tmp_path / "o.mkv")
    assert again.returncode == 1 and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert (
        run("convert", sample("nwbvw_stub_mjpeg.avi"), tmp_path / "o.mkv", "--overwrite").returncode
        == 0
    )


def test_convert_options(tmp_path):
    out = run(
        "convert",
        sample("celeritas_top_256.seq"),
        tmp_path / "c.mp4",
        "--display-range",
        "0,4095",
        "--crf",
        "20",
        "-q",
    )
    assert out.returncode == 0, out.stderr
    with imseq.open_sequence(tmp_path / "c.mp4") as seq:
        assert seq.dtype == np.uint8 and len(seq) == 5
    out = run(
        "convert",
        sample("imageio_realshort.mp4"),
        tmp_path / "s.tif",
        "--start",
        "2",
        "--stop",
        "20",
        "--step",
        "3",
        "--fps",
        "7",
    )
    assert out.returncode == 0, out.stderr
    with imseq.open_sequence(tmp_path / "s.tif") as seq:
        assert len(seq) == 6 and seq.fps == 7


def test_batch_continues_past_a_bad_file(tmp_path):
    bad = tmp_path / "broken.seq"
    bad.write_bytes(b"\xed\xfe\0\0" + b"\0" * 10)
    out = run(
        "convert",
        sample("pims_sample_norpix6.seq"),
        bad,
        sample("nwbvw_stub_mjpeg.avi"),
        "--to",
        tmp_path / "out",
        "--format",
        "mkv",
    )
    assert out.returncode == 1
    assert "2 of 3 files" in out.stderr and "broken.seq" in out.stderr
    assert "Traceback" not in out.stderr
    assert (tmp_path / "out" / "pims_sample_norpix6.mkv").exists()
    assert (tmp_path / "out" / "nwbvw_stub_mjpeg.mkv").exists()


def test_errors_are_one_line(tmp_path):
    out = run("info", tmp_path / "missing.seq")
    assert out.returncode == 1 and "missing.seq" in out.stderr and "Traceback" not in out.stderr
    out = run("convert", tmp_path / "missing.seq", tmp_path / "x.mkv")
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1


def test_interrupt_exit_status(monkeypatch, capsys, tmp_path):
    def interrupted(*a, **k):
        raise imseq.ConversionInterrupted(
            "conversion to x.mkv interrupted; the partial file x.mkv.partial holds 3 frames"
        )

    monkeypatch.setattr(imseq, "convert", interrupted)
    assert cli.main(["convert", "a.seq", "x.mkv"]) == 130
    assert "x.mkv.partial" in capsys.readouterr().err


@pytest.mark.parametrize("fps", ["0", "nan", "-3", "inf"])
def test_an_impossible_fps_is_one_line_and_writes_nothing(tmp_path, fps):
    src = tmp_path / "a.zarr"
    imseq.imwrite(src, np.zeros((2, 8, 8), np.uint8))
    r = run("convert", str(src), str(tmp_path / "b.tif"), "--fps", fps, "-q")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "is not a frame rate" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.zarr"]


def test_batch_never_writes_two_sources_to_one_output(tmp_path):
    for sub in ("d1", "d2"):
        os.makedirs(tmp_path / sub)
        imseq.imwrite(tmp_path / sub / "x.zarr", np.full((2, 8, 8), int(sub[1]), np.uint8))
    out = tmp_path / "out"
    r = run(
        "convert", str(tmp_path / "d1" / "x.zarr"), str(tmp_path / "d2" / "x.zarr"),
        "--to", str(out), "--format", "tif", "--overwrite", "-q",
    )  # fmt: skip
    assert r.returncode == 1 and "is written from" in r.stderr
    with imseq.open_sequence(out / "x.tif") as seq:
        assert int(seq[0][0, 0]) == 1


def test_overwrite_never_replaces_a_users_folder(tmp_path):
    src = tmp_path / "a.zarr"
    imseq.imwrite(src, np.zeros((2, 8, 8), np.uint8))
    user = tmp_path / "out.mkv"
    user.mkdir()
    (user / "notes.txt").write_bytes(b"mine")
    r = run("convert", str(src), str(user), "--overwrite", "-q")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "napari-imseq did not write" in r.stderr
    assert (user / "notes.txt").read_bytes() == b"mine" and os.listdir(user) == ["notes.txt"]
