"""The prepared check for a lent GPU: every GPU-capable job of the workflow on CUDA through
`python -m workflow` (no Snakemake), each result checked against a CPU run, timings and achieved
rates measured, one Markdown report written.

    python3 benchmarks/gpu_check.py --out DIR              # on the GPU machine (CUDA): one device call
    python3 benchmarks/gpu_check.py --out DIR --tiny       # CPU, tiny sizes: the test suite runs this

On the device machine, `bash benchmarks/gpu_device_run.sh` runs it (with the wheels that
benchmarks/gpu_wheels.sh downloads here, carried) and puts the report where the device tool
brings it back.

Sections, most important first (a spent --budget cuts the last ones; each is guarded, so one that
fails does not hide the others; the report is rewritten after every check):

- digits: the test suite's tiny config (two seeds), every method and every GPU job, on the device
  and, beside it, on the CPU (--tiny: two CPU runs, one and two threads, which round differently):
  every artifact records the device; evaluation jobs stay within compute.memory_mb; the device's
  evaluation of the CPU run's artifacts equals the CPU's tables within EVALUATION_TOLERANCE;
  trained posteriors agree within TRAINING_TOLERANCE; HMC agrees statistically, chain by chain;
  each job's seconds against the CPU's, here and on the development machine (CPU_HERE);
- rates: the device's bf16 matrix-product rate, and the achieved rate of a ResNet20 x4 training
  epoch (deterministic or not) and of a full-batch HMC gradient on 10,000 images as fractions of
  it, beside the network's convolutions alone (the bound);
- numpyro: our HMC against NumPyro's, ESS per second of p(y|x), on the digits MLP and an
  MNIST-sized MLP (784-512-10, 8,000 images): same start, step size, path length, draws and chains;
- resnet20x4, resnet20x1: every method and GPU job on 10,000 CIFAR-shaped synthetic images, x4
  with compute.mixed_precision bf16 (recorded), x1 in float32 with one barrier table drawn again on
  the CPU;
- defects: issue #25's checks (TF32 off, resume after a kill, chains batched in one job);
- predict: ResNet logits under many weight sets, the per-sample loop against vmap;
- chains: HMC chains advanced together in one sampler call against one after another.

Exit status 1 when a check fails (the report says which and why); a check cut by the budget and a
target missed are reported, not failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import gpu_compare as cmp  # noqa: E402
import gpu_pipeline as gp  # noqa: E402
from gpu_defects import section_defects  # noqa: E402
from gpu_report import Check, Report, check_deadline, guarded  # noqa: E402

SECTIONS = ("digits", "rates", "numpyro", "resnet20x4", "resnet20x1", "defects", "predict", "chains")
TINY_SECTIONS = ("digits", "rates", "numpyro", "resnet20x1", "defects", "predict", "chains")  # x1 in bf16 stands for x4
TARGET_FRACTION = 0.3  # of the measured bf16 matrix-product rate
TARGET_SPEEDUP = 10.0  # every digits job on CUDA against the CPU
# the digits jobs' seconds on the development machine's CPU (2 cores, one thread a job), written by
#   python benchmarks/gpu_check.py --device cpu --sections digits --budget 3000 --out DIR
# (DIR/jobs.csv): "its CPU time here" of the speed-up target
CPU_HERE = HERE / "gpu_check_cpu_times.csv"
# seconds of a full run: the wheels' install, Python's start and the copies fit with it in one
# device call of at most 8 minutes
DEFAULT_BUDGET = 420.0


def job_row(setup: str, r, cpu: dict | None = None, here: dict | None = None) -> dict:
    return {"setup": setup, "job": r.name, "seconds": round(r.seconds, 2),
            "cpu_seconds": round(cpu[r.name], 2) if cpu and r.name in cpu else "",
            "cpu_here_seconds": here.get(r.name, "") if here else "",
            "peak_mb": "" if r.peak_mb is None else round(r.peak_mb, 1)}


def pipeline_check(setup: str, pipe) -> Check:
    problems = pipe.problems()
    return Check(f"{setup}: every job ran", not problems, problems or f"{len(pipe.jobs.runs)} jobs")


# ---------------------------------------------------------------- digits: every job, against the CPU


def section_digits(report: Report, work: Path, device: str, tiny: bool, deadline: float | None) -> None:
    cfg = gp.digits_config(tiny)
    gpus = 1 if device == "cuda" else 0
    jobs = gp.Jobs(work / "digits", cfg, gpus, deadline)
    data = jobs.work / "data.npz"
    jobs.run("prepare-data", "prepare-data", "--out", str(data))
    # the CPU run beside it, on other cores, from the same data file; in CPU mode with two threads,
    # whose sums round differently, so the comparisons compare two runs, as on a GPU
    reference_jobs = gp.Jobs(work / "digits-cpu", cfg, 0, deadline, threads=2 if device == "cpu" else 1)
    result: dict = {}

    def reference():
        try:
            result["out"], result["pipe"] = gp.run_pipeline(reference_jobs, data)
        except BaseException as err:  # noqa: BLE001 - reported below
            result["error"] = err

    # on a GPU machine beside the device's jobs (other cores); in CPU mode after them, so that the
    # jobs' seconds are those of one job alone on the CPU (benchmarks/gpu_check_cpu_times.csv)
    if device == "cuda":
        thread = threading.Thread(target=reference)
        thread.start()
        try:
            out, pipe = gp.run_pipeline(jobs, data)
        finally:
            thread.join()
    else:
        out, pipe = gp.run_pipeline(jobs, data)
        reference()
    cpu = {r.name: r.seconds for r in reference_jobs.runs}
    here = cpu_times_here() if (device == "cuda" and not tiny) else {}
    report.jobs += [job_row("digits", r, cpu, here) for r in jobs.runs]
    report.add(pipeline_check("digits", pipe))
    if isinstance(result.get("error"), TimeoutError):
        raise result["error"]  # a budget cut, not a failure
    if "error" in result:
        raise RuntimeError(f"the CPU run beside it failed: {result['error']}")
    report.add(pipeline_check("digits (CPU)", result["pipe"]))
    reference_out = result["out"]
    want = "cuda:0" if device == "cuda" else "cpu"
    guarded(report, "digits: devices", cmp.check_devices, "digits", jobs.runs, want)
    guarded(report, "digits: memory", cmp.check_memory, "digits", jobs.runs, cfg["compute"]["memory_mb"], device)
    guarded(report, "digits: training", cmp.check_training, "digits", out, reference_out)
    guarded(report, "digits: HMC", cmp.check_hmc_statistically, "digits", out, reference_out, data)
    cross = gp.Jobs(work / "digits-cross", cfg, gpus, deadline)
    evaluated, cross_pipe = gp.run_pipeline(cross, data, posteriors=reference_jobs.work, evaluate_only=True)
    guarded(report, "digits: cross evaluation", cmp.check_cross_evaluation, "digits", evaluated,
            {k: reference_out[k] for k in evaluated if k in reference_out})
    if cross_pipe.problems():
        report.add(pipeline_check("digits (cross evaluation)", cross_pipe))
    speedup_targets(report, jobs.runs, device, {"the development machine's CPU": here, "this machine's CPU": cpu},
                    deadline)


def speedup_targets(report: Report, runs: list, device: str, bases: dict, deadline: float | None) -> None:
    """Every GPU job against the same job on a CPU, per CPU whose times are at hand (CPU mode too,
    against itself, so the code cannot rot)."""
    gpu_runs = [r for r in runs if r.command in gp.GPU_COMMANDS]
    if not gpu_runs:
        return
    note = startup_note(gpu_runs, device, deadline)
    for label, base in bases.items():
        if not base or not all(r.name in base for r in gpu_runs):
            continue
        slow = [f"{r.name} {base[r.name] / r.seconds:.1f}x" for r in gpu_runs if r.seconds * TARGET_SPEEDUP > base[r.name]]
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


def startup_seconds(device: str, deadline: float | None) -> float:
    """What every job pays before it computes: a Python that imports the package's CLI and torch and
    puts one tensor on the device (the CUDA context)."""
    check_deadline(deadline, "timing a job's start-up")
    code = f"import torch, workflow.cli; torch.zeros(1, device={device!r}).sum().item()"
    start = time.perf_counter()
    timeout = 120 if deadline is None else max(1.0, min(120.0, deadline - time.monotonic()))
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, timeout=timeout)
    return time.perf_counter() - start


def startup_note(gpu_runs: list, device: str, deadline: float | None) -> str:
    cpu = startup_seconds("cpu", deadline)
    dev = cpu if device == "cpu" else startup_seconds(device, deadline)
    fastest = min(gpu_runs, key=lambda r: r.seconds)
    return (f"starting Python, the package and torch takes {cpu:.1f} s, {dev:.1f} s with a tensor on {device}; "
            f"the fastest GPU job ({fastest.name}) took {fastest.seconds:.1f} s")


# ---------------------------------------------------------------- ResNet20 on CIFAR-shaped data


def resnet_setup(width: int, tiny: bool) -> tuple[str, dict]:
    mixed = "bf16" if (width == 4 or tiny) else "off"  # tiny: x1 in bf16 runs x4's code path
    return f"resnet20x{width}", gp.resnet_config(width, tiny, mixed)


def section_resnet(report: Report, work: Path, device: str, tiny: bool, deadline: float | None, width: int) -> None:
    setup, cfg = resnet_setup(width, tiny)
    jobs = gp.Jobs(work / setup, cfg, 1 if device == "cuda" else 0, deadline)
    data = synthetic_data(cfg, work, setup)
    try:
        out, pipe = gp.run_pipeline(jobs, data)
    finally:
        report.jobs += [job_row(setup, r) for r in jobs.runs]
    report.add(pipeline_check(setup, pipe))
    want = "cuda:0" if device == "cuda" else "cpu"
    guarded(report, f"{setup}: devices", cmp.check_devices, setup, jobs.runs, want)
    guarded(report, f"{setup}: memory", cmp.check_memory, setup, jobs.runs, cfg["compute"]["memory_mb"], device)
    guarded(report, f"{setup}: mixed precision", cmp.check_mixed_precision, setup, out,
            cfg["compute"]["mixed_precision"])
    if width == 1:  # evaluation is float32 on every device: the CPU must draw the same curve (x4: too slow there)
        guarded(report, f"{setup}: cross evaluation", cross_evaluate_on_cpu, setup, jobs, data, out)


def cross_evaluate_on_cpu(setup: str, jobs: gp.Jobs, data: Path, out: dict) -> Check:
    """One barrier job of the device's ResNet artifacts again on the CPU (up to 8 threads: a ResNet
    is slow there), its table against the device's."""
    cpu = gp.Jobs(jobs.work / "cpu", jobs.cfg, 0, jobs.deadline, threads=min(8, os.cpu_count() or 1))
    table = cpu.work / "barriers-ensemble-weight.csv"
    pairs = [[0, 1, str(out["posterior ensemble seed 0"]), str(jobs.work / "align-ensemble-weight.h5")]]
    cpu.run("barriers ensemble weight (CPU)", "barriers", "--alignment", "weight", "--pairs", json.dumps(pairs),
            "--data", str(data), "--out", str(table), outputs=[table])
    return cmp.check_cross_evaluation(setup, {"barriers ensemble weight": table},
                                      {"barriers ensemble weight": out["barriers ensemble weight"]})


# ---------------------------------------------------------------- rates, prediction, chains


def synthetic_data(cfg: dict, work: Path, setup: str) -> Path:
    """A ResNet setup's synthetic images, written once for every section that uses them."""
    path = work / setup / "data.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        gp.write_synthetic(path, cfg["data"])
    return path


def digits_data(work: Path, tiny: bool, deadline: float | None) -> Path:
    """The digits section's prepared data, prepared here if that section did not run."""
    path = work / "digits" / "data.npz"
    if not path.exists():
        gp.Jobs(work / "digits", gp.digits_config(tiny), 0, deadline).run("prepare-data", "prepare-data",
                                                                          "--out", str(path))
    return path


def rate_row(rate, peak_tflops: float) -> dict:
    return {"what": rate.name, "seconds": rate.seconds, "tflops": rate.tflops, "fraction": rate.tflops / peak_tflops}


def section_rates(report: Report, work: Path, device: str, tiny: bool, deadline: float | None) -> None:
    import gpu_rates as gr
    from workflow import job_sizes
    from workflow.storage.prepared import load_prepared

    peak = gr.bf16_matmul_rate(device, 256 if tiny else 8192)
    report.rates.append(rate_row(peak, peak.tflops))
    setup, cfg = resnet_setup(1 if tiny else 4, tiny)
    data = load_prepared(synthetic_data(cfg, work, setup))
    macs = job_sizes.macs(cfg)
    batches = {"training epoch": cfg["ensemble"]["batch_size"], "HMC gradient": cfg["hmc"]["data_chunk"]}
    for name, fn in (("training epoch", gr.training_epoch), ("HMC gradient", gr.hmc_gradient)):
        check_deadline(deadline, f"the {name}")
        rate = fn(cfg, data, device, macs)
        bound = gr.convolution_ceiling(cfg, data, device, batches[name])  # the convolutions alone, same batch
        report.rates += [rate_row(rate, peak.tflops), rate_row(bound, peak.tflops)]
        fraction = rate.tflops / peak.tflops
        report.targets.append({
            "target": f"{setup} {name} at >= {TARGET_FRACTION:.0%} of the measured bf16 matrix-product rate",
            "measured": f"{rate.tflops:.1f} TFLOP/s = {fraction:.0%} of {peak.tflops:.1f}",
            "met": fraction >= TARGET_FRACTION,
            "bound": "" if fraction >= TARGET_FRACTION else
            f"its convolutions alone, at batch {batches[name]}, reach {bound.tflops / peak.tflops:.0%}; the rest of "
            "a step (normalisation, activations, the optimizer) is memory-bound and not counted"})
        report.write()
    check_deadline(deadline, "the epoch without deterministic algorithms")
    loose = gr.training_epoch(cfg, data, device, macs, deterministic=False)
    report.rates.append(rate_row(loose, peak.tflops))
    report.add(Check("rates measured", True, f"bf16 matrix products {peak.tflops:.1f} TFLOP/s (cuBLAS workspace "
                     f"{os.environ.get('CUBLAS_WORKSPACE_CONFIG', 'default')}, as the jobs run)"))


def section_predict(report: Report, work: Path, device: str, tiny: bool, deadline: float | None) -> None:
    import gpu_rates as gr
    from workflow.storage.prepared import load_prepared

    details, problems = [], []
    for width in ((1,) if tiny else (1, 4)):
        check_deadline(deadline, f"ResNet20 x{width}'s prediction")
        setup, cfg = resnet_setup(width, tiny)
        data = load_prepared(synthetic_data(cfg, work, setup))
        r = gr.predict_loop_vs_vmap(cfg, data, device, n_samples=2 if tiny else 8, n_points=16 if tiny else 1000)
        faster = "vmap" if r["vmap_s"] < r["loop_s"] else "loop"
        details.append(f"x{width}: loop {r['loop_s']:.3f} s, vmap {r['vmap_s']:.3f} s ({r['samples']} weight sets x "
                       f"{r['points']} images): {faster} {max(r['loop_s'], r['vmap_s']) / min(r['loop_s'], r['vmap_s']):.1f}x "
                       "faster")
        report.rates += [{"what": f"ResNet20 x{width} logits, per-sample loop", "seconds": r["loop_s"]},
                         {"what": f"ResNet20 x{width} logits, vmap", "seconds": r["vmap_s"]}]
        if r["max_abs_diff"] > 1e-3:
            problems.append(f"x{width}: loop and vmap logits differ by {r['max_abs_diff']:.2g}")
    report.add(Check("ResNet prediction: per-sample loop vs vmap", not problems, "; ".join(problems + details)))


def section_chains(report: Report, work: Path, device: str, tiny: bool, deadline: float | None) -> None:
    import gpu_rates as gr
    from workflow.storage.prepared import load_prepared

    cfg = gp.digits_config(tiny)
    cfg["hmc"].update(n_warmup=10 if tiny else 50, n_samples=10 if tiny else 50, thinning=1)
    path = digits_data(work, tiny, deadline)
    check_deadline(deadline, "the chains")
    r = gr.chains_together_vs_alone(cfg, load_prepared(path), device, n_chains=4)
    report.rates += [{"what": f"HMC, {r['chains']} digits chains together (one sampler call)", "seconds": r["together_s"]},
                     {"what": f"HMC, the same {r['chains']} chains one after another", "seconds": r["alone_s"]}]
    report.add(Check("hmc.chains_per_job: chains together vs alone", r["same_draws"],
                     f"{r['chains']} chains: together {r['together_s']:.2f} s, one at a time {r['alone_s']:.2f} s "
                     f"({r['alone_s'] / r['together_s']:.1f}x); draws {'equal' if r['same_draws'] else 'DIFFER'}"))


# ---------------------------------------------------------------- NumPyro


def numpyro_problem(name: str, work: Path, tiny: bool) -> tuple[Path, dict]:
    """The posterior and settings of one comparison: the HMC benchmarks' own problems
    (benchmarks/_common.py, as bench_hmc.py compares with Pyro), the default config's digits MLP or
    784-512-10 on 8,000 MNIST-sized inputs; tiny: 200 of the inputs, a narrow MLP."""
    import dataclasses

    import gpu_numpyro as gn
    from _common import digits_problem, mnist_sized_problem

    problem = digits_problem() if name == "digits" else mnist_sized_problem()
    if tiny:
        problem = dataclasses.replace(problem, x=problem.x[:200], y=problem.y[:200], x_test=problem.x_test[:100],
                                      y_test=problem.y_test[:100], hidden=[16])
    settings = {"n_leapfrog": 5 if tiny else 20, "n_tune": 10 if tiny else 100, "n_warmup": 2 if tiny else 20,
                "n_samples": 20 if tiny else 200, "chains": 4}
    path = work / f"numpyro-{name}.npz"
    gn.write_problem(path, problem, prior_std=1.0, step_size=1e-3, **settings)
    return path, {"hidden": problem.hidden, **settings}


def section_numpyro(report: Report, work: Path, device: str, tiny: bool, deadline: float | None) -> None:
    import gpu_numpyro as gn

    script = str(HERE / "gpu_numpyro.py")

    def call(*args: str) -> str:
        check_deadline(deadline, f"gpu_numpyro.py {args[0]}")
        timeout = 600 if deadline is None else max(1.0, deadline - time.monotonic())
        try:
            proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise TimeoutError(f"gpu_numpyro.py {args[0]} stopped at the time budget") from err
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
        detail = (f"MLP {settings['hidden']}, {settings['chains']} chains from our tuned start, {settings['n_leapfrog']} "
                  f"leapfrog steps, {step}, {settings['n_warmup']} + {settings['n_samples']} iterations: ours "
                  f"{float(o['seconds']):.2f} s (acceptance {float(o['acceptance']):.2f}, median ESS {ess_o:.0f}) on "
                  f"{o['device']}; NumPyro {float(n['seconds']):.2f} s compiled, {float(n['first_run_seconds']):.2f} s "
                  f"with compilation (acceptance {float(n['acceptance']):.2f}, median ESS {ess_n:.0f}) on {n['device']}, "
                  f"{n['versions']}; mean p(y|x) {float(o['probs'].mean()):.3f} vs {float(n['probs'].mean()):.3f}")
        report.rates += [{"what": f"HMC {name} MLP, ours: {rate_o:.1f} ESS/s of p(y|x)", "seconds": float(o["seconds"])},
                         {"what": f"HMC {name} MLP, NumPyro: {rate_n:.1f} ESS/s of p(y|x)", "seconds": float(n["seconds"])}]
        report.targets.append({"target": f"HMC ESS/s at least NumPyro's ({name} MLP)",
                               "measured": f"{ratio:.2f}x NumPyro's", "met": ratio >= 1.0,
                               "bound": "" if ratio >= 1.0 else "NumPyro compiles every chain's whole trajectory into one "
                               "XLA program; ours launches each leapfrog step's kernels from Python, chain by chain"})
        steps = np.asarray(n["leapfrog_steps"]).tolist()
        same = steps == [settings["n_leapfrog"]]  # equal path lengths, or the comparison is not fair
        report.add(Check(f"numpyro comparison, {name} MLP", same,
                         detail if same else f"NumPyro took {steps} leapfrog steps, not {settings['n_leapfrog']}: {detail}"))


# ---------------------------------------------------------------- main


def machine(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU, torch {torch.__version__}"


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
    parser.add_argument("--report-copy", type=Path, default=None,
                        help="also keep the report and jobs.csv here, rewritten after every check")
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
    report = Report(work / "gpu_check.md", device, machine(device), args.tiny, args.budget, args.report_copy,
                    CPU_HERE.name)
    deadline = None if args.budget is None else report.started + args.budget
    sections = args.sections or (TINY_SECTIONS if args.tiny else SECTIONS)
    runners = {
        "digits": lambda: section_digits(report, work, device, args.tiny, deadline),
        "rates": lambda: section_rates(report, work, device, args.tiny, deadline),
        "numpyro": lambda: section_numpyro(report, work, device, args.tiny, deadline),
        "resnet20x4": lambda: section_resnet(report, work, device, args.tiny, deadline, 4),
        "resnet20x1": lambda: section_resnet(report, work, device, args.tiny, deadline, 1),
        "defects": lambda: section_defects(report, work, device, args.tiny, deadline),
        "predict": lambda: section_predict(report, work, device, args.tiny, deadline),
        "chains": lambda: section_chains(report, work, device, args.tiny, deadline),
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
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
