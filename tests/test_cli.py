"""The imseq command, through subprocess as a user runs it."""

import subprocess
import sys

import numpy as np

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
