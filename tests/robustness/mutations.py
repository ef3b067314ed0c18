"""Seeded mutations: each is a small dict (kind + parameters) chosen in the parent process
and applied in the case's subprocess, so a case id reproduces it exactly.

``apply`` damages the file and says how the reference is to be computed:

* ``"pristine"``: the frames did not change (ground truth of the undamaged file);
* ``"bytes"``: decode the damaged bytes independently (``oracle.decode``) with the undamaged
  layout (offsets of the header, pages, records, chunk files, image names);
* ``"none"``: no independent decoder can say what the frames are (a header field the whole
  layout depends on): only internal consistency and error hygiene are checked.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: header fields of a SEQ file: name -> (offset, struct format)
SEQ_FIELDS = {
    "version": (28, "<i"), "width": (548, "<I"), "height": (552, "<I"), "bits": (556, "<I"),
    "real_bits": (560, "<I"), "image_size": (564, "<I"), "format": (568, "<I"),
    "allocated": (572, "<I"), "stride": (580, "<I"), "fps": (584, "<d"),
    "compression": (620, "<I"),
}  # fmt: skip
_U32 = [0, 1, 3, 0x7FFFFFFF, 0xFFFFFFFF, 65535]
SEQ_VALUES = {
    "width": _U32 + ["+1", "x2"], "height": _U32 + ["+1", "x2"], "bits": [0, 7, 12, 24, 64, 0xFFFFFFFF],
    "real_bits": [0, 12, 99], "image_size": _U32 + ["+1", "-1"], "format": [0, 300, 999, 102],
    "allocated": [0, 1, "-1", "+1", 23_000_000, 0xFFFFFFFF], "stride": _U32 + ["-1", "x2"],
    "fps": [float("nan"), float("inf"), -1.0, 0.0, 1e-300], "version": [0, 4, 99, -1],
    "compression": [1, 5, 8, 0xFFFFFFFF],
}  # fmt: skip


@dataclass
class Applied:
    mode: str  # pristine | bytes | none
    layout: dict[str, Any] = field(default_factory=dict)
    #: frames whose data the mutation destroyed (no decoder may return them)
    unreadable: set[int] = field(default_factory=set)
    #: extra acceptable outcomes: (names or hashes transform, need_warning)
    drop_allowed: list[int] = field(default_factory=list)
    note: str = ""


# ---- enumeration (parent side) ---------------------------------------------------------------
def enumerate_mutations(ref: str, name: str, rng: random.Random, long: bool) -> list[dict]:
    """The mutation specs for one base. ``long`` multiplies the random ones."""
    reps = 5 if long else 2
    specs: list[dict] = [{"kind": "none"}]
    single_file = ref in ("rawseq", "jpegseq", "tiff", "pyav")
    if single_file:
        points = ["1", "8", "header", "first_frame_mid", "mid", "last_frame", "last_byte"]
        if long:
            points += [round(rng.random(), 4) for _ in range(reps)]
        specs += [{"kind": "truncate", "at": p} for p in points]
        specs += [{"kind": "flip", "n": rng.choice([1, 1, 4]), "seed": rng.randrange(1 << 30)}
                  for _ in range(reps * 2 if long else 3)]  # fmt: skip
        specs += [{"kind": "zeros", "len": rng.choice([16, 256]), "seed": rng.randrange(1 << 30)}
                  for _ in range(reps)]  # fmt: skip
        # the end of a file: an index or trailer wiped, or half a frame more than was finished
        specs += [{"kind": "zeros_tail", "len": 256}, {"kind": "append", "len": 100},
                  {"kind": "append", "len": 5000}]  # fmt: skip
    if ref == "rawseq":
        for fname, values in SEQ_VALUES.items():
            chosen = values if long else rng.sample(values, min(2, len(values)))
            if not long and fname == "allocated":
                chosen = values  # the field readers get wrong most: all of it, always
            specs += [{"kind": "seq_field", "field": fname, "value": v} for v in chosen]
        specs += [
            {"kind": "seq_ts", "how": h} for h in ("repeat", "backwards", "zero", "ms_overflow")
        ]
    if ref == "jpegseq":
        hows = ["truncate", "shift", "garbage", "extra", "past_eof", "empty", "other_convention",
                "swap"]  # fmt: skip
        specs += [{"kind": "idx", "how": h} for h in hows]
        specs += [{"kind": "seq_field", "field": f, "value": v}
                  for f, v in [("width", 0xFFFFFFFF), ("height", 0), ("allocated", 0xFFFFFFFF),
                               ("allocated", 2), ("format", 999)]]  # fmt: skip
    if ref == "tiff":
        tags = []
        for tag in ("ImageWidth", "ImageLength", "StripOffsets", "StripByteCounts",
                    "BitsPerSample", "SamplesPerPixel", "TileOffsets", "TileByteCounts"):  # fmt: skip
            for value in ("huge", "zero", "beyond"):
                for page in (0, -1):
                    tags.append({"kind": "tiff_tag", "tag": tag, "value": value, "page": page})
        specs += rng.sample(tags, 24 if long else 8)
        specs += [
            {"kind": "tiff_loop", "how": h}
            for h in ("last_to_first", "first_to_self", "mid_to_first")
        ]
        specs += [{"kind": "tiff_ntags", "value": v} for v in (0, 0xFFFF)]
        specs += [{"kind": "imagej_lie", "key": k} for k in ("images", "frames", "slices")]
    if ref == "zarr":
        specs += [{"kind": "zarr_chunk", "how": h, "i": i}
                  for h in ("delete", "truncate", "garbage", "empty") for i in (0, 2)]  # fmt: skip
        for which in ("root", "array"):
            specs += [{"kind": "zarr_json", "which": which, "how": h}
                      for h in ("garbage", "truncated", "empty", "huge_shape", "negative_shape",
                                "zero_chunk", "dtype", "delete")]  # fmt: skip
        if name == "zarr_ours":
            specs += [
                {"kind": "zarr_ts", "how": h} for h in ("nan", "backwards", "delete", "short")
            ]
    if ref == "folder":
        specs += [{"kind": "folder", "how": h} for h in (
            "notes", "dsstore", "subdir", "other_shape", "other_dtype", "truncated_image",
            "empty_image", "text_named_image", "symlink_loop")]  # fmt: skip
    return specs


def spec_id(spec: dict) -> str:
    rest = ",".join(f"{k}={v}" for k, v in spec.items() if k != "kind")
    return spec["kind"] + (f"[{rest}]" if rest else "")


# ---- application (child side) ----------------------------------------------------------------
def _patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _frame_regions(base) -> tuple[int, int, int]:
    """(end of header, start of the first frame's data, start of the last frame's data)."""
    lay, size = base.layout, os.path.getsize(base.path)
    if base.ref == "rawseq":
        n = max(1, min(lay["allocated"] or 1 << 30, (size - lay["start"]) // max(1, lay["stride"])))
        return lay["start"], lay["start"], lay["start"] + (n - 1) * lay["stride"]
    if base.ref == "jpegseq":
        recs = lay["records"]
        return 1024, recs[0][0], recs[-1][0]
    if base.ref == "tiff":
        offs = [
            t[1]
            for p in lay["pages"]
            for n, t in p["tags"].items()
            if n in ("StripOffsets", "TileOffsets")
        ]
        first = min(offs) if offs else size // 4
        return min(first, 1024), first, max(offs) if offs else 3 * size // 4
    return min(1024, size // 8), size // 8, 7 * size // 8


def _offset(base, at) -> int:
    size = os.path.getsize(base.path)
    header, first, last = _frame_regions(base)
    named = {"1": 1, "8": 8, "header": header, "first_frame_mid": first + 16, "mid": size // 2,
             "last_frame": last + 8, "last_byte": size - 1}  # fmt: skip
    off = named[at] if isinstance(at, str) else int(at * size)
    return max(0, min(off, size - 1))


def _structural(base, positions: list[int]) -> bool:
    """True when a byte position lies in a field the layout depends on (reference: none)."""
    lay = base.layout
    for p in positions:
        if base.ref == "rawseq" and (p < 36 or 548 <= p < 1024):
            return True
        if base.ref == "jpegseq":
            if p < 36 or 548 <= p < 1024:
                return True
            if any(o <= p < o + 6 for o, _ in lay["records"]):  # size prefix, first bytes of JPEG
                return True
        if base.ref == "tiff":
            for page in lay["pages"]:
                d = page["tags"].get("ImageDescription")
                if d and d[1] <= p < d[1] + d[2] and b"ImageJ" in _desc(base):
                    return True
    return False


def _desc(base) -> bytes:
    d = base.layout["pages"][0]["tags"].get("ImageDescription")
    if not d:
        return b""
    with open(base.path, "rb") as f:
        f.seek(d[1])
        return f.read(d[2])


def apply(base, spec: dict, seed: int) -> Applied:
    kind = spec["kind"]
    rng = random.Random(seed)
    lay = dict(base.layout)
    path = Path(base.path)
    if kind == "none":
        return Applied("pristine", lay)
    if kind == "truncate":
        off = _offset(base, spec["at"])
        with open(path, "r+b") as f:
            f.truncate(off)
        return Applied("bytes", lay, note=f"cut at byte {off}")
    if kind == "zeros_tail":
        size = os.path.getsize(path)
        n = min(spec["len"], size // 4)
        _patch(path, size - n, b"\0" * n)
        positions = list(range(size - n, size))
        return Applied(
            "none" if _structural(base, positions) else "bytes", lay, note=f"last {n} bytes zeroed"
        )
    if kind == "append":
        with open(path, "ab") as f:
            f.write(random.Random(seed).randbytes(spec["len"]))
        return Applied("bytes", lay, note=f"{spec['len']} random bytes appended")
    if kind in ("flip", "zeros"):
        r = random.Random(spec["seed"])
        size = os.path.getsize(path)
        if kind == "flip":
            positions = [r.randrange(size) for _ in range(spec["n"])]
            blob = bytearray(path.read_bytes())
            for p in positions:
                blob[p] ^= r.randrange(1, 256)
            path.write_bytes(bytes(blob))
        else:
            start = r.randrange(size)
            positions = list(range(start, min(size, start + spec["len"])))
            _patch(path, start, b"\0" * len(positions))
        mode = "none" if _structural(base, positions) else "bytes"
        return Applied(
            mode, lay, note=f"bytes {positions[:4]}{'...' if len(positions) > 4 else ''}"
        )
    return _APPLY[kind](base, spec, lay, rng)


def _tiff_ntags(base, spec, lay, rng) -> Applied:
    page = lay["pages"][0]
    fmt = "Q" if lay["bigtiff"] else "H"
    _patch(Path(base.path), page["offset"], struct.pack(lay["byteorder"] + fmt, spec["value"]))
    return Applied("bytes", lay)


def _imagej_lie(base, spec, lay, rng) -> Applied:
    desc = _desc(base)
    key = spec["key"].encode() + b"="
    if key not in desc:
        return Applied("skip", lay, note=f"no {spec['key']}= in the description")
    i = desc.index(key) + len(key)
    j = i
    while j < len(desc) and desc[j : j + 1].isdigit():
        j += 1
    d = lay["pages"][0]["tags"]["ImageDescription"]
    _patch(Path(base.path), d[1] + i, b"9" * (j - i))
    return Applied("none" if spec["key"] == "slices" else "bytes", lay)


def _seq_field(base, spec, lay, rng) -> Applied:
    off, fmt = SEQ_FIELDS[spec["field"]]
    old = struct.unpack_from(fmt, Path(base.path).read_bytes(), off)[0]
    v = spec["value"]
    if isinstance(v, str):
        v = {"+": old + int(v[1:]), "-": old - int(v[1:]), "x": old * int(v[1:])}[v[0]]
    if fmt == "<I":
        v = int(v) & 0xFFFFFFFF
    _patch(Path(base.path), off, struct.pack(fmt, v))
    f = spec["field"]
    if f == "allocated":
        lay["allocated_override"] = v
        return Applied("bytes", lay, note=f"allocated {old} -> {v}")
    if f in ("fps", "real_bits"):
        return Applied(
            "pristine" if base.ref == "jpegseq" else "bytes", lay, note=f"{f} {old} -> {v}"
        )
    if v == old:
        return Applied("pristine", lay, note=f"{f} unchanged ({v})")
    return Applied("none", lay, note=f"{f} {old} -> {v}")


def _seq_ts(base, spec, lay, rng) -> Applied:
    path, how = Path(base.path), spec["how"]
    b = path.read_bytes()
    start, stride, size = lay["start"], lay["stride"], lay["image_size"]
    n = min(lay["allocated"] or 1 << 30, (len(b) - start) // stride)
    first = struct.unpack_from("<i", b, start + size)[0]
    for i in range(n):
        at = start + i * stride + size
        s, ms = {"repeat": (first, 0), "backwards": (first - i, 500), "zero": (0, 0),
                 "ms_overflow": (first + i, 65535)}[how]  # fmt: skip
        _patch(path, at, struct.pack("<iH", s, ms))
    return Applied("bytes", lay, note=f"timestamps {how}")


def _idx_records(base) -> list[bytes]:
    b = Path(base.path).read_bytes()
    out = []
    for off, size in base.layout["records"]:
        ts = b[off + size : off + size + 8]
        out.append(struct.pack("<qI", off, size) + ts.ljust(12, b"\0"))
    return out


def _idx(base, spec, lay, rng) -> Applied:
    recs = _idx_records(base)
    how = spec["how"]
    size = os.path.getsize(base.path)
    if how == "truncate":
        data = b"".join(recs)[: len(recs) * 24 // 2 + 5]
    elif how == "shift":
        data = b"".join(struct.pack("<q", struct.unpack_from("<q", r)[0] + 4) + r[8:] for r in recs)
    elif how == "garbage":
        data = bytes(rng.randrange(256) for _ in range(24 * len(recs)))
    elif how == "extra":
        data = b"".join(recs) + b"".join(recs[-2:])
    elif how == "past_eof":
        data = b"".join(recs[:-1]) + struct.pack("<qI", size + 10_000, 5000) + b"\0" * 12
    elif how == "empty":
        data = b""
    elif how == "other_convention":
        data = b"".join(recs[1:])
    else:  # swap two records: offsets that point at the wrong frames
        recs[0], recs[1] = recs[1], recs[0]
        data = b"".join(recs)
    Path(str(base.path) + ".idx").write_bytes(data)
    return Applied("bytes", lay, note=f"idx {how} ({len(data)} bytes)")


def _tiff_tag(base, spec, lay, rng) -> Applied:
    page = lay["pages"][spec["page"]]
    tag = page["tags"].get(spec["tag"])
    if tag is None:
        return Applied("skip", lay, note=f"no {spec['tag']} tag")
    entry = tag[0]  # offset of the 12/20-byte IFD entry
    bo = lay["byteorder"]
    big = lay["bigtiff"]
    with open(base.path, "rb") as f:
        f.seek(entry + 2)
        dtype, count = struct.unpack(bo + ("HQ" if big else "HI"), f.read(10 if big else 6))
    size = lay["size"]
    value = {"huge": 0xFFFFFFFF, "zero": 0, "beyond": size + 4096}[spec["value"]]
    code = {3: "H", 4: "I", 16: "Q"}.get(dtype)
    if code is None:
        return Applied("skip", lay, note=f"{spec['tag']} has TIFF type {dtype}")
    if code == "H":
        value = min(value, 0xFFFF)
    # the first value (inline or out of line)
    _patch(Path(base.path), tag[1], struct.pack(bo + code, value))
    return Applied("bytes", lay, note=f"{spec['tag']} of page {spec['page']} = {value}")


def _tiff_loop(base, spec, lay, rng) -> Applied:
    pages = lay["pages"]
    big = lay["bigtiff"]
    bo = lay["byteorder"]

    def next_ptr(page):
        return page["offset"] + (8 + 20 * page["ntags"] if big else 2 + 12 * page["ntags"])

    src, dst = {"last_to_first": (pages[-1], pages[0]), "first_to_self": (pages[0], pages[0]),
                "mid_to_first": (pages[len(pages) // 2], pages[0])}[spec["how"]]  # fmt: skip
    _patch(Path(base.path), next_ptr(src), struct.pack(bo + ("Q" if big else "I"), dst["offset"]))
    lay["ifd_loop"] = True
    return Applied("bytes", lay, note=spec["how"])


def _zarr_array_dir(base) -> Path:
    return Path(base.path) / base.layout["array"] if base.layout["array"] else Path(base.path)


def _zarr_chunk(base, spec, lay, rng) -> Applied:
    i = spec["i"]
    arr = _zarr_array_dir(base)
    chunk = arr / "c" / str(i)
    files = [p for p in chunk.rglob("*") if p.is_file()] if chunk.exists() else []
    if not files:
        return Applied("skip", lay, note=f"no chunk file for frame {i}")
    how = spec["how"]
    f = files[0]
    if how == "delete":
        f.unlink()
        return Applied("bytes", lay, unreadable={i}, note=f"deleted {f.relative_to(base.path)}")
    b = f.read_bytes()
    f.write_bytes(
        {"truncate": b[: len(b) // 2], "garbage": bytes(range(256)) * 2, "empty": b""}[how]
    )
    return Applied("bytes", lay, unreadable={i}, note=f"{how} {f.relative_to(base.path)}")


def _zarr_json(base, spec, lay, rng) -> Applied:
    target = (
        Path(base.path) / "zarr.json"
        if spec["which"] == "root"
        else _zarr_array_dir(base) / "zarr.json"
    )
    if spec["which"] == "array" and not lay["array"]:
        return Applied("skip", lay, note="the store is a single array")
    how = spec["how"]
    text = target.read_text()
    if how == "garbage":
        target.write_bytes(bytes(rng.randrange(256) for _ in range(200)))
    elif how == "truncated":
        target.write_text(text[: len(text) // 2])
    elif how == "empty":
        target.write_text("")
    elif how == "delete":
        target.unlink()
    else:
        meta = json.loads(text)
        if meta.get("node_type") != "array":
            return Applied("skip", lay, note="the group has no array metadata")
        if how == "huge_shape":
            meta["shape"] = [10**12, 1 << 20, 1 << 20][: len(meta["shape"])] + meta["shape"][3:]
        elif how == "negative_shape":
            meta["shape"][0] = -5
        elif how == "zero_chunk":
            meta["chunk_grid"]["configuration"]["chunk_shape"][0] = 0
        elif how == "dtype":
            meta["data_type"] = "float64" if meta["data_type"] != "float64" else "uint8"
        target.write_text(json.dumps(meta))
    return Applied("bytes", lay, note=f"{spec['which']} zarr.json {how}")


def _zarr_ts(base, spec, lay, rng) -> Applied:
    import numpy as np
    import zarr

    how = spec["how"]
    ts_dir = Path(base.path) / "timestamps"
    if how == "delete":
        shutil.rmtree(ts_dir)
    else:
        t = zarr.open_array(str(ts_dir), mode="r+")
        n = t.shape[0]
        if how == "nan":
            t[1] = np.nan
        elif how == "backwards":
            t[:] = np.arange(n, 0, -1, dtype="f8")
        else:
            t.resize((max(0, n - 2),))
    return Applied("pristine", lay, note=f"timestamps {how}")


def _folder(base, spec, lay, rng) -> Applied:
    import imagecodecs
    import numpy as np

    d = Path(base.path)
    names = list(lay["names"])
    how = spec["how"]
    ext = Path(names[0]).suffix
    stem = Path(names[2]).stem
    odd = stem + "b" + ext  # sorts right after the third image
    if how == "notes":
        (d / "notes.txt").write_text("my notes")
        return Applied("pristine", lay)
    if how == "dsstore":
        (d / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(100))
        (d / "Thumbs.db").write_bytes(bytes(64))
        return Applied("pristine", lay)
    if how == "subdir":
        (d / "sub").mkdir()
        (d / "sub" / names[0]).write_bytes((d / names[0]).read_bytes())
        return Applied("pristine", lay)
    if how == "symlink_loop":
        os.symlink(".", d / "loop")
        return Applied("pristine", lay)
    if how in ("other_shape", "other_dtype", "empty_image", "text_named_image"):
        if how == "other_shape":
            img = np.zeros((3, 5), np.uint16 if "16" in str(lay) else np.uint8)
            data = imagecodecs.png_encode(img) if ext == ".png" else _tif_bytes(img)
        elif how == "other_dtype":
            img = np.zeros((8, 10), np.float32)
            data = (
                _tif_bytes(img)
                if ext != ".png"
                else imagecodecs.png_encode(img.astype(np.uint8)[..., None].repeat(3, -1))
            )
        elif how == "empty_image":
            data = b""
        else:
            data = b"not an image at all\n"
        (d / odd).write_bytes(data)
        names.insert(3, odd)
        lay["names"] = names
        return Applied("bytes", lay, drop_allowed=[3], note=f"added {odd}")
    if how == "truncated_image":
        p = d / names[3]
        p.write_bytes(p.read_bytes()[:40])
        return Applied("bytes", lay, drop_allowed=[3], note=f"cut {names[3]} to 40 bytes")
    raise ValueError(how)  # pragma: no cover


def _tif_bytes(img) -> bytes:
    import io

    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, img)
    return buf.getvalue()


_APPLY = {
    "seq_field": _seq_field, "seq_ts": _seq_ts, "idx": _idx, "tiff_tag": _tiff_tag,
    "tiff_loop": _tiff_loop, "tiff_ntags": _tiff_ntags, "imagej_lie": _imagej_lie,
    "zarr_chunk": _zarr_chunk, "zarr_json": _zarr_json, "zarr_ts": _zarr_ts, "folder": _folder,
}  # fmt: skip
