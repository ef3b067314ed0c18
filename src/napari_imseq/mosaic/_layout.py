"""Where each tile goes: a grid of cells (or explicit boxes) and how a frame fits its cell.

Fit modes, for a frame of ``(h, w)`` in a cell of ``(ch, cw)``:

* ``resize``: scaled by ``min(ch / h, cw / w)`` (aspect kept) and centred; the rest of the
  cell is background. A frame that already fits exactly is not resampled.
* ``stretch``: resized to fill the cell (aspect not kept).
* ``pad``: placed unscaled and centred; a frame larger than its cell is an error.
* ``crop``: placed unscaled and centred; what falls outside the cell is cut off (the centre
  is kept).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ._timeline import MosaicError

FITS = ("resize", "stretch", "pad", "crop")
INTERPOLATIONS = ("nearest", "linear", "cubic", "area")


@dataclass(frozen=True)
class Box:
    y: int
    x: int
    h: int
    w: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.y, self.x, self.h, self.w)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


@dataclass(frozen=True)
class Placement:
    """How one tile's frame becomes pixels of the output: crop, resize, then paste."""

    cell: Box  # the cell, in output coordinates
    box: Box  # where the tile's pixels land, in output coordinates
    crop: tuple[slice, slice]  # part of the (pipeline's) frame that is kept
    resize: tuple[int, int] | None  # (h, w) to resample to, or None: no resampling


def _positive_int(value, what: str) -> int:
    try:
        v = int(value)
        exact = float(value) == v
    except (TypeError, ValueError):
        raise MosaicError(
            f"mosaic: {what} must be a positive whole number, not {value!r}"
        ) from None
    if not exact or v <= 0:
        raise MosaicError(f"mosaic: {what} must be a positive whole number, not {value!r}")
    return v


def size_pair(value, what: str) -> tuple[int, int]:
    """``(h, w)`` from ``(h, w)``, ``"HxW"`` or a single number (square)."""
    if isinstance(value, str):
        parts = re.split(r"[x×X,]", value.strip())
        if len(parts) == 1:
            parts = parts * 2
    elif np.ndim(value) == 0:
        parts = [value, value]
    else:
        parts = list(value)
    if len(parts) != 2:
        raise MosaicError(f"mosaic: {what} takes (height, width) or 'HxW', not {value!r}")
    return _positive_int(parts[0], f"{what} height"), _positive_int(parts[1], f"{what} width")


def parse_grid(grid, count: int) -> tuple[int, int]:
    """``(rows, cols)`` for ``count`` tiles: ``None``/``"auto"`` (near-square, wider than
    tall), ``"RxC"``, ``(rows, cols)``, or a grid with one side 0/None/"" filled in."""
    if count <= 0:
        raise MosaicError("mosaic: no sources; give at least one path, Sequence or array")
    if grid is None or (isinstance(grid, str) and grid.strip().lower() in ("", "auto")):
        cols = math.ceil(math.sqrt(count))
        return math.ceil(count / cols), cols
    if isinstance(grid, str):
        parts = [p.strip() for p in re.split(r"[x×X,]", grid.strip())]
    else:
        parts = list(grid) if np.ndim(grid) else [grid]
    if len(parts) != 2:
        raise MosaicError(f"mosaic: grid takes 'RxC' or (rows, cols), not {grid!r}")
    rows, cols = (None if p in (None, "", 0, "0", "auto") else p for p in parts)
    if rows is None and cols is None:
        return parse_grid(None, count)
    if rows is None:
        cols = _positive_int(cols, "grid columns")
        return math.ceil(count / cols), cols
    if cols is None:
        rows = _positive_int(rows, "grid rows")
        return rows, math.ceil(count / rows)
    rows, cols = _positive_int(rows, "grid rows"), _positive_int(cols, "grid columns")
    if rows * cols < count:
        raise MosaicError(
            f"mosaic: a {rows}x{cols} grid has {rows * cols} cells for {count} sources; use a "
            f"larger grid (e.g. {math.ceil(count / cols)}x{cols}) or leave grid=None"
        )
    return rows, cols


def grid_cells(
    count: int, rows: int, cols: int, cell: tuple[int, int], gap: int
) -> tuple[list[Box], tuple[int, int]]:
    """Cells in row-major order and the output's (height, width)."""
    ch, cw = cell
    cells = [Box((k // cols) * (ch + gap), (k % cols) * (cw + gap), ch, cw) for k in range(count)]
    return cells, (rows * ch + (rows - 1) * gap, cols * cw + (cols - 1) * gap)


def position_cells(
    positions, frame_sizes: list[tuple[int, int]]
) -> tuple[list[Box], tuple[int, int]]:
    """Cells from explicit ``(y, x)`` (the frame's own size) or ``(y, x, h, w)`` boxes."""
    if len(positions) != len(frame_sizes):
        raise MosaicError(
            f"mosaic: {len(positions)} positions for {len(frame_sizes)} sources; give one "
            f"(y, x) or (y, x, height, width) per source"
        )
    cells = []
    for k, (pos, (h, w)) in enumerate(zip(positions, frame_sizes, strict=True)):
        pos = list(pos)
        if len(pos) not in (2, 4):
            raise MosaicError(
                f"mosaic: position {k} is {tuple(pos)}; give (y, x) or (y, x, height, width)"
            )
        try:
            y, x = int(pos[0]), int(pos[1])
        except (TypeError, ValueError):
            raise MosaicError(f"mosaic: position {k} {tuple(pos)} is not whole pixels") from None
        if y < 0 or x < 0:
            raise MosaicError(f"mosaic: position {k} {tuple(pos)} is outside the frame (negative)")
        if len(pos) == 4:
            h, w = size_pair(pos[2:], f"position {k} size")
        cells.append(Box(y, x, h, w))
    height = max(c.y + c.h for c in cells)
    width = max(c.x + c.w for c in cells)
    return cells, (height, width)


def place(frame_hw: tuple[int, int], cell: Box, fit: str, name: str) -> Placement:
    """How a frame of ``frame_hw`` fits ``cell`` in mode ``fit``."""
    h, w = frame_hw
    full = (slice(0, h), slice(0, w))
    if fit in ("resize", "stretch"):
        if fit == "stretch":
            nh, nw = cell.h, cell.w
        else:
            scale = min(cell.h / h, cell.w / w)
            nh = min(cell.h, max(1, round(h * scale)))
            nw = min(cell.w, max(1, round(w * scale)))
        box = Box(cell.y + (cell.h - nh) // 2, cell.x + (cell.w - nw) // 2, nh, nw)
        return Placement(cell, box, full, None if (nh, nw) == (h, w) else (nh, nw))
    if fit == "pad":
        if h > cell.h or w > cell.w:
            raise MosaicError(
                f"{name}: its frames ({h}x{w}) are larger than their cell ({cell.h}x{cell.w}); "
                f"fit='pad' never scales or cuts; use fit='resize' or 'crop', or a larger cell"
            )
    elif fit != "crop":
        raise MosaicError(f"mosaic: fit must be one of {FITS}, not {fit!r}")
    kh, kw = min(h, cell.h), min(w, cell.w)
    y0, x0 = (h - kh) // 2, (w - kw) // 2
    box = Box(cell.y + (cell.h - kh) // 2, cell.x + (cell.w - kw) // 2, kh, kw)
    return Placement(cell, box, (slice(y0, y0 + kh), slice(x0, x0 + kw)), None)


def disjoint(boxes: list[Box]) -> bool:
    """True when no two boxes share a pixel (tiles can then be pasted in any order)."""
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if a.y < b.y + b.h and b.y < a.y + a.h and a.x < b.x + b.w and b.x < a.x + a.w:
                return False
    return True


def uncovered(boxes: list[Box], h: int, w: int) -> list[Box]:
    """The parts of an ``h`` x ``w`` frame that no box covers, as a few rectangles (bands
    between the boxes' top and bottom edges, split where boxes cover them)."""
    edges = sorted({0, h, *(min(max(b.y, 0), h) for b in boxes),
                    *(min(max(b.y + b.h, 0), h) for b in boxes)})  # fmt: skip
    out: list[Box] = []
    for y0, y1 in zip(edges, edges[1:], strict=False):
        x = 0
        spans = sorted((b.x, b.x + b.w) for b in boxes if b.y < y1 and b.y + b.h > y0)
        for x0, x1 in [*spans, (w, w)]:
            if x0 > x:
                out.append(Box(y0, x, y1 - y0, min(x0, w) - x))
            x = max(x, x1)
            if x >= w:
                break
    return out


def label_size(cell: Box) -> int:
    """Text height for labels in ``cell``: readable, and small enough to fit."""
    return int(max(8, min(32, cell.h // 12, cell.w // 8)))
