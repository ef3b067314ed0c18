"""Every transform's docstring example runs and gives what it shows."""

import doctest

import numpy as np
import pytest

from napari_imseq import transforms as T


@pytest.mark.parametrize(
    "module", [T.intensity, T.normalize, T.filters, T.geometry, T.colour, T.annotate, T.pipeline]
)
def test_examples(module):
    result = doctest.testmod(
        module, extraglobs={"np": np, "Pipeline": T.Pipeline}, optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0 and result.failed == 0
