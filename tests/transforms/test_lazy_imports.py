"""Lazy imports of the transforms package from threads.

Importing a submodule first (``from ..transforms.geometry import crop`` inside a function) holds
that submodule's import lock while Python imports the package, whose ``__init__`` imports every
submodule: threads doing so at once deadlock, and Python hands one of them a half-made module
(seen in a mosaic's tile threads; 15 of 20 runs of eight such threads at once failed with
``_DeadlockError``, none when each imports the package first). Code outside the package imports
lazily from the package itself.
"""

import ast
import subprocess
import sys
from pathlib import Path

import napari_imseq

SRC = Path(napari_imseq.__file__).parent


def _lazy_submodule_imports():
    for path in sorted(SRC.rglob("*.py")):
        if path.parent.name == "transforms":
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.module
                    and ".transforms."
                    in ("." * node.level + node.module).replace("napari_imseq.", ".")
                ):
                    yield f"{path.relative_to(SRC)}:{node.lineno}"


def test_no_lazy_import_of_a_transforms_submodule_outside_the_package():
    found = list(_lazy_submodule_imports())
    allowed = {"mosaic/_mosaic.py"}  # colormap_names, checked when a mosaic is made (no thread)
    assert [f for f in found if f.split(":")[0] not in allowed] == []
    assert len([f for f in found if f.split(":")[0] in allowed]) <= 1


def test_threads_importing_the_package_at_once_get_it_whole():
    code = (
        "import threading\n"
        "names = ['crop', 'draw_text', 'estimate_range', 'apply_colormap', 'gaussian', 'gamma',"
        " 'Pipeline', 'resize']\n"
        "barrier = threading.Barrier(len(names))\n"
        "errors = []\n"
        "def run(name):\n"
        "    barrier.wait()\n"
        "    try:\n"
        "        exec(f'from napari_imseq.transforms import {name}')\n"
        "    except Exception as err:\n"
        "        errors.append(repr(err))\n"
        "threads = [threading.Thread(target=run, args=(n,)) for n in names]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "print(errors)\n"
    )
    for _ in range(3):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "[]"
