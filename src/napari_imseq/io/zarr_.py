"""zarr (v3) stores of frames: a group with ``frames`` (T, Y, X[, C]) chunked one frame per
chunk, ``timestamps`` (T,) in seconds, and ``fps``/``bit_depth`` attributes."""

from __future__ import annotations

import itertools
import os
import stat
import warnings
from typing import Any

import numpy as np

from ._base import (
    FrameIndexError,
    Sequence,
    SequenceFormatError,
    SequenceWarning,
    _check_exists,
    check_frame_size,
    check_path,
    dependency_errors,
)
from ._writer_base import Writer


def _is_zarr_dir(path: str) -> bool:
    return os.path.isdir(path) and (
        os.path.exists(os.path.join(path, "zarr.json")) or os.path.exists(os.path.join(path, ".zgroup"))
        or os.path.exists(os.path.join(path, ".zarray"))
    )  # fmt: skip


_METADATA_FILES = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


class ZarrSequence(Sequence):
    """A zarr array (or the ``frames`` array of a group), read frame by frame along axis 0.

    A frame whose chunk is not on disk is a :class:`FrameIndexError` (a lost chunk must not
    read as a blank frame). Stores written by other programs with zarr's default of skipping
    chunks that hold only the fill value can be read with ``missing="fill"`` (zarr's rule: a
    missing chunk is the fill value); stores written by napari-imseq store every chunk.
    """

    format_name = "zarr"
    extensions = (".zarr",)
    folder = True

    @classmethod
    def can_read(cls, path: str) -> bool:
        try:
            return _is_zarr_dir(path)
        except OSError:
            return False

    def __init__(self, path: str | os.PathLike, *, array: str = "frames", missing: str = "error"):
        super().__init__(path, array=array, missing=missing)
        import zarr

        if missing not in ("error", "fill"):
            raise ValueError(f"missing must be 'error' or 'fill', not {missing!r}")

        local = self._source.local_path is not None
        if local:
            _check_exists(self.path)
        for folder in (self.path, os.path.join(self.path, array)) if local else ():
            for name in _METADATA_FILES:  # zarr would block reading a FIFO named zarr.json
                meta = os.path.join(folder, name)
                if os.path.lexists(meta):
                    check_path(meta, folder=False)
        try:  # a URL (memory://, s3:// ...) is read through an fsspec store
            node = zarr.open(self.path if local else self._source.zarr_store(), mode="r")
            if not hasattr(node, "shape"):
                if array not in node:
                    raise SequenceFormatError(
                        f"{self.path}: the zarr group has no array {array!r} (it has "
                        f"{sorted(node.array_keys())}); pass array= to choose one"
                    )
                self._group, self._z = node, node[array]
            else:
                self._group, self._z = None, node
        except SequenceFormatError:
            raise
        except Exception as err:
            raise SequenceFormatError(f"{self.path}: not a readable zarr store: {err}") from err
        with dependency_errors(self.path, "reading the zarr metadata"):
            self._setup()

    def _setup(self) -> None:
        z = self._z
        if z.ndim < 2:
            raise SequenceFormatError(f"{self.path}: a {z.ndim}-D zarr array is not a sequence")
        self._dtype = np.dtype(z.dtype).newbyteorder("=")
        self._shape = tuple(int(n) for n in z.shape)
        # before anything is allocated: a damaged zarr.json can declare any size
        check_frame_size(self.path, self._shape[1:], self._dtype)
        grid = tuple(int(c) for c in (getattr(z, "shards", None) or z.chunks))
        check_frame_size(self.path, grid, self._dtype)  # one chunk is decoded whole
        self._grid = grid
        self._attrs_cache = self._attrs()
        bits = self._attrs_cache.get("bit_depth")
        full = 1 if self._dtype.kind == "b" else self._dtype.itemsize * 8
        self._bits = int(bits) if isinstance(bits, int) and 0 < bits <= full else full
        self._array_dir = z.path  # inside the store, '/'-separated
        # chunks on disk are checked per frame only for local stores with at most this many
        # chunks per frame (a frame tiled into thousands of chunks is not stat()ed)
        per_frame = [range(-(-n // c)) for n, c in zip(self._shape[1:], grid[1:], strict=True)]
        count = int(np.prod([len(r) for r in per_frame], dtype=np.int64))
        every = self._attrs_cache.get("every_chunk_written") is True
        self._missing_is_error = every or self._options["missing"] == "error"
        self._frame_chunks = list(itertools.product(*per_frame)) if count <= 64 else None
        if self._shape[0] and not self._any_chunk_on_disk():
            warnings.warn(
                f"{self.path}: the array declares {self._shape[0]} frames but no chunk is on "
                f"disk, so every frame reads as the fill value ({z.fill_value}); the store is "
                f"empty or its chunks were lost",
                SequenceWarning,
                stacklevel=5,
            )

    def _any_chunk_on_disk(self) -> bool:
        meta = set(_METADATA_FILES)
        try:
            return any(n not in meta for n in self._source.entry_names(self._array_dir))
        except OSError:
            return True  # not a local folder: nothing to say

    def __len__(self) -> int:
        return self._shape[0]

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self._shape[1:]

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def bit_depth(self) -> int:
        return self._bits

    @property
    def rgb(self) -> bool:
        return len(self._shape) == 4 and self._shape[-1] in (3, 4)

    def _attrs(self) -> dict:
        node = self._group if self._group is not None else self._z
        return dict(node.attrs)

    def _check_chunks(self, index: int) -> None:
        """Before zarr reads frame ``index``: a chunk that is a FIFO or a device would block
        the read, and in a store whose every chunk is written (ours) a missing chunk would
        read as the fill value, a blank frame: both are refused."""
        if self._frame_chunks is None:
            return
        encode = self._z.metadata.encode_chunk_key
        first = index // self._grid[0]
        for rest in self._frame_chunks:
            key = encode((first, *rest))
            try:
                mode = self._source.entry_mode(f"{self._array_dir}/{key}")
            except OSError:
                continue  # not a local file: zarr decides
            if mode is not None and not stat.S_ISREG(mode):
                raise SequenceFormatError(
                    f"{self.path}: frame {index}: its chunk {key} is not a regular file (a FIFO, "
                    f"a device or a folder); the store is damaged"
                )
            if mode is None and self._missing_is_error:
                hint = (
                    "the store is incomplete or damaged"
                    if self._attrs_cache.get("every_chunk_written") is True
                    else "the store is incomplete or damaged, or its writer skipped chunks that "
                    "hold only the fill value: then open it with missing='fill'"
                )
                raise FrameIndexError(
                    f"{self.path}: frame {index} is missing from the store (its chunk {key} is "
                    f"not on disk; it would read as the fill value, a blank frame); {hint}"
                )

    def _read(self, index: int) -> np.ndarray:
        self._check_chunks(index)
        return np.asarray(self._z[index]).astype(self.dtype, copy=False)

    def _format_metadata(self) -> dict[str, Any]:
        attrs = self._attrs_cache
        ts = None
        if self._group is not None and "timestamps" in self._group:
            arr = self._group["timestamps"]
            check_frame_size(self.path, arr.chunks, arr.dtype)  # a chunk is decoded whole
            t = np.asarray(arr[: len(self)], dtype=np.float64)
            ts = t if len(t) == len(self) else None
        return {"fps": attrs.get("fps"), "timestamps": ts, "source": {"attrs": attrs}}


class ZarrWriter(Writer):
    """Frames to a zarr v3 group, one chunk per frame, zstd-compressed (``compression=None``
    for raw chunks). Frames and timestamps are appended as they come, so a partial store
    reads back with every frame written so far."""

    format_name = "zarr"
    extensions = (".zarr",)
    directory = True
    #: what a store of ours holds (other files beside them are the user's and stay)
    _LAYOUT = frozenset({"zarr.json", "frames", "timestamps"})

    @classmethod
    def owned_entries(cls, path: str) -> set[str] | None:
        """Our layout: a zarr v3 group whose attributes name napari-imseq as the writer."""
        import json

        from ._writer_base import read_small_file

        try:
            meta = json.loads(read_small_file(os.path.join(path, "zarr.json"), 1 << 20) or b"")
            ours = meta.get("node_type") == "group" and (
                meta.get("attributes", {}).get("writer") == "napari-imseq"
            )
            names = set(os.listdir(path))
        except (OSError, ValueError, AttributeError):
            return None
        return (names & cls._LAYOUT) if ours else None

    def _validate_options(self) -> None:
        opts = dict(self.options)
        self.compression = opts.pop("compression", "zstd")
        if opts:
            raise self._refuse(f"unknown option(s) {sorted(opts)} for zarr; known: compression")
        if self.compression in (None, "none"):
            return
        from zarr.codecs import BloscCodec

        try:
            BloscCodec(cname=self.compression)
        except (ValueError, TypeError):
            raise self._refuse(
                f"unknown zarr compression {self.compression!r}; use 'zstd' (default), 'lz4', "
                f"'lz4hc', 'blosclz', 'zlib' or 'snappy' (all lossless), or None"
            ) from None

    def _check(self, frame: np.ndarray) -> None:
        if frame.dtype.kind not in "uifb":
            raise self._refuse(f"{frame.dtype} frames cannot be stored in zarr here")

    def _open(self, frame: np.ndarray) -> None:
        import zarr
        from zarr.codecs import BloscCodec

        compressors = (
            None
            if self.compression in (None, "none")
            else [
                BloscCodec(
                    cname=self.compression,
                    clevel=5,
                    shuffle="bitshuffle" if frame.dtype.itemsize > 1 else "shuffle",
                )
            ]
        )
        self._root = zarr.open_group(
            self.partial, mode="w", zarr_format=3, attributes={"writer": "napari-imseq"}
        )
        self._frames = self._root.create_array(
            "frames", shape=(0, *frame.shape), chunks=(1, *frame.shape), dtype=frame.dtype,
            compressors=compressors, config={"write_empty_chunks": True},
        )  # fmt: skip
        self._times = self._root.create_array("timestamps", shape=(0,), chunks=(4096,), dtype="f8")
        self._root.attrs.update(
            {"fps": self.fps, "bit_depth": self.bit_depth, "writer": "napari-imseq",
             "every_chunk_written": True}  # readers treat a missing chunk as a lost frame
        )  # fmt: skip

    def _write(self, frame: np.ndarray, timestamp: float) -> None:
        n = self.count
        self._frames.resize((n + 1, *frame.shape))
        self._frames[n] = frame
        self._times.resize((n + 1,))
        self._times[n] = timestamp


# ---- registration (napari_imseq.io._formats) -----------------------------------------------
from ._formats import register  # noqa: E402

register("zarr", reader=ZarrSequence, writer=ZarrWriter)
