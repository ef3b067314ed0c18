"""overwrite=True replaces a file, or what napari-imseq wrote, and nothing else."""

import errno
import os

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io._writer import OverwriteRefusedError

FRAMES = np.arange(3 * 8 * 10, dtype=np.uint16).reshape(3, 8, 10)


def snapshot(root):
    """Every file under ``root`` (links not followed) with its bytes."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = None if os.path.islink(p) else open(p, "rb").read()
    return out


def user_folder(path, files=None):
    os.makedirs(path)
    for name, content in (files or {"notes.txt": b"do not lose me\n"}).items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(content)
    return snapshot(path)


@pytest.mark.parametrize("name", ["out.mkv", "out.tif", "out.zarr", "out.seq", "out.mov"])
def test_a_users_folder_with_an_output_name_is_never_replaced(tmp_path, name):
    target = tmp_path / name
    before = user_folder(target)
    with pytest.raises(OverwriteRefusedError, match=r"did not write \(it holds notes\.txt\)"):
        imseq.imwrite(target, FRAMES, overwrite=True)
    assert snapshot(target) == before
    assert not os.path.lexists(str(target) + ".partial")


def test_the_working_folder_is_never_replaced(tmp_path, monkeypatch):
    work = tmp_path / "work"
    before = user_folder(work, {"data.csv": b"1,2,3\n", "frame_000000.png": b"mine"})
    monkeypatch.chdir(work)
    for target in ("./", ".", str(work)):
        with pytest.raises(OverwriteRefusedError, match="current working folder"):
            imseq.imwrite(target, FRAMES, overwrite=True, format="folder")
        with pytest.raises(OverwriteRefusedError, match="current working folder"):
            imseq.imwrite(target, FRAMES, overwrite=True, format="zarr")
    assert snapshot(work) == before
    assert sorted(os.listdir(tmp_path)) == ["work"]


def test_a_parent_folder_is_never_emptied(tmp_path, monkeypatch):
    parent = tmp_path / "project"
    user_folder(parent, {"a.txt": b"a"})
    os.makedirs(parent / "analysis")
    (parent / "analysis" / "result.npy").write_bytes(b"results")
    before = snapshot(parent)
    with pytest.raises(OverwriteRefusedError, match="did not write"):
        imseq.imwrite(parent, FRAMES, format="folder", overwrite=True)
    assert snapshot(parent) == before
    monkeypatch.chdir(parent / "analysis")
    with pytest.raises(OverwriteRefusedError, match="current working folder or one of its parents"):
        imseq.imwrite(parent, FRAMES, format="folder", overwrite=True)
    assert snapshot(parent) == before


def test_an_image_folder_written_again_keeps_the_users_files(tmp_path):
    target = tmp_path / "frames"
    imseq.imwrite(str(target) + "/", FRAMES)
    (target / "notes.txt").write_bytes(b"exposure 3 ms\n")
    (target / "roi.csv").write_bytes(b"x,y\n1,2\n")
    fewer = FRAMES[:2] + 7
    imseq.imwrite(str(target) + "/", fewer, overwrite=True)
    assert (target / "notes.txt").read_bytes() == b"exposure 3 ms\n"
    assert (target / "roi.csv").read_bytes() == b"x,y\n1,2\n"
    with imseq.open_sequence(target) as seq:
        assert len(seq) == 2  # the third image of the first write was ours: it went
        np.testing.assert_array_equal(seq[:], fewer)
    assert not os.path.lexists(str(target) + ".partial")


def test_an_empty_folder_takes_an_image_sequence(tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    imseq.imwrite(target, FRAMES, format="folder", overwrite=True)
    with imseq.open_sequence(target) as seq:
        np.testing.assert_array_equal(seq[:], FRAMES)
    (tmp_path / "empty.tif").mkdir()  # a file never replaces a user's folder, even an empty one
    with pytest.raises(OverwriteRefusedError, match="did not write"):
        imseq.imwrite(tmp_path / "empty.tif", FRAMES, overwrite=True)
    assert os.path.isdir(tmp_path / "empty.tif")


def test_a_zarr_store_written_again_keeps_the_users_files(tmp_path):
    target = tmp_path / "a.zarr"
    imseq.imwrite(target, FRAMES, fps=10)
    (target / "README.md").write_bytes(b"# my store\n")
    imseq.imwrite(target, FRAMES[::-1], fps=20, overwrite=True)
    assert (target / "README.md").read_bytes() == b"# my store\n"
    with imseq.open_sequence(target) as seq:
        np.testing.assert_array_equal(seq[:], FRAMES[::-1])
        assert seq.fps == 20


def test_our_folder_becomes_a_file_only_when_it_holds_nothing_else(tmp_path):
    target = tmp_path / "a.zarr"
    imseq.imwrite(target, FRAMES)
    (target / "notes.txt").write_bytes(b"mine")
    before = snapshot(target)
    with pytest.raises(OverwriteRefusedError, match=r"also holds files it did not write \(notes"):
        imseq.imwrite(target, FRAMES, format="tiff", overwrite=True)
    assert snapshot(target) == before
    os.remove(target / "notes.txt")
    imseq.imwrite(target, FRAMES, format="tiff", overwrite=True)
    assert os.path.isfile(target)
    with imseq.open_sequence(target) as seq:
        np.testing.assert_array_equal(seq[:], FRAMES)


@pytest.mark.parametrize("name", ["out.mkv", "out.zarr", "frames/", "out.seq"])
def test_a_partial_name_the_user_owns_is_refused_never_removed(tmp_path, name):
    target = os.path.join(tmp_path, name)
    partial = target.rstrip("/") + ".partial"
    before = user_folder(partial, {"keep.txt": b"user data"})
    with pytest.raises(OverwriteRefusedError, match=r"\.partial exists and is a folder that"):
        imseq.imwrite(target, FRAMES, overwrite=True)
    assert snapshot(partial) == before
    assert not os.path.lexists(target.rstrip("/"))
    os.rename(partial, partial + ".moved")
    with open(partial, "wb") as f:
        f.write(b"a user's file that happens to have this name")
    with pytest.raises(OverwriteRefusedError, match=r"\.partial exists and is a file that"):
        imseq.imwrite(target, FRAMES, overwrite=True)
    assert open(partial, "rb").read() == b"a user's file that happens to have this name"


@pytest.mark.parametrize("name", ["out.mkv", "out.tif", "out.zarr", "out.seq", "frames/"])
def test_our_own_leftover_partial_is_replaced(tmp_path, name):
    target = os.path.join(tmp_path, name)

    def fail_after_two():
        yield from FRAMES[:2]
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        imseq.imwrite(target, fail_after_two())
    partial = target.rstrip("/") + ".partial"
    assert os.path.lexists(partial)
    with pytest.raises(FileExistsError, match="partial file from an interrupted write"):
        imseq.imwrite(target, FRAMES)
    imseq.imwrite(target, FRAMES, overwrite=True)
    assert not os.path.lexists(partial)
    with imseq.open_sequence(target) as seq:
        np.testing.assert_array_equal(seq[:], FRAMES)


def test_links_are_replaced_never_their_targets(tmp_path):
    precious = tmp_path / "precious.tif"
    precious.write_bytes(b"the only copy")
    (tmp_path / "out.tif").symlink_to(precious)
    imseq.imwrite(tmp_path / "out.tif", FRAMES, overwrite=True)
    assert precious.read_bytes() == b"the only copy"
    assert not os.path.islink(tmp_path / "out.tif")
    folder = tmp_path / "mine"
    before = user_folder(folder)
    (tmp_path / "out.zarr").symlink_to(folder, target_is_directory=True)
    imseq.imwrite(tmp_path / "out.zarr", FRAMES, overwrite=True)
    assert snapshot(folder) == before
    (tmp_path / "b.mkv.partial").symlink_to(precious)
    with pytest.raises(OverwriteRefusedError, match="is a symbolic link that napari-imseq did not"):
        imseq.imwrite(tmp_path / "b.mkv", FRAMES, overwrite=True)
    assert precious.read_bytes() == b"the only copy"


def test_special_files_are_never_replaced(tmp_path):
    fifo = tmp_path / "out.seq"
    os.mkfifo(fifo)
    with pytest.raises(OverwriteRefusedError, match="not a regular file or folder"):
        imseq.imwrite(fifo, FRAMES, overwrite=True)
    os.mkfifo(tmp_path / "x.tif.partial")
    with pytest.raises(OverwriteRefusedError, match="a special file"):
        imseq.imwrite(tmp_path / "x.tif", FRAMES, overwrite=True)


def test_a_regular_file_is_replaced_with_consent(tmp_path):
    target = tmp_path / "a.seq"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        imseq.imwrite(target, FRAMES)
    assert target.read_bytes() == b"old"
    imseq.imwrite(target, FRAMES, overwrite=True)
    with imseq.open_sequence(target) as seq:
        np.testing.assert_array_equal(seq[:], FRAMES)


def test_a_folder_appearing_during_the_write_is_not_replaced(tmp_path):
    target = tmp_path / "late.tif"
    w = imseq.open_writer(target, overwrite=True)
    w.write(FRAMES[0])
    before = user_folder(target)
    with pytest.raises(
        OverwriteRefusedError, match=r"did not write.*\(1 frame\) is kept, complete"
    ):
        w.close()
    assert snapshot(target) == before
    with imseq.open_sequence(str(target) + ".partial") as seq:
        np.testing.assert_array_equal(seq[:], FRAMES[:1])


# ---- disk full and other write errors ------------------------------------------------------
def _disk_full_after(monkeypatch, cls, n):
    original = cls._write

    def write(self, frame, timestamp):
        if self.count == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, frame, timestamp)

    monkeypatch.setattr(cls, "_write", write)


@pytest.mark.parametrize(
    "name", ["out.mkv", "out.mov", "out.tif", "out.zarr", "out.seq", "frames/"]
)
def test_disk_full_names_the_partial_file_which_keeps_every_frame(tmp_path, monkeypatch, name):
    from napari_imseq.io._writer import writer_for

    target = os.path.join(tmp_path, name)
    frames = np.arange(6 * 8 * 10, dtype=np.uint16).reshape(6, 8, 10)
    _disk_full_after(monkeypatch, writer_for(target), 3)
    with pytest.raises(imseq.SequenceWriteError) as info:
        imseq.imwrite(target, frames)
    err = info.value
    partial = target.rstrip("/") + ".partial"
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC and err.filename == partial
    message = str(err)
    for part in (target.rstrip("/"), "writing frame 3", "No space left on device", partial,
                 "holds the 3 frames", "reads back", "free disk space"):  # fmt: skip
        assert part in message, part
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.ENOSPC
    assert not os.path.lexists(target.rstrip("/"))
    with imseq.open_sequence(partial) as seq:
        np.testing.assert_array_equal(seq[:], frames[:3])


def test_a_failing_rename_keeps_the_finished_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "a.seq"

    def refuse(src, dst):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(imseq.SequenceWriteError, match=r"moving into place.*Permission denied.*"
                       r"holds the 3 frames.*permissions"):  # fmt: skip
        imseq.imwrite(target, FRAMES)
    monkeypatch.undo()
    with imseq.open_sequence(str(target) + ".partial") as seq:
        np.testing.assert_array_equal(seq[:], FRAMES)


def test_a_failing_first_frame_leaves_no_partial_file(tmp_path, monkeypatch):
    from napari_imseq.io.seq import SeqWriter

    _disk_full_after(monkeypatch, SeqWriter, 0)
    with pytest.raises(imseq.SequenceWriteError, match="holds the 0 frames"):
        imseq.imwrite(tmp_path / "a.seq", FRAMES)


def test_convert_and_the_command_line_report_a_full_disk(tmp_path, monkeypatch, capsys):
    from napari_imseq import cli
    from napari_imseq.io.zarr_ import ZarrWriter

    src = tmp_path / "a.seq"
    imseq.imwrite(src, FRAMES, fps=5)
    _disk_full_after(monkeypatch, ZarrWriter, 2)
    with pytest.raises(imseq.SequenceWriteError, match=r"b\.zarr\.partial holds the 2 frames"):
        imseq.convert(src, tmp_path / "b.zarr", progress=False)
    assert cli.main(["convert", str(src), str(tmp_path / "c.zarr"), "-q"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "c.zarr.partial holds the 2 frames" in err


def test_markers_that_are_fifos_never_block(tmp_path):
    for name, marker in (("a.zarr", "zarr.json"), ("frames", ".napari-imseq.json")):
        os.makedirs(tmp_path / name)
        os.mkfifo(tmp_path / name / marker)
        with pytest.raises(OverwriteRefusedError, match="did not write"):
            imseq.imwrite(
                tmp_path / name,
                FRAMES,
                overwrite=True,
                format="zarr" if "zarr" in name else "folder",
            )


def test_a_partial_name_taken_during_start_up_is_left_alone(tmp_path, monkeypatch):
    from napari_imseq.io.seq import SeqWriter

    precious = tmp_path / "precious"
    precious.write_bytes(b"keep")
    original = SeqWriter._remove_stale

    def then_a_link_appears(self, target):
        original(self, target)
        os.symlink(precious, target)

    monkeypatch.setattr(SeqWriter, "_remove_stale", then_a_link_appears)
    with pytest.raises(OverwriteRefusedError, match="appeared while the writer started"):
        imseq.imwrite(tmp_path / "a.seq", FRAMES)
    assert precious.read_bytes() == b"keep"


def test_bytes_written_counts_only_what_we_wrote(tmp_path):
    target = tmp_path / "frames"
    imseq.imwrite(str(target) + "/", FRAMES)
    (target / "big-notes.bin").write_bytes(b"x" * 100_000)
    w = imseq.imwrite(str(target) + "/", FRAMES, overwrite=True)
    ours = sum(os.path.getsize(target / n) for n in os.listdir(target) if n != "big-notes.bin")
    assert w.bytes_written == ours < 100_000


@pytest.mark.parametrize(
    ("data", "pattern"),
    [(np.zeros((8, 8), np.uint8), r"shape \(8, 8\) is not a sequence of images"),
     (42, "not int"),
     (np.zeros((0, 8, 8), np.uint8), "no frame was written")],
)  # fmt: skip
def test_imwrite_explains_data_it_cannot_take(tmp_path, data, pattern):
    with pytest.raises(imseq.UnsupportedWriteError, match=pattern):
        imseq.imwrite(tmp_path / "a.tif", data)
    assert os.listdir(tmp_path) == []
