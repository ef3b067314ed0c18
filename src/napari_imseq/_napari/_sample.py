"""Sample data: a synthetic 12-bit recording in uint16, generated lazily frame by frame."""

from __future__ import annotations

import numpy as np


def synthetic_frame(
    index: int, shape: tuple[int, int] = (256, 320), bit_depth: int = 12
) -> np.ndarray:
    """Frame ``index`` of a deterministic scene: drifting gaussian spots on a gradient."""
    h, w = shape
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    top = 2**bit_depth - 1
    img = 0.08 * top * (x / w + y / h)
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.1, 0.9, size=(6, 2))
    speeds = rng.uniform(-0.004, 0.004, size=(6, 2))
    two_s2 = 2 * (0.04 * w) ** 2
    for (cy, cx), (vy, vx) in zip(centres, speeds, strict=True):
        py = ((cy + vy * index) % 1.0) * h
        px = ((cx + vx * index) % 1.0) * w
        # a gaussian spot is separable: an outer product of two 1-D profiles
        img = img + 0.8 * top * np.exp(-((y - py) ** 2) / two_s2) * np.exp(
            -((x - px) ** 2) / two_s2
        )
    noise = np.random.default_rng(index).normal(0, 0.01 * top, size=shape).astype(np.float32)
    return np.clip(img + noise, 0, top).astype(np.uint16)


def synthetic_sequence(n_frames: int = 200, shape: tuple[int, int] = (256, 320)):
    """A lazy dask array of ``n_frames`` synthetic 12-bit frames."""
    import dask.array as da

    def block(block_id=None):
        return synthetic_frame(block_id[0], shape)[np.newaxis]

    return da.map_blocks(block, chunks=((1,) * n_frames, (shape[0],), (shape[1],)), dtype=np.uint16)


def make_sample_data():
    data = synthetic_sequence()
    return [
        (
            data,
            {
                "name": "synthetic 12-bit",
                "contrast_limits": (0, 4095),
                "axis_labels": ("t", "y", "x"),
                "metadata": {"bit_depth": 12, "fps": 30.0},
            },
            "image",
        )
    ]
