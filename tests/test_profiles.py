"""Profiles and GPU requests: which rules ask the scheduler for a GPU, and the SLURM profile's keys."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow.device import GPU_RULES  # the one list of the rules whose jobs compute with torch

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def dry_run_lines(tmp_path, compute: str, *extra: str, key: str = "resources:") -> dict[str, set[str]]:
    """rule -> the set of its jobs' lines that start with `key`, from a forced dry run of the tiny config
    (with `key="Shell command:"`, the jobs' commands)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(TINY), "-n", "-F", "-p", *extra, "--config", f"compute={compute}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out: dict[str, set[str]] = {}
    rule = None
    for line in proc.stdout.splitlines():
        m = re.match(r"^\s*(?:local)?rule (\w+):", line)  # indented: a job of a group job
        if m:
            rule = m.group(1)
        elif line.strip().startswith(key) and rule:
            out.setdefault(rule, set()).add(line.strip())
    return out


def dry_run_resources(tmp_path, compute: str, *extra: str) -> dict[str, set[str]]:
    return dry_run_lines(tmp_path, compute, *extra)


def test_gpu_rules_are_the_rules_whose_commands_take_gpus(tmp_path):
    """GPU_RULES is the one list: a rule whose job is told `--gpus` (it computes with torch) is on it,
    and every rule on it is such a rule, so a new torch rule cannot be left without its GPU request."""
    commands = dry_run_lines(tmp_path, "{gpu: 1}", key="Shell command:")
    takes_gpus = {re.sub(r"^train_\w+_seeds_\w+$", "train_posterior", rule)
                  for rule, lines in commands.items() if any(" --gpus " in line for line in lines)}
    assert takes_gpus == GPU_RULES


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
