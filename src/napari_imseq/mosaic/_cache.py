"""The optional on-disk cache of composed mosaic frames (a zarr v3 store, one chunk per frame).

The store lives in ``<folder>/mosaic-<fingerprint>.zarr``: a mosaic with other sources or
settings gets another store, so one folder serves many mosaics and nothing is ever
overwritten. A frame is in the cache when its chunk file exists (zarr writes chunks to a
temporary name and renames them, so a chunk on disk is complete). The store uses the layout
of napari-imseq's zarr writer (``frames``, ``timestamps``, ``fps``), so
``open_sequence(store)`` reads the frames composed so far (a frame not composed yet is a
:class:`~napari_imseq.FrameIndexError`).
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import numpy as np

from ._timeline import MosaicError


class FrameCache:
    def __init__(
        self,
        folder: str | os.PathLike,
        fingerprint: str,
        shape: tuple[int, ...],
        dtype: np.dtype,
        *,
        times: np.ndarray,
        fps: float,
        bit_depth: int,
    ):
        self.folder = os.path.abspath(os.fspath(folder))
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise MosaicError(
                f"{self.folder}: cache= names a file; the mosaic cache is a folder (it is "
                f"created when missing); choose a folder"
            )
        self.fingerprint = fingerprint
        self.path = os.path.join(self.folder, f"mosaic-{fingerprint[:24]}.zarr")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._times, self._fps, self._bits = times, fps, bit_depth
        self._lock = threading.Lock()
        self._frames = None
        self._chunk_dir: str | None = None

    def __reduce__(self):
        return _rebuild, (self.folder, self.fingerprint, self.shape, str(self.dtype),
                          self._times, self._fps, self._bits)  # fmt: skip

    # ---- the store ----------------------------------------------------------------------------
    def _create(self) -> None:
        """Make the store under a temporary name and rename it into place (atomic: another
        thread or process that raced us leaves theirs, and we use it)."""
        import zarr
        from zarr.codecs import BloscCodec

        os.makedirs(self.folder, exist_ok=True)
        tmp = f"{self.path}.{uuid.uuid4().hex[:8]}.partial"
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        root.create_array(
            "frames", shape=self.shape, chunks=(1, *self.shape[1:]), dtype=self.dtype,
            compressors=[BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle"
                                    if self.dtype.itemsize > 1 else "shuffle")],
            fill_value=0, config={"write_empty_chunks": True},
        )  # fmt: skip
        ts = root.create_array("timestamps", shape=(self.shape[0],), chunks=(65536,), dtype="f8")
        ts[:] = self._times
        root.attrs.update(
            {"writer": "napari-imseq", "fps": self._fps, "bit_depth": self._bits,
             "mosaic": self.fingerprint, "every_chunk_written": False}
        )  # fmt: skip
        try:
            os.rename(tmp, self.path)
        except OSError:
            import shutil

            if not os.path.isdir(self.path):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # ours, made above: someone was first

    def _open(self, create: bool):
        if self._frames is not None:
            return self._frames
        with self._lock:
            if self._frames is not None:
                return self._frames
            if not os.path.isdir(self.path):
                if not create:
                    return None
                self._create()
            import zarr

            root = zarr.open_group(self.path, mode="r+")
            if root.attrs.get("mosaic") != self.fingerprint:
                raise MosaicError(
                    f"{self.path}: this cache store belongs to another mosaic; remove it or "
                    f"choose another cache folder"
                )
            frames = root["frames"]
            if tuple(frames.shape) != self.shape or np.dtype(frames.dtype) != self.dtype:
                raise MosaicError(
                    f"{self.path}: the cached frames are {frames.shape} {frames.dtype}, not "
                    f"{self.shape} {self.dtype}; remove the store or choose another folder"
                )
            self._chunk_dir = os.path.join(self.path, "frames")
            self._encode = frames.metadata.encode_chunk_key
            self._zeros = (0,) * (len(self.shape) - 1)
            self._frames = frames
            return frames

    def _chunk_path(self, index: int) -> str:
        key = self._encode((index, *self._zeros))
        return os.path.join(self._chunk_dir, *key.split("/"))

    # ---- frames --------------------------------------------------------------------------------
    def has(self, index: int) -> bool:
        """True when frame ``index`` is in the cache (its chunk file exists; nothing read)."""
        return self._open(create=False) is not None and os.path.isfile(self._chunk_path(index))

    def get(self, index: int) -> np.ndarray | None:
        """Frame ``index`` if it was cached, else None."""
        frames = self._open(create=False)
        if frames is None or not os.path.isfile(self._chunk_path(index)):
            return None
        return np.asarray(frames[index])

    def put(self, index: int, frame: np.ndarray) -> None:
        frames = self._open(create=True)
        frames[index] = frame

    def cached(self) -> int:
        """How many frames are in the cache."""
        if self._open(create=False) is None:
            return 0
        return sum(os.path.isfile(self._chunk_path(i)) for i in range(self.shape[0]))


def _rebuild(folder, fingerprint, shape, dtype, times, fps, bits) -> FrameCache:
    return FrameCache(folder, fingerprint, shape, np.dtype(dtype), times=times, fps=fps,
                      bit_depth=bits)  # fmt: skip


def describe(cache: FrameCache | None) -> dict[str, Any] | None:
    return None if cache is None else {"path": cache.path}
