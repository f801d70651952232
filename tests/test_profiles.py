"""Profiles and GPU requests: which rules ask the scheduler for a GPU, and the SLURM profile's keys."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
# the rules whose jobs compute with torch (workflow/device.py's policy applies to them)
GPU_RULES = {"train_posterior", "barrier_curves", "barrier_within_chain", "table1", "pruning", "not_k"}


def dry_run_resources(tmp_path, compute: str, *extra: str) -> dict[str, set[str]]:
    """rule -> the set of its jobs' resource lines, from a forced dry run of the tiny config."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(TINY), "-n", "-F", *extra, "--config", f"compute={compute}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out: dict[str, set[str]] = {}
    rule = None
    for line in proc.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        elif line.strip().startswith("resources:") and rule:
            out.setdefault(rule, set()).add(line.strip())
    return out


def test_exactly_the_gpu_capable_rules_request_gpus(tmp_path):
    resources = dry_run_resources(tmp_path, "{gpu: 2, gpu_model: a100}")
    assert GPU_RULES <= set(resources)
    for rule, lines in resources.items():
        for line in lines:
            if rule in GPU_RULES:
                assert "gpu=2" in line and "gpu_model=a100" in line, (rule, line)
            else:  # rebasin (CPU matching) and every light rule
                assert "gpu" not in line, (rule, line)


def test_no_gpu_requested_by_default(tmp_path):
    resources = dry_run_resources(tmp_path, "{gpu: 0, gpu_model: a100}")
    for rule, lines in resources.items():
        for line in lines:
            assert "gpu_model" not in line and not re.search(r"\bgpu=[1-9]", line), (rule, line)


def test_slurm_profile_keys():
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1 and profile["latency-wait"] >= 30 and profile["jobs"] >= 1
    defaults = profile["default-resources"]
    assert {"mem_mb", "runtime"} <= set(defaults)
    # a default GPU would reach the light rules too: GPUs come from the config, per GPU-capable rule
    assert not {"gpu", "gpu_model", "gres"} & set(defaults)


@pytest.mark.skipif(shutil.which("squeue") is None, reason="no SLURM client here (CI's .ci/slurm-check runs it live)")
def test_slurm_profile_dry_runs(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    resources = dry_run_resources(tmp_path, "{gpu: 1}", "--profile", str(REPO / "profiles" / "slurm"))
    assert all("gpu=1" in line for rule in GPU_RULES for line in resources[rule])
