"""benchmarks/gpu_check.py, the check prepared for a lent GPU, in its CPU mode (--tiny), so that it
cannot rot before a device runs it: every check passes here, and a broken resume is caught."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_check(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--tiny", "--device", "cpu",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=600)


@pytest.mark.workflow
def test_the_gpu_check_passes_in_its_cpu_mode(tmp_path):
    proc = run_check(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (tmp_path / "gpu_check.md").read_text()
    for name in ("tf32 off, device recorded", "ensemble: killed and resumed", "vi: killed and resumed",
                 "hmc: killed and resumed", "hmc: 2 chains in one job equal their own jobs"):
        assert f"| {name} | ok |" in table
    assert "checks: 5 passed, 0 failed" in table


def test_a_resume_that_changes_the_posterior_fails_the_check(tmp_path, monkeypatch):
    """same_posterior, the comparison every resume and batch check rests on, sees one changed bit."""
    import numpy as np

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import gpu_check

    from workflow.storage import artifacts

    from .test_artifacts import gaussian_posterior
    from .conftest import make_mlp

    post = gaussian_posterior(make_mlp()[2])
    artifacts.write_posterior(tmp_path / "a.h5", post)
    artifacts.write_posterior(tmp_path / "b.h5", post)
    assert gpu_check.same_posterior(tmp_path / "a.h5", tmp_path / "b.h5") == ""
    name = next(iter(post.mean))
    post.mean[name] = np.nextafter(post.mean[name], np.inf).astype(post.mean[name].dtype)
    artifacts.write_posterior(tmp_path / "c.h5", post)
    assert f"mean[{name}] differs" in gpu_check.same_posterior(tmp_path / "a.h5", tmp_path / "c.h5")
