"""The prepared check for a lent GPU: every GPU-capable job of the workflow on CUDA through
`python -m workflow` (no Snakemake), each result checked against a CPU run, timings and achieved
rates measured, one Markdown report written.

    python3 benchmarks/gpu_check.py --out DIR              # on the GPU machine (CUDA), about 8 minutes
    python3 benchmarks/gpu_check.py --out DIR --tiny       # CPU, tiny sizes: the test suite runs this

The device machine has no network and no jsonschema: carry it as wheels (benchmarks/gpu_wheels.sh)
and start the command with the install line that script prints.

Sections, in order (each guarded: one failing does not hide the others; the report is rewritten
after each, so a run stopped at its time budget still leaves what it measured):

- digits: the default config's digits MLP (two seeds), every method and every GPU job, on the
  device and, beside it, on the CPU: every artifact records the device; evaluation jobs stay within
  compute.memory_mb; the CUDA evaluation of the CPU run's artifacts equals the CPU's within
  EVALUATION_TOLERANCE; trained posteriors agree within TRAINING_TOLERANCE; HMC agrees
  statistically (the per-draw test log-likelihood's means within HMC_Z_MAX standard errors);
- defects: TF32 off and recorded; ensemble, VI and HMC jobs killed after their first checkpoint
  resume bit for bit; HMC chains batched in one job equal their own jobs bit for bit;
- resnet20x1, resnet20x4: every method and GPU job on CIFAR-shaped synthetic data (10,000 images),
  x1 in float32, x4 with compute.mixed_precision bf16 (recorded in its posteriors);
- rates: the device's bf16 matrix-product rate, and the achieved rate of a ResNet20 x4 training
  epoch and of a full-batch HMC gradient on the 10,000 images, as fractions of it;
- predict: ResNet logits under many weight sets, the per-sample loop against vmap;
- chains: HMC chains advanced together in one sampler call against one after another;
- numpyro: our HMC against NumPyro's, ESS per second of p(y|x), digits MLP and an MNIST-sized
  MLP (784-512-10, 8,000 images), same start, step size, leapfrog steps and draws.

Exit status 1 when a check fails (the report says which and why); targets missed are reported,
not failed.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import gpu_pipeline as gp  # noqa: E402

# in priority order: what a budget cut leaves out is what matters least
SECTIONS = ("digits", "defects", "resnet20x4", "rates", "numpyro", "resnet20x1", "predict", "chains")
TINY_SECTIONS = ("digits", "defects", "rates", "numpyro", "resnet20x1", "predict", "chains")  # x1 in bf16 stands for x4
# the same inputs evaluated on two devices: float32 sums in another order, and an argmax that flips
# on a near tie (one test point moves an error or agreement by 1 / n_test)
EVALUATION_TOLERANCE = {"atol": 5e-3, "rtol": 1e-3}
# the same training run on two devices: rounding differs from the first step and SGD amplifies it,
# so the two runs end at nearby, not equal, solutions
TRAINING_TOLERANCE = {"test_nll": 0.1, "test_error": 0.03}
HMC_Z_MAX = 4.0  # |mean difference| / its standard error (from each run's ESS)
TARGET_FRACTION = 0.3  # of the measured bf16 matrix-product rate
TARGET_SPEEDUP = 10.0  # every digits job on CUDA against the CPU
# the digits jobs' seconds on the development machine's CPU (2 cores, one thread a job), written by
#   python benchmarks/gpu_check.py --device cpu --sections digits --budget 3000 --out DIR
# (DIR/jobs.csv): "its CPU time here" of the speed-up target
CPU_HERE = HERE / "gpu_check_cpu_times.csv"
DEFAULT_BUDGET = 470.0  # seconds of a full run: one device call of at most 8 minutes, with room to write


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0


@dataclass
class Report:
    path: Path
    device: str
    tiny: bool
    budget: float | None
    started: float = field(default_factory=time.monotonic)
    checks: list[Check] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)  # setup, job, seconds, cpu_seconds, peak_mb
    rates: list[dict] = field(default_factory=list)  # what, seconds, tflops, fraction, detail
    targets: list[dict] = field(default_factory=list)  # target, measured, met, bound
    skipped: list[str] = field(default_factory=list)

    def add(self, check: Check) -> None:
        self.checks.append(check)
        self.write()

    def write(self) -> None:
        self.path.write_text(render(self))
        with open(self.path.with_name("jobs.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, ["setup", "job", "seconds", "cpu_seconds", "cpu_here_seconds", "peak_mb"],
                                    restval="")
            writer.writeheader()
            writer.writerows(self.jobs)


def guarded(report: Report, name: str, fn, *args) -> None:
    """Run one check (or section); an exception becomes a failed check, so the others still run."""
    start = time.perf_counter()
    try:
        result = fn(*args)
        for c in result if isinstance(result, list) else [result] if result else []:
            report.add(c)
    except Exception as err:  # noqa: BLE001 - one failing check must not hide the others
        report.add(Check(name, False, f"{type(err).__name__}: {err}".replace("\n", " ")[:700],
                         time.perf_counter() - start))


# ---------------------------------------------------------------- digits: every job, against the CPU


def artifact_devices(paths) -> dict[str, set[str]]:
    """The devices each artifact records: a posterior's provenance, a table's device column."""
    import pandas as pd

    from workflow.storage.artifacts import read_posterior

    found = {}
    for path in paths:
        path = Path(path)
        if path.suffix == ".h5":
            found[path.name] = {read_posterior(path).provenance["compute"]["device"]}
        elif path.suffix == ".csv":
            found[path.name] = set(pd.read_csv(path)["device"].astype(str).str.split(" ").str[0])
    return found


def check_devices(setup: str, runs: list, want: str) -> Check:
    """Every GPU job logged that it computed on ``want`` and every artifact it wrote records it."""
    gpu_runs = [r for r in runs if r.command in gp.GPU_COMMANDS]
    wrong = [f"{r.name} computed on {sorted(r.devices)}" for r in gpu_runs if r.devices != {want}]
    recorded = artifact_devices(p for r in gpu_runs for p in r.outputs)
    wrong += [f"{name} records {sorted(d)}" for name, d in recorded.items() if d != {want}]
    return Check(f"{setup}: every GPU job on {want}", not wrong, "; ".join(wrong)[:700] or
                 f"{len(gpu_runs)} jobs logged {want}; {len(recorded)} artifacts record it")


def check_memory(setup: str, runs: list, memory_mb: float, device: str) -> Check:
    """Evaluation jobs' peak GPU memory (torch.cuda.max_memory_allocated) within compute.memory_mb."""
    evals = [r for r in runs if r.command in gp.EVALUATION_COMMANDS]
    if device != "cuda":
        return Check(f"{setup}: evaluation peak GPU memory within compute.memory_mb", True,
                     f"not measured on the CPU ({len(evals)} evaluation jobs ran)")
    missing = [r.name for r in evals if r.peak_mb is None]
    over = [f"{r.name} {r.peak_mb:.0f} MiB" for r in evals if r.peak_mb is not None and r.peak_mb > memory_mb]
    peak = max((r.peak_mb for r in evals if r.peak_mb is not None), default=0.0)
    return Check(f"{setup}: evaluation peak GPU memory within compute.memory_mb", not (missing or over),
                 "; ".join(filter(None, [f"over {memory_mb:.0f} MiB: {', '.join(over)}" if over else "",
                                         f"no peak logged: {', '.join(missing)}" if missing else ""]))
                 or f"largest {peak:.0f} MiB of {memory_mb:.0f}")


def compare_tables(a_path: Path, b_path: Path, atol: float, rtol: float) -> tuple[float, list[str]]:
    """(largest |difference| of the numeric columns, problems): tables of the same inputs on two devices."""
    import pandas as pd

    a, b = pd.read_csv(a_path), pd.read_csv(b_path)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return float("inf"), [f"{a_path.name}: other shape {a.shape} vs {b.shape}"]
    worst, problems = 0.0, []
    for col in a.columns:
        if col == "device":
            continue
        if pd.api.types.is_numeric_dtype(a[col]) and pd.api.types.is_numeric_dtype(b[col]):
            x, y = a[col].to_numpy(float), b[col].to_numpy(float)
            both = ~(np.isnan(x) & np.isnan(y))
            diff = np.abs(x - y)[both]
            worst = max(worst, float(np.nanmax(diff, initial=0.0)))
            if not np.allclose(x[both], y[both], atol=atol, rtol=rtol):
                problems.append(f"{a_path.name}[{col}] differs by {float(np.nanmax(diff)):.3g}")
        elif not a[col].astype(str).equals(b[col].astype(str)):
            problems.append(f"{a_path.name}[{col}] differs")
    return worst, problems


def check_cross_evaluation(setup: str, ours: dict, reference: dict) -> Check:
    """Evaluation jobs of the same artifacts on two devices: their tables, key by key."""
    worst, problems = 0.0, []
    for key, path in ours.items():
        w, p = compare_tables(path, reference[key], **EVALUATION_TOLERANCE)
        worst, problems = max(worst, w), problems + p
    return Check(f"{setup}: evaluation of the same artifacts agrees with the CPU", not problems,
                 "; ".join(problems)[:700] or f"{len(ours)} tables; largest difference {worst:.2g} "
                 f"(tolerance {EVALUATION_TOLERANCE['atol']} + {EVALUATION_TOLERANCE['rtol']} x |value|)")


def check_training(setup: str, ours: dict, reference: dict) -> Check:
    """Trained posteriors' test NLL and error, and the NoT job's numbers, on the device and the CPU."""
    from workflow.storage.artifacts import read_posterior

    rows, problems = [], []
    for key, path in ours.items():
        if not key.startswith("posterior ") or key.startswith("posterior hmc"):
            continue
        a, b = read_posterior(path).diagnostic_attrs, read_posterior(reference[key]).diagnostic_attrs
        for metric, tol in TRAINING_TOLERANCE.items():
            d = abs(float(a[metric]) - float(b[metric]))
            rows.append(d)
            if d > tol:
                problems.append(f"{key.removeprefix('posterior ')} {metric} {a[metric]:.4f} vs CPU {b[metric]:.4f}")
    if "not-k" in ours:
        import pandas as pd

        for path in sorted(Path(ours["not-k"]).parent.glob("not-k[0-9]*.csv")):
            a, b = pd.read_csv(path), pd.read_csv(Path(reference["not-k"]).parent / path.name)
            if (a["not_planted"] != b["not_planted"]).any():
                problems.append(f"{path.name}: planted NoT differs (same seed)")
            for col, tol in (("loss_barrier_aligned", TRAINING_TOLERANCE["test_nll"]),
                             ("error", TRAINING_TOLERANCE["test_error"])):
                d = float(np.abs(a[col] - b[col]).max())
                if d > tol:
                    problems.append(f"{path.name} {col} differs by {d:.3f}")
    return Check(f"{setup}: trained posteriors agree with the CPU's", not problems, "; ".join(problems)[:700] or
                 f"test NLL and error of ensemble, VI and Laplace within {TRAINING_TOLERANCE} (largest "
                 f"{max(rows, default=0):.3f}); NoT job's barrier and error too")


def draw_log_likelihoods(path: Path, data: dict, device) -> np.ndarray:
    """[chains, draws]: the mean test log p(y|x, w) of each draw of a sample posterior."""
    from workflow.evaluation.predict import sample_label_log_probs
    from workflow.storage.artifacts import read_posterior

    post = read_posterior(path)
    model, _ = post.build_model()
    model.to(device)
    x, y = data["x_test"].to(device), data["y_test"].to(device)
    out = []
    for c in range(next(iter(post.samples.values())).shape[0]):
        stack = {k: v[c] for k, v in post.samples.items()}
        out.append(sample_label_log_probs(model, stack, x, y).mean(1).cpu().numpy())
    return np.stack(out)


def check_hmc_statistically(setup: str, ours: dict, reference: dict, data_path: Path) -> Check:
    """HMC on two devices: the same chains' laws, not their draws. The per-draw test log-likelihood's
    mean over every chain and draw, per device, compared with its standard error sd / sqrt(ESS)."""
    from workflow.evaluation.mcmc_diagnostics import ess_bulk
    from workflow.storage.prepared import load_prepared

    data = load_prepared(data_path)
    series = {}
    for side, outputs in (("device", ours), ("cpu", reference)):
        chains = [draw_log_likelihoods(outputs[k], data, "cpu")[0] for k in sorted(outputs)
                  if k.startswith("posterior hmc")]
        series[side] = np.stack(chains)
    stats = {}
    for side, s in series.items():
        ess = float(ess_bulk(s))
        stats[side] = (float(s.mean()), float(s.std(ddof=1)) / np.sqrt(max(ess, 1.0)), ess)
    (m1, se1, e1), (m2, se2, e2) = stats["device"], stats["cpu"]
    z = abs(m1 - m2) / max(np.hypot(se1, se2), 1e-12)
    return Check(f"{setup}: HMC agrees with the CPU's statistically", z <= HMC_Z_MAX,
                 f"mean test log-likelihood per draw {m1:.4f} (ESS {e1:.0f}) vs CPU {m2:.4f} (ESS {e2:.0f}): "
                 f"z = {z:.2f} (limit {HMC_Z_MAX})")


def section_digits(report: Report, work: Path, device: str, tiny: bool, deadline: float | None) -> None:
    cfg = gp.digits_config(tiny)
    gpus = 1 if device == "cuda" else 0
    jobs = gp.Jobs(work / "digits", cfg, gpus, deadline)
    data = jobs.work / "data.npz"
    jobs.run("prepare-data", "prepare-data", "--out", str(data))
    reference_jobs = reference_out = None
    errors: list[BaseException] = []
    if device == "cuda":  # the CPU run beside it, on other cores, from the same data file
        reference_jobs = gp.Jobs(work / "digits-cpu", cfg, 0, deadline)

        def reference():
            nonlocal reference_out
            try:
                reference_out = gp.run_pipeline(reference_jobs, data)
            except BaseException as err:  # noqa: BLE001 - reported after the join
                errors.append(err)

        thread = threading.Thread(target=reference)
        thread.start()
    try:
        out = gp.run_pipeline(jobs, data)
    finally:
        if reference_jobs is not None:
            thread.join()
    if device != "cuda":  # CPU mode: the run is its own reference (the comparisons still run)
        reference_jobs, reference_out = jobs, out
    if errors:
        raise RuntimeError(f"the CPU reference run failed: {errors[0]}")
    cpu_seconds = {r.name: r.seconds for r in reference_jobs.runs}
    here = cpu_times_here() if (device == "cuda" and not tiny) else {}
    for r in jobs.runs:
        report.jobs.append({"setup": "digits", "job": r.name, "seconds": round(r.seconds, 2),
                            "cpu_seconds": round(cpu_seconds[r.name], 2) if r.name in cpu_seconds else "",
                            "cpu_here_seconds": here.get(r.name, ""),
                            "peak_mb": "" if r.peak_mb is None else round(r.peak_mb, 1)})
    want = "cuda:0" if device == "cuda" else "cpu"
    guarded(report, "digits: every GPU job on the device", check_devices, "digits", jobs.runs, want)
    guarded(report, "digits: memory", check_memory, "digits", jobs.runs, cfg["compute"]["memory_mb"], device)
    guarded(report, "digits: trained posteriors agree with the CPU's", check_training, "digits", out, reference_out)
    guarded(report, "digits: HMC agrees statistically", check_hmc_statistically, "digits", out, reference_out, data)
    cross = gp.Jobs(work / "digits-cross", cfg, gpus, deadline)
    evaluated = gp.run_pipeline(cross, data, posteriors=reference_jobs.work, evaluate_only=True)
    guarded(report, "digits: cross evaluation", check_cross_evaluation, "digits", evaluated,
            {k: reference_out[k] for k in evaluated})
    gpu_runs = [r for r in jobs.runs if r.command in gp.GPU_COMMANDS]
    note = startup_note(jobs.runs, device)
    if gpu_runs:  # CPU mode too (against itself), so the code cannot rot
        for label, base in (("the development machine's CPU", here), ("this machine's CPU", cpu_seconds)):
            if not all(r.name in base for r in gpu_runs):
                continue
            slow = [f"{r.name} {base[r.name] / r.seconds:.1f}x" for r in gpu_runs
                    if r.seconds * TARGET_SPEEDUP > base[r.name]]
            report.targets.append({
                "target": f"every digits GPU job on {device} in under 1/{TARGET_SPEEDUP:.0f} of its time on {label}",
                "measured": f"{sum(base[r.name] for r in gpu_runs) / sum(r.seconds for r in gpu_runs):.1f}x over "
                            f"{len(gpu_runs)} jobs; below target: {', '.join(slow) or 'none'}",
                "met": not slow, "bound": note})


def cpu_times_here() -> dict[str, float]:
    """The digits jobs' seconds on the development machine (CPU_HERE), {} where not recorded."""
    if not CPU_HERE.exists():
        return {}
    with open(CPU_HERE) as f:
        return {row["job"]: float(row["seconds"]) for row in csv.DictReader(f) if row["setup"] == "digits"}


def startup_seconds(device: str) -> float:
    """What every job pays before it computes: a Python that imports the package's CLI and torch and
    puts one tensor on the device (the CUDA context)."""
    code = (f"import torch, workflow.cli; torch.zeros(1, device={device!r}).sum().item()")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - start


def startup_note(runs: list, device: str) -> str:
    cpu, dev = startup_seconds("cpu"), startup_seconds(device)
    fastest = min((r for r in runs if r.command in gp.GPU_COMMANDS), key=lambda r: r.seconds)
    return (f"starting Python, the package and torch takes {cpu:.1f} s, {dev:.1f} s with a tensor on {device}; "
            f"the fastest GPU job ({fastest.name}) took {fastest.seconds:.1f} s")


# ---------------------------------------------------------------- defects (issue #25's checks)


def defect_config(tiny: bool) -> dict:
    """Jobs long enough that a kill lands between the first checkpoint and the end."""
    from workflow.config import fill_defaults

    if tiny:
        s = {"data": {"n_train": 200, "n_test": 100}, "hidden": [16],
             "ensemble": {"epochs": 40, "batch_size": 32, "checkpoint_every": 4},
             "vi": {"epochs": 30, "batch_size": 32, "checkpoint_every": 3, "eval_samples": 10},
             "hmc": {"step_size": 0.001, "n_leapfrog": 5, "n_warmup": 40, "n_samples": 20, "checkpoint_every": 5}}
    else:  # a first checkpoint after 10 epochs or iterations, well before the end
        s = {"data": {"n_train": 1200, "n_test": 500}, "hidden": [128, 128],
             "ensemble": {"epochs": 150, "batch_size": 128, "checkpoint_every": 10},
             "vi": {"epochs": 120, "batch_size": 128, "checkpoint_every": 10, "eval_samples": 50},
             "hmc": {"step_size": 0.001, "n_leapfrog": 20, "n_warmup": 100, "n_samples": 50, "checkpoint_every": 10}}
    return fill_defaults({
        "name": "gpu-check", "data": {"dataset": "digits", "split_seed": 0, "test_fraction": 0.3, **s["data"]},
        "model": {"architecture": "mlp", "hidden": s["hidden"], "activation": "relu"}, "prior": {"std": 1.0},
        "ensemble": {"lr": 0.003, **s["ensemble"]}, "vi": {"lr": 0.003, **s["vi"]}, "hmc": s["hmc"],
        "compute": {"device": "auto", "threads": 1}})  # the job's --gpus decides


def same_posterior(a_path: Path, b_path: Path) -> str:
    """'' when both posteriors hold the same arrays bit for bit, else the first difference."""
    from workflow.storage.artifacts import read_posterior

    a, b = read_posterior(a_path), read_posterior(b_path)
    for block in ("samples", "mean", "std", "diagnostics"):
        da, db = getattr(a, block) or {}, getattr(b, block) or {}
        if sorted(da) != sorted(db):
            return f"{block}: other arrays ({sorted(da)} vs {sorted(db)})"
        for k in da:
            if not np.array_equal(np.asarray(da[k]), np.asarray(db[k]), equal_nan=True):
                diff = np.nanmax(np.abs(np.asarray(da[k], dtype=float) - np.asarray(db[k], dtype=float)))
                return f"{block}[{k}] differs (max |diff| {diff:.3g})"
    return ""


def check_tf32(posterior: Path, device: str) -> Check:
    """The artifact's record, and float32 convolutions and matmuls against float64 under the switches."""
    import torch

    from workflow import device as dev
    from workflow.storage.artifacts import read_posterior

    start = time.perf_counter()
    record = read_posterior(posterior).provenance["compute"]
    problems = []
    if record.get("tf32_matmul") is not False or record.get("tf32_cudnn") is not False:
        problems.append(f"record says TF32 matmul {record.get('tf32_matmul')}, cuDNN {record.get('tf32_cudnn')}")
    if record.get("float32_matmul_precision") != "highest":
        problems.append(f"float32 matmul precision {record.get('float32_matmul_precision')}")
    want = "cuda:0" if device == "cuda" else "cpu"
    if record.get("device") != want or (device == "cuda" and not record.get("gpu_name")):
        problems.append(f"recorded device {record.get('device')!r} ({record.get('gpu_name')!r}), expected {want!r}")

    dev.set_job(gpus=1 if device == "cuda" else 0)
    d = dev.use_device("auto")
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(32, 64, 32, 32, generator=g), torch.randn(64, 64, 3, 3, generator=g) / 24
    a, b = torch.randn(512, 2048, generator=g), torch.randn(2048, 512, generator=g) / 45

    def errors():
        conv = torch.nn.functional.conv2d(x.to(d), w.to(d), padding=1).cpu().double()
        mm = (a.to(d) @ b.to(d)).cpu().double()
        ref_conv = torch.nn.functional.conv2d(x.double(), w.double(), padding=1)
        ref_mm = a.double() @ b.double()
        return [float((o - r).abs().max() / r.abs().max()) for o, r in ((conv, ref_conv), (mm, ref_mm))]

    off = errors()
    if max(off) > 1e-5:
        problems.append(f"float32 error against float64 {max(off):.2e} (> 1e-5: reduced precision)")
    detail = (f"record {record['device']} ({record.get('gpu_name') or '-'}); conv / matmul error vs float64 "
              f"{off[0]:.1e} / {off[1]:.1e}")
    if device == "cuda":  # the same numbers with TF32 on: the check would see it
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        on = errors()
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        detail += f"; with TF32 on {on[0]:.1e} / {on[1]:.1e}"
        if max(on) <= 1e-5:
            problems.append("TF32 on gave float32 precision too: this check cannot tell")
    dev.set_job()
    return Check("tf32 off, device recorded", not problems, "; ".join(problems) or detail,
                 time.perf_counter() - start)


def check_resume(jobs: gp.Jobs, method: str, reference: Path, ref_seconds: float) -> Check:
    """Killed right after its first checkpoint, rerun: resumed, and equal to the uninterrupted run."""
    start = time.perf_counter()
    out, ckpt = jobs.work / f"{method}-resumed.h5", jobs.work / f"{method}-seed0.pt"
    args = jobs.train_args(method, [0], [out], ckpt)
    if not jobs.kill_after_checkpoint(ckpt, *args):
        return Check(f"{method}: killed and resumed", False,
                     "the job ended before its first checkpoint could be killed: lengthen it", 0.0)
    log = jobs.run(f"{method}-resume", *args).log
    resumed = "resumed from" in log
    diff = same_posterior(reference, out)
    ok = resumed and not diff and not ckpt.exists()
    detail = (f"resumed, equal bit for bit to the uninterrupted run ({ref_seconds:.1f} s)" if ok else
              "; ".join(filter(None, ["did not resume" if not resumed else "", diff,
                                      "checkpoint left behind" if ckpt.exists() else ""])))
    return Check(f"{method}: killed and resumed", ok, detail, time.perf_counter() - start)


def check_chains_bitwise(jobs: gp.Jobs, alone: dict[int, Path]) -> Check:
    start = time.perf_counter()
    outs = [jobs.work / f"hmc-together-seed{s}.h5" for s in alone]
    seconds = jobs.run("hmc-together", *jobs.train_args("hmc", list(alone), outs)).seconds
    diffs = [f"seed {s}: {d}" for (s, path), out in zip(alone.items(), outs) if (d := same_posterior(path, out))]
    return Check(f"hmc: {len(alone)} chains in one job equal their own jobs", not diffs,
                 "; ".join(diffs) or f"bit for bit; the batched job took {seconds:.1f} s",
                 time.perf_counter() - start)


def section_defects(report: Report, work: Path, device: str, tiny: bool, deadline: float | None) -> None:
    jobs = gp.Jobs(work / "defects", defect_config(tiny), 1 if device == "cuda" else 0, deadline)
    jobs.run("prepare-data", "prepare-data", "--out", str(jobs.work / "data.npz"))
    references, seconds = {}, {}
    for method in ("ensemble", "vi", "hmc"):
        references[method] = jobs.work / f"{method}-seed0.h5"
        try:
            seconds[method] = jobs.run(f"{method}-reference", *jobs.train_args(method, [0], [references[method]])).seconds
        except Exception as err:  # noqa: BLE001
            report.add(Check(f"{method}: uninterrupted job", False, str(err)[:600]))
    if "ensemble" in seconds:
        guarded(report, "tf32 off, device recorded", check_tf32, references["ensemble"], device)
    for method in seconds:
        guarded(report, f"{method}: killed and resumed", check_resume, jobs, method, references[method],
                seconds[method])
    if "hmc" in seconds:
        alone = {0: references["hmc"], 1: jobs.work / "hmc-seed1.h5"}
        try:
            jobs.run("hmc-seed1", *jobs.train_args("hmc", [1], [alone[1]]))
            guarded(report, "hmc chains together", check_chains_bitwise, jobs, alone)
        except Exception as err:  # noqa: BLE001
            report.add(Check("hmc chains together", False, str(err)[:600]))


# ---------------------------------------------------------------- ResNet20 on CIFAR-shaped data


def resnet_setup(width: int, tiny: bool) -> tuple[str, dict]:
    mixed = "bf16" if (width == 4 or tiny) else "off"  # tiny: x1 in bf16 runs x4's code path
    return f"resnet20x{width}", gp.resnet_config(width, tiny, mixed)


def section_resnet(report: Report, work: Path, device: str, tiny: bool, deadline: float | None, width: int) -> None:
    setup, cfg = resnet_setup(width, tiny)
    jobs = gp.Jobs(work / setup, cfg, 1 if device == "cuda" else 0, deadline)
    data = jobs.work / "data.npz"
    gp.write_synthetic(data, cfg["data"], shape=(3, 32, 32))
    try:
        out = gp.run_pipeline(jobs, data)
    finally:
        for r in jobs.runs:
            report.jobs.append({"setup": setup, "job": r.name, "seconds": round(r.seconds, 2), "cpu_seconds": "",
                                "peak_mb": "" if r.peak_mb is None else round(r.peak_mb, 1)})
    want = "cuda:0" if device == "cuda" else "cpu"
    guarded(report, f"{setup}: every GPU job on the device", check_devices, setup, jobs.runs, want)
    guarded(report, f"{setup}: memory", check_memory, setup, jobs.runs, cfg["compute"]["memory_mb"], device)
    guarded(report, f"{setup}: mixed precision recorded", check_mixed_precision, setup, out,
            cfg["compute"]["mixed_precision"])
    if width == 1:  # evaluation is float32 on every device: the CPU must draw the same curve (x4: too slow there)
        guarded(report, f"{setup}: cross evaluation", cross_evaluate_on_cpu, setup, jobs, data, out)


def cross_evaluate_on_cpu(setup: str, jobs: gp.Jobs, data: Path, out: dict) -> Check:
    """One barrier job of the device's ResNet artifacts again on the CPU (8 threads: a ResNet is
    slow there), its table against the device's."""
    cpu = gp.Jobs(jobs.work / "cpu", jobs.cfg, 0, jobs.deadline)
    table = cpu.work / "barriers-ensemble-weight.csv"
    pairs = [[0, 1, str(out["posterior ensemble seed 0"]), str(jobs.work / "align-ensemble-weight.h5")]]
    cpu.run("barriers ensemble weight (CPU)", "barriers", "--alignment", "weight", "--pairs", json.dumps(pairs),
            "--data", str(data), "--out", str(table), outputs=[table], threads=8)
    return check_cross_evaluation(setup, {"barriers ensemble weight": table},
                                  {"barriers ensemble weight": out["barriers ensemble weight"]})


def check_mixed_precision(setup: str, out: dict, mixed: str) -> Check:
    """Every posterior records the run's compute.mixed_precision, and trained to a finite loss."""
    from workflow.storage.artifacts import read_posterior

    problems, nll = [], []
    for key, path in out.items():
        if key.startswith("posterior "):
            post = read_posterior(path)
            if post.provenance["compute"].get("mixed_precision") != mixed:
                problems.append(f"{key} records {post.provenance['compute'].get('mixed_precision')!r}")
            nll.append(float(post.diagnostic_attrs["test_nll"]))
            if not np.isfinite(nll[-1]):
                problems.append(f"{key}: test NLL {nll[-1]}")
    return Check(f"{setup}: compute.mixed_precision {mixed} recorded, finite results", not problems,
                 "; ".join(problems) or f"{len(nll)} posteriors; test NLL {min(nll):.3f} to {max(nll):.3f}")


# ---------------------------------------------------------------- rates, prediction, chains


def synthetic_data(cfg: dict, path: Path) -> dict:
    from workflow.storage.prepared import load_prepared

    if not path.exists():
        gp.write_synthetic(path, cfg["data"], shape=(3, 32, 32))
    return load_prepared(path)


def section_rates(report: Report, work: Path, device: str, tiny: bool) -> None:
    import gpu_rates as gr
    from workflow import job_sizes

    peak = gr.bf16_matmul_rate(device, 256 if tiny else 8192)
    report.rates.append({"what": peak.name, "seconds": peak.seconds, "tflops": peak.tflops, "fraction": 1.0})
    setup, cfg = resnet_setup(1 if tiny else 4, tiny)
    data = synthetic_data(cfg, work / f"{setup}-rates.npz")
    macs = job_sizes.macs(cfg)
    batches = {"training epoch": cfg["ensemble"]["batch_size"], "HMC gradient": cfg["hmc"]["data_chunk"]}
    for name, fn in (("training epoch", gr.training_epoch), ("HMC gradient", gr.hmc_gradient)):
        rate = fn(cfg, data, device, macs)
        # the bound to compare with: the network's widest convolution alone, at the same batch
        conv = gr.convolution_ceiling(cfg, device, batches[name])
        fraction, conv_fraction = rate.tflops / peak.tflops, conv.tflops / peak.tflops
        for r, f in ((rate, fraction), (conv, conv_fraction)):
            report.rates.append({"what": r.name, "seconds": r.seconds, "tflops": r.tflops, "fraction": f})
        report.targets.append({
            "target": f"{setup} {name} at >= {TARGET_FRACTION:.0%} of the measured bf16 matrix-product rate",
            "measured": f"{rate.tflops:.1f} TFLOP/s = {fraction:.0%} of {peak.tflops:.1f}",
            "met": fraction >= TARGET_FRACTION,
            "bound": "" if fraction >= TARGET_FRACTION else
            f"its widest convolution alone, at batch {batches[name]}, reaches {conv_fraction:.0%} "
            "(the rest: normalisation, activations and the optimizer, memory-bound and not counted)"})
    report.add(Check("rates measured", True, f"bf16 matrix products {peak.tflops:.1f} TFLOP/s"))


def section_predict(report: Report, work: Path, device: str, tiny: bool) -> None:
    import gpu_rates as gr

    details, problems = [], []
    for width in ((1,) if tiny else (1, 4)):
        setup, cfg = resnet_setup(width, tiny)
        data = synthetic_data(cfg, work / f"{setup}-rates.npz")
        r = gr.predict_loop_vs_vmap(cfg, data, device, n_samples=2 if tiny else 8, n_points=16 if tiny else 1000)
        faster = "vmap" if r["vmap_s"] < r["loop_s"] else "loop"
        details.append(f"x{width}: loop {r['loop_s']:.3f} s, vmap {r['vmap_s']:.3f} s ({r['samples']} weight sets x "
                       f"{r['points']} images): {faster} {max(r['loop_s'], r['vmap_s']) / min(r['loop_s'], r['vmap_s']):.1f}x faster")
        report.rates.append({"what": f"ResNet20 x{width} logits, per-sample loop", "seconds": r["loop_s"], "tflops": None,
                             "fraction": None})
        report.rates.append({"what": f"ResNet20 x{width} logits, vmap", "seconds": r["vmap_s"], "tflops": None,
                             "fraction": None})
        if r["max_abs_diff"] > 1e-3:
            problems.append(f"x{width}: loop and vmap logits differ by {r['max_abs_diff']:.2g}")
    report.add(Check("ResNet prediction: per-sample loop vs vmap", not problems, "; ".join(problems + details)))


def section_chains(report: Report, work: Path, device: str, tiny: bool) -> None:
    import gpu_rates as gr
    from workflow.storage.prepared import load_prepared

    cfg = gp.digits_config(tiny)
    cfg["hmc"].update(n_warmup=10 if tiny else 50, n_samples=10 if tiny else 50, thinning=1)
    path = work / "digits" / "data.npz"
    if not path.exists():
        gp.Jobs(work / "digits", cfg, 0).run("prepare-data", "prepare-data", "--out", str(path))
    r = gr.chains_together_vs_alone(cfg, load_prepared(path), device, n_chains=4)
    report.rates.append({"what": f"HMC, {r['chains']} digits chains together", "seconds": r["together_s"],
                         "tflops": None, "fraction": None})
    report.rates.append({"what": f"HMC, the same {r['chains']} chains one after another", "seconds": r["alone_s"],
                         "tflops": None, "fraction": None})
    report.add(Check("hmc.chains_per_job: chains together vs alone", r["same_draws"],
                     f"{r['chains']} chains: together {r['together_s']:.2f} s, one at a time {r['alone_s']:.2f} s "
                     f"({r['alone_s'] / r['together_s']:.1f}x); draws {'equal' if r['same_draws'] else 'DIFFER'}"))


# ---------------------------------------------------------------- NumPyro


def numpyro_problem(name: str, work: Path, tiny: bool) -> tuple[Path, dict]:
    """The posterior and settings of one comparison: the digits MLP of the default config, or an
    MNIST-sized MLP (784-512-10) on 8,000 MNIST-shaped synthetic images."""
    import gpu_numpyro as gn
    from workflow.storage.prepared import load_prepared

    if name == "digits":
        cfg = gp.digits_config(tiny)
        data_path = work / "digits" / "data.npz"
        if not data_path.exists():
            gp.Jobs(work / "digits", cfg, 0).run("prepare-data", "prepare-data", "--out", str(data_path))
        hidden = cfg["model"]["hidden"]
    else:
        n_train = 200 if tiny else 8000
        data_path = work / "mnist-shaped.npz"
        gp.write_synthetic(data_path, {"dataset": "mnist", "split_seed": 0, "n_train": n_train, "n_test": 100 if tiny else 1000},
                           shape=(1, 28, 28), name="synthetic (MNIST-shaped)")
        hidden = [32] if tiny else [512]
    settings = {"n_leapfrog": 5 if tiny else 20, "n_warmup": 10 if tiny else 100, "n_samples": 20 if tiny else 200}
    problem = work / f"numpyro-{name}.npz"
    gn.write_problem(problem, load_prepared(data_path), hidden, prior_std=1.0, step_size=1e-3, **settings)
    return problem, {"hidden": hidden, **settings}


def section_numpyro(report: Report, work: Path, device: str, tiny: bool, deadline: float | None) -> None:
    import gpu_numpyro as gn

    script = str(HERE / "gpu_numpyro.py")

    def call(*args: str) -> str:
        timeout = 600 if deadline is None else max(1.0, deadline - time.monotonic())
        proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"gpu_numpyro.py {args[0]} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1200:]}")
        return proc.stdout

    for name in ("digits", "mnist-sized"):
        problem, settings = numpyro_problem(name, work, tiny)
        step = call("tune", str(problem), "--device", device).strip()
        results = {}
        for sampler in ("ours", "numpyro"):
            out = work / f"numpyro-{name}-{sampler}.npz"
            call(sampler, str(problem), str(out), "--device", device)
            results[sampler] = dict(np.load(out))
        (ess_o, rate_o), (ess_n, rate_n) = (gn.ess_per_second(results[s]) for s in ("ours", "numpyro"))
        ratio = rate_o / rate_n
        o, n = results["ours"], results["numpyro"]
        detail = (f"MLP {settings['hidden']}, {settings['n_leapfrog']} leapfrog steps, {step}, "
                  f"{settings['n_warmup']} + {settings['n_samples']} iterations: ours {float(o['seconds']):.2f} s "
                  f"(acceptance {float(o['acceptance']):.2f}, ESS {ess_o:.0f}) on {o['device']}, NumPyro "
                  f"{float(n['seconds']):.2f} s compiled, {float(n['first_run_seconds']):.2f} s with compilation "
                  f"(acceptance {float(n['acceptance']):.2f}, ESS {ess_n:.0f}) on {n['device']}, {n['versions']}")
        report.rates.append({"what": f"HMC {name} MLP, ours: ESS/s of p(y|x) {rate_o:.1f}", "seconds": float(o["seconds"]),
                             "tflops": None, "fraction": None})
        report.rates.append({"what": f"HMC {name} MLP, NumPyro: ESS/s of p(y|x) {rate_n:.1f}",
                             "seconds": float(n["seconds"]), "tflops": None, "fraction": None})
        report.targets.append({"target": f"HMC ESS/s at least NumPyro's ({name} MLP)",
                               "measured": f"{ratio:.2f}x NumPyro's", "met": ratio >= 1.0,
                               "bound": "" if ratio >= 1.0 else "NumPyro compiles the whole trajectory into one XLA "
                               "program; ours launches each leapfrog step's kernels from Python"})
        report.add(Check(f"numpyro comparison, {name} MLP", True, detail))


# ---------------------------------------------------------------- the report


def machine(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU, torch {torch.__version__}"


def _num(v, fmt: str) -> str:
    return "" if v is None or v == "" else format(v, fmt)


def render(r: Report) -> str:
    elapsed = time.monotonic() - r.started
    lines = [f"# GPU check, {datetime.date.today().isoformat()}", "",
             f"Device: {machine(r.device)}. Sizes: {'tiny (the suite)' if r.tiny else 'full'}. "
             f"Command: `python3 benchmarks/gpu_check.py --out DIR{' --tiny' if r.tiny else ''}`. "
             f"Elapsed: {elapsed:.0f} s" + (f" of a {r.budget:.0f} s budget." if r.budget else "."), "",
             "## Checks", "", "| check | result | detail | seconds |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {'ok' if c.ok else 'FAILED'} | {c.detail} | {c.seconds:.1f} |" for c in r.checks]
    passed = sum(c.ok for c in r.checks)
    lines += ["", f"checks: {passed} passed, {len(r.checks) - passed} failed"]
    if r.skipped:
        lines += ["", f"not run (the time budget was spent): {', '.join(r.skipped)}"]
    if r.targets:
        lines += ["", "## Targets", "", "| target | measured | met | what bounds it |", "|---|---|---|---|"]
        lines += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} | {t['bound']} |"
                  for t in r.targets]
    if r.rates:
        lines += ["", "## Rates", "", "| measurement | seconds | TFLOP/s | of bf16 matmul |", "|---|---|---|---|"]
        lines += [f"| {x['what']} | {x['seconds']:.4g} | {_num(x['tflops'], '.1f')} | {_num(x['fraction'], '.0%')} |"
                  for x in r.rates]
    if r.jobs:
        lines += ["", "## Jobs", "", "Wall seconds of each `python -m workflow` job, start-up included. CPU: the "
                  "same job on this machine's CPU beside it, one thread; CPU here: on the development machine "
                  f"({CPU_HERE.name}).", "",
                  "| setup | job | seconds | CPU seconds | CPU / device | CPU here | here / device | peak GPU MiB |",
                  "|---|---|---|---|---|---|---|---|"]

        def ratio(j, key):
            return f"{j[key] / j['seconds']:.1f}x" if j.get(key, "") != "" and j["seconds"] else ""

        for j in r.jobs:
            lines.append(f"| {j['setup']} | {j['job']} | {j['seconds']:.2f} | {_num(j['cpu_seconds'], '.2f')} "
                         f"| {ratio(j, 'cpu_seconds')} | {_num(j.get('cpu_here_seconds', ''), '.2f')} "
                         f"| {ratio(j, 'cpu_here_seconds')} | {_num(j['peak_mb'], '.0f')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the jobs' files and gpu_check.md")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the test suite's CPU mode)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="auto: cuda where torch sees a GPU, else cpu")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=None,
                        help=f"run these only (default: all; --tiny: {' '.join(TINY_SECTIONS)})")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds; sections not started by then are listed as not run, and jobs running "
                             f"then are stopped (default: {DEFAULT_BUDGET:.0f}; --tiny: none)")
    args = parser.parse_args(argv)
    if args.budget is None and not args.tiny:
        args.budget = DEFAULT_BUDGET
    # what device.use_device sets for every job, here before this process first touches CUDA (the
    # in-process measurements compare chains bit for bit)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda, but torch {torch.__version__} sees no GPU here")
    work = Path(args.out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    report = Report(work / "gpu_check.md", device, args.tiny, args.budget)
    deadline = None if args.budget is None else report.started + args.budget
    sections = args.sections or (TINY_SECTIONS if args.tiny else SECTIONS)
    runners = {
        "digits": lambda: section_digits(report, work, device, args.tiny, deadline),
        "defects": lambda: section_defects(report, work, device, args.tiny, deadline),
        "resnet20x1": lambda: section_resnet(report, work, device, args.tiny, deadline, 1),
        "resnet20x4": lambda: section_resnet(report, work, device, args.tiny, deadline, 4),
        "rates": lambda: section_rates(report, work, device, args.tiny),
        "predict": lambda: section_predict(report, work, device, args.tiny),
        "chains": lambda: section_chains(report, work, device, args.tiny),
        "numpyro": lambda: section_numpyro(report, work, device, args.tiny, deadline),
    }
    for name in sections:
        if deadline is not None and time.monotonic() >= deadline:
            report.skipped.append(name)
            continue
        start = time.perf_counter()
        print(f"[gpu_check] {name} ...", flush=True)
        guarded(report, f"section {name}", runners[name])
        print(f"[gpu_check] {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    report.write()
    print(report.path.read_text())
    return 0 if report.checks and all(c.ok for c in report.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
