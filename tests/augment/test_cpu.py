"""The opt-in allocator tuning."""

from __future__ import annotations

import subprocess
import sys


def test_tune_cpu_allocator_in_a_separate_process() -> None:
    """Process-wide, so run it in a child: it must succeed on Linux/glibc and be harmless."""
    code = ("import torch\n"
            "from bioaug.augment.cpu import tune_cpu_allocator\n"
            "ok = tune_cpu_allocator()\n"
            "x = torch.rand(64, 3, 64, 64); y = (x * 2).sum()\n"
            "print(ok, bool(torch.isfinite(y)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out[1] == "True"
    if sys.platform.startswith("linux"):
        assert out[0] == "True"
