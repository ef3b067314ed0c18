"""Batch jobs on dask.distributed: convert many files, encode one long file in segments,
normalise a corpus from subsample statistics.

Runs on a LocalCluster (``workers=N``), a running scheduler (``scheduler="tcp://host:8786"``)
or an existing ``distributed.Client`` (``client=``). See docs/scaling.md.
"""

from ._convert import convert_batch, convert_segments, output_path
from ._engine import BatchError, BatchInterrupted, BatchReport, cluster, run_tasks

__all__ = [
    "BatchError",
    "BatchInterrupted",
    "BatchReport",
    "cluster",
    "convert_batch",
    "convert_segments",
    "output_path",
    "run_tasks",
]
