"""Hostile paths and misuse shared by every reader: special files, reads racing close()."""

import os
import socket
import stat
import threading

import numpy as np
import pytest
import tifffile

import napari_imseq as imseq
from napari_imseq.io._base import FileHandle, SequenceClosedError, read_head
from napari_imseq.io._registry import formats

from . import seqmaker


def _special_files(tmp_path):
    fifo = tmp_path / "pipe.seq"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.seq"
    zero.symlink_to("/dev/zero")
    sock_path = tmp_path / "s.tif"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    return {"FIFO": fifo, "character device": zero, "socket": sock_path}, sock


@pytest.fixture
def special(tmp_path):
    paths, sock = _special_files(tmp_path)
    yield paths
    sock.close()


def test_special_files_are_refused_without_blocking(special):
    # a blocking open of the FIFO would hang this test: every path must answer at once
    for kind, path in special.items():
        assert not stat.S_ISREG(os.stat(path).st_mode)
        assert imseq.find_format(path) is None
        assert read_head(str(path)) is None
        for cls in formats():
            assert not cls.can_read(str(path)), cls
        with pytest.raises(imseq.SequenceFormatError, match=rf"{path.name}: this is a {kind}"):
            imseq.open_sequence(path)
        for cls in formats():  # each reader refuses on its own too, before opening
            with pytest.raises(imseq.SequenceFormatError, match=path.name):
                cls(path)


def test_symlink_to_a_device_names_its_target(special):
    with pytest.raises(imseq.SequenceFormatError, match="points to /dev/zero"):
        imseq.open_sequence(special["character device"])
    with pytest.raises(imseq.SequenceFormatError, match="/dev/zero"):
        imseq.imread(special["character device"])


def test_a_file_swapped_for_a_fifo_after_open_is_refused_by_the_handle(tmp_path):
    path = tmp_path / "a.seq"
    path.write_bytes(b"x" * 100)
    fh = FileHandle(str(path))
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(imseq.SequenceFormatError, match="FIFO"):
        fh.read(10, 0)


def test_a_folder_given_to_a_file_reader(tmp_path):
    from napari_imseq.io.seq import SeqFile

    with pytest.raises(imseq.SequenceFormatError, match="is a folder, not a file"):
        SeqFile(tmp_path)


# ---- close() racing reads -------------------------------------------------------------------
def test_file_handle_close_waits_for_reads_in_flight_and_refuses_later_ones(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(bytes(range(256)) * 64)
    fh = FileHandle(str(path))
    assert fh.read(4, 0) == b"\0\1\2\3"
    fd = fh._acquire()  # a read in flight
    fh.close()
    os.fstat(fd)  # still open: the read in flight can finish on its own descriptor
    assert os.pread(fd, 2, 10) == b"\n\x0b"
    fh._release()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by the last read
    with pytest.raises(SequenceClosedError, match=r"a\.bin.*closed"):
        fh.read(4, 0)
    with pytest.raises(ValueError):
        fh.readinto(np.empty(4, np.uint8), 0)


@pytest.mark.parametrize("kind", ["seq", "tiff"])
def test_close_while_threads_read_never_returns_another_files_bytes(tmp_path, kind):
    data = seqmaker.frames(20, (64, 64), np.uint16)
    if kind == "seq":
        path = tmp_path / "a.seq"
        seqmaker.raw_seq(path, data)
    else:
        path = tmp_path / "a.tif"
        tifffile.imwrite(path, data, photometric="minisblack")
    other = tmp_path / "other.bin"
    other.write_bytes(b"\xab" * (1 << 20))
    for _ in range(20):
        seq = imseq.open_sequence(path)
        bad, errors = [], []
        stop = threading.Event()

        def reader(seq=seq, bad=bad, errors=errors, stop=stop):
            k = 0
            while not stop.is_set():
                i = k % 20
                k += 1
                try:
                    frame = seq[i]
                except ValueError as err:  # closed: the only acceptable failure
                    errors.append(err)
                    return
                if not np.array_equal(frame, data[i]):
                    bad.append(i)

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        seq.close()
        # other files opened right after the close reuse the lowest free descriptors
        handles = [open(other, "rb") for _ in range(4)]
        stop.set()
        for t in threads:
            t.join()
        for h in handles:
            h.close()
        assert bad == []
        assert all("closed" in str(e) for e in errors)


def test_sequence_close_is_deferred_until_the_read_in_flight_ends(tmp_path, monkeypatch):
    from napari_imseq.io.seq import SeqFile

    data = seqmaker.frames(3, (16, 16), np.uint8)
    seqmaker.raw_seq(tmp_path / "a.seq", data)
    seq = imseq.open_sequence(tmp_path / "a.seq")
    entered, release = threading.Event(), threading.Event()
    original = SeqFile._read

    def slow_read(self, index):
        entered.set()
        release.wait(10)
        return original(self, index)

    monkeypatch.setattr(SeqFile, "_read", slow_read)
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("frame", seq[1]))
    reader.start()
    assert entered.wait(10)
    seq.close()
    assert seq.closed and not seq._fh.closed  # released only when the read ends
    with pytest.raises(SequenceClosedError, match=r"a\.seq.*closed"):
        seq[0]
    release.set()
    reader.join()
    np.testing.assert_array_equal(got["frame"], data[1])
    assert seq._fh.closed
