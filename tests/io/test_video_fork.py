"""A process that forks while a reader thread holds a pixel-format converter must not hang.

``subprocess.Popen(..., preexec_fn=...)`` (imageio-ffmpeg starts ffmpeg that way, so does
napari-animation through it) and ``multiprocessing`` with fork run Python's after-fork handlers
in the child, which free every other thread's ``threading.local`` data. A swscale context with
slice threads freed there waits forever for threads the child does not have.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import napari_imseq as imseq

_CHILD = textwrap.dedent(
    """
    import os, subprocess, sys, threading
    import napari_imseq as imseq

    seq = imseq.open_sequence(sys.argv[1])
    read, done = threading.Event(), threading.Event()

    def reader():  # a reader thread that stays alive, as napari's read-ahead does
        for _ in seq.iter_frames(0, 3):
            pass
        seq[4]
        read.set()
        done.wait(60)

    threading.Thread(target=reader, daemon=True).start()
    read.wait(60)
    code = subprocess.Popen([sys.executable, "-c", "pass"], preexec_fn=lambda: None).wait()
    print("forked", code, flush=True)
    done.set()
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork semantics of Linux")
def test_fork_with_a_reader_thread_alive_does_not_hang(tmp_path):
    path = str(tmp_path / "colour.mp4")
    rng = np.random.default_rng(0)
    with imseq.open_writer(path, fps=25) as w:  # yuv420p: read through an RGB conversion
        for _ in range(6):
            w.write(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the hung fork too (it kept the process group)
        proc.communicate()
        pytest.fail("forking while a reader thread held a converter hung the child process")
    assert proc.returncode == 0, err[-2000:]
    assert out.split() == ["forked", "0"]
