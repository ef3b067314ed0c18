import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"

# napari's settings (reader preferences, the record of the ones our plugin filled in) go to a
# private profile, never to the profile of the user running the tests; set before napari is
# imported, because napari reads NAPARI_CONFIG once
os.environ.setdefault(
    "NAPARI_CONFIG", os.path.join(tempfile.mkdtemp(prefix="imseq-napari-profile-"), "settings.yaml")
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own index cache, so no test sees another's entries."""
    monkeypatch.setenv("NAPARI_IMSEQ_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def sample(name: str) -> Path:
    """A file of ../shared/samples; the test is skipped when the folder is absent."""
    path = SAMPLES / name
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} is absent: real sample files are not available here")
    if not path.exists():
        pytest.skip(f"sample {name} is not in {SAMPLES}")
    return path


def sample_names(*exts: str) -> list[str]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p.name for p in SAMPLES.iterdir() if p.suffix.lower() in exts)


def open_fds() -> set[str]:
    """Paths of the files this process has open (Linux), for leak checks."""
    fd_dir = "/proc/self/fd"
    out = set()
    for fd in os.listdir(fd_dir):
        try:
            out.add(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            pass
    return out
