"""``import napari_imseq`` (and ``napari_imseq.batch``) stays light: no dask.distributed until
a batch function is used."""

import subprocess
import sys


def test_import_does_not_pull_in_distributed():
    code = (
        "import sys, napari_imseq\n"
        "assert callable(napari_imseq.batch.__getattr__)\n"
        "from napari_imseq import cli\n"
        "cli.build_parser().parse_args(['normalise', 'a.tif', '--to', 'out'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('distributed', 'bokeh')]\n"
        "assert not bad, bad\n"
        "napari_imseq.batch.convert_batch\n"
        "assert 'distributed' not in sys.modules  # only when a cluster is started\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
