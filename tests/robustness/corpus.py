"""Small files of every reader, written by our writers and by third-party tools.

Each generator writes into a folder and returns a :class:`Base`: the path, how to compute an
independent reference from the bytes (``ref``), the layout facts the mutations and the
reference need, and the ground-truth frames for the undamaged file (``truth``: the frames that
were written, for lossless formats; ``None`` means "the independent reference decode of the
file itself", for lossy codecs and real samples).
"""

from __future__ import annotations

import os
import shutil
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"


@dataclass
class Base:
    path: Path
    ref: str  # rawseq | jpegseq | tiff | pyav | zarr | folder
    truth: np.ndarray | None = None
    layout: dict[str, Any] = field(default_factory=dict)
    #: the data was written by our own writer (a failure to generate is then our failure)
    ours: bool = False


class GeneratorUnavailable(Exception):
    """The base cannot be made here (a sample file is absent); the case is skipped."""


def frames(n, shape, dtype, seed=0):
    """Frames that differ from each other everywhere, so a wrong frame never looks right."""
    rng = np.random.default_rng(seed)
    hi = 4096 if np.dtype(dtype) == np.uint16 else 256
    return rng.integers(0, hi, size=(n, *shape), dtype=dtype)


def video_frames(n, h, w, rgb=True, seed=0):
    from tests.io.videomaker import pattern

    gray = pattern(n, h, w, seed)
    if not rgb:
        return np.stack(gray)
    return np.stack([np.stack([f, f[::-1], 255 - f], -1) for f in gray])


# ---- layout facts read from the undamaged bytes (per shared/docs/seq-format.md) --------------
def seq_layout(path: Path) -> dict[str, Any]:
    b = path.read_bytes()
    width, height, bits, real, image_size, fmt, allocated, _, stride = struct.unpack_from(
        "<9I", b, 548
    )
    version = struct.unpack_from("<i", b, 28)[0]
    compression = struct.unpack_from("<I", b, 620)[0]
    channels = {100: 1, 101: 1, 200: 3, 400: 3, 500: 4}.get(fmt, 1)
    item = bits // 8 // channels
    return {
        "version": version, "width": width, "height": height, "bits": bits, "real_bits": real,
        "image_size": image_size, "format": fmt, "allocated": allocated, "stride": stride,
        "start": 8192 if version >= 5 else 1024, "compression": compression,
        "channels": channels, "dtype": "<u2" if item == 2 else "u1",
        "ts_len": 8 if version >= 5 else 6, "size": len(b),
    }  # fmt: skip


def jpeg_records(path: Path, n: int, ts_len: int = 8, gap: int = 0) -> list[tuple[int, int]]:
    """(offset of the size prefix, prefix value) of each frame of a compressed SEQ we made."""
    b = path.read_bytes()
    off, out = 1024, []
    for _ in range(n):
        size = struct.unpack_from("<I", b, off)[0]
        out.append((off, size))
        off += size + ts_len + gap
    return out


def tiff_layout(path: Path, pages_per_frame: int = 1) -> dict[str, Any]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = []
        for p in tif.pages:
            tags = {t.name: (t.offset, t.valueoffset, t.valuebytecount) for t in p.tags.values()}
            pages.append({"offset": p.offset, "ntags": len(p.tags), "tags": tags})
        series = None
        s = tif.series[0]
        if s.dataoffset is not None and len(s.shape) >= 3:
            dtype = np.dtype(s.dtype).newbyteorder(tif.byteorder).str
            series = {"offset": s.dataoffset, "shape": list(s.shape), "dtype": dtype}
        return {
            "byteorder": tif.byteorder, "bigtiff": tif.is_bigtiff, "pages": pages,
            "pages_per_frame": pages_per_frame, "size": os.path.getsize(path), "series": series,
        }  # fmt: skip


# ---- SEQ -------------------------------------------------------------------------------------
def seq_raw8(d):
    from tests.io import seqmaker

    data = frames(6, (12, 16), np.uint8)
    seqmaker.raw_seq(d / "a.seq", data)
    return Base(d / "a.seq", "rawseq", data, seq_layout(d / "a.seq"))


def seq_raw16_v3(d):
    from tests.io import seqmaker

    data = frames(5, (9, 14), np.uint16)
    seqmaker.raw_seq(d / "a.seq", data, version=3, real_bits=12, pad_to=512)
    return Base(d / "a.seq", "rawseq", data, seq_layout(d / "a.seq"))


def seq_bgr(d):
    from tests.io import seqmaker

    data = frames(4, (8, 10, 3), np.uint8)
    seqmaker.raw_seq(d / "a.seq", data, layout="BGR")
    return Base(d / "a.seq", "rawseq", data, seq_layout(d / "a.seq"))


def _seq_writer(d, dtype, timestamps):
    import napari_imseq as imseq

    data = frames(5, (10, 12), dtype)
    with imseq.open_writer(d / "a.seq", fps=50, bit_depth=12 if dtype == np.uint16 else None) as w:
        for i, f in enumerate(data):
            w.write(f, 1_700_000_000 + 0.02 * i if timestamps else None)
    return Base(d / "a.seq", "rawseq", data, seq_layout(d / "a.seq"), ours=True)


def seq_writer16_ts(d):
    return _seq_writer(d, np.uint16, True)


def seq_writer8_nots(d):
    return _seq_writer(d, np.uint8, False)


def _seq_jpeg(d, idx):
    import imagecodecs

    from tests.io import seqmaker

    data = frames(5, (16, 24), np.uint8)
    seqmaker.compressed_seq(d / "a.seq", data, idx=idx)
    recs = jpeg_records(d / "a.seq", len(data))
    lay = seq_layout(d / "a.seq")
    lay["records"] = recs
    blob = (d / "a.seq").read_bytes()
    truth = np.stack([imagecodecs.jpeg8_decode(blob[o + 4 : o + s]) for o, s in recs])
    return Base(d / "a.seq", "jpegseq", truth, lay)


def seq_jpeg(d):
    return _seq_jpeg(d, None)


def seq_jpeg_idx(d):
    return _seq_jpeg(d, "good")


# ---- TIFF ------------------------------------------------------------------------------------
def tiff_plain(d):
    import tifffile

    data = frames(6, (10, 12), np.uint16)
    tifffile.imwrite(d / "a.tif", data)
    return Base(d / "a.tif", "tiff", data, tiff_layout(d / "a.tif"))


def tiff_bigtiff_rgb(d):
    import tifffile

    data = frames(4, (8, 9, 3), np.uint8)
    tifffile.imwrite(d / "a.tif", data, bigtiff=True, photometric="rgb")
    return Base(d / "a.tif", "tiff", data, tiff_layout(d / "a.tif"))


def tiff_zlib_be(d):
    import tifffile

    data = frames(5, (10, 12), np.uint16)
    tifffile.imwrite(d / "a.tif", data, compression="zlib", byteorder=">")
    return Base(d / "a.tif", "tiff", data, tiff_layout(d / "a.tif"))


def tiff_imagej_tzcyx(d):
    import tifffile

    data = frames(3, (2, 2, 6, 8), np.uint16)
    tifffile.imwrite(d / "a.tif", data, imagej=True, metadata={"axes": "TZCYX", "finterval": 0.5})
    return Base(d / "a.tif", "tiff", data, tiff_layout(d / "a.tif", pages_per_frame=4))


def tiff_ome(d):
    import tifffile

    data = frames(4, (10, 12), np.uint8)
    tifffile.imwrite(d / "a.ome.tif", data, ome=True, metadata={"axes": "TYX"})
    return Base(d / "a.ome.tif", "tiff", data, tiff_layout(d / "a.ome.tif"))


def tiff_writer_imagej(d):
    import napari_imseq as imseq

    data = frames(5, (10, 12), np.uint16)
    imseq.imwrite(d / "a.tif", data, fps=10)
    return Base(d / "a.tif", "tiff", data, tiff_layout(d / "a.tif"), ours=True)


def tiff_writer_bigtiff_zstd(d):
    import napari_imseq as imseq

    data = frames(4, (8, 10, 3), np.uint8)
    imseq.imwrite(d / "a.tif", data, fps=10, compression="zlib", bigtiff=True)
    return Base(d / "a.tif", "tiff", data, tiff_layout(d / "a.tif"), ours=True)


# ---- video -----------------------------------------------------------------------------------
def _video_writer(name, ext, data, lossless, **opts):
    def gen(d):
        import napari_imseq as imseq

        path = d / f"a{ext}"
        imseq.imwrite(path, data, fps=opts.pop("fps", 25), **opts)
        return Base(path, "pyav", data if lossless else None, {}, ours=True)

    gen.__name__ = name
    return gen


_RGB = video_frames(6, 16, 24)
_GRAY16 = frames(5, (12, 16), np.uint16)
video_ffv1_mkv = _video_writer("video_ffv1_mkv", ".mkv", _GRAY16, True)
video_ffv1_avi = _video_writer("video_ffv1_avi", ".avi", _RGB, True)
video_png_mov = _video_writer("video_png_mov", ".mov", _RGB, True)
video_rawvideo_avi = _video_writer("video_rawvideo_avi", ".avi", _RGB, True, codec="rawvideo")
video_h264_mp4 = _video_writer("video_h264_mp4", ".mp4", _RGB, False)
video_vp9_webm = _video_writer("video_vp9_webm", ".webm", _RGB, False)
video_mjpeg_avi = _video_writer("video_mjpeg_avi", ".avi", _RGB, False, codec="mjpeg")
video_gif_ours = _video_writer("video_gif_ours", ".gif", _RGB, False, fps=10)
video_ffv1_fps5000 = _video_writer("video_ffv1_fps5000", ".avi", _GRAY16, True, fps=5000)
video_ffv1_fps_neg = _video_writer("video_ffv1_fps_neg", ".mkv", _GRAY16, True, fps=-1)


def video_ffv1_same_ts(d):
    """Our writer given the same timestamp for every frame (a camera clock that stood still)."""
    import napari_imseq as imseq

    with imseq.open_writer(d / "a.mkv", fps=25) as w:
        for f in _GRAY16:
            w.write(f, 1.0)
    return Base(d / "a.mkv", "pyav", _GRAY16, {}, ours=True)


def video_ffv1_backwards_ts(d):
    import napari_imseq as imseq

    with imseq.open_writer(d / "a.mkv", fps=25) as w:
        for i, f in enumerate(_GRAY16):
            w.write(f, 10.0 - i)
    return Base(d / "a.mkv", "pyav", _GRAY16, {}, ours=True)


def video_ffv1_nan_ts(d):
    import napari_imseq as imseq

    with imseq.open_writer(d / "a.mkv", fps=25) as w:
        for i, f in enumerate(_GRAY16):
            w.write(f, float("nan") if i == 2 else i / 25)
    return Base(d / "a.mkv", "pyav", _GRAY16, {}, ours=True)


def _pyav(path, frames_rgb, codec, pix_fmt, **kw):
    from tests.io import videomaker

    videomaker.write(path, list(frames_rgb), codec=codec, pix_fmt=pix_fmt, fmt_in="rgb24", **kw)


def pyav_h264_bframes(d):
    _pyav(d / "a.mp4", video_frames(24, 16, 32), "libx264", "yuv420p", gop=8,
          options={"bf": "2"}, bframes=2)  # fmt: skip
    return Base(d / "a.mp4", "pyav")


def pyav_hevc_bframes_mkv(d):
    _pyav(d / "a.mkv", video_frames(20, 16, 32), "libx265", "yuv420p", gop=8,
          options={"x265-params": "bframes=3:log-level=none"})  # fmt: skip
    return Base(d / "a.mkv", "pyav")


def pyav_h264_in_avi(d):
    """H.264 with B-frames in AVI: no timestamps to order frames by, only the packets."""
    _pyav(d / "a.avi", video_frames(20, 16, 32), "libx264", "yuv420p", gop=6,
          options={"bf": "2"}, bframes=2)  # fmt: skip
    return Base(d / "a.avi", "pyav")


def pyav_prores_mov(d):
    _pyav(d / "a.mov", video_frames(6, 16, 32), "prores_ks", "yuv422p10le")
    return Base(d / "a.mov", "pyav")


def pyav_mpeg4_bframes_avi(d):
    _pyav(d / "a.avi", video_frames(20, 16, 32), "mpeg4", "yuv420p", gop=6, bframes=2)
    return Base(d / "a.avi", "pyav")


def pyav_ffv1_fps5000_mkv(d):
    """5000 fps in Matroska, whose millisecond timestamps make five frames share each one."""
    _pyav(d / "a.mkv", video_frames(12, 16, 24), "ffv1", "bgr0", fps=5000)
    return Base(d / "a.mkv", "pyav", video_frames(12, 16, 24))


def pyav_ffv1_repeat_pts(d):
    """Every packet at pts 0 (what a camera clock that stood still gives)."""
    _pyav(d / "a.mkv", _RGB, "ffv1", "bgr0", pts=[0] * len(_RGB), time_base=Fraction(1, 1000))
    return Base(d / "a.mkv", "pyav", _RGB)


def pyav_ffv1_pts_jump(d):
    """Timestamps that jump by days between two frames (a camera clock reset)."""
    n = len(_RGB)
    _pyav(d / "a.mkv", _RGB, "ffv1", "bgr0", pts=[i if i < n // 2 else 10**9 + i for i in range(n)],
          time_base=Fraction(1, 1000))  # fmt: skip
    return Base(d / "a.mkv", "pyav", _RGB)


def pil_gif(d):
    from PIL import Image

    data = video_frames(5, 16, 20)
    imgs = [Image.fromarray(f).quantize(64) for f in data]
    imgs[0].save(d / "a.gif", save_all=True, append_images=imgs[1:], duration=100, loop=0)
    return Base(d / "a.gif", "pyav")


# ---- zarr ------------------------------------------------------------------------------------
def zarr_ours(d):
    import napari_imseq as imseq

    data = frames(5, (8, 10), np.uint16)
    imseq.imwrite(d / "a.zarr", data, fps=20)
    return Base(d / "a.zarr", "zarr", data, {"array": "frames"}, ours=True)


def zarr_plain(d):
    import zarr

    data = frames(4, (6, 7), np.uint8)
    z = zarr.create_array(str(d / "a.zarr"), shape=data.shape, chunks=(1, 6, 7), dtype=data.dtype)
    z[:] = data
    return Base(d / "a.zarr", "zarr", data, {"array": ""})


# ---- folders ---------------------------------------------------------------------------------
def folder_ours_png(d):
    import napari_imseq as imseq

    data = frames(5, (8, 10), np.uint8)
    imseq.imwrite(d / "imgs", data, format="folder")
    names = sorted(n for n in os.listdir(d / "imgs") if n.lower().endswith((".png", ".tif")))
    return Base(d / "imgs", "folder", data, {"names": names}, ours=True)


def folder_png16(d):
    import imagecodecs

    data = frames(6, (8, 10), np.uint16)
    (d / "imgs").mkdir()
    names = [f"img{i}.png" for i in range(len(data))]  # natural order: img2 before img10
    for name, f in zip(names, data, strict=True):
        (d / "imgs" / name).write_bytes(imagecodecs.png_encode(f))
    return Base(d / "imgs", "folder", data, {"names": names})


def folder_tif(d):
    import tifffile

    data = frames(5, (8, 10), np.uint16)
    (d / "imgs").mkdir()
    names = [f"frame_{i:03d}.tif" for i in range(len(data))]
    for name, f in zip(names, data, strict=True):
        tifffile.imwrite(d / "imgs" / name, f)
    return Base(d / "imgs", "folder", data, {"names": names})


# ---- writers given fps they cannot store -----------------------------------------------------
def _writer_fps(ext, fps):
    def gen(d):
        import napari_imseq as imseq

        path = d / f"a{ext}"
        imseq.imwrite(path, _GRAY16, fps=fps)
        if ext == ".tif":
            return Base(path, "tiff", _GRAY16, tiff_layout(path), ours=True)
        if ext == ".zarr":
            return Base(path, "zarr", _GRAY16, {"array": "frames"}, ours=True)
        return Base(path, "rawseq", _GRAY16, seq_layout(path), ours=True)

    gen.__name__ = f"{ext[1:]}_writer_fps_{str(fps).replace('-', 'neg')}"
    return gen


WRITER_FPS = [
    _writer_fps(e, f)
    for e in (".tif", ".zarr", ".seq")
    for f in (float("nan"), -1.0, float("inf"), 1e-9)
]


# ---- every lossless writer x frame layouts and dtypes: refused up front, or read back exactly ---
_RT_TARGETS = {
    "tif": ("a.tif", {}), "zarr": ("a.zarr", {}), "mkv": ("a.mkv", {}), "mov": ("a.mov", {}),
    "rawavi": ("a.avi", {"codec": "rawvideo"}), "seq": ("a.seq", {}),
    "pngdir": ("imgs", {"format": "folder"}), "tifdir": ("imgs", {"format": "folder", "image_format": "tif"}),
}  # fmt: skip


def _rt_frames(kind):
    rng = np.random.default_rng(7)
    shapes = {
        "gray8": ((12, 16), np.uint8), "gray16": ((12, 16), np.uint16), "rgb8": ((12, 16, 3), np.uint8),
        "rgba8": ((12, 16, 4), np.uint8), "rgb16": ((12, 16, 3), np.uint16),
        "twochannel": ((12, 16, 2), np.uint8), "zstack": ((3, 12, 16), np.uint16),
        "bool": ((12, 16), np.bool_), "float32": ((12, 16), np.float32), "int16": ((12, 16), np.int16),
        "uint32": ((12, 16), np.uint32), "float64": ((12, 16), np.float64),
        "tiny": ((2, 3), np.uint8), "odd": ((13, 17), np.uint8),
    }  # fmt: skip
    shape, dtype = shapes[kind]
    n = 4
    if dtype == np.bool_:
        return rng.random((n, *shape)) > 0.5
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal((n, *shape)).astype(dtype) * 1000
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=(n, *shape), dtype=dtype, endpoint=True)


RT_KINDS = ["gray8", "gray16", "rgb8", "rgba8", "rgb16", "twochannel", "zstack", "bool", "float32",
            "int16", "uint32", "float64", "tiny", "odd"]  # fmt: skip


def _roundtrip(target, kind):
    def gen(d):
        import napari_imseq as imseq

        name, opts = _RT_TARGETS[target]
        data = _rt_frames(kind)
        imseq.imwrite(d / name, data, fps=10, **opts)
        return Base(d / name, "writer", data, {}, ours=True)

    gen.__name__ = f"rt_{target}_{kind}"
    return gen


ROUNDTRIP = [_roundtrip(t, k) for t in _RT_TARGETS for k in RT_KINDS]


# ---- special files: nothing to read, a clean error expected -----------------------------------
def _special(name, make):
    def gen(d):
        path = d / name
        make(path)
        return Base(path, "special")

    gen.__name__ = "special_" + make.__name__ + "_" + name.replace(".", "_")
    return gen


def fifo(p):
    os.mkfifo(p)


def devzero(p):
    os.symlink("/dev/zero", p)


def empty(p):
    p.write_bytes(b"")


def directory(p):
    p.mkdir()


def broken_link(p):
    os.symlink(p.parent / "missing", p)


def zeros_1mb(p):
    p.write_bytes(bytes(1 << 20))


SPECIAL = [
    _special(n, m)
    for m in (fifo, devzero, empty, directory, broken_link, zeros_1mb)
    for n in ("a.seq", "a.mkv", "a.tif", "a.gif", "a.zarr")
]


# ---- real samples ----------------------------------------------------------------------------
def _sample(name):
    def gen(d):
        src = SAMPLES / name
        if not src.exists():
            raise GeneratorUnavailable(f"sample {name} is not in {SAMPLES}")
        dst = d / name
        shutil.copyfile(src, dst)
        ext = dst.suffix.lower()
        if ext == ".seq":
            return Base(dst, "rawseq", None, seq_layout(dst))
        if ext == ".tif":
            return Base(dst, "tiff", None, tiff_layout(dst))
        return Base(dst, "pyav")

    gen.__name__ = "sample_" + Path(name).stem
    return gen


SAMPLE_NAMES = [
    "pims_sample_norpix6.seq", "celeritas_top_256.seq", "imageio_realshort.mp4",
    "dlc_tests_vid.avi", "nwbvw_stub_mjpeg.avi", "mediaconch_ffv1_gray_coder-1_level-3.mkv",
    "rustav_ffv1_v3_gbrp16le.mkv", "imageio_newtonscradle.gif", "imageio_calcium_imaging.tif",
    "pims_tiff_stack.tif", "imageio_cockatoo.mp4",
]  # fmt: skip

GENERATORS = {
    g.__name__: g
    for g in [
        seq_raw8, seq_raw16_v3, seq_bgr, seq_writer16_ts, seq_writer8_nots, seq_jpeg, seq_jpeg_idx,
        tiff_plain, tiff_bigtiff_rgb, tiff_zlib_be, tiff_imagej_tzcyx, tiff_ome,
        tiff_writer_imagej, tiff_writer_bigtiff_zstd,
        video_ffv1_mkv, video_ffv1_avi, video_png_mov, video_rawvideo_avi, video_h264_mp4,
        video_vp9_webm, video_mjpeg_avi, video_gif_ours, video_ffv1_fps5000, video_ffv1_fps_neg,
        video_ffv1_same_ts, video_ffv1_backwards_ts, video_ffv1_nan_ts,
        pyav_h264_bframes, pyav_hevc_bframes_mkv, pyav_h264_in_avi, pyav_prores_mov, pyav_mpeg4_bframes_avi, pyav_ffv1_fps5000_mkv, pyav_ffv1_repeat_pts, pyav_ffv1_pts_jump,
        pil_gif, zarr_ours, zarr_plain, folder_ours_png, folder_png16, folder_tif,
        *WRITER_FPS, *ROUNDTRIP, *SPECIAL, *[_sample(n) for n in SAMPLE_NAMES],
    ]
}  # fmt: skip


def family(name: str) -> str:
    """The format family of a generator (rows of the report)."""
    if name.startswith("special_"):
        return "special files"
    if name.startswith("rt_"):
        return "writer round trip"
    if name.startswith(("seq_", "sample_pims_sample", "sample_celeritas")):
        return "seq"
    if name.startswith(("tif_", "tiff_", "sample_imageio_calcium", "sample_pims_tiff")):
        return "tiff"
    if name.startswith("zarr_"):
        return "zarr"
    if name.startswith("folder_"):
        return "folder"
    if "gif" in name or name == "sample_imageio_newtonscradle":
        return "gif"
    return "video"
