import logging

import pytest


@pytest.fixture(scope="package")
def client():
    """One LocalCluster of 2 single-threaded worker processes on 127.0.0.1 for the batch tests."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # a free port: never 8787 of a running cluster
        silence_logs=logging.ERROR,
    )
    # never the default dask scheduler: the rest of the suite computes with its own schedulers,
    # and a live in-process scheduler (its system monitor reads /proc) must end with tests/batch
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()
