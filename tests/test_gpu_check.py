"""benchmarks/gpu_check.py, the check prepared for a lent GPU, in its CPU mode (--tiny), so that it
cannot rot before a device runs it: every section runs and passes here; and the comparisons it
rests on fail where they should (a changed bit, a table off by more than its tolerance, a job on
the wrong device, memory over budget, two HMC runs of different laws, a NumPyro posterior that is
not ours)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_compare  # noqa: E402
import gpu_pipeline  # noqa: E402


def run_check(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--tiny", "--device", "cpu",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=900)


@pytest.mark.workflow
def test_the_gpu_check_passes_in_its_cpu_mode(tmp_path):
    proc = run_check(tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    report = (tmp_path / "gpu_check.md").read_text()
    for name in ("digits: every job ran", "digits (CPU): every job ran", "resnet20x1: every job ran",
                 "digits: every GPU job on cpu", "digits: trained posteriors agree with the CPU's",
                 "digits: HMC agrees with the CPU's statistically",
                 "digits: evaluation of the same artifacts agrees with the CPU",
                 "tf32 off, device recorded", "ensemble: killed and resumed", "vi: killed and resumed",
                 "hmc: killed and resumed", "hmc: 2 chains in one job equal their own jobs",
                 "resnet20x1: every GPU job on cpu", "resnet20x1: evaluation of the same artifacts agrees with the CPU",
                 "resnet20x1: compute.mixed_precision bf16 recorded, finite results",
                 "rates measured", "ResNet prediction: per-sample loop vs vmap",
                 "hmc.chains_per_job: chains together vs alone", "numpyro comparison, digits MLP",
                 "numpyro comparison, mnist-sized MLP"):
        assert f"| {name} | ok |" in report, name
    assert "0 failed, 0 cut" in report
    jobs = pd.read_csv(tmp_path / "jobs.csv")
    # every GPU command ran in both setups: train (each method), barriers, table1, pruning, not-k
    for setup in ("digits", "resnet20x1"):
        names = set(jobs[jobs.setup == setup].job)
        for job in ("train ensemble seed 0", "train vi seed 1", "train hmc seeds 0 1", "train laplace seed 0",
                    "barriers ensemble weight", "barriers vi w2", "barriers hmc naive", "barriers hmc within-chain",
                    "table1", "pruning", "not-k"):
            assert job in names, (setup, job)
    assert "HMC ESS/s at least NumPyro's (mnist-sized MLP)" in report
    # the development machine's CPU times cover every digits job, or the speed-up target is not judged
    import gpu_check

    assert set(jobs[jobs.setup == "digits"].job) <= set(gpu_check.cpu_times_here())


def test_a_budget_spent_lists_the_sections_not_run(tmp_path):
    proc = run_check(tmp_path, "--budget", "0", "--sections", "rates", "numpyro")
    report = (tmp_path / "gpu_check.md").read_text()
    assert "not run (the time budget was spent): rates, numpyro" in report
    assert proc.returncode == 1  # no check ran: not a pass


def test_a_resume_that_changes_the_posterior_fails_the_check(tmp_path):
    """same_posterior, the comparison every resume and batch check rests on, sees one changed bit."""
    from workflow.storage import artifacts

    from .test_artifacts import gaussian_posterior
    from .conftest import make_mlp

    post = gaussian_posterior(make_mlp()[2])
    artifacts.write_posterior(tmp_path / "a.h5", post)
    artifacts.write_posterior(tmp_path / "b.h5", post)
    assert gpu_compare.same_posterior(tmp_path / "a.h5", tmp_path / "b.h5") == ""
    name = next(iter(post.mean))
    post.mean[name] = np.nextafter(post.mean[name], np.inf).astype(post.mean[name].dtype)
    artifacts.write_posterior(tmp_path / "c.h5", post)
    assert f"mean[{name}] differs" in gpu_compare.same_posterior(tmp_path / "a.h5", tmp_path / "c.h5")


def test_tables_of_two_devices_agree_only_within_the_stated_tolerance(tmp_path):
    table = pd.DataFrame({"alignment": ["w2", "w2"], "t": [0.0, 1.0], "loss": [0.5, 0.7], "device": ["cpu", "cpu"]})
    table.to_csv(tmp_path / "a.csv", index=False)
    close = table.assign(loss=[0.5 + 1e-4, 0.7], device=["cuda:0 (H200)"] * 2)  # the device column is not compared
    close.to_csv(tmp_path / "b.csv", index=False)
    worst, problems = gpu_compare.compare_tables(tmp_path / "b.csv", tmp_path / "a.csv", **gpu_compare.EVALUATION_TOLERANCE)
    assert problems == [] and worst == pytest.approx(1e-4)
    table.assign(loss=[0.5, 0.72]).to_csv(tmp_path / "c.csv", index=False)
    _, problems = gpu_compare.compare_tables(tmp_path / "c.csv", tmp_path / "a.csv", **gpu_compare.EVALUATION_TOLERANCE)
    assert problems == ["c.csv[loss] differs by 0.02"]
    table.assign(alignment=["w2", "weight"]).to_csv(tmp_path / "d.csv", index=False)
    assert gpu_compare.compare_tables(tmp_path / "d.csv", tmp_path / "a.csv", 1.0, 1.0)[1] == ["d.csv[alignment] differs"]


def job(name: str, command: str, log: str, outputs=()) -> gpu_pipeline.JobRun:
    return gpu_pipeline.JobRun(name, command, 1.0, log, list(outputs))


def test_a_job_on_the_wrong_device_or_over_its_memory_fails(tmp_path):
    pd.DataFrame({"loss": [1.0], "device": ["cuda:0 (NVIDIA H200)"]}).to_csv(tmp_path / "ok.csv", index=False)
    pd.DataFrame({"loss": [1.0], "device": ["cpu"]}).to_csv(tmp_path / "cpu.csv", index=False)
    on_cuda = "INFO workflow.device: computing on cuda:0 (NVIDIA H200), mixed precision off\n"
    runs = [job("barriers a", "barriers", on_cuda + "INFO workflow: peak GPU memory 900.0 MiB", [tmp_path / "ok.csv"]),
            job("align", "align", "")]  # not a GPU job: not judged
    assert gpu_compare.check_devices("s", runs, "cuda:0").ok
    assert gpu_compare.check_memory("s", runs, 1024, "cuda").ok
    assert not gpu_compare.check_memory("s", runs, 800, "cuda").ok
    unlogged = [job("table1", "table1", on_cuda, [tmp_path / "ok.csv"])]
    assert "no peak logged: table1" in gpu_compare.check_memory("s", unlogged, 1024, "cuda").detail
    wrong_record = [job("barriers b", "barriers", on_cuda, [tmp_path / "cpu.csv"])]
    assert "cpu.csv records ['cpu']" in gpu_compare.check_devices("s", wrong_record, "cuda:0").detail
    wrong_log = [job("train", "train", "computing on cpu, mixed precision off")]
    assert not gpu_compare.check_devices("s", wrong_log, "cuda:0").ok


def test_the_hmc_comparison_tells_two_laws_apart(tmp_path):
    """Two roundings of the same chains (another hmc.data_chunk sums in another order) pass; the
    same chains under a prior std of 0.7 instead of 1 (another posterior) fail."""
    import copy

    cfg = gpu_pipeline.digits_config(False)
    cfg["hmc"].update(n_warmup=100, n_samples=60)
    data = tmp_path / "data.npz"
    gpu_pipeline.Jobs(tmp_path, cfg, 0).run("prepare-data", "prepare-data", "--out", str(data))

    def chains(tag, hmc=None, prior=None):
        c = copy.deepcopy(cfg)
        c["hmc"].update(hmc or {})
        c["prior"].update(prior or {})
        jobs = gpu_pipeline.Jobs(tmp_path / tag, c, 0)
        outs = {f"posterior hmc seed {s}": tmp_path / tag / f"hmc-seed{s}.h5" for s in (0, 1)}
        jobs.run("hmc", *jobs.train_args("hmc", [0, 1], list(outs.values()), data=data))
        return outs

    base = chains("base")
    same = gpu_compare.check_hmc_statistically("s", base, chains("rounded", hmc={"data_chunk": 64}), data)
    assert same.ok, same.detail
    other = gpu_compare.check_hmc_statistically("s", base, chains("prior", prior={"std": 0.7}), data)
    assert not other.ok, other.detail


def test_numpyro_samples_our_posterior(tmp_path):
    """The NumPyro model's potential is ours (bnn_potential) up to the prior's normalising constant,
    at the start and at a moved point: the comparison is of two samplers of one posterior."""
    import jax.numpy as jnp
    import torch
    from numpyro.infer.util import potential_energy

    import gpu_numpyro
    from _common import Problem
    from workflow.architectures import build_model
    from workflow.inference.hmc_bnn import bnn_potential
    from workflow.inference.hmc_sampler import flatten

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 36, generator=gen), torch.randint(0, 10, (50,), generator=gen)
    problem = Problem("small", x, y, x[:20], y[:20], (36,), 10, [7, 5])
    gpu_numpyro.write_problem(tmp_path / "p.npz", problem, prior_std=0.7, step_size=0.01, n_leapfrog=3,
                              n_tune=2, n_warmup=2, n_samples=3)
    p = dict(np.load(tmp_path / "p.npz"))
    model, _, start = gpu_numpyro.numpyro_model(p)
    torch_model, _ = build_model("mlp", (36,), 10, hidden=[7, 5])
    like = {k: torch.from_numpy(p[f"init/{k}"]) for k, _ in torch_model.named_parameters()}
    ours = bnn_potential(torch_model, torch.from_numpy(p["x_train"]), torch.from_numpy(p["y_train"]), 0.7, like)
    n = sum(v.size for v in start.values())
    constant = n * (0.5 * np.log(2 * np.pi) + np.log(0.7))
    for shift in (0.0, 0.3):
        point = {k: v + shift for k, v in start.items()}
        theirs = float(potential_energy(model, (jnp.asarray(p["x_train"]), jnp.asarray(p["y_train"])), {}, point))
        mine = float(ours(flatten({k: torch.tensor(np.asarray(point[k])) for k in like})))
        assert theirs - constant == pytest.approx(mine, rel=1e-5)
    # and NumPyro's kernel steps as asked: the step size, and the leapfrog steps of every trajectory
    import jax

    state, sample = gpu_numpyro.numpyro_sampler(p, jnp.asarray(p["x_train"]), jnp.asarray(p["y_train"]))
    assert float(state.adapt_state.step_size) == pytest.approx(0.01)
    zs, accept, steps = sample(jax.random.split(jax.random.PRNGKey(0), 2))
    assert np.unique(np.asarray(steps)).tolist() == [3] and np.asarray(accept).shape == (2, 5)
    # steps of 0.01 are accepted; NumPyro's default path length (2 pi over the 3 steps) would diverge
    assert np.asarray(accept).mean() > 0.9


def test_synthetic_images_are_learnable_and_in_the_prepared_format(tmp_path):
    from workflow.storage.prepared import load_prepared

    cfg = gpu_pipeline.resnet_config(1, tiny=True)
    gpu_pipeline.write_synthetic(tmp_path / "d.npz", cfg["data"])
    data = load_prepared(tmp_path / "d.npz")
    assert data["x_train"].shape == (64, 3, 32, 32) and data["x_test"].shape == (32, 3, 32, 32)
    assert data["config"] == cfg["data"] and data["name"] == "synthetic (CIFAR-shaped)"
    # nearest class mean classifies most test images: the classes are there to be learnt
    x, y = data["x_train"].reshape(64, -1).numpy(), data["y_train"].numpy()
    means = np.stack([x[y == c].mean(0) if (y == c).any() else np.full(x.shape[1], np.inf) for c in range(10)])
    xt = data["x_test"].reshape(32, -1).numpy()
    predicted = np.argmin(((xt[:, None] - means[None]) ** 2).sum(-1), 1)
    assert (predicted == data["y_test"].numpy()).mean() > 0.5


def test_a_job_on_cuda_logs_its_peak_gpu_memory(monkeypatch, caplog):
    """The line check_memory reads: written once CUDA was used, never by a CPU job."""
    import logging

    import torch

    from workflow import cli

    with caplog.at_level(logging.INFO):
        cli._log_peak_gpu_memory()
    assert "peak GPU memory" not in caplog.text  # this CPU test never initialised CUDA
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 3 * 2 ** 20 + 2 ** 19)
    with caplog.at_level(logging.INFO):
        cli._log_peak_gpu_memory()
    assert gpu_pipeline.JobRun("j", "barriers", 1.0, caplog.text).peak_mb == 3.5


def test_the_check_runs_the_command_of_every_gpu_rule():
    """device.GPU_RULES, read from the rules' own shell lines: a new GPU rule must join the check."""
    import re

    from workflow.device import GPU_RULES

    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    commands = {}
    for block in re.split(r"\n(?=rule )", text):
        name = re.match(r"rule (\w+):", block)
        command = re.search(r'"python -m workflow ([a-z0-9-]+)', block)
        if name and command:
            commands[name.group(1)] = command.group(1)
    assert {commands[rule] for rule in GPU_RULES} == gpu_pipeline.GPU_COMMANDS


def test_training_and_mixed_precision_checks_fail_where_they_should(tmp_path):
    from workflow.storage import artifacts

    from .test_artifacts import gaussian_posterior
    from .conftest import make_mlp

    post = gaussian_posterior(make_mlp()[2])
    post.diagnostic_attrs = {**post.diagnostic_attrs, "test_nll": 0.30, "test_error": 0.10}
    artifacts.write_posterior(tmp_path / "cpu.h5", post)
    post.diagnostic_attrs = {**post.diagnostic_attrs, "test_nll": 0.30 + 0.079}  # within 0.05 + 10% of 0.30
    artifacts.write_posterior(tmp_path / "near.h5", post)
    post.diagnostic_attrs = {**post.diagnostic_attrs, "test_nll": 0.30 + 0.081}
    artifacts.write_posterior(tmp_path / "far.h5", post)
    cpu = {"posterior vi seed 0": tmp_path / "cpu.h5"}
    assert gpu_compare.check_training("s", {"posterior vi seed 0": tmp_path / "near.h5"}, cpu).ok
    far = gpu_compare.check_training("s", {"posterior vi seed 0": tmp_path / "far.h5"}, cpu)
    assert not far.ok and "vi seed 0 test_nll 0.3810 vs CPU 0.3000" in far.detail
    assert not gpu_compare.check_training("s", {}, cpu).ok  # nothing compared is no pass
    # posteriors written by this CPU process record mixed precision 'off'
    assert gpu_compare.check_mixed_precision("s", cpu, "off").ok
    wrong = gpu_compare.check_mixed_precision("s", cpu, "bf16")
    assert not wrong.ok and "records 'off'" in wrong.detail


def test_a_failed_job_skips_only_the_jobs_that_need_its_outputs(tmp_path):
    class FailingJobs:
        runs = []

        def run(self, name, *args, outputs=()):
            if name == "train laplace seed 0":
                raise RuntimeError("out of memory")
            self.runs.append(name)

    pipe = gpu_pipeline.Pipeline(FailingJobs())
    a, b = tmp_path / "laplace-seed0.h5", tmp_path / "vi-seed0.h5"
    pipe.run("train laplace seed 0", outputs=[a])
    pipe.run("train vi seed 0", outputs=[b])
    pipe.run("pruning", needs=[a, b], outputs=[tmp_path / "pruning.csv"])
    pipe.run("barriers vi", needs=[b])
    assert FailingJobs.runs == ["train vi seed 0", "barriers vi"]
    assert pipe.problems() == "train laplace seed 0 failed: out of memory; skipped (inputs failed): pruning"


def test_the_report_is_kept_after_every_check_and_a_budget_cut_is_no_failure(tmp_path):
    import gpu_report

    report = gpu_report.Report(tmp_path / "a" / "gpu_check.md", "cpu", "CPU", False, 10.0, copy_to=tmp_path / "out")
    (tmp_path / "a").mkdir()

    def too_late():
        gpu_report.check_deadline(0.0, "the rates")

    gpu_report.guarded(report, "section digits", lambda: gpu_report.Check("digits", True, "fine"))
    gpu_report.guarded(report, "section rates", too_late)
    kept = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| section rates | cut (time budget) | stopped: the time budget was spent before the rates |" in kept
    assert (tmp_path / "out" / "jobs.csv").exists() and not report.failed()
    assert gpu_report.Report(tmp_path / "b.md", "cpu", "CPU", False, 1.0, checks=report.checks[1:]).failed()
    gpu_report.guarded(report, "section numpyro", lambda: 1 / 0)
    assert report.failed() and "| section numpyro | FAILED | ZeroDivisionError" in report.path.read_text()
