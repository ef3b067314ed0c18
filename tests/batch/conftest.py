import pytest


@pytest.fixture(scope="package")
def client():
    """One LocalCluster of 2 single-threaded worker processes on 127.0.0.1 for the batch tests,
    started as the batch jobs start theirs."""
    distributed = pytest.importorskip("distributed")
    from napari_imseq.batch._engine import local_cluster

    cluster = local_cluster(2)
    # never the default dask scheduler: the rest of the suite computes with its own schedulers,
    # and a live in-process scheduler (its system monitor reads /proc) must end with tests/batch
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()
