from __future__ import annotations

import pytest

from bioaug.data.parallel import Runner
from bioaug.errors import DataError


def _square(x: int) -> int:
    if x == 13:
        raise DataError("unlucky")
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_results_in_order_and_errors_propagate(workers: int) -> None:
    with Runner(workers) as r:
        assert list(r.map(_square, range(12))) == [x * x for x in range(12)]
        with pytest.raises(DataError, match="unlucky"):
            list(r.map(_square, range(20)))
