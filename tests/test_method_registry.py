"""The method registry is the only place that lists methods: registering a new one (its module plus
one registry line, nothing else) gives it every job of its kind in a Snakemake dry run."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow import methods

REPO = Path(__file__).resolve().parents[1]

DUMMY = '''"""A stand-in method for the registry test: a sample set of one draw (the initial weights)."""

KIND = "samples"
LABEL = "Dummy"
DESCRIPTION = "the initial weights, as a one-draw sample set"
SETTINGS = {"scale": {"type": "number", "default": 1.0, "description": "multiplies the weights"}}


def fit(request):
    model, _ = request.build_model()
    return request.posterior("samples", samples={k: request.settings["scale"] * v.detach().numpy()[None, None]
                                                 for k, v in model.named_parameters()})
'''


def dry_run_jobs(repo: Path, workdir: Path, config: dict) -> dict[str, int]:
    (workdir / "cfg.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(repo)}  # the copy's package, not the installed one
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(repo / "Snakefile"),
                           "--directory", str(workdir), "--configfile", str(workdir / "cfg.yaml"), "--cores", "1",
                           "--quiet", "rules"], capture_output=True, text=True, env=env, cwd=workdir, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout, re.M)}


@pytest.mark.workflow
def test_a_registered_dummy_method_gets_its_jobs_with_no_other_change(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(".venv", ".git", "results", ".snakemake", "__pycache__",
                                                              "*.egg-info"))
    (repo / "workflow" / "methods" / "dummy.py").write_text(DUMMY)
    registry = repo / "workflow" / "methods" / "__init__.py"
    text = registry.read_text()
    registry.write_text(text.replace('MODULES = {\n', 'MODULES = {\n    "dummy": "workflow.methods.dummy",\n', 1))
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["methods"] = ["ensemble", "hmc"]
    work = tmp_path / "work"
    work.mkdir()
    before = dry_run_jobs(repo, work, config)
    config["methods"] = ["ensemble", "hmc", "dummy"]
    after = dry_run_jobs(repo, work, config)
    seeds, pairs = 3, 3
    # a sample method like the ensemble: trained per seed, aligned and measured per pair, rebased per reference
    assert after["train_posterior"] - before["train_posterior"] == seeds
    assert after["align_pair"] - before["align_pair"] == pairs  # weight matching only: not a Gaussian
    # naive, weight and (tiny.yaml aligns jointly too) joint weight, every pair in each
    assert after["barrier_curves"] - before["barrier_curves"] == 3
    assert after["align_joint"] - before["align_joint"] == 1 and after["joint_pair"] - before["joint_pair"] == pairs
    assert after["rebasin"] - before["rebasin"] == 4  # weight and activation matching, first and iterated reference
    assert after["not_path"] - before["not_path"] == 1
    # the method's config section comes from its SETTINGS alone
    config["dummy"] = {"scael": 2.0}
    (work / "cfg.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(repo / "Snakefile"),
                           "--directory", str(work), "--configfile", str(work / "cfg.yaml"), "--cores", "1"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(repo)}, cwd=work,
                          timeout=300)
    assert proc.returncode != 0 and "config key dummy" in proc.stdout + proc.stderr and "allowed keys: scale" in \
        proc.stdout + proc.stderr


def test_every_method_module_declares_the_registry_surface():
    for name in methods.names():
        mod = methods.load(name)
        assert mod.KIND in methods.KINDS and mod.LABEL and mod.DESCRIPTION and callable(mod.fit)
        assert isinstance(mod.SETTINGS, dict)
        if mod.KIND == "gaussian":
            assert "eval_samples" in mod.SETTINGS, name
        for key in methods.runtime_keys(name):
            assert key in mod.SETTINGS, (name, key)
        around = methods.fitted_around(name)
        assert around is None or around in methods.names()
    assert [m for m in methods.names() if methods.is_reference(m)] == ["hmc"]
    with pytest.raises(ValueError, match="allowed: ensemble, vi, hmc, laplace"):
        methods.load("sgld")


def test_the_settings_dataclasses_take_their_defaults_from_the_config_schema():
    """One source per setting: a default written into a dataclass by hand could drift from the schema's."""
    import dataclasses
    import importlib

    from workflow.inference.hmc_sampler import HmcSettings
    from workflow.inference.training import MapSettings
    from workflow.inference.mean_field import ViSettings

    for method, cls in (("vi", ViSettings), ("hmc", HmcSettings), ("ensemble", MapSettings)):
        schema = importlib.import_module(f"workflow.methods.{method}").SETTINGS
        shared = [f for f in dataclasses.fields(cls) if f.name in schema]
        assert len(shared) >= 7
        for f in shared:
            assert f.default == schema[f.name]["default"], (method, f.name)
            if "enum" in schema[f.name]:
                cls(**{f.name: schema[f.name]["enum"][-1]})  # every value the schema allows is accepted
