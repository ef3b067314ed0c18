"""Cut-off and damaged videos: the readable frames with a warning, the same answer by index
and by iteration, our errors only, and never a hang (each mutant runs in a subprocess with a
timeout)."""

import json
import os
import random
import subprocess
import sys

import av
import numpy as np
import pytest

import napari_imseq as imseq

from . import videomaker as vm


def tolerant_sequential(path):
    """The frames a plain PyAV decode yields before it stops at damage."""
    out = []
    with av.open(str(path)) as c:
        try:
            for frame in c.decode(video=0):
                out.append(vm.to_array(frame))
        except av.FFmpegError:
            pass
    return out


def rgb_frames(n, h=32, w=48):
    return [np.stack([f, f[::-1], f[:, ::-1]], -1) for f in vm.pattern(n, h, w)]


def written(tmp_path, name, n=24):
    path = tmp_path / name
    if name == "b.avi":
        vm.write(path, rgb_frames(n), codec="mpeg4", pix_fmt="yuv420p", fmt_in="rgb24", gop=8,
                 bframes=2)  # fmt: skip
    else:
        imseq.imwrite(path, np.stack(rgb_frames(n)))
    return path


@pytest.mark.parametrize("name", ["o.mkv", "o.avi", "o.webm", "b.avi"])
@pytest.mark.parametrize("keep", [0.5, 0.8])
def test_truncated_files_open_with_their_readable_frames(tmp_path, name, keep):
    if name == "o.webm":
        path = tmp_path / name
        imseq.imwrite(path, np.stack(rgb_frames(24)), gop=6)
    else:
        path = written(tmp_path, name)
    raw = path.read_bytes()
    cut = tmp_path / ("cut-" + name)
    cut.write_bytes(raw[: int(len(raw) * keep)])
    # AVI declares a frame count; Matroska/WebM a duration, never turned into a frame count
    counted = name.endswith(".avi")
    match = (
        r"declares 24 frames but only \d+ are readable"
        if counted
        else r"declares 0\.8 s but the \d+ readable frames end at [\d.]+ s"
    )
    with pytest.warns(imseq.SequenceWarning, match=match):
        seq = imseq.open_sequence(cut)
    with seq:
        md = seq.metadata
        assert md["frames_declared"] == (24 if counted else None) and md["truncated"] is True
        assert 0 < len(seq) < 24
        truth = tolerant_sequential(cut)
        got = {}
        for i in random.Random(2).sample(range(len(seq)), len(seq)):
            try:
                got[i] = seq[i]
            except imseq.SequenceFormatError as err:
                # a frame whose packet is cut off and may be shown before a whole one (a
                # B-frame) stays listed: reading it raises
                assert "cut off by the end of the file" in str(err) and cut.name in str(err)
                got[i] = None
        whole = [i for i in range(len(seq)) if got[i] is not None]
        assert len(seq) - len(whole) <= 1 and len(truth) >= len(whole)
        for i in whole:
            np.testing.assert_array_equal(got[i], truth[i], err_msg=f"frame {i}")
        stop = len(seq) if len(whole) == len(seq) else min(set(range(len(seq))) - set(whole))
        np.testing.assert_array_equal(
            np.stack(list(seq.iter_frames(0, stop))), np.stack(truth[:stop])
        )


def test_complete_files_are_not_truncated(tmp_path):
    for name in ("o.mkv", "o.avi", "b.avi"):
        with imseq.open_sequence(written(tmp_path, name)) as seq:
            assert seq.metadata["truncated"] is False and seq.metadata["frames_declared"] is None


def test_a_damaged_frame_gives_the_same_answer_by_index_and_by_iteration(tmp_path):
    path = written(tmp_path, "o.mkv")
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    raw = bytearray(path.read_bytes())
    pos, size = packets[10]
    raw[pos + size // 2 : pos + size // 2 + 64] = bytes(64)  # break frame 10's slices
    path.write_bytes(bytes(raw))
    truth = np.stack(rgb_frames(24))
    with imseq.open_sequence(path) as seq:
        by_index = {}
        for i in range(len(seq)):
            try:
                by_index[i] = seq[i]
            except imseq.SequenceFormatError as err:
                assert "o.mkv" in str(err)
                by_index[i] = err
        by_iter = {}
        frames = seq.iter_frames()
        for i in range(len(seq)):
            try:
                by_iter[i] = next(frames)
            except imseq.SequenceFormatError as err:
                by_iter[i] = err
                frames = seq.iter_frames(i + 1)
                by_iter.update({i + 1 + k: f for k, f in enumerate(frames)})
                break
    assert by_index.keys() == by_iter.keys() == set(range(24))
    for i in range(24):
        a, b = by_index[i], by_iter[i]
        if isinstance(a, Exception) or isinstance(b, Exception):
            assert isinstance(a, Exception) and isinstance(b, Exception), f"frame {i}"
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"frame {i}")
            if i != 10:
                np.testing.assert_array_equal(a, truth[i], err_msg=f"frame {i}")


_CHILD = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import napari_imseq as imseq
from napari_imseq.io._base import SequenceError
out = []
for path in sys.argv[1:]:
    try:
        with imseq.open_sequence(path) as seq:
            n = len(seq)
            for i in sorted({0, n // 2, n - 1, 1 % n}):
                try:
                    seq[i]
                except SequenceError:
                    pass
            try:
                for _ in seq.iter_frames():
                    pass
            except SequenceError:
                pass
            seq.metadata
        out.append("ok")
    except SequenceError:
        out.append("clean")
    except Exception as err:
        out.append(f"raw {type(err).__name__}: {err}")
print(json.dumps(out))
"""


def test_mutated_videos_give_frames_or_our_errors(tmp_path):
    rng = random.Random(11)
    sources = [written(tmp_path, n) for n in ("o.mkv", "o.avi", "b.avi")]
    mp4 = tmp_path / "o.mp4"
    imseq.imwrite(mp4, np.stack(rgb_frames(24)), codec="libx264", gop=8)
    mov = tmp_path / "o.mov"
    imseq.imwrite(mov, np.stack(rgb_frames(24)))
    mutants = []
    for src in [*sources, mp4, mov]:
        raw = src.read_bytes()
        for k in range(6):
            data = bytearray(raw)
            if k % 3 == 0:
                data = data[: rng.randrange(16, len(data))]
            else:
                for _ in range(1 if k % 3 == 1 else 20):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            m = tmp_path / f"m{k}-{src.name}"
            m.write_bytes(bytes(data))
            mutants.append(str(m))
    env = {**os.environ, "NAPARI_IMSEQ_CACHE_DIR": ""}
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, *mutants], capture_output=True, text=True, timeout=300,
        env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    raw = [(m, r) for m, r in zip(mutants, results, strict=True) if r.startswith("raw")]
    assert not raw


def _damage_packet(path, k, flip):
    """Change bytes inside the data of packet ``k`` (found in the file by its content)."""
    with av.open(str(path)) as c:
        data = [bytes(p) for p in c.demux(video=0) if p.size][k]
    raw = bytearray(path.read_bytes())
    at = raw.find(data)
    assert at > 0 and raw.find(data, at + 1) < 0
    flip(raw, at, len(data))
    path.write_bytes(bytes(raw))


def _every_read_path(path, n):
    """Frame or error per index: sequential indexing, random order, 4 threads, iter_frames."""
    from concurrent.futures import ThreadPoolExecutor

    def read(seq, i):
        try:
            return seq[i]
        except imseq.SequenceFormatError as err:
            return err

    with imseq.open_sequence(path) as seq:
        sequential = [read(seq, i) for i in range(n)]
    with imseq.open_sequence(path) as seq:
        order = random.Random(3).sample(range(n), n)
        shuffled = {i: read(seq, i) for i in order}
        shuffled = [shuffled[i] for i in range(n)]
    with imseq.open_sequence(path) as seq:
        with ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(lambda i: read(seq, i), range(n)))
    with imseq.open_sequence(path) as seq:
        iterated = []
        try:
            iterated.extend(seq.iter_frames())
        except imseq.SequenceFormatError as err:
            iterated.append(err)
    return sequential, shuffled, threaded, iterated


@pytest.mark.parametrize("name", ["g.mkv", "g.avi"])
def test_an_ffv1_slice_crc_mismatch_is_a_damaged_frame_in_every_read_path(tmp_path, name):
    # FFmpeg conceals a slice whose CRC fails with the picture decoded before it, so its
    # pixels depend on the decode history: the frame must be an error, never those pixels
    from napari_imseq.io.video import _ffv1_slices_intact

    truth = vm.pattern(8, 24, 32, 3)
    truth = np.stack(truth).astype(np.uint16) * 251
    path = tmp_path / name
    imseq.imwrite(path, truth, fps=10)
    with av.open(str(path)) as c:
        assert all(_ffv1_slices_intact(bytes(p)) for p in c.demux(video=0) if p.size)

    def flip(raw, at, size):
        raw[at + size // 3] ^= 0x5A

    _damage_packet(path, 5, flip)
    with av.open(str(path)) as c:
        intact = [_ffv1_slices_intact(bytes(p)) for p in c.demux(video=0) if p.size]
    assert intact == [True] * 5 + [False] + [True] * 2
    for answers in _every_read_path(path, 8):
        for i, got in enumerate(answers):
            if i != 5:
                np.testing.assert_array_equal(got, truth[i], err_msg=f"frame {i}")
        err = answers[5]
        assert isinstance(err, imseq.SequenceFormatError), type(err)
        assert name in str(err) and "frame 5 is damaged" in str(err) and "CRC" in str(err)
    # iteration stops at the damaged frame, with the frames before it exact
    assert len(answers) == 6


def test_a_png_mov_error_under_frame_threads_loses_no_earlier_frame(tmp_path):
    # frame threads report a decode error with frames of earlier packets still in flight;
    # iteration (frame-threaded) must still yield every frame before the damaged one
    truth = np.stack(rgb_frames(8, 24, 32))
    path = tmp_path / "p.mov"
    imseq.imwrite(path, truth, fps=10)

    def zero(raw, at, size):
        raw[at + size // 2 : at + size // 2 + 16] = bytes(16)

    _damage_packet(path, 6, zero)
    for answers in _every_read_path(path, 8):
        for i in range(6):
            np.testing.assert_array_equal(answers[i], truth[i], err_msg=f"frame {i}")
        assert isinstance(answers[6], imseq.SequenceFormatError)
        assert "p.mov" in str(answers[6]) and "frame 6" in str(answers[6])


def test_a_renumbering_by_another_thread_restarts_a_read_in_progress(tmp_path):
    # a decoder in the middle of a run when another thread changes the numbering must not go
    # on numbering with the old scheme (it raised a TypeError counting from an unknown start)
    from napari_imseq.io.video import _Renumber

    truth = np.stack(rgb_frames(6, 16, 24))
    path = tmp_path / "r.mkv"
    imseq.imwrite(path, truth, fps=10)
    with imseq.open_sequence(path) as seq:
        dec = seq._acquire(2)
        np.testing.assert_array_equal(seq._plan.to_array(dec.decode_to(1)), truth[1])
        with pytest.warns(imseq.SequenceWarning, match="numbered in the decoder's output"):
            seq._renumber("a test renumbering", seq._index.version)
        with pytest.raises(_Renumber):
            while dec._feed():
                pass
        seq._release(dec, broken=True)
        for i in (4, 2, 5):
            np.testing.assert_array_equal(seq[i], truth[i])
