"""The workflow's GPU-capable jobs in dependency order, through `python -m workflow` (no Snakemake),
for benchmarks/gpu_check.py: every method trained, then alignment, rebasin, barriers, Table 1,
pruning and one NoT job, each timed and its log kept.

Setups: the test suite's tiny config (digits MLP), and ResNet20 x1 and x4 on CIFAR-shaped synthetic
data (32x32x3, 10 classes, written in the prepared-data format: CIFAR itself cannot be downloaded there).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# the GPU rules' commands (workflow.device.GPU_RULES), and those that predict in chunks of compute.memory_mb
GPU_COMMANDS = {"train", "barriers", "barriers-within-chain", "table1", "pruning", "not-k"}
EVALUATION_COMMANDS = {"barriers", "barriers-within-chain", "table1", "pruning"}
PEAK = re.compile(r"peak GPU memory ([0-9.]+) MiB")
COMPUTING_ON = re.compile(r"computing on ([^,\s]+)")


@dataclass
class JobRun:
    name: str  # e.g. 'train ensemble seed 0'
    command: str  # the workflow command
    seconds: float
    log: str
    outputs: list[Path] = field(default_factory=list)

    @property
    def peak_mb(self) -> float | None:
        found = PEAK.findall(self.log)
        return max(map(float, found)) if found else None

    @property
    def devices(self) -> set[str]:
        return set(COMPUTING_ON.findall(self.log))


class Jobs:
    """Runs `python -m workflow` commands with one config, in a work folder, with each job's log kept."""

    def __init__(self, work: Path, cfg: dict, gpus: int, deadline: float | None = None, threads: int = 1):
        self.work, self.cfg, self.gpus, self.deadline, self.threads = Path(work), cfg, gpus, deadline, threads
        self.work.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                             os.environ.get("PYTHONPATH")]))}
        self.runs: list[JobRun] = []

    def command(self, *args: str) -> list[str]:
        common = ["--config", json.dumps(self.cfg), "--threads", str(self.threads)]
        return [sys.executable, "-m", "workflow", *args, *common,
                *(["--gpus", str(self.gpus)] if args[0] in GPU_COMMANDS else [])]

    def timeout(self) -> float:
        if self.deadline is None:
            return 3600.0
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the check's time budget is spent")
        return left

    def run(self, name: str, *args: str, outputs=()) -> JobRun:
        start = time.perf_counter()
        try:
            proc = subprocess.run(self.command(*args), cwd=REPO, env=self.env, capture_output=True, text=True,
                                  timeout=self.timeout())
        except subprocess.TimeoutExpired as err:
            raise TimeoutError(f"{name}: stopped at the check's time budget") from err
        log = proc.stdout + proc.stderr
        (self.work / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.log").write_text(log)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} exited {proc.returncode}: {log[-1500:]}")
        job = JobRun(name, args[0], time.perf_counter() - start, log, [Path(p) for p in outputs])
        self.runs.append(job)
        return job

    def kill_after_checkpoint(self, checkpoint: Path, *args: str) -> bool:
        """Start the job, SIGKILL it as soon as its checkpoint exists; False when it ended first."""
        proc = subprocess.Popen(self.command(*args), cwd=REPO, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + min(600.0, self.timeout())
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if checkpoint.exists():  # written atomically: it exists only once complete
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return True
                time.sleep(0.002)
            return False
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def train_args(self, method: str, seeds: list[int], outs: list[Path], checkpoint: Path | None = None,
                   base: Path | None = None, data: Path | None = None) -> list[str]:
        args = ["train", "--method", method, "--data", str(data or self.work / "data.npz"),
                "--seed", *map(str, seeds), "--out", *map(str, outs)]
        return (args + (["--checkpoint", str(checkpoint)] if checkpoint else [])
                + (["--base", str(base)] if base else []))


# ---------------------------------------------------------------- configs


def digits_config(tiny: bool) -> dict:
    """The test suite's tiny config (tests/configs/tiny.yaml: subsampled digits, every method, REPAIRed
    barriers) with two seeds, on the device the job is given, and HMC chains long and warmed up
    enough to compare two devices statistically (200 warm-up iterations, 100 draws, 20 leapfrog
    steps: two roundings of one chain then give z below 1, a prior std of 0.7 instead of 1 above 6;
    tests/test_gpu_check.py); tiny: fewer epochs and draws still."""
    import yaml

    from workflow.config import fill_defaults

    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    cfg.update(name="gpu-check-digits", seeds=[0, 1])
    cfg["alignment"].pop("joint", None)  # the joint (MergeMany) alignment runs on the CPU: not a GPU job
    cfg["hmc"].update(n_warmup=200, n_samples=100, n_leapfrog=20)
    cfg["rebasin"] = {"matchings": ["weight"], "references": ["first"]}
    cfg["not_study"].update(ks=[4, 16])
    cfg["compute"].update(device="auto", gpu=0, threads=1)
    if tiny:
        cfg["data"].update(n_train=200, n_test=100)
        cfg["model"]["hidden"] = [16]
        cfg["ensemble"].update(epochs=3)
        cfg["vi"].update(epochs=3, eval_samples=8)
        cfg["hmc"].update(n_warmup=6, n_samples=16, thinning=1, n_leapfrog=4)
        cfg["laplace"] = {"prior_precision": "prior", "eval_samples": 8}
        cfg["barrier"].update(n_points=3, mc_samples=4, repair_points=50)
        cfg["table"] = {"mc_samples": 4}
        cfg["pruning"].update(fractions=[1.0, 0.5])
        cfg["not_study"].update(ks=[2])
    return fill_defaults(cfg)


def resnet_config(width: int, tiny: bool, mixed_precision: str = "off") -> dict:
    """ResNet20 x width on CIFAR-shaped data: every method, short (the check times jobs, it does not
    study the posteriors); memory_mb 2048 bounds the predictives the check measures."""
    from workflow.config import fill_defaults

    epochs = 1 if tiny else 2
    cfg = {
        "name": f"gpu-check-resnet20x{width}", "seeds": [0, 1], "methods": ["ensemble", "vi", "hmc", "laplace"],
        "data": {"dataset": "cifar10", "split_seed": 0, "test_fraction": 0.1,
                 "n_train": 64 if tiny else 10000, "n_test": 32 if tiny else 1000},
        "model": {"architecture": "resnet20", "width": width},
        "prior": {"std": 1.0},
        "ensemble": {"epochs": epochs, "batch_size": 32 if tiny else 128, "optimizer": "adam", "lr": 0.002,
                     "lr_schedule": "cosine", "augment": "crop", "checkpoint_every": 0},
        "vi": {"epochs": epochs, "batch_size": 32 if tiny else 128, "optimizer": "adam", "lr": 0.002,
               "lr_schedule": "cosine", "augment": "crop", "sigma_init": 0.01, "sigma_lr_scale": 10.0,
               "temperature": 0.01, "eval_samples": 2 if tiny else 8, "checkpoint_every": 0},
        "hmc": {"step_size": 1e-4, "n_leapfrog": 2 if tiny else 3, "n_warmup": 1 if tiny else 2,
                "n_samples": 2 if tiny else 4, "adapt_step_size": True, "checkpoint_every": 0,
                "data_chunk": 32 if tiny else (2048 if width == 1 else 1024)},
        "laplace": {"prior_precision": "prior", "eval_samples": 2 if tiny else 8,
                    "ggn_batch": 8 if tiny else (128 if width == 1 else 32)},
        "alignment": {"kinds": ["weight", "w2"]},
        "rebasin": {"matchings": ["weight"], "references": ["first"]},
        "barrier": {"n_points": 3 if tiny else 5, "mc_samples": 2 if tiny else 8},
        "table": {"mc_samples": 2 if tiny else 8},
        "pruning": {"fractions": [1.0, 0.5, 0.1]},
        "not_study": {"ks": [8], "seeds": 1},
        "compute": {"device": "auto", "gpu": 0, "threads": 1, "memory_mb": 2048, "mixed_precision": mixed_precision},
    }
    return fill_defaults(cfg)


CIFAR_SHAPE, CIFAR_CLASSES = (3, 32, 32), 10


def write_synthetic(path: Path, data_cfg: dict) -> None:
    """A learnable image set in the prepared-data format, data_cfg's n_train and n_test rows: each
    class a smooth random template, each image its class's template at a random contrast plus noise,
    standardised per feature. The file records the jobs' data section (the jobs check that a
    posterior meets the data it was trained on) and its own name, which says it is synthetic."""
    from workflow.storage.datasets import Dataset
    from workflow.storage.prepared import write_prepared

    n_train, n_test = int(data_cfg["n_train"]), int(data_cfg["n_test"])
    shape, n_classes = CIFAR_SHAPE, CIFAR_CLASSES
    rng = np.random.default_rng(0)
    coarse = rng.normal(size=(n_classes, *shape[:-2], 4, 4))
    reps = (shape[-2] + 3) // 4, (shape[-1] + 3) // 4
    templates = np.kron(coarse, np.ones(reps))[..., :shape[-2], :shape[-1]]
    y = rng.integers(0, n_classes, size=n_train + n_test)
    x = (rng.uniform(0.5, 1.5, size=(len(y),) + (1,) * len(shape)) * templates[y]
         + rng.normal(scale=1.5, size=(len(y), *shape)))
    x = ((x - x[:n_train].mean(0)) / x[:n_train].std(0)).astype(np.float32)
    ds = Dataset(name="synthetic (CIFAR-shaped)", x_train=x[:n_train], y_train=y[:n_train].astype(np.int64), x_test=x[n_train:],
                 y_test=y[n_train:].astype(np.int64), n_classes=n_classes)
    write_prepared(path, ds, data_cfg)


# ---------------------------------------------------------------- the pipeline


class Pipeline:
    """Runs a setup's jobs in order; a job whose inputs failed is skipped, the others still run, so
    one failure does not hide what else works. ``failed`` and ``skipped`` name them."""

    def __init__(self, jobs: Jobs):
        self.jobs, self.failed, self.skipped = jobs, {}, []
        self.missing: set[Path] = set()  # outputs of failed or skipped jobs

    def run(self, name: str, *args: str, needs=(), outputs=()) -> None:
        if any(Path(p) in self.missing for p in needs):
            self.skipped.append(name)
            self.missing.update(map(Path, outputs))
            return
        try:
            self.jobs.run(name, *args, outputs=outputs)
        except TimeoutError:
            raise  # the time budget is spent: nothing later can run either
        except Exception as err:  # noqa: BLE001 - recorded, reported by the caller
            self.failed[name] = str(err)[-700:]
            self.missing.update(map(Path, outputs))

    def problems(self) -> str:
        return "; ".join([f"{n} failed: {e}" for n, e in self.failed.items()]
                         + ([f"skipped (inputs failed): {', '.join(self.skipped)}"] if self.skipped else []))


def run_pipeline(jobs: Jobs, data: Path, *, methods=("ensemble", "vi", "hmc", "laplace"),
                 posteriors: Path | None = None, evaluate_only: bool = False) -> tuple[dict[str, Path], Pipeline]:
    """Every job of one setup, in dependency order, on the Jobs' device; returns the outputs by key
    and the Pipeline (what failed or was skipped).

    ``posteriors``: a folder of trained posteriors and rebasin fits to evaluate instead of training
    (``evaluate_only``: the evaluation jobs alone, on another pass's artifacts)."""
    w, seeds = jobs.work, [0, 1]
    src = posteriors or w
    pipe = Pipeline(jobs)
    out: dict[str, Path] = {}
    post = {(m, s): src / f"{m}-seed{s}.h5" for m in methods for s in seeds}
    if not evaluate_only:
        for m in methods:
            if m == "hmc":  # a method that fits its seeds together: one job for both chains
                pipe.run("train hmc seeds 0 1", *jobs.train_args(m, seeds, [post[m, s] for s in seeds], data=data),
                         outputs=[post[m, s] for s in seeds])
                continue
            for s in seeds:
                base = post["ensemble", s] if m == "laplace" else None
                pipe.run(f"train {m} seed {s}", *jobs.train_args(m, [s], [post[m, s]], base=base, data=data),
                         needs=[base] if base else [], outputs=[post[m, s]])
        for m, kind in (("ensemble", "weight"), ("vi", "w2")):
            out[f"align {m} {kind}"] = w / f"align-{m}-{kind}.h5"
            pipe.run(f"align {m} {kind}", "align", "--kind", kind, "--seeds", "0", "1", "--a", str(post[m, 0]),
                     "--b", str(post[m, 1]), "--out", str(out[f"align {m} {kind}"]),
                     needs=[post[m, 0], post[m, 1]], outputs=[out[f"align {m} {kind}"]])
        for m in ("ensemble", "hmc"):
            qd, qr, draws = (w / f"rebasin-{m}-{f}" for f in ("q_d.h5", "q_r.h5", "draws.csv"))
            pipe.run(f"rebasin {m}", "rebasin", "--method", m, "--reference", "first", "--matching", "weight",
                     "--posteriors", *(str(post[m, s]) for s in seeds), "--seeds", "0", "1", "--data", str(data),
                     "--out-qd", str(qd), "--out-qr", str(qr), "--out-draws", str(draws),
                     needs=[post[m, s] for s in seeds], outputs=[qd, qr])
    rebasin = {f"{m}/weight/first/{f}": src / f"rebasin-{m}-{f}.h5" for m in ("ensemble", "hmc") for f in ("q_d", "q_r")}
    for m, alignment in (("ensemble", "weight"), ("vi", "w2"), ("hmc", "naive")):
        b = post[m, 1] if alignment == "naive" else src / f"align-{m}-{alignment}.h5"
        key = f"barriers {m} {alignment}"
        out[key] = w / f"barriers-{m}-{alignment}.csv"
        pipe.run(key, "barriers", "--alignment", alignment, "--pairs", json.dumps([[0, 1, str(post[m, 0]), str(b)]]),
                 "--data", str(data), "--out", str(out[key]), needs=[post[m, 0], b], outputs=[out[key]])
    key = "barriers hmc within-chain"
    out[key] = w / "barriers-hmc-within-chain.csv"
    pipe.run(key, "barriers-within-chain", "--posteriors", *(str(post["hmc", s]) for s in seeds),
             "--seeds", *map(str, seeds), "--data", str(data), "--out", str(out[key]),
             needs=[post["hmc", s] for s in seeds], outputs=[out[key]])
    out["table1"] = w / "table1.csv"
    pipe.run("table1", "table1", "--posteriors", json.dumps({m: [str(post[m, s]) for s in seeds] for m in methods}),
             "--rebasin", json.dumps({k: str(v) for k, v in rebasin.items()}), "--data", str(data),
             "--out-csv", str(out["table1"]), "--out-md", str(w / "table1.md"), "--out-tex", str(w / "table1.tex"),
             "--out-diagnostics", str(w / "chain_diagnostics.csv"),
             needs=[*post.values(), *rebasin.values()], outputs=[out["table1"]])
    out["pruning"] = w / "pruning.csv"
    gaussians = {m: post[m, 0] for m in ("vi", "laplace")}
    pipe.run("pruning", "pruning", "--rebasin", json.dumps({k: str(v) for k, v in rebasin.items()}),
             "--gaussians", json.dumps({k: str(v) for k, v in gaussians.items()}), "--merged", "[]",
             "--data", str(data), "--out-csv", str(out["pruning"]),
             needs=[*rebasin.values(), *gaussians.values()], outputs=[out["pruning"]])
    if not evaluate_only:
        ks = [int(k) for k in jobs.cfg["not_study"]["ks"]]
        outs = [w / f"not-k{k}.csv" for k in ks]
        out["not-k"] = outs[0]
        pipe.run("not-k", "not-k", "--k", *map(str, ks), "--seed", "0", "--member", str(post["ensemble", 0]),
                 "--data", str(data), "--out", *map(str, outs), needs=[post["ensemble", 0]], outputs=outs)
        for m in methods:
            for s in seeds:
                out[f"posterior {m} seed {s}"] = post[m, s]
    return {k: v for k, v in out.items() if v not in pipe.missing}, pipe
