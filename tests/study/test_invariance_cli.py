"""``bioaug invariance`` on a trained checkpoint; channel-count errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bioaug.cli import main


@pytest.mark.slow
def test_invariance_of_a_checkpoint(tiny_run, tiny_store, tmp_path, capsys):
    out = tmp_path / "inv"
    rc = main(["invariance", "--checkpoint", str(tiny_run), "--checkpoint", str(tiny_run),
               "--data", str(tiny_store), "--out", str(out), "--ops", "rotate90", "blur",
               "--protocol", "bbbc021-expert", "--n-images", "48", "--device", "cpu"])
    assert rc == 0
    names = [p.name for p in sorted(out.iterdir()) if p.is_dir()]
    assert names == ["run", "run-2"]
    table = pd.read_csv(out / "run" / "invariance.csv")
    assert list(table.columns[:5]) == ["op", "amplitude", "unit", "mean", "std"]
    assert set(table["op"]) >= {"rotate90", "blur", "protocol:stain_jitter"}
    assert (table["n"] == 48).all()
    assert table["mean"].between(-1, 1).all()
    both = pd.read_csv(out / "invariance.csv")
    a = both[both["model"] == "run"]["mean"].to_numpy()
    b = both[both["model"] == "run-2"]["mean"].to_numpy()
    np.testing.assert_allclose(a, b)  # same model, same seed: same numbers
    for png in ("comparison.png", "run/invariance.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "mean invariance over amplitudes" in capsys.readouterr().out


def test_channel_count_error_for_an_explicit_op(tiny_store, tmp_path, capsys):
    from bioaug.data.store import write_store

    gray = tmp_path / "gray"
    imgs = (np.random.default_rng(0).random((8, 1, 16, 16)) * 255).astype(np.uint8)
    write_store(gray, imgs, pd.DataFrame({"label": list("ab") * 4}), channels=["DNA"],
                label_column="label")
    rc = main(["invariance", "--checkpoint", str(tmp_path / "nowhere"), "--data", str(gray),
               "--out", str(tmp_path / "o"), "--ops", "saturation", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "'saturation' (op 'color_jitter') needs exactly 3 channels" in err
    assert "the data has 1 channel" in err and "Traceback" not in err


def test_batch_size_zero_is_a_clear_error(tmp_path, capsys):
    rc = main(["invariance", "--checkpoint", str(tmp_path / "run"), "--data",
               str(tmp_path / "store"), "--out", str(tmp_path / "inv"), "--batch-size", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--batch-size must be ≥ 1, got 0" in err and "Traceback" not in err
