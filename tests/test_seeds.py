"""The one seed rule: integers 0 … 2**32 - 1, anything else a ConfigError naming the option."""

from __future__ import annotations

import numpy as np
import pytest

from bioaug.errors import ConfigError
from bioaug.seeds import SEED_MAX, check_seed


def test_the_range_is_32_bits() -> None:
    assert SEED_MAX == 4294967295


@pytest.mark.parametrize("value", [0, 1, 42, 2**31, 2**32 - 1])
def test_seeds_in_range_are_returned(value: int) -> None:
    assert check_seed(value, "--seed") == value


def test_numpy_integers_are_seeds() -> None:
    value = check_seed(np.int64(7), "--seed")
    assert value == 7 and type(value) is int


@pytest.mark.parametrize("value", [-1, 2**32, 2**63, 2**64 + 5])
def test_seeds_out_of_range_name_where_and_the_range(value: int) -> None:
    with pytest.raises(ConfigError) as info:
        check_seed(value, "--seeds")
    message = str(info.value)
    assert message.startswith("--seeds: ") and str(value) in message and "4294967295" in message


@pytest.mark.parametrize("value", [True, 1.5, "3", None])
def test_non_integers_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^seed: a seed must be an integer"):
        check_seed(value, "seed")
