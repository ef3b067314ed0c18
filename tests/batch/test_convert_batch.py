"""Batch conversion on a LocalCluster of 2 worker processes: exact outputs, resume, partial
outputs, per-file failures, a worker killed mid-job, segment-parallel encoding."""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq import cli
from napari_imseq.batch import BatchError, convert_batch, convert_segments


def _sources(folder, count, frames=12, size=48, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        p = folder / f"rec{i:02d}.seq"
        data = rng.integers(0, 4096, (frames, size, size), dtype=np.uint16)
        imseq.imwrite(p, data, fps=100.0, bit_depth=12)
        paths.append(str(p))
    return paths


def _same(src, dst):
    with imseq.open_sequence(src) as a, imseq.open_sequence(dst) as b:
        assert len(a) == len(b) and a.dtype == b.dtype
        for i in range(len(a)):
            np.testing.assert_array_equal(a[i], b[i])


def test_many_files_exact_failures_reported_and_resume(tmp_path, client):
    srcs = _sources(tmp_path / "in", 5)
    bad = tmp_path / "in" / "broken.seq"
    bad.write_bytes(b"\xed\xfe\0\0not a seq file")
    out = tmp_path / "out"
    report = convert_batch([*srcs, str(bad)], out, "mkv", client=client, progress=False)
    assert sorted(report.done) == sorted(srcs)
    assert [s for s, _ in report.failed] == [str(bad)] and "broken.seq" in report.failed[0][1]
    for s in srcs:
        _same(s, out / (os.path.basename(s)[:-4] + ".mkv"))
    assert not list(out.glob("*.partial"))

    # an interrupted earlier run: one output missing, its partial file (ours) left behind
    victim = out / "rec03.mkv"
    victim.unlink()
    with pytest.raises(RuntimeError), imseq.open_writer(victim, fps=100) as w:
        w.write(np.zeros((48, 48), np.uint16))
        raise RuntimeError("interrupted")
    assert (out / "rec03.mkv.partial").exists() and not victim.exists()
    again = convert_batch(srcs, out, "mkv", client=client, progress=False)
    assert again.done == [srcs[3]] and len(again.skipped) == 4 and not again.failed
    _same(srcs[3], victim)
    assert not list(out.glob("*.partial"))


def test_cli_batch_on_a_scheduler_and_duplicate_names(tmp_path, client, capsys):
    srcs = _sources(tmp_path / "a", 2)
    twin = _sources(tmp_path / "b", 1)  # b/rec00.seq has the same output name as a/rec00.seq
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(srcs + twin) + "\n")
    code = cli.main(
        ["convert", "--files-from", str(listing), "--to", str(tmp_path / "o"),
         "--format", "tif", "--scheduler", client.scheduler.address]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "2 of 3 files converted" in err and "is written from" in err
    assert "dask: 2 workers" in err and client.scheduler.address in err
    _same(srcs[0], tmp_path / "o" / "rec00.tif")
    _same(srcs[1], tmp_path / "o" / "rec01.tif")
    # imseq normalise on the same scheduler: global stretch, statistics saved, then reused
    stats = tmp_path / "s.json"
    norm = ["normalise", *srcs, "--to", str(tmp_path / "n"), "--stats", str(stats),
            "--scheduler", client.scheduler.address]  # fmt: skip
    assert cli.main(norm) == 0
    err = capsys.readouterr().err
    assert "Statistics: 2 of 2 files sampled" in err and "2 of 2 files normalised" in err
    saved = json.loads(stats.read_text())
    with imseq.open_sequence(srcs[1]) as a, imseq.open_sequence(tmp_path / "n" / "rec01.seq") as b:
        lo, hi = saved["lo"][0], saved["hi"][0]
        np.testing.assert_array_equal(b[3], imseq.transforms.rescale(a[3], in_range=(lo, hi)))
    assert cli.main([*norm, "--method", "equalize"]) == 1
    assert "holds statistics for method 'stretch'" in capsys.readouterr().err


def _kill_a_worker_during(client, pids, job, when, check=None):
    """Run ``job`` in a thread; SIGKILL a busy worker (of ``pids``) once ``when()`` is true;
    ``check()`` must hold at that moment. Returns the killed pid (None: never caught)."""
    t = threading.Thread(target=job)
    t.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and t.is_alive():
        busy = [w for w, keys in client.processing().items() if keys and w in pids]
        if busy and when():
            killed = pids[busy[0]]
            os.kill(killed, signal.SIGKILL)
            assert check is None or check()
        time.sleep(0.01)
    t.join(120)
    assert not t.is_alive()
    return killed


def test_worker_killed_mid_job_completes_exact(tmp_path, client):
    srcs = _sources(tmp_path / "in", 10, frames=40, size=96, seed=1)
    out = tmp_path / "out"
    pids = client.run(os.getpid)
    result = {}

    def job():
        result["report"] = convert_batch(srcs, out, "mkv", client=client, progress=False)

    # killed while a worker is writing a file
    killed = _kill_a_worker_during(client, pids, job, lambda: list(out.glob("*.partial")))
    assert killed is not None, "no worker was caught mid-task"
    report = result["report"]
    assert not report.failed and sorted(report.done) == sorted(srcs)
    for s in srcs:
        _same(s, out / (os.path.basename(s)[:-4] + ".mkv"))
    assert not list(out.glob("*.partial"))
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def test_segment_parallel_encode_is_frame_exact(tmp_path, client):
    rng = np.random.default_rng(2)
    src = tmp_path / "long.seq"
    imseq.imwrite(src, rng.integers(0, 4096, (103, 40, 56), dtype=np.uint16), fps=250.0)
    dst = tmp_path / "long.mkv"
    info = convert_segments(src, dst, segment_frames=17, client=client, progress=False)
    assert info["frames"] == 103 and info["segments"] == 7
    assert not (tmp_path / "long.mkv.segments.partial").exists()
    assert not (tmp_path / "long.mkv.partial").exists()
    _same(src, dst)
    plain = tmp_path / "plain.mkv"
    imseq.convert(src, plain, progress=False)
    with imseq.open_sequence(dst) as a, imseq.open_sequence(plain) as b:
        np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-3)
        order = np.random.default_rng(3).permutation(103)[:20]
        for i in order:  # random access into the joined file
            np.testing.assert_array_equal(a[int(i)], b[int(i)])
    with pytest.raises(imseq.OverwriteRefusedError):
        convert_segments(src, dst, client=client, progress=False)
    with pytest.raises(imseq.UnsupportedWriteError):
        convert_segments(src, tmp_path / "x.mp4", client=client, progress=False)


def test_ctrl_c_cancels_and_a_rerun_finishes(tmp_path, client):
    import _thread

    from napari_imseq.batch import BatchInterrupted

    srcs = _sources(tmp_path / "in", 12, frames=40, size=96, seed=4)
    out = tmp_path / "out"

    def press_ctrl_c():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(out.glob("*.mkv")):
            time.sleep(0.02)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(BatchInterrupted, match="cancelled"):
        convert_batch(srcs, out, "mkv", client=client, progress=False)
    # the tasks in flight have stopped when BatchInterrupted comes (they see the cancel
    # within half a second): nothing is written after this point
    assert not any(client.processing().values())
    finished = sorted(out.glob("*.mkv"))
    assert 0 < len(finished) < len(srcs)  # stopped part-way; what looks complete is exact
    for f in finished:
        _same(tmp_path / "in" / (f.name[:-4] + ".seq"), f)
    again = convert_batch(srcs, out, "mkv", client=client, progress=False)
    assert len(again.skipped) == len(finished) and not again.failed
    for s in srcs:
        _same(s, out / (os.path.basename(s)[:-4] + ".mkv"))
    assert not list(out.glob("*.partial"))


def test_segment_parallel_zarr_moves_chunks_and_reads_back_exact(tmp_path, client):
    rng = np.random.default_rng(5)
    src = tmp_path / "long.seq"
    imseq.imwrite(src, rng.integers(0, 4096, (41, 24, 32), dtype=np.uint16), fps=120.0)
    dst = tmp_path / "long.zarr"
    info = convert_segments(src, dst, segment_frames=9, client=client, progress=False)
    assert info == {"source": str(src), "path": str(dst), "frames": 41, "segments": 5}
    assert sorted(os.listdir(tmp_path)) == ["long.seq", "long.zarr"]
    _same(src, dst)
    plain = tmp_path / "plain.zarr"
    imseq.convert(src, plain, progress=False)
    with imseq.open_sequence(dst) as a, imseq.open_sequence(plain) as b:
        np.testing.assert_array_equal(a.timestamps, b.timestamps)
    # replacing it needs consent, and only a store napari-imseq wrote is replaced
    with pytest.raises(imseq.OverwriteRefusedError):
        convert_segments(src, dst, client=client, progress=False)
    (dst / "notes.txt").write_text("mine")
    with pytest.raises(imseq.OverwriteRefusedError, match="did not write"):
        convert_segments(src, dst, overwrite=True, client=client, progress=False)
    assert (dst / "notes.txt").read_text() == "mine"


def _tiff_truth(path):
    """Frames and rate of a TIFF by tifffile alone (an independent reader)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        ij = tif.imagej_metadata or {}
        shaped = (tif.shaped_metadata or ({},))[0]
        return tif.asarray(), ij.get("fps") or shaped.get("fps")


@pytest.mark.parametrize(
    ("frames", "dtype", "span"),
    [
        ((103, 40, 56), np.uint16, {}),
        ((30, 12, 10, 3), np.uint8, {}),
        ((45, 16, 20), np.float64, {}),
        ((103, 40, 56), np.uint16, {"start": 5, "stop": 90, "step": 3}),
    ],
)
def test_segment_parallel_tiff_is_written_in_place_and_frame_exact(
    tmp_path, client, frames, dtype, span
):
    rng = np.random.default_rng(7)
    data = (rng.random(frames) * 4000).astype(dtype)
    src = tmp_path / ("long.tif" if dtype == np.float64 else "long.seq")
    if dtype == np.float64:  # a shaped (non-ImageJ) BigTIFF
        imseq.imwrite(src, data, fps=50.0)
    else:
        imseq.imwrite(src, data, fps=250.0, bit_depth=12 if dtype == np.uint16 else None)
    dst = tmp_path / "out.tif"
    info = convert_segments(src, dst, segment_frames=7, client=client, progress=False, **span)
    expected = data[slice(span.get("start"), span.get("stop"), span.get("step"))]
    assert info["frames"] == len(expected) and info["segments"] == -(-len(expected) // 7)
    assert sorted(os.listdir(tmp_path)) == sorted([src.name, "out.tif"])  # nothing left over
    truth, fps = _tiff_truth(dst)
    np.testing.assert_array_equal(truth.reshape(expected.shape), expected)
    plain = tmp_path / "plain.tif"
    imseq.convert(src, plain, progress=False, **span)
    with imseq.open_sequence(dst) as a, imseq.open_sequence(plain) as b:
        assert a.shape == b.shape == expected.shape and a.dtype == b.dtype == dtype
        assert a.fps == pytest.approx(b.fps) and fps == pytest.approx(b.fps)
        assert a.metadata["source"]["series_kind"] == b.metadata["source"]["series_kind"]
        assert a.metadata["source"]["bigtiff"] == b.metadata["source"]["bigtiff"]
        for i in np.random.default_rng(3).permutation(len(a))[:15]:
            np.testing.assert_array_equal(a[int(i)], expected[i])
    with pytest.raises(imseq.OverwriteRefusedError):
        convert_segments(src, dst, client=client, progress=False)
    with pytest.raises(imseq.UnsupportedWriteError, match="uncompressed"):
        convert_segments(src, tmp_path / "z.tif", compression="zlib", client=client, progress=False)
    assert not (tmp_path / "z.tif.segments.partial").exists()


def test_tiff_segments_survive_a_killed_worker_and_a_failed_segment_resumes(tmp_path, client):
    rng = np.random.default_rng(9)
    data = rng.integers(0, 4096, (60, 32, 32), dtype=np.uint16)
    src = tmp_path / "long.seq"
    imseq.imwrite(src, data, fps=100.0)
    dst = tmp_path / "out.tif"
    folder = tmp_path / "out.tif.segments.partial"
    flag, log = tmp_path / "fail", tmp_path / "log"

    def slow(frame, index, timestamp):  # pickled by value to the workers
        time.sleep(0.03)
        if index == 40 and os.path.exists(flag):
            raise RuntimeError("frame 40 is unreadable today")
        with open(log, "a") as f:
            f.write(f"{index}\n")
        return frame

    pids = client.run(os.getpid)
    result = {}

    def job():
        try:
            result["info"] = convert_segments(
                src, dst, segment_frames=10, transform=slow, client=client, progress=False
            )
        except Exception as err:  # noqa: BLE001 - handed to the test thread
            result["error"] = err

    mid = lambda: (folder / "joined.tif").exists() and log.exists()  # noqa: E731
    killed = _kill_a_worker_during(client, pids, job, mid, check=lambda: not dst.exists())
    assert killed is not None, "no worker was caught mid-segment"
    assert "error" not in result, result.get("error")
    assert result["info"]["frames"] == 60
    with imseq.open_sequence(dst) as seq:
        np.testing.assert_array_equal(seq[:], data)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker

    # a segment that fails: the others are kept (synced, marked), the output does not appear
    dst.unlink()
    log.unlink()
    flag.write_text("")
    with pytest.raises(BatchError, match="frames 40:50 failed.*frame 40 is unreadable"):
        convert_segments(src, dst, segment_frames=10, transform=slow, client=client, progress=False)
    assert not dst.exists() and (folder / "joined.tif").exists()
    assert len(list(folder.glob("*.done"))) == 5
    log.unlink()
    flag.unlink()
    convert_segments(src, dst, segment_frames=10, transform=slow, client=client, progress=False)
    assert sorted(int(v) for v in log.read_text().split()) == list(range(40, 50))  # only it
    with imseq.open_sequence(dst) as seq:
        np.testing.assert_array_equal(seq[:], data)
    assert not folder.exists()


def test_cli_converts_one_file_in_segments_on_a_scheduler(tmp_path, client, capsys):
    rng = np.random.default_rng(11)
    data = rng.integers(0, 4096, (50, 24, 30), dtype=np.uint16)
    src = tmp_path / "long.seq"
    imseq.imwrite(src, data, fps=80.0, bit_depth=12)
    sched = ["--scheduler", client.scheduler.address]
    for name in ("out.tif", "out.zarr"):
        code = cli.main(["convert", str(src), str(tmp_path / name), "--start", "4", *sched])
        err = capsys.readouterr().err
        assert code == 0, err
        assert (
            "dask: 2 workers" in err
            and f"Done: 46 frames in 8 segments -> {tmp_path / name}" in err
        )
        with imseq.open_sequence(tmp_path / name) as seq:
            np.testing.assert_array_equal(seq[:], data[4:])
            assert seq.fps == pytest.approx(80.0, rel=1e-4)
    assert cli.main(["convert", str(src), str(tmp_path / "out.mp4"), *sched]) == 1
    assert "segment-parallel conversion writes" in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("ext", ["mkv", "zarr"])
def test_segments_of_a_stepped_span_equal_convert(tmp_path, client, ext):
    rng = np.random.default_rng(12)
    src = tmp_path / "long.seq"
    imseq.imwrite(src, rng.integers(0, 4096, (103, 40, 56), dtype=np.uint16), fps=250.0)
    span = {"start": 5, "stop": 90, "step": 3}
    info = convert_segments(
        src, tmp_path / f"s.{ext}", segment_frames=7, client=client, progress=False, **span
    )
    assert info["frames"] == 29 and info["segments"] == 5
    imseq.convert(src, tmp_path / f"p.{ext}", progress=False, **span)
    with (
        imseq.open_sequence(tmp_path / f"s.{ext}") as a,
        imseq.open_sequence(tmp_path / f"p.{ext}") as b,
    ):
        assert len(a) == len(b) == 29
        np.testing.assert_array_equal(a[:], b[:])
        np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-3)
    with pytest.raises(imseq.UnsupportedWriteError, match="positive step"):
        convert_segments(src, tmp_path / f"r.{ext}", step=-1, client=client, progress=False)


def test_own_clusters_drop_dasks_malloc_trim_default_but_keep_the_users(client):
    """dask's nannies set MALLOC_TRIM_THRESHOLD_=65536, which pins glibc's mmap threshold at
    128 KiB (a 256x256 uint16 frame is mapped and faulted in afresh on every read); the
    clusters the batch jobs start leave glibc's own thresholds, unless the user set one."""
    import dask
    from distributed import Client

    from napari_imseq.batch._engine import local_cluster

    inherited = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    seen = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert set(seen.values()) == {inherited}
    key = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
    with dask.config.set({key: 1 << 20}):
        cluster = local_cluster(1)
    try:
        with Client(cluster, set_as_default=False) as own:
            seen = own.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert set(seen.values()) == {inherited or str(1 << 20)}
    finally:
        cluster.close()
