"""Issue #25's checks, for benchmarks/gpu_check.py: TF32 off and recorded, jobs killed after their
first checkpoint resume bit for bit, HMC chains batched in one job equal their own jobs."""

from __future__ import annotations

import time
from pathlib import Path

import gpu_pipeline as gp
from gpu_compare import same_posterior
from gpu_report import Check, Report, guarded

# float32 against float64, largest error over largest value: float32 kernels stay near 1e-6
# (Winograd convolutions a few times that); TF32 rounds inputs to a 10-bit mantissa (5e-4 each), a
# few 1e-4 here. The check also fails if TF32 switched on stays below this: then it cannot tell
FLOAT32_LIMIT = 5e-5


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


def check_tf32(posterior: Path, device: str) -> Check:
    """The artifact's record, and float32 convolutions and matmuls against float64 under the switches."""
    import torch

    from gpu_rates import use
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

    d = use(device)
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
    if max(off) > FLOAT32_LIMIT:
        problems.append(f"float32 error against float64 {max(off):.2e} (> {FLOAT32_LIMIT:g}: reduced precision)")
    detail = (f"record {record['device']} ({record.get('gpu_name') or '-'}); conv / matmul error vs float64 "
              f"{off[0]:.1e} / {off[1]:.1e}")
    if device == "cuda":  # the same numbers with TF32 on: the check would see it
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        on = errors()
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        detail += f"; with TF32 on {on[0]:.1e} / {on[1]:.1e}"
        if max(on) <= FLOAT32_LIMIT:
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


def check_chains_bitwise(jobs: gp.Jobs, alone: dict[int, Path], alone_seconds: float) -> Check:
    """hmc.chains_per_job: the chains of one job equal their own jobs' chains, and the job's seconds
    against theirs (start-up included: what a job per chain costs)."""
    start = time.perf_counter()
    outs = [jobs.work / f"hmc-together-seed{s}.h5" for s in alone]
    seconds = jobs.run("hmc-together", *jobs.train_args("hmc", list(alone), outs)).seconds
    diffs = [f"seed {s}: {d}" for (s, path), out in zip(alone.items(), outs) if (d := same_posterior(path, out))]
    return Check(f"hmc: {len(alone)} chains in one job equal their own jobs", not diffs,
                 "; ".join(diffs) or f"bit for bit; one job {seconds:.1f} s, one job per chain {alone_seconds:.1f} s",
                 time.perf_counter() - start)


def section_defects(report: Report, work: Path, device: str, tiny: bool, deadline: float | None) -> None:
    """Issue #25's checks: TF32 off and recorded; jobs killed after their first checkpoint resume
    bit for bit; HMC chains batched in one job equal their own jobs bit for bit (and its seconds)."""
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
            alone_seconds = seconds["hmc"] + jobs.run("hmc-seed1", *jobs.train_args("hmc", [1], [alone[1]])).seconds
            guarded(report, "hmc chains together", check_chains_bitwise, jobs, alone, alone_seconds)
        except Exception as err:  # noqa: BLE001
            report.add(Check("hmc chains together", False, str(err)[:600]))
