"""Sources beyond paths: bytes, file objects, pipes, fsspec URLs (memory://, file://, http://)
and arrays, read frame-exact against the path reader; writing to BytesIO and URLs."""

from __future__ import annotations

import functools
import gc
import http.server
import io
import os
import pickle
import threading

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io._base import (
    SequenceError,
    SequenceFileNotFoundError,
    SequenceFormatError,
    UnsupportedFormatError,
)
from napari_imseq.io._source import as_source
from napari_imseq.io._writer import OverwriteRefusedError, UnsupportedWriteError

from ..conftest import SAMPLES, sample, sample_names

fsspec = pytest.importorskip("fsspec")

SAMPLE_FILES = sample_names(".seq", ".tif", ".avi", ".mp4", ".mkv", ".gif")


# ---- a local HTTP server with Range requests (http.server alone sends whole files) -------
class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path) or not os.path.isfile(path):
            return super().send_head()
        f = open(path, "rb")  # noqa: SIM115 - closed by copyfile's caller
        size = os.fstat(f.fileno()).st_size
        start, end = 0, size - 1
        spec = self.headers.get("Range")
        if spec and spec.startswith("bytes="):
            a, _, b = spec[6:].partition("-")
            start = int(a) if a else max(size - int(b), 0)
            end = min(int(b), size - 1) if a and b else size - 1
            if start >= size:
                f.close()
                self.send_error(416)
                return None
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        f.seek(start)
        return io.BytesIO(f.read(end - start + 1)) if self.command == "GET" else f

    def copyfile(self, source, outputfile):
        super().copyfile(source, outputfile)
        source.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _serve(handler, folder):
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def http_samples():
    pytest.importorskip("aiohttp")
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} is absent")
    server, thread = _serve(_RangeHandler, SAMPLES)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def memfs():
    fs = fsspec.filesystem("memory")
    root = "/imseq-test-sources"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _indices(n: int) -> list[int]:
    """Frames compared: the first ones, the middle, the last, and a backward jump."""
    picks = [0, 1, 2, n // 2, n - 1, n // 3, 1]
    return [i for i in picks if 0 <= i < n]


@functools.cache
def _reference(name: str):
    with imseq.open_sequence(sample(name)) as seq:
        idx = _indices(len(seq))
        return len(seq), seq.shape, seq.dtype, idx, [seq[i] for i in idx], seq.fps


def _check_same(seq, name: str, *, last_only: bool = False) -> None:
    n, shape, dtype, idx, frames, fps = _reference(name)
    assert (len(seq), seq.shape, seq.dtype) == (n, shape, dtype)
    assert seq.fps == fps
    pairs = list(zip(idx, frames, strict=True))
    for i, want in pairs[-1:] if last_only else pairs:
        got = seq[i]
        assert got.dtype == want.dtype and np.array_equal(got, want), (name, i)


#: read exactly like bytes (same MemorySource) or like a path (pread): the small samples suffice
_EXTRA_KINDS = ("bytearray", "memoryview", "opened file")


def _kinds():
    return ["bytes", "bytearray", "memoryview", "BytesIO", "opened file", "memory://", "file://"]


def _make(kind: str, name: str, memfs):
    path = sample(name)
    data = path.read_bytes()
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(data)
    if kind == "BytesIO":
        return io.BytesIO(data)
    if kind == "opened file":
        return open(path, "rb")  # noqa: SIM115 - closed by the test
    if kind == "memory://":
        fs, root = memfs
        fs.pipe(f"{root}/{name}", data)
        return f"memory://{root}/{name}"
    return path.as_uri()


def _cases() -> list[tuple[str, str]]:
    """Every sample from bytes, BytesIO, memory:// and file://; the extra kinds (read through
    the same handles as bytes and paths) on the samples under 500 kB."""
    small = {n for n in SAMPLE_FILES if (SAMPLES / n).stat().st_size < 500_000}
    return [(n, k) for n in SAMPLE_FILES for k in _kinds() if k not in _EXTRA_KINDS or n in small]


@pytest.mark.parametrize(("name", "kind"), _cases())
def test_every_sample_from_every_source_is_frame_exact(name, kind, memfs):
    src = _make(kind, name, memfs)
    try:
        with imseq.open_sequence(src) as seq:
            _check_same(seq, name)
            if kind in ("bytes", "memory://", "file://"):  # travels to dask workers
                with pickle.loads(pickle.dumps(seq)) as again:
                    _check_same(again, name, last_only=True)
    finally:
        if hasattr(src, "close"):
            src.close()


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_every_sample_over_http_is_frame_exact(name, http_samples):
    url = f"{http_samples}/{name}"
    with imseq.open_sequence(url) as seq:
        assert seq.path == url
        _check_same(seq, name)
        with pickle.loads(pickle.dumps(seq)) as again:  # reopens the URL
            assert type(again._source).__name__ == "UrlSource"
            _check_same(again, name, last_only=True)


def test_fsspec_file_objects_read_by_their_url(http_samples, memfs):
    name = "pims_tiff_stack.tif"
    with fsspec.open(f"{http_samples}/{name}", "rb") as f, imseq.open_sequence(f) as seq:
        assert seq.path == f"{http_samples}/{name}"
        _check_same(seq, name)
        with pickle.loads(pickle.dumps(seq)) as again:
            _check_same(again, name, last_only=True)
    fs, root = memfs
    fs.pipe(f"{root}/{name}", sample(name).read_bytes())
    with imseq.open_sequence(fsspec.open(f"memory://{root}/{name}")) as seq:
        _check_same(seq, name)


def test_http_server_without_range_requests_is_spilled(tmp_path):
    pytest.importorskip("aiohttp")
    path = sample("pims_sample_norpix6.seq")
    server, thread = _serve(_QuietHandler, path.parent)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
        with imseq.open_sequence(url) as seq:
            assert seq.path == url
            _check_same(seq, path.name)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_imread_from_bytes_is_a_lazy_exact_dask_array():
    path = sample("imageio_calcium_imaging.tif")
    data = path.read_bytes()
    arr = imseq.imread(data, chunks=10)
    with imseq.open_sequence(path) as seq:
        want = seq[:]
    assert np.array_equal(arr.compute(scheduler="threads"), want)
    # the bytes travel once with the graph, not once per chunk (100 chunks here)
    assert arr.numblocks[0] == 100
    assert len(pickle.dumps(arr)) < 2 * len(data)
    assert np.array_equal(pickle.loads(pickle.dumps(arr))[37:41].compute(), want[37:41])


def test_video_from_bytes_in_threads_equals_the_sequential_path_decode():
    path = sample("imageio_realshort.mp4")
    with imseq.open_sequence(path) as seq:
        want = np.stack(list(seq.iter_frames()))
    arr = imseq.imread(path.read_bytes(), chunks=1)
    got = arr[::-1].compute(scheduler="threads", num_workers=4)[::-1]  # backwards, 4 threads
    assert np.array_equal(got, want)


def test_two_byte_sources_of_equal_size_get_different_dask_names():
    frames_a = np.zeros((3, 8, 8), np.uint8)
    frames_b = np.full((3, 8, 8), 7, np.uint8)
    bufs = []
    for frames in (frames_a, frames_b):
        buf = io.BytesIO()
        imseq.imwrite(buf, frames, format="tif")
        bufs.append(buf.getvalue())
    assert len(bufs[0]) == len(bufs[1])
    x, y = imseq.imread(bufs[0]), imseq.imread(bufs[1])
    assert x.name != y.name
    assert np.array_equal((x + y).compute(), frames_a + frames_b)


# ---- file objects and pipes ----------------------------------------------------------------
class _NoSeek(io.RawIOBase):
    """A stream that cannot seek (like a socket's file)."""

    def __init__(self, data: bytes):
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        chunk = self._data[self._pos : self._pos + min(len(b), 4096)]
        b[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def _pipe_with(data: bytes):
    r, w = os.pipe()

    def feed():
        with open(w, "wb") as f:
            try:
                f.write(data)
            except BrokenPipeError:  # the reader refused the stream
                pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return open(r, "rb"), t


def test_a_pipe_is_spilled_to_a_temporary_file_and_read_exactly():
    name = "pims_sample_norpix6.seq"
    stream, feeder = _pipe_with(sample(name).read_bytes())
    with stream, imseq.open_sequence(stream) as seq:
        _check_same(seq, name)
        with pickle.loads(pickle.dumps(seq)) as again:  # the spilled content travels
            _check_same(again, name)
    feeder.join(5)


def test_a_pipe_beyond_the_spill_limit_is_refused_clearly():
    data = sample("pims_sample_norpix6.seq").read_bytes()
    stream, feeder = _pipe_with(data)
    with stream, pytest.raises(SequenceFormatError, match="spill limit of 1000 bytes"):
        imseq.open_sequence(stream, spill_limit=1000)
    feeder.join(5)
    with pytest.raises(SequenceFormatError, match="cannot seek"):
        imseq.open_sequence(_NoSeek(data), spill_limit=0)


def test_env_spill_limit_and_a_non_seekable_object(monkeypatch):
    data = sample("celeritas_top_256.seq").read_bytes()
    with imseq.open_sequence(_NoSeek(data)) as seq:
        _check_same(seq, "celeritas_top_256.seq")
    monkeypatch.setenv("NAPARI_IMSEQ_SPILL_LIMIT", "10")
    with pytest.raises(SequenceFormatError, match="spill limit of 10 bytes"):
        imseq.open_sequence(_NoSeek(data))


def test_an_opened_file_keeps_its_position_and_stays_open():
    path = sample("imageio_calcium_imaging.tif")
    with open(path, "rb") as f:
        f.seek(123)
        with imseq.open_sequence(f) as seq:
            seq[500]
            assert f.tell() == 123
            with pickle.loads(pickle.dumps(seq)) as again:  # its name is the same file
                assert again._source.local_path == str(path)
        assert not f.closed and f.read(4) == path.read_bytes()[123:127]


def test_a_generic_seekable_object_is_read_under_a_lock_from_threads():
    name = "pims_tiff_stack.tif"
    data = sample(name).read_bytes()

    class Wrapped(io.RawIOBase):  # seekable, no fileno, not a BytesIO
        def __init__(self):
            self._b = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return True

        def readinto(self, b):
            return self._b.readinto(b)

        def seek(self, *a):
            return self._b.seek(*a)

        def tell(self):
            return self._b.tell()

    with imseq.open_sequence(Wrapped()) as seq:
        _check_same(seq, name)
        got = imseq.imread(Wrapped()).compute(scheduler="threads", num_workers=4)
        assert np.array_equal(got, seq[:])
        with pytest.raises(SequenceError, match="cannot be sent to another process"):
            pickle.dumps(seq)


def test_a_bytesio_can_grow_again_after_close():
    buf = io.BytesIO(sample("pims_sample_norpix6.seq").read_bytes())
    with imseq.open_sequence(buf) as seq:
        seq[0]
    del seq
    gc.collect()
    buf.seek(0, io.SEEK_END)
    buf.write(b"more")  # BufferError while a view of it was held


# ---- errors --------------------------------------------------------------------------------
def test_bad_sources_give_our_errors(memfs):
    with pytest.raises(SequenceFormatError, match="empty"):
        imseq.open_sequence(b"")
    with pytest.raises(UnsupportedFormatError, match="format="):
        imseq.open_sequence(b"not an image sequence at all" * 10)
    with pytest.raises(SequenceFileNotFoundError, match="memory://nowhere/x.seq"):
        imseq.open_sequence("memory://nowhere/x.seq")
    with pytest.raises(SequenceError, match="not a protocol fsspec knows"):
        imseq.open_sequence("nosuchproto://a/b.seq")
    with pytest.raises(TypeError, match="cannot read a sequence from a int"):
        imseq.open_sequence(12)
    with pytest.raises(SequenceFormatError, match="format='bogus'"):
        imseq.open_sequence(b"x" * 100, format="bogus")
    closed = io.BytesIO(b"abc")
    closed.close()
    with pytest.raises(SequenceError, match="closed"):
        imseq.open_sequence(closed)


def test_format_hint_picks_the_reader():
    data = sample("pims_sample_norpix6.seq").read_bytes()
    with imseq.open_sequence(data, format="seq") as seq:
        assert seq.format_name == "norpix-seq"
    # a hint that does not fit the content: that reader says what is wrong
    with pytest.raises(SequenceFormatError):
        imseq.open_sequence(data, format="tif")
    with imseq.open_sequence(sample("pims_sample_norpix6.seq"), format="seq") as seq:
        assert len(seq) == 6


def test_arrays_are_sequences():
    frames = np.arange(5 * 4 * 3, dtype=np.uint16).reshape(5, 4, 3)
    with imseq.open_sequence(frames, fps=20.0) as seq:
        assert seq.format_name == "array" and seq.fps == 20.0
        assert np.array_equal(seq[2], frames[2])
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(frames, chunks=(2, 4, 3))
    assert np.array_equal(imseq.imread(lazy).compute(), frames)


# ---- no leaked handles ---------------------------------------------------------------------
def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_open_close_1000_times_leaks_no_handle(memfs):
    name = "pims_sample_norpix6.seq"
    path = sample(name)
    data = path.read_bytes()
    fs, root = memfs
    fs.pipe(f"{root}/{name}", data)
    makers = [
        lambda: data,
        lambda: io.BytesIO(data),
        lambda: f"memory://{root}/{name}",
        lambda: path.as_uri(),
    ]
    with open(path, "rb") as f:
        makers.append(lambda: f)
        for make in makers:  # warm up imports and caches
            with imseq.open_sequence(make()) as seq:
                seq[0]
        gc.collect()
        before = _fd_count()
        for k in range(1000):
            with imseq.open_sequence(makers[k % len(makers)]()) as seq:
                seq[k % 6]
        gc.disable()  # what close() released, not what the collector would
        try:
            assert _fd_count() == before
        finally:
            gc.enable()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("name", ["nwbvw_stub_mjpeg.avi", "pims_tiff_stack.tif"])
def test_video_and_tiff_decoders_close_their_file_objects(name):
    """Each decoder of the video pool (and tifffile) gets its own file object on the source;
    an opened file's duplicated descriptors are all closed with the sequence."""
    path = sample(name)
    data = path.read_bytes()
    with open(path, "rb") as f:
        for src in (f, data):
            with imseq.open_sequence(src) as seq:
                seq[-1]
        gc.collect()
        before = _fd_count()
        for k in range(20):
            with imseq.open_sequence(f if k % 2 else data) as seq:
                seq[len(seq) - 1]
                seq[0]
        gc.disable()
        try:
            assert _fd_count() == before
        finally:
            gc.enable()


# ---- writing -------------------------------------------------------------------------------
_LOSSLESS = ["mkv", "avi", "mov", "tif", "seq", "gif"]


def _frames(fmt: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    if fmt == "gif":  # a palette of at most 256 colours: exact
        return (rng.integers(0, 4, (6, 24, 32)) * 60).astype(np.uint8)
    return rng.integers(0, 256, (6, 24, 32), dtype=np.uint8)


@pytest.mark.parametrize("fmt", _LOSSLESS)
def test_write_each_format_to_bytesio_and_read_back_exactly(fmt):
    frames = _frames(fmt)
    buf = io.BytesIO()
    w = imseq.imwrite(buf, frames, format=fmt, fps=10)
    assert w.count == 6 and w.bytes_written == len(buf.getvalue()) > 0
    with imseq.open_sequence(buf.getvalue()) as seq:
        got = seq[:]
        if got.ndim == 4:  # GIF reads back as RGB
            got = got[..., 0]
        assert np.array_equal(got, frames)
        assert seq.fps == pytest.approx(10, rel=1e-3)


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_lossy_formats_to_bytesio_read_back(fmt):
    frames = _frames("mkv")
    buf = io.BytesIO()
    w = imseq.imwrite(buf, frames, format=fmt, fps=10)
    assert w.lossy
    with imseq.open_sequence(buf) as seq:  # the BytesIO itself is a source
        assert len(seq) == 6 and seq.frame_shape[:2] == (24, 32)
        assert np.abs(seq[3].astype(int)[..., 0] - frames[3]).mean() < 40


def test_write_to_a_pipe_streams_the_finished_file():
    frames = _frames("tif")
    r, w = os.pipe()
    got = bytearray()

    def drain():
        with open(r, "rb") as f:
            while block := f.read(65536):
                got.extend(block)

    t = threading.Thread(target=drain)
    t.start()
    with open(w, "wb") as out:
        imseq.imwrite(out, frames, format="tif", fps=10)
    t.join(10)
    with imseq.open_sequence(bytes(got)) as seq:
        assert np.array_equal(seq[:], frames)


def test_a_failed_write_leaves_the_bytesio_untouched():
    buf = io.BytesIO()
    frames = _frames("mkv")
    with pytest.raises(RuntimeError), imseq.open_writer(buf, format="mkv", fps=5) as w:
        w.write(frames[0])
        raise RuntimeError("stop")
    assert buf.getvalue() == b""
    with pytest.raises(UnsupportedWriteError, match="format="):
        imseq.open_writer(io.BytesIO())
    with pytest.raises(UnsupportedWriteError, match="folder"):
        imseq.open_writer(io.BytesIO(), format="zarr")


@pytest.mark.parametrize("name", ["a.mkv", "b.tif", "c.zarr"])
def test_write_to_a_memory_url_without_overwriting(name, memfs):
    fs, root = memfs
    url = f"memory://{root}/{name}"
    frames = _frames("mkv")
    imseq.imwrite(url, frames, fps=10)
    assert not fs.exists(f"{root}/{name}.partial")
    with imseq.open_sequence(url) as seq:
        assert np.array_equal(seq[:], frames)
    with pytest.raises(OverwriteRefusedError):
        imseq.imwrite(url, frames[:2], fps=10)
    if name.endswith(".zarr"):  # a folder at a URL is never replaced
        with pytest.raises(OverwriteRefusedError, match="folder"):
            imseq.imwrite(url, frames[:2], fps=10, overwrite=True)
    else:
        imseq.imwrite(url, frames[:2], fps=10, overwrite=True)
        with imseq.open_sequence(url) as seq:
            assert len(seq) == 2


def test_convert_from_bytes_to_a_bytesio_and_a_url(memfs):
    fs, root = memfs
    data = sample("pims_sample_norpix6.seq").read_bytes()
    out = io.BytesIO()
    summary = imseq.convert(data, out, format="mkv", progress=False)
    assert summary["frames"] == 6
    with imseq.open_sequence(out.getvalue()) as a, imseq.open_sequence(data) as b:
        assert np.array_equal(a[:], b[:])
    imseq.convert(data, f"memory://{root}/y.tif", progress=False)
    with imseq.open_sequence(f"memory://{root}/y.tif") as a, imseq.open_sequence(data) as b:
        assert np.array_equal(a[:], b[:])


def test_as_source_kinds():
    assert type(as_source(b"abc")).__name__ == "MemorySource"
    assert type(as_source("memory://x/y")).__name__ == "UrlSource"
    assert as_source("file:///tmp/x.seq").local_path == "/tmp/x.seq"
    assert as_source(os.curdir).local_path == os.path.abspath(os.curdir)


# ---- folders at URLs -----------------------------------------------------------------------
def _folder_frames() -> np.ndarray:
    return (np.arange(5 * 12 * 16) % 4096).astype(np.uint16).reshape(5, 12, 16)


@pytest.mark.parametrize("fmt", ["zarr", "folder"])
def test_zarr_and_image_folders_at_a_memory_url(fmt, tmp_path, memfs):
    fs, root = memfs
    frames = _folder_frames()
    local = tmp_path / ("rec.zarr" if fmt == "zarr" else "imgs")
    imseq.imwrite(str(local) + ("" if fmt == "zarr" else "/"), frames, fps=25)
    fs.put(str(local), f"{root}/{local.name}", recursive=True)
    url = f"memory://{root}/{local.name}"
    with imseq.open_sequence(url) as seq:
        assert seq.format_name == ("zarr" if fmt == "zarr" else "image-folder")
        assert np.array_equal(seq[:], frames) and np.array_equal(seq[3], frames[3])
        with pickle.loads(pickle.dumps(seq)) as again:
            assert np.array_equal(again[4], frames[4])


def test_a_lost_zarr_chunk_at_a_url_is_an_error_not_a_blank_frame(tmp_path, memfs):
    fs, root = memfs
    imseq.imwrite(str(tmp_path / "rec.zarr"), _folder_frames(), fps=25)
    fs.put(str(tmp_path / "rec.zarr"), f"{root}/rec.zarr", recursive=True)
    lost = [p for p in fs.find(f"{root}/rec.zarr/frames") if "/c/2/" in p or p.endswith("/c/2")]
    assert lost
    fs.rm(lost)
    with imseq.open_sequence(f"memory://{root}/rec.zarr") as seq:
        assert np.array_equal(seq[1], _folder_frames()[1])
        with pytest.raises(imseq.FrameIndexError, match="frame 2 is missing"):
            seq[2]


def test_an_image_folder_over_http(tmp_path):
    pytest.importorskip("aiohttp")
    frames = _folder_frames()
    imseq.imwrite(str(tmp_path / "imgs") + "/", frames, format="folder")
    server, thread = _serve(_RangeHandler, tmp_path)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/imgs/"
        with imseq.open_sequence(url) as seq:
            assert np.array_equal(seq[:], frames)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_missing_backend_is_named():
    import importlib.util

    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed here")
    with pytest.raises(SequenceError, match="install it .*s3: s3fs"):
        imseq.open_sequence("s3://bucket/rec.seq")
    with pytest.raises(SequenceError, match="s3fs"):
        imseq.imwrite("s3://bucket/rec.tif", np.zeros((2, 4, 4), np.uint8))
