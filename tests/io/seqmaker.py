"""Builds Norpix SEQ files byte by byte from the layout in shared/docs/seq-format.md.

Deliberately independent of napari_imseq's reader and writer: tests use it as ground truth.
"""

import struct

import imagecodecs
import numpy as np

FORMAT_CODES = {"mono": 100, "bayer": 101, "BGR": 200, "RGB": 400, "BGRx": 500}


def header(
    *, width, height, bits, real_bits, image_size, fmt, allocated, stride, fps=25.0,
    version=5, compression=0, description="test", bayer=0,
):  # fmt: skip
    h = bytearray(1024)
    struct.pack_into("<I", h, 0, 0xFEED)
    h[4:28] = "Norpix seq".encode("utf-16-le").ljust(24, b"\0")
    struct.pack_into("<ii", h, 28, version, 1024)
    h[36 : 36 + 2 * len(description)] = description.encode("utf-16-le")
    struct.pack_into(
        "<IIIIIIII", h, 548, width, height, bits, real_bits, image_size, fmt, allocated, 0
    )
    struct.pack_into("<I", h, 580, stride)
    struct.pack_into("<d", h, 584, fps)
    struct.pack_into("<I", h, 608, bayer)
    struct.pack_into("<I", h, 620, compression)
    return bytes(h)


def stamp(i, version=5, t0=1_600_000_000):
    s, rem = divmod(i * 33_337, 1_000_000)  # ~30 fps, microsecond steps
    ms, us = divmod(rem, 1000)
    if version >= 5:
        return struct.pack("<iHH", t0 + s, ms, us), t0 + s + ms / 1e3 + us / 1e6
    return struct.pack("<iH", t0 + s, ms), t0 + s + ms / 1e3


def frames(n, shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    hi = 4096 if np.dtype(dtype) == np.uint16 else 256
    return rng.integers(0, hi, size=(n, *shape), dtype=dtype)


def raw_seq(path, data, *, layout="mono", version=5, allocated=None, real_bits=None,
            extra_slots=0, cut=0, pad_to=8192, fps=25.0):  # fmt: skip
    """An uncompressed SEQ; returns (expected RGB/mono frames, expected timestamps)."""
    data = np.asarray(data)
    n, h, w = data.shape[:3]
    item = data.dtype.itemsize
    if layout == "BGR":
        stored = data[..., ::-1]
    elif layout == "BGRx":
        stored = np.concatenate([data[..., ::-1], np.full_like(data[..., :1], 7)], axis=-1)
    else:
        stored = data
    ch = 1 if stored.ndim == 3 else stored.shape[3]
    image_size = h * w * ch * item
    ts_len = 8 if version >= 5 else 6
    stride = -(-(image_size + ts_len) // pad_to) * pad_to
    start = 8192 if version >= 5 else 1024
    body = bytearray()
    times = []
    for i in range(n):
        b, t = stamp(i, version)
        times.append(t)
        slot = stored[i].astype(stored.dtype.newbyteorder("<")).tobytes() + b
        body += slot.ljust(stride, b"\0")
    body += b"\0" * stride * extra_slots
    hdr = header(
        width=w, height=h, bits=8 * item * ch, real_bits=real_bits or 8 * item, image_size=image_size,
        fmt=FORMAT_CODES[layout], allocated=n if allocated is None else allocated, stride=stride,
        version=version, fps=fps,
    )  # fmt: skip
    blob = hdr.ljust(start, b"\0") + bytes(body)
    if cut:
        blob = blob[:-cut]
    with open(path, "wb") as f:
        f.write(blob)
    return data, np.array(times)


def compressed_seq(path, data, *, codec="jpeg", version=5, gap=0, idx=None, old_style=False):
    """A JPEG/PNG SEQ; gap adds zero bytes after each timestamp. idx: None, "good" or "bad"."""
    data = np.asarray(data)
    n, h, w = data.shape[:3]
    colour = data.ndim == 4
    if codec == "jpeg":
        payloads = [imagecodecs.jpeg8_encode(f, level=95) for f in data]
        fmt = 201 if colour else 102
        expected = np.stack([imagecodecs.jpeg8_decode(p) for p in payloads])
    else:
        payloads = [imagecodecs.png_encode(f) for f in data]
        fmt = 2 if colour else 1
        expected = data
    item = data.dtype.itemsize
    ch = 3 if colour else 1
    body = bytearray()
    records = []
    times = []
    for i, p in enumerate(payloads):
        b, t = stamp(i, version)
        times.append(t)
        off = 1024 + len(body)
        records.append(struct.pack("<qI", off, len(p) + 4) + b.ljust(12, b"\0")[:12])
        body += struct.pack("<I", len(p) + 4) + p + b + b"\0" * gap
    hdr = header(
        width=w, height=h, bits=8 * item * ch, real_bits=8 * item, image_size=h * w * ch * item,
        fmt=fmt, allocated=n, stride=0, version=version,
        compression=0 if old_style else 1,
    )  # fmt: skip
    with open(path, "wb") as f:
        f.write(hdr + bytes(body))
    if idx is not None:
        if idx == "bad":
            records = records[1:]  # the other first-record convention
            records = [struct.pack("<q", 999) + r[8:] for r in records]
        with open(str(path) + ".idx", "wb") as f:
            f.write(b"".join(records))
    return expected, np.array(times)
