"""Files of every reader, each with its ground truth, for the conformance suite."""

import imagecodecs
import numpy as np
import tifffile

from . import seqmaker
from . import videomaker as vm


def seq_mono8_v5(d):
    data = seqmaker.frames(7, (24, 40), np.uint8)
    expected, _ = seqmaker.raw_seq(d / "a.seq", data)
    return d / "a.seq", expected


def seq_mono16_12bit_v3(d):
    data = seqmaker.frames(5, (17, 31), np.uint16)
    expected, _ = seqmaker.raw_seq(d / "a.seq", data, version=3, real_bits=12, pad_to=512)
    return d / "a.seq", expected


def seq_bgr(d):
    data = seqmaker.frames(4, (12, 10, 3), np.uint8)
    expected, _ = seqmaker.raw_seq(d / "a.seq", data, layout="BGR")
    return d / "a.seq", expected


def seq_bgrx(d):
    data = seqmaker.frames(4, (12, 10, 3), np.uint8)
    expected, _ = seqmaker.raw_seq(d / "a.seq", data, layout="BGRx")
    return d / "a.seq", expected


def seq_jpeg(d):
    data = seqmaker.frames(6, (32, 48), np.uint8)
    expected, _ = seqmaker.compressed_seq(d / "a.seq", data, gap=8)
    return d / "a.seq", expected


def seq_png16(d):
    data = seqmaker.frames(5, (20, 30), np.uint16)
    expected, _ = seqmaker.compressed_seq(d / "a.seq", data, codec="png", version=3)
    return d / "a.seq", expected


def tiff_contiguous(d):
    data = seqmaker.frames(9, (16, 20), np.uint16)
    tifffile.imwrite(d / "a.tif", data)
    return d / "a.tif", data


def tiff_zlib_bigendian(d):
    data = seqmaker.frames(6, (16, 20), np.uint16)
    tifffile.imwrite(d / "a.tif", data, compression="zlib", byteorder=">")
    return d / "a.tif", data


def tiff_imagej_tzcyx(d):
    data = seqmaker.frames(4, (3, 2, 10, 12), np.uint16)
    tifffile.imwrite(d / "a.tif", data, imagej=True, metadata={"axes": "TZCYX", "finterval": 0.5})
    return d / "a.tif", data


def tiff_rgb_bigtiff(d):
    data = seqmaker.frames(5, (8, 9, 3), np.uint8)
    tifffile.imwrite(d / "a.tif", data, bigtiff=True, photometric="rgb", tile=(16, 16))
    return d / "a.tif", data


def folder_png(d):
    data = seqmaker.frames(12, (10, 14), np.uint8)
    (d / "imgs").mkdir()
    for i, f in enumerate(data):
        imagecodecs.imwrite(d / "imgs" / f"img{i}.png", f)
    return d / "imgs", data


def folder_tif16(d):
    data = seqmaker.frames(11, (10, 14), np.uint16)
    (d / "imgs").mkdir()
    for i, f in enumerate(data):
        tifffile.imwrite(d / "imgs" / f"frame_{i}.tif", f)
    return d / "imgs", data


def video_ffv1_gray16(d):
    data = seqmaker.frames(12, (24, 32), np.uint16)
    vm.write(d / "a.mkv", list(data), codec="ffv1", pix_fmt="gray16le", fmt_in="gray16le", gop=4)
    return d / "a.mkv", data


def video_h264_bframes(d):
    frames = [np.stack([f, f, f[::-1]], -1) for f in vm.pattern(40, 32, 48)]
    vm.write(d / "a.mp4", frames, codec="libx264", pix_fmt="yuv420p", fmt_in="rgb24", gop=16,
             options={"bf": "2"}, bframes=2)  # fmt: skip
    return d / "a.mp4", vm.sequential(d / "a.mp4")


def video_gif(d):
    frames = [np.stack([f] * 3, -1) for f in vm.pattern(8, 16, 20)]
    vm.write(d / "a.gif", frames, codec="gif", pix_fmt="rgb8", fmt_in="rgb24", fps=10)
    return d / "a.gif", vm.sequential(d / "a.gif")


CASES = {f.__name__: f for f in [
    seq_mono8_v5, seq_mono16_12bit_v3, seq_bgr, seq_bgrx, seq_jpeg, seq_png16,
    tiff_contiguous, tiff_zlib_bigendian, tiff_imagej_tzcyx, tiff_rgb_bigtiff,
    folder_png, folder_tif16, video_ffv1_gray16, video_h264_bframes, video_gif,
]}  # fmt: skip
