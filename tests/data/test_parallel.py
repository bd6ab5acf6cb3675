from __future__ import annotations

import pytest

from bioaug.data.parallel import Runner
from bioaug.errors import ConfigError, DataError


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


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_runner_refuses_workers_below_one(workers) -> None:
    with pytest.raises(ConfigError, match="workers must be a whole number ≥ 1"):
        Runner(workers)


def test_synth_with_zero_workers_is_refused_before_writing(tmp_path) -> None:
    from bioaug.data.synth import synth_bbbc021

    with pytest.raises(ConfigError, match="workers"):
        synth_bbbc021(tmp_path / "twin", workers=0)
    assert not list(tmp_path.iterdir())
