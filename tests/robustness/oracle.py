"""Independent references: what the (mutated) bytes hold, decoded without napari_imseq.

A reference is a list of *alternatives*; each is the list of per-frame hashes a correct reader
may return (``None`` for a frame no independent decoder can read) and whether returning it
requires a :class:`SequenceWarning`. Every decoder here is deliberately plain: raw bytes at the
offsets the undamaged header gave, ``imagecodecs`` for one JPEG/PNG, ``tifffile`` page by page,
PyAV packet by packet in file order, ``zarr`` chunk by chunk.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: at most this many frames are decoded by a reference (and probed by index)
MAX_FRAMES = 2000


class RefUnavailable(Exception):
    """No independent decoder reads this file: only internal consistency is checked."""


@dataclass
class Alternative:
    hashes: list[str | None]
    need_warning: bool = False
    what: str = "reference"


def frame_hash(a) -> str:
    a = np.asarray(a)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    a = np.ascontiguousarray(a)
    h = hashlib.sha1(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def _majority_shape(frames: list) -> list:
    """Frames whose shape/dtype differs from the most common one cannot be in one stack."""
    keys = [(f.shape, f.dtype.str) for f in frames if f is not None]
    if not keys:
        return frames
    top = Counter(keys).most_common(1)[0][0]
    return [f if f is not None and (f.shape, f.dtype.str) == top else None for f in frames]


def hashes(frames: list) -> list[str | None]:
    return [None if f is None else frame_hash(f) for f in frames]


# ---- per format ------------------------------------------------------------------------------
def rawseq(path: Path, lay: dict, allocated: int | None = None) -> list:
    """Frames of an uncompressed SEQ at the undamaged header's offsets (seq-format.md)."""
    b = path.read_bytes()
    alloc = lay["allocated"] if allocated is None else allocated
    start, stride, size = lay["start"], lay["stride"], lay["image_size"]
    h, w, ch = lay["height"], lay["width"], lay["channels"]
    slots = max(0, (len(b) - start + stride - 1) // stride)
    n = min(alloc, slots) if alloc else slots
    out = []
    for i in range(min(n, MAX_FRAMES)):
        off = start + i * stride
        if off + size > len(b):
            break
        a = np.frombuffer(b, lay["dtype"], count=h * w * ch, offset=off)
        a = a.reshape((h, w) if ch == 1 else (h, w, ch))
        if lay["format"] == 200:
            a = a[..., ::-1]
        elif lay["format"] == 500:
            a = a[..., 2::-1]
        out.append(a)
    return out


def jpegseq(path: Path, lay: dict) -> list:
    import imagecodecs

    b = path.read_bytes()
    out = []
    for off, size in lay["records"]:
        if off + size > len(b):
            break
        try:
            out.append(imagecodecs.jpeg8_decode(b[off + 4 : off + size]))
        except Exception:
            out.append(None)
    return _majority_shape(out)


def tiff(path: Path, lay: dict, frame_shape: tuple | None, per_frame: int | None = None) -> list:
    """tifffile's pages, ``per_frame`` of them (default: the undamaged layout's) per frame."""
    import tifffile

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    try:
        tif = tifffile.TiffFile(path)
    except Exception as err:
        raise RefUnavailable(f"tifffile cannot open it: {type(err).__name__}: {err}") from err
    with tif:
        tif.pages.useframes = False
        pages = []
        try:
            # no more pages than the undamaged file had (a looping IFD chain never ends)
            for i in range(min(len(lay["pages"]), MAX_FRAMES * lay["pages_per_frame"])):
                pages.append(tif.pages[i])
        except Exception:
            pass
        k = per_frame or lay["pages_per_frame"]
        out = []
        for i in range(len(pages) // k):
            try:
                arrs = [pages[i * k + j].asarray() for j in range(k)]
                a = np.stack(arrs) if k > 1 else arrs[0]
                if frame_shape is not None and k > 1:
                    a = a.reshape(frame_shape)
                out.append(a)
            except Exception:
                out.append(None)
    return _majority_shape(out)


def tiff_series(path: Path) -> list:
    """Frames of tifffile's first series along its first axis: raw bytes at the series' data
    offset for contiguous series (what tifffile reads), else tifffile's own decode."""
    import tifffile

    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    try:
        with tifffile.TiffFile(path) as tif:
            s = tif.series[0]
            shape, offset = tuple(s.shape), s.dataoffset
            dtype = np.dtype(s.dtype).newbyteorder(tif.byteorder)
            if len(shape) < 3 or (len(shape) == 3 and shape[-1] in (3, 4) and "S" in s.axes):
                raise RefUnavailable("the series is a single image")
            if offset is None:
                arr = s.asarray()
                return list(arr[:MAX_FRAMES])
    except RefUnavailable:
        raise
    except Exception as err:
        raise RefUnavailable(
            f"tifffile cannot read the series: {type(err).__name__}: {err}"
        ) from err
    return contiguous(path, offset, shape, dtype)


def contiguous(path: Path, offset: int, shape, dtype) -> list:
    """Frames of a contiguous block at ``offset`` (the undamaged file's series) that the file
    still holds entirely."""
    b = path.read_bytes()
    dtype = np.dtype(dtype)
    count = int(np.prod(shape[1:]))
    nbytes = count * dtype.itemsize
    out = []
    for i in range(min(shape[0], MAX_FRAMES)):
        at = offset + i * nbytes
        if at + nbytes > len(b):
            break
        out.append(np.frombuffer(b, dtype, count=count, offset=at).reshape(shape[1:]))
    return out


INTRA_ONLY = ("ffv1", "png", "mjpeg", "rawvideo", "gif", "qtrle", "prores")


def pyav(path: Path) -> list[str | None]:
    """Hashes of a plain sequential PyAV decode in file order (see :func:`pyav_alternatives`)."""
    return pyav_alternatives(path)[0]


def pyav_alternatives(path: Path) -> list[list[str | None]]:
    """Hashes of a plain sequential PyAV decode in file order; a packet that fails to decode
    stands for one lost frame (as the ffmpeg command line skips it) and a demuxing error ends the
    stream. For a GIF a second alternative: RGB frames (what a GIF whose headers declare no
    transparency reads as), where a frame with transparent pixels cannot be read as RGB."""
    import av

    from tests.io.videomaker import to_array

    try:
        container = av.open(str(path))
    except Exception as err:
        raise RefUnavailable(f"PyAV cannot open it: {type(err).__name__}: {err}") from err
    out: list[str | None] = []
    rgb: list[str | None] = []
    with container:
        if not container.streams.video:
            raise RefUnavailable("PyAV finds no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise RefUnavailable("PyAV has no decoder for the video stream")
        intra = stream.codec_context.name in INTRA_ONLY
        gif = stream.codec_context.name == "gif"
        avi = "avi" in container.format.name

        frame_pts: list[int | None] = []
        concealed = [False]

        def convert(f):
            try:
                return to_array(f)
            except av.FFmpegError:  # (damaged colour tags that swscale refuses): that frame
                return None  # is unreadable, the stream goes on

        def add(frames) -> None:
            arrays = [convert(f) for f in frames]
            frame_pts.extend(f.pts for f in frames)
            for f, a in zip(frames, arrays, strict=True):
                if a is None:
                    out.append(None)
                    rgb.append(None)
                    continue
                # a frame FFmpeg flags as concealed holds pixels taken from other frames,
                # which depend on what the decoder decoded before (MPEG-4: its bug
                # autodetection state after damage): no plain decode says what it is, nor
                # what the frames after it up to the next keyframe are
                concealed[0] = bool(f.is_corrupt) or (concealed[0] and not f.key_frame)
                out.append(UNKNOWN if concealed[0] else frame_hash(a))
                rgb.append(UNKNOWN if concealed[0] else _opaque_rgb_hash(a))

        pts: list[int | None] = []  # of every packet with data, in file order
        keys: list[bool] = []
        lost: list[int] = []  # packets whose decode failed (non-intra codecs)
        shown: list[int] = []  # frames put out before each of them
        try:
            for packet in container.demux(stream):
                if packet.size:
                    pts.append(packet.pts)
                    keys.append(packet.is_keyframe)
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    if packet.size and intra:  # the frame of this packet is lost, not the next
                        out.append(None)
                        rgb.append(None)
                    elif packet.size:
                        lost.append(len(pts) - 1)
                        shown.append(len(out))
                    continue
                if intra and packet.size and not decoded:
                    out.append(None)
                    rgb.append(None)
                add(decoded)
                if len(out) >= MAX_FRAMES:
                    break
        except av.FFmpegError:
            try:
                add(stream.codec_context.decode(None))
            except Exception:
                pass
    # AVI stamps are mostly decode order, not presentation: only output order identifies those
    # frames; stamps that go back and forth are presentation stamps (MPEG-4 B-frames in AVI)
    decode_stamps = avi and (None in pts or all(a < b for a, b in zip(pts, pts[1:], strict=False)))
    placed = None if intra or decode_stamps else _by_timestamp(out, frame_pts, pts)
    # stamps the decoder puts out of order (damaged composition stamps, or a damaged
    # reordering): its output order is as plain a reading of the file as the stamps' order
    stamps = [t for t in frame_pts if t is not None]
    extra = [out[:MAX_FRAMES]] if placed is not None and stamps != sorted(stamps) else []
    lead = keys.index(True) if True in keys else 0
    if placed is None and not lost and lead and len(out) == len(pts) - lead:
        # the first keyframe's data is lost and the decoder put out nothing for the packets
        # before it, without an error: their frames are unreadable, not the ones after
        out, rgb = [None] * lead + out, [None] * lead + rgb
    if placed is not None:
        out, rgb = placed, _by_timestamp(rgb, frame_pts, pts)
    elif lost:
        out, rgb = _place_lost(out, pts, lost, shown), _place_lost(rgb, pts, lost, shown)
    if gif:
        return [out[:MAX_FRAMES], rgb[:MAX_FRAMES]]
    return [out[:MAX_FRAMES], *extra]


#: a frame whose identity no plain decode can establish: not compared
UNKNOWN = "?"


def _by_timestamp(frames: list, frame_pts: list, packet_pts: list) -> list | None:
    """Frames put at their presentation rank among the packets' distinct timestamps (a frame
    the decoder dropped, with or without an error, leaves ``None``); ``None`` when timestamps
    cannot identify frames (missing, repeated, or a frame stamp no packet has)."""
    known = [p for p in packet_pts if p is not None]
    if len(known) != len(packet_pts) or len(set(known)) != len(known):
        return None
    if None in frame_pts or not set(frame_pts) <= set(known):
        return None
    rank = {p: r for r, p in enumerate(sorted(known))}
    placed: list = [None] * len(known)
    twice = 0
    for p, h in zip(frame_pts, frames, strict=True):
        # two frames with one stamp (a decoder fed a P-frame whose keyframe is lost outputs a
        # frame for it twice): which one is that frame no plain decode says
        twice += placed[rank[p]] is not None
        placed[rank[p]] = UNKNOWN if placed[rank[p]] is not None else h
    if twice > len(placed) // 4:
        return None  # stamps that do not identify frames
    return placed


def _place_lost(frames: list, pts: list, lost: list[int], shown: list[int]) -> list:
    """Where the frames of packets that failed to decode belong in presentation order (a codec
    with reordering outputs frames later than their packets): by the rank of their packets'
    timestamps when every packet has one and the counts add up; otherwise every frame from the
    first failure on (in output order: ``shown[0]`` frames came out before it) is unknown (not
    compared), up to one frame a packet: a decoder that put out fewer frames than the packets
    less the failures dropped some without an error, so a plain decode's count of frames after
    the failure says nothing either."""
    if None not in pts and len(frames) + len(lost) == len(pts) and len(set(pts)) == len(pts):
        rank = {k: r for r, k in enumerate(sorted(range(len(pts)), key=lambda k: pts[k]))}
        gone = {rank[k] for k in lost}
        rest = iter(frames)
        return [None if r in gone else next(rest) for r in range(len(pts))]
    first = min(min(lost), shown[0])
    return frames[:first] + [UNKNOWN] * (max(len(frames), len(pts)) - first)


def _opaque_rgb_hash(arr) -> str | None:
    """The hash of an RGBA frame without its alpha when every pixel is opaque, else None."""
    if arr.ndim != 3 or arr.shape[2] != 4 or arr[..., 3].min() < 255:
        return None
    return frame_hash(np.ascontiguousarray(arr[..., :3]))


def zarr_frames(path: Path, lay: dict) -> list:
    import zarr

    try:
        if lay["array"]:
            arr = zarr.open_group(str(path), mode="r")[lay["array"]]
        else:
            arr = zarr.open_array(str(path), mode="r")
        n = int(arr.shape[0])
        ndim = arr.ndim
        one_per_frame = arr.chunks[0] == 1 and tuple(arr.chunks[1:]) == tuple(arr.shape[1:])
    except Exception as err:
        raise RefUnavailable(f"zarr cannot open it: {type(err).__name__}: {err}") from err
    root = Path(path) / lay["array"] if lay["array"] else Path(path)
    out = []
    for i in range(min(n, MAX_FRAMES)):
        key = root / "c" / str(i) / Path(*["0"] * (ndim - 1))
        if one_per_frame and not key.exists():
            out.append(None)  # the chunk is gone: the frame's data is not in the store
            continue
        try:
            out.append(np.asarray(arr[i]))
        except Exception:
            out.append(None)
    return _majority_shape(out)


def folder(path: Path, names: list[str]) -> list:
    import imagecodecs
    import tifffile

    out = []
    for name in names:
        p = Path(path) / name
        try:
            if name.lower().endswith((".tif", ".tiff")):
                out.append(tifffile.imread(p))
            else:
                out.append(imagecodecs.png_decode(p.read_bytes()))
        except Exception:
            out.append(None)
    return _majority_shape(out)


def tiff_pages_as_frames(base, path: Path, lay: dict) -> list[str | None] | None:
    """A multi-page-per-frame TIFF (ImageJ hyperstack, shaped series) whose description is
    damaged: the reader may read each page as a frame, honestly only with a warning that the
    layout is lost; then its frames must be tifffile's pages one by one (None: not such a
    file, or tifffile cannot read its pages)."""
    if base.ref != "tiff" or lay.get("pages_per_frame", 1) <= 1:
        return None
    try:
        return hashes(tiff(path, lay, None, per_frame=1))
    except RefUnavailable:
        return None


def decode_all(base, path: Path, lay: dict) -> list[list[str | None]]:
    """Every independent decode of ``path`` that applies (TIFF: page by page, and tifffile's
    series); raises :class:`RefUnavailable` when none does."""
    if base.ref == "jpegseq" and lay.get("allocated_override"):
        # a compressed SEQ's frames are found by their records; a header that declares
        # fewer may also be obeyed
        full = decode(base, path, lay)
        return [full, full[: lay["allocated_override"]]]
    if base.ref == "pyav":
        return pyav_alternatives(path)
    if base.ref != "tiff":
        return [decode(base, path, lay)]
    out = []
    s = lay.get("series")
    decoders = [lambda: decode(base, path, lay)]
    if not lay.get("ifd_loop"):  # tifffile's series walks the whole (endless) chain
        decoders.append(lambda: hashes(tiff_series(path)))
    if s:
        decoders.append(lambda: hashes(contiguous(path, s["offset"], s["shape"], s["dtype"])))
    for f in decoders:
        try:
            out.append(f())
        except RefUnavailable:
            pass
    if not out:
        raise RefUnavailable("neither tifffile's pages nor its series can be read")
    return out


def decode(base, path: Path, lay: dict) -> list[str | None]:
    """Per-frame hashes of the independent decode of ``path`` (possibly mutated)."""
    kind = base.ref
    if kind == "rawseq":
        return hashes(rawseq(path, lay, lay.get("allocated_override")))
    if kind == "jpegseq":
        return hashes(jpegseq(path, lay))
    if kind == "tiff":
        shape = base.truth.shape[1:] if base.truth is not None else None
        return hashes(tiff(path, lay, shape))
    if kind == "pyav":
        return pyav(path)
    if kind == "zarr":
        return hashes(zarr_frames(path, lay))
    if kind == "folder":
        return hashes(folder(path, lay["names"]))
    raise ValueError(kind)  # pragma: no cover


def exists(path: Path) -> bool:
    return os.path.lexists(path)
