"""SIGKILL a training process mid-epoch, then ``--resume``: same final weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bioaug.cli import main
from bioaug.train.checkpoint import read_checkpoint
from bioaug.train.loop import train
from tests.train.helpers import tiny_cli_args, tiny_config

# Runs the CLI with a pause after each checkpoint, so the test can kill the process at a
# known point (between "checkpoint of step k written" and "run finished").
DRIVER = """
import sys, time
import bioaug.train.loop as loop
real = loop.save_checkpoint
def slow_save(path, payload):
    real(path, payload)
    time.sleep(0.25)
loop.save_checkpoint = slow_save
from bioaug.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tiny_store, tiny_protocol,
                                                               tmp_path, capsys):
    reference = train(tiny_config(tiny_store, tiny_protocol, tmp_path / "ref", epochs=2,
                                  save_every_steps=1))
    out = tmp_path / "killed"
    args = [*tiny_cli_args(tiny_store, tiny_protocol, out), "--save-every-steps", "1"]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BIOAUG_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    proc = subprocess.Popen([sys.executable, str(driver), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.pt"
    step = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists():
                step = int(torch.load(ckpt, weights_only=True)["step"])
                if step >= 2:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed = read_checkpoint(out)
    assert not killed["finished"] and 2 <= killed["step"] < 8
    assert killed["step"] % 4 != 0  # killed mid-epoch (4 steps per epoch)
    # resume from the command line, in this process (same threads as the reference)
    assert main([*args, "--resume"]) == 0
    capsys.readouterr()
    a, b = read_checkpoint(reference)["model"], read_checkpoint(out)["model"]
    assert read_checkpoint(out)["finished"]
    for key in a:
        assert torch.allclose(a[key].double(), b[key].double(), rtol=0, atol=1e-6), key
