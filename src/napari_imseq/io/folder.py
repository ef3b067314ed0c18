"""A folder of numbered images (PNG, TIFF, JPEG, BMP) read as one sequence.

Files are ordered naturally (``img2`` before ``img10``). On open only the headers are read, to
check that every frame has the shape and sample type of the first; the first file that differs
is named in the error.
"""

from __future__ import annotations

import io
import os
import re
import struct
from typing import Any

import numpy as np

from ._base import Sequence, SequenceFormatError, _check_exists, check_frame_size

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def natural_key(name: str) -> list:
    """Sort key in which digit runs compare as numbers: ``img2`` < ``img10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _open_binary(where: Any):
    """A local path, or a :class:`~napari_imseq.io._source.Source` (a file of a URL folder)."""
    return open(where, "rb") if isinstance(where, str) else where.open_stream()


def _name(where: Any) -> str:
    return where if isinstance(where, str) else where.name


def _png_header(path: str) -> tuple[tuple[int, ...], np.dtype] | None:
    with _open_binary(path) as f:
        h = f.read(33)
    if len(h) < 33 or not h.startswith(b"\x89PNG\r\n\x1a\n") or h[12:16] != b"IHDR":
        return None
    w, hgt, depth, colour = struct.unpack(">IIBB", h[16:26])
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour)
    if channels is None:
        return None
    dtype = np.dtype(np.uint16 if depth == 16 else np.uint8)
    shape = (hgt, w) if channels == 1 else (hgt, w, channels)
    return shape, dtype


def _jpeg_header(path: str) -> tuple[tuple[int, ...], np.dtype] | None:
    with _open_binary(path) as f:
        data = f.read(1 << 16)
        if data[:2] != b"\xff\xd8":
            return None
        pos = 2
        while True:
            while pos + 4 > len(data):
                more = f.read(1 << 16)
                if not more:
                    return None
                data += more
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            length = struct.unpack_from(">H", data, pos + 2)[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                while pos + 10 > len(data):
                    more = f.read(1 << 16)
                    if not more:
                        return None
                    data += more
                prec, hgt, w, comps = struct.unpack_from(">BHHB", data, pos + 4)
                dtype = np.dtype(np.uint16 if prec > 8 else np.uint8)
                return ((hgt, w) if comps == 1 else (hgt, w, comps)), dtype
            pos += 2 + length


def _tiff_header(path: str) -> tuple[tuple[int, ...], np.dtype] | None:
    import tifffile

    with _open_binary(path) as f, tifffile.TiffFile(f) as tif:
        s = tif.series[0]
        return tuple(s.shape), np.dtype(s.dtype).newbyteorder("=")


def _header(path: str) -> tuple[tuple[int, ...], np.dtype] | None:
    ext = os.path.splitext(_name(path))[1].lower()
    try:
        if ext == ".png":
            return _png_header(path)
        if ext in (".jpg", ".jpeg"):
            return _jpeg_header(path)
        if ext in (".tif", ".tiff"):
            return _tiff_header(path)
    except Exception:
        return None
    return None


def _decode(path: str) -> np.ndarray:
    ext = os.path.splitext(_name(path))[1].lower()
    data = path if isinstance(path, str) else path.read_all()  # a URL folder's file
    if ext in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(data if isinstance(data, str) else io.BytesIO(data))
    import imagecodecs

    return imagecodecs.imread(data)


class ImageFolder(Sequence):
    """Every image file in a folder, in natural order, as frames of one sequence."""

    format_name = "image-folder"
    folder = True

    @classmethod
    def can_read(cls, path: str) -> bool:
        try:
            return os.path.isdir(path) and any(
                e.name.lower().endswith(IMAGE_EXTENSIONS) for e in os.scandir(path)
            )
        except OSError:
            return False

    def __init__(self, path: str | os.PathLike, *, pattern: str | None = None):
        super().__init__(path, pattern=pattern)
        path = self.path
        local = self._source.local_path is not None
        if local:
            _check_exists(path)
            if not os.path.isdir(path):
                raise SequenceFormatError(f"{path}: not a folder of images")
        rx = re.compile(pattern) if pattern else None
        listing = (
            [e.name for e in os.scandir(path) if e.is_file()]
            if local
            else [n for n in self._source.entry_names() if self._source.entry_mode(n) is not None]
        )
        names = [
            n
            for n in listing
            if n.lower().endswith(IMAGE_EXTENSIONS)
            and not n.startswith(".")
            and (rx is None or rx.search(n))
        ]
        if not names:
            raise SequenceFormatError(
                f"{path}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})"
            )
        names.sort(key=natural_key)
        exts = {
            os.path.splitext(n)[1].lower().replace(".jpeg", ".jpg").replace(".tiff", ".tif")
            for n in names
        }
        if len(exts) > 1:
            raise SequenceFormatError(
                f"{path}: the folder mixes image types ({', '.join(sorted(exts))}); keep one type "
                f"per sequence or pass pattern= to choose"
            )
        if local:
            self.files = [os.path.join(path, n) for n in names]
            self._entries = self.files
        else:  # a URL folder: its files are read through the source's file system
            self._entries = [self._source.child(n) for n in names]
            self.files = [e.name for e in self._entries]
        first = self._entries[0]
        hdr = _header(first)
        if hdr is not None:  # a damaged header can declare any size: check before decoding
            check_frame_size(_name(first), *hdr)
        try:
            frame = _decode(first)
        except Exception as err:
            raise SequenceFormatError(
                f"{_name(first)}: cannot decode the first image: {err}"
            ) from err
        self._frame_shape, self._dtype = frame.shape, frame.dtype.newbyteorder("=")
        for f in self._entries[1:]:
            hdr = _header(f)
            if hdr is not None and (hdr[0] != self._frame_shape or hdr[1] != self._dtype):
                raise SequenceFormatError(
                    f"{_name(f)}: this image is {hdr[0]} {hdr[1]} but the first image of the folder "
                    f"({os.path.basename(_name(first))}) is {self._frame_shape} {self._dtype}; all images "
                    f"of a sequence must have one shape and type"
                )

    def __len__(self) -> int:
        return len(self.files)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._frame_shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def rgb(self) -> bool:
        return len(self._frame_shape) == 3 and self._frame_shape[2] in (3, 4)

    def _read(self, index: int) -> np.ndarray:
        f = self.files[index]
        try:
            frame = _decode(self._entries[index])
        except Exception as err:
            raise SequenceFormatError(f"{f}: cannot decode image {index}: {err}") from err
        if frame.shape != self._frame_shape or frame.dtype != self._dtype:
            raise SequenceFormatError(
                f"{f}: this image is {frame.shape} {frame.dtype} but the sequence is "
                f"{self._frame_shape} {self._dtype}"
            )
        return frame

    def _format_metadata(self) -> dict[str, Any]:
        return {"fps": None, "timestamps": None, "source": {"files": list(self.files)}}


# ---- writing -------------------------------------------------------------------------------
from ._writer_base import Writer, read_small_file  # noqa: E402


class FolderWriter(Writer):
    """Frames to a folder of numbered images, ``frame_000000.png`` ... (``image_format``
    ``"png"`` (default) or ``"tif"``). The folder is ``NAME.partial`` until the last frame."""

    format_name = "folder"
    extensions = ()  # chosen by a trailing "/" or format="folder"
    directory = True
    #: the marker file naming napari-imseq as the writer of a folder (hidden: readers skip it)
    MARKER = ".napari-imseq.json"
    _NAMES = re.compile(r"frame_\d{6,}\.(png|tif|tiff)")

    @classmethod
    def owned_entries(cls, path: str) -> set[str] | None:
        """Our folders carry the marker file; ours are it and the numbered images in them."""
        import json

        try:
            marker = json.loads(read_small_file(os.path.join(path, cls.MARKER), 1 << 16) or b"")
            if marker.get("writer") != "napari-imseq":
                return None
            names = os.listdir(path)
        except (OSError, ValueError, AttributeError):
            return None
        return {cls.MARKER} | {n for n in names if cls._NAMES.fullmatch(n)}

    def _mark(self) -> None:
        import json

        with open(os.path.join(self.partial, self.MARKER), "w") as f:
            json.dump(
                {"writer": "napari-imseq", "format": "folder", "frames": self.count,
                 "fps": self.fps, "image_format": self.image_format},
                f,
            )  # fmt: skip

    def _validate_options(self) -> None:
        opts = dict(self.options)
        self.image_format = str(opts.pop("image_format", "png")).lower().lstrip(".")
        if self.image_format not in ("png", "tif", "tiff"):
            raise self._refuse(f"image_format must be png or tif, not {self.image_format!r}")
        if opts:
            raise self._refuse(f"unknown option(s) {sorted(opts)} for image folders")

    def _check(self, frame: np.ndarray) -> None:
        if self.image_format == "png" and (
            frame.dtype not in (np.uint8, np.uint16)
            or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (3, 4)))
        ):
            raise self._refuse(
                f"PNG stores uint8/uint16 gray or RGB(A), not {frame.shape} {frame.dtype}; use image_format='tif'"
            )

    def _open(self, frame: np.ndarray) -> None:
        os.makedirs(self.partial, exist_ok=True)  # the base class created it, exclusively
        self._mark()

    def _finish(self) -> None:
        self._mark()

    def _write(self, frame: np.ndarray, timestamp: float) -> None:
        name = os.path.join(self.partial, f"frame_{self.count:06d}.{self.image_format}")
        if self.image_format == "png":
            import imagecodecs

            with open(name, "wb") as f:
                f.write(imagecodecs.png_encode(frame))
        else:
            import tifffile

            # bool is stored 1 bit per sample: tifffile packs it right only as minisblack
            rgb = frame.ndim == 3 and frame.shape[2] in (3, 4) and frame.dtype != bool
            tifffile.imwrite(name, frame, photometric="rgb" if rgb else "minisblack")


# ---- registration (napari_imseq.io._formats) -----------------------------------------------
from ._formats import register  # noqa: E402

register("folder", reader=ImageFolder, writer=FolderWriter, aliases=("image-folder",))
