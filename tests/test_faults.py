"""Faults: training and HMC jobs killed (SIGKILL) at random moments, then run again, give artifacts
identical to an uninterrupted run (on the same machine). The whole-run kill, the lock of a killed
run and two runs sharing one results folder are end-to-end tests in test_workflow.py; a full disk
is test_atomic.py.

The moments are drawn afresh each run (set FAULT_SEED to repeat one); a failure names its draw.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .fingerprints import differing, h5_digest

SEED = int(os.environ.get("FAULT_SEED", random.SystemRandom().randrange(2**31)))
CONFIG = {"name": "faults", "data": {"dataset": "digits", "n_train": 400, "n_test": 100},
          "model": {"architecture": "mlp", "hidden": [32]},
          "ensemble": {"epochs": 200, "batch_size": 32, "checkpoint_every": 10},
          "vi": {"epochs": 100, "batch_size": 32, "checkpoint_every": 5, "eval_samples": 5},
          "hmc": {"step_size": 0.001, "n_leapfrog": 10, "n_warmup": 150, "n_samples": 150, "thinning": 1,
                  "checkpoint_every": 10}}


def job(method: str, d: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "workflow", "train", "--method", method, "--seed", "0", "--data",
            str(d / "digits.npz"), "--config", json.dumps(CONFIG), "--checkpoint", str(out.with_suffix(".pt")),
            "--out", str(out)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    proc = subprocess.run([sys.executable, "-m", "workflow", "prepare-data", "--config", json.dumps(CONFIG),
                           "--out", str(d / "digits.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return d


def run_killed_at(cmd: list[str], delay: float, after: Path | None = None) -> int:
    """Start ``cmd`` and SIGKILL it ``delay`` seconds later, counted from when ``after`` exists if
    given (a checkpoint), unless it ended first; its exit code."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while after is not None and not after.exists() and proc.poll() is None:
        time.sleep(0.01)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    return proc.wait()


@pytest.mark.parametrize("method", ["ensemble", "vi", "hmc"])
def test_a_job_killed_at_random_moments_resumes_to_the_uninterrupted_artifact(data, tmp_path, method):
    rng = random.Random(f"{SEED}-{method}")
    start = time.perf_counter()
    reference = tmp_path / "reference.h5"
    subprocess.run(job(method, data, reference), check=True, capture_output=True, timeout=600)
    duration = time.perf_counter() - start

    out = tmp_path / "killed" / "seed0.h5"
    # a kill at any moment of the job (about 3 s of it is start-up), then one at any moment of
    # training or sampling once a checkpoint exists
    delays = [round(rng.uniform(0.1, 1.0) * duration, 2), round(rng.uniform(0.0, 2.0), 2)]
    codes = [run_killed_at(job(method, data, out), delays[0]),
             run_killed_at(job(method, data, out), delays[1], after=out.with_suffix(".pt"))]
    proc = subprocess.run(job(method, data, out), capture_output=True, text=True, timeout=600)
    resumed = re.search(r"resumed from \S+ at (?:epoch|iteration) (\d+)", proc.stderr)
    why = (f"FAULT_SEED={SEED}: killed after {delays[0]} s, then {delays[1]} s after a checkpoint (exit codes "
           f"{codes}) of a {duration:.1f} s job; the last run resumed at {resumed.group(1) if resumed else 'the start'}")
    print(why)
    assert proc.returncode == 0, why + proc.stderr[-2000:]
    assert not differing({"p": h5_digest(reference)}, {"p": h5_digest(out)}), why
    # the checkpoint is gone, and no temporary of a killed writer is left beside the artifact
    assert sorted(p.name for p in out.parent.iterdir()) == ["seed0.h5"], why
