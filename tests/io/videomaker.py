"""Video files written with PyAV for the tests, and the ground truth: a plain sequential
PyAV decode converted independently of napari_imseq."""

from fractions import Fraction

import av
import numpy as np


def pattern(n, h, w, seed=0):
    """Frames that differ from each other everywhere (so a wrong frame never looks right)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(h, w), dtype=np.uint8)
    y, x = np.mgrid[0:h, 0:w]
    return [
        ((base.astype(np.int32) + 7 * i + (x + 3 * i) // 4 + y) % 256).astype(np.uint8)
        for i in range(n)
    ]


def write(path, frames, *, codec, pix_fmt, fmt_in, fps=25, gop=None, options=None, pts=None,
          time_base=None, container_format=None, audio=None, bframes=None,
          threads=1):  # fmt: skip
    """Encode ``frames`` (numpy, in ``fmt_in``) to ``path``; returns nothing.

    ``threads=1`` (the default) gives the same bytes on every run: with FFmpeg's choice of
    threads (0), libx264's output depends on timing when the machine is loaded (2 encodings
    in 40 runs of 24 frames under load), and a test that damages a byte of the file, or
    compares with a second encoding, would test another file from run to run."""
    with av.open(str(path), "w", format=container_format) as out:
        s = out.add_stream(codec, rate=fps, options=options or {})
        s.pix_fmt = pix_fmt
        s.codec_context.thread_count = threads
        s.height, s.width = frames[0].shape[:2]
        if time_base is not None:
            s.time_base = time_base
            s.codec_context.time_base = time_base
        if gop is not None:
            s.codec_context.gop_size = gop
        if bframes is not None:
            s.codec_context.max_b_frames = bframes
        a = out.add_stream(audio, rate=8000) if audio else None
        for i, arr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(arr, format=fmt_in)
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = time_base
            for packet in s.encode(frame):
                out.mux(packet)
            if a is not None:
                samples = (
                    np.zeros((1, 320), np.int16)
                    if a.format.name == "s16"
                    else np.zeros((1, 320), np.float32)
                )
                af = av.AudioFrame.from_ndarray(samples, format=a.format.name, layout="mono")
                af.sample_rate = 8000
                af.pts = i * 320
                af.time_base = Fraction(1, 8000)
                for packet in a.encode(af):
                    out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
        if a is not None:
            for packet in a.encode():
                out.mux(packet)


def to_array(frame):
    """Independent conversion by pixel format (what each layout should give)."""
    name = frame.format.name
    if name in ("gray", "gray8"):
        return frame.to_ndarray()
    if name in ("gray10le", "gray12le", "gray16le"):
        return np.array(frame.to_ndarray(), dtype=np.uint16)
    if name.startswith("gbrp") and name != "gbrp":
        return frame.to_ndarray(format="rgb48le")
    if name in ("bgra", "rgba", "pal8", "yuva420p"):
        return frame.to_ndarray(format="rgba")
    if name.endswith(("10le", "12le")) and name.startswith("yuv"):
        return frame.to_ndarray(format="rgb48le")
    return frame.to_ndarray(format="rgb24")


def sequential(path):
    """Every frame of a plain sequential decode, in order. A GIF whose frames are all opaque
    is RGB (what the reader promises); one with any transparent pixel keeps RGBA."""
    with av.open(str(path)) as c:
        frames = np.stack([np.array(to_array(f)) for f in c.decode(video=0)])
    if str(path).lower().endswith(".gif") and np.all(frames[..., 3] == 255):
        frames = np.ascontiguousarray(frames[..., :3])
    return frames
