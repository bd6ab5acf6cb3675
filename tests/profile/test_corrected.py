"""The record of the corrections profiles carry."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from bioaug.errors import DataError
from bioaug.profile.corrected import (
    corrected_steps,
    corrections_record,
    refuse_second_correction,
    steps_of_column,
)


def _with(record):
    a = ad.AnnData(obs={"x": ["a"]})
    a.uns["bioaug"] = {"corrected": record}
    return a


def test_steps_read_from_lists_arrays_and_texts():
    assert corrected_steps(_with({"X_bioaug": ["center", "sphere"]}), "X_bioaug") == \
        ["center", "sphere"]
    assert corrected_steps(_with({"X_bioaug": np.array(["center"], dtype=object)}),
                           "X_bioaug") == ["center"]
    assert corrected_steps(_with({"X_bioaug": ["center"]}), "X_bioaug_uncorrected") == []
    assert corrected_steps(ad.AnnData(obs={"x": ["a"]}), "X_bioaug") == []
    assert steps_of_column(["center,sphere", "center,sphere", None]) == ["center", "sphere"]
    with pytest.raises(DataError, match="different corrections in different rows"):
        steps_of_column(["center", "sphere"])
    assert corrections_record({"a": ["center"], "b": []}) == {"a": ["center"]}


def test_refused_only_when_corrected_and_correcting():
    corrected = _with({"X_bioaug": ["center"]})
    refuse_second_correction(corrected, "X_bioaug", False, where=None, hint="")
    refuse_second_correction(_with({}), "X_bioaug", True, where=None, hint="")
    with pytest.raises(DataError, match=r"^p.h5ad: obsm\['X_bioaug'\] holds profiles "
                                        r"corrected already \(center\)"):
        refuse_second_correction(corrected, "X_bioaug", True, where="p.h5ad", hint="h")
