"""The prepared check for a lent GPU: the workflow's jobs on CUDA, through `python -m workflow`
(no Snakemake), each result checked, one Markdown table written.

    python3 benchmarks/gpu_check.py --out DIR            # on the GPU machine (CUDA)
    python3 benchmarks/gpu_check.py --out DIR --tiny     # CPU, tiny sizes: the suite runs this

The device machine has no network and no jsonschema: carry it as wheels (see
benchmarks/gpu_wheels.sh) and start the command with the install line that script prints.

Checks (issue #25's, for the first lent device to confirm for real):
- tf32: a job records TF32 off and 'cuda:0 (GPU name)'; a float32 convolution and matmul under the
  job's switches agree with float64 to float32 precision (TF32's 10-bit mantissa would not; the
  same numbers with TF32 switched on show that the check can fail);
- resume: an ensemble, a VI and an HMC job killed (SIGKILL) right after their first checkpoint and
  started again resume from it and write the same posterior, bit for bit, as an uninterrupted run;
- chains: HMC chains advanced together in one job equal each chain's own job, bit for bit.

Exit status 1 when a check fails (the table says which and why).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def sizes(tiny: bool) -> dict:
    """Job settings: long enough that a kill lands between the first checkpoint and the end."""
    if tiny:
        return {"data": {"n_train": 200, "n_test": 100}, "hidden": [16],
                "ensemble": {"epochs": 40, "batch_size": 32, "checkpoint_every": 4},
                "vi": {"epochs": 30, "batch_size": 32, "checkpoint_every": 3, "eval_samples": 10},
                "hmc": {"step_size": 0.001, "n_leapfrog": 5, "n_warmup": 40, "n_samples": 20,
                        "checkpoint_every": 5}}
    return {"data": {"n_train": 1200, "n_test": 500}, "hidden": [128, 128],
            "ensemble": {"epochs": 400, "batch_size": 128, "checkpoint_every": 10},
            "vi": {"epochs": 300, "batch_size": 128, "checkpoint_every": 10, "eval_samples": 50},
            "hmc": {"step_size": 0.001, "n_leapfrog": 20, "n_warmup": 200, "n_samples": 100,
                    "checkpoint_every": 10}}


def job_config(tiny: bool) -> dict:
    from workflow.config import fill_defaults

    s = sizes(tiny)
    return fill_defaults({
        "name": "gpu-check",
        "data": {"dataset": "digits", "split_seed": 0, "test_fraction": 0.3, **s["data"]},
        "model": {"architecture": "mlp", "hidden": s["hidden"], "activation": "relu"},
        "prior": {"std": 1.0},
        "ensemble": {"lr": 0.003, **s["ensemble"]},
        "vi": {"lr": 0.003, **s["vi"]},
        "hmc": s["hmc"],
        "compute": {"device": "auto", "threads": 1},  # the job's --gpus decides
    })


class Jobs:
    """Runs `python -m workflow` commands in a work folder, with the job's log kept beside it."""

    def __init__(self, work: Path, cfg: dict, gpus: int):
        self.work, self.cfg, self.gpus = work, cfg, gpus
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                             os.environ.get("PYTHONPATH")]))}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "workflow", *args, "--config", json.dumps(self.cfg),
                "--threads", "1", "--gpus", str(self.gpus)]

    def run(self, name: str, *args: str, timeout: float = 600) -> tuple[float, str]:
        start = time.perf_counter()
        proc = subprocess.run(self.command(*args), cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        (self.work / f"{name}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
        return time.perf_counter() - start, proc.stdout + proc.stderr

    def kill_after_checkpoint(self, name: str, checkpoint: Path, *args: str, timeout: float = 600) -> bool:
        """Start the job, SIGKILL it as soon as its checkpoint exists; False when it ended first."""
        proc = subprocess.Popen(self.command(*args), cwd=REPO, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
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

    def train(self, method: str, seeds: list[int], outs: list[Path], checkpoint: Path | None = None) -> list[str]:
        args = ["train", "--method", method, "--data", str(self.work / "data.npz"),
                "--seed", *map(str, seeds), "--out", *map(str, outs)]
        return args + (["--checkpoint", str(checkpoint)] if checkpoint else [])


def same_posterior(a_path: Path, b_path: Path) -> str:
    """'' when both posteriors hold the same arrays bit for bit, else the first difference."""
    import numpy as np

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


def check_tf32(jobs: Jobs, posterior: Path, device: str) -> Check:
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
    detail = f"record {record['device']} ({record.get('gpu_name') or '-'}); conv / matmul error vs float64 {off[0]:.1e} / {off[1]:.1e}"
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


def check_resume(jobs: Jobs, method: str, reference: Path, ref_seconds: float) -> Check:
    """Killed right after its first checkpoint, rerun: resumed, and equal to the uninterrupted run."""
    start = time.perf_counter()
    out, ckpt = jobs.work / f"{method}-resumed.h5", jobs.work / f"{method}-seed0.pt"
    args = jobs.train(method, [0], [out], ckpt)
    if not jobs.kill_after_checkpoint(f"{method}-killed", ckpt, *args):
        return Check(f"{method}: killed and resumed", False,
                     "the job ended before its first checkpoint could be killed: lengthen it", 0.0)
    _, log = jobs.run(f"{method}-resume", *args)
    resumed = "resumed from" in log
    diff = same_posterior(reference, out)
    ok = resumed and not diff and not ckpt.exists()
    detail = (f"resumed, equal bit for bit to the uninterrupted run ({ref_seconds:.1f} s)" if ok else
              "; ".join(filter(None, ["did not resume" if not resumed else "", diff,
                                      "checkpoint left behind" if ckpt.exists() else ""])))
    return Check(f"{method}: killed and resumed", ok, detail, time.perf_counter() - start)


def check_chains(jobs: Jobs, alone: dict[int, Path]) -> Check:
    start = time.perf_counter()
    outs = [jobs.work / f"hmc-together-seed{s}.h5" for s in alone]
    seconds, _ = jobs.run("hmc-together", *jobs.train("hmc", list(alone), outs))
    diffs = [f"seed {s}: {d}" for (s, path), out in zip(alone.items(), outs) if (d := same_posterior(path, out))]
    return Check(f"hmc: {len(alone)} chains in one job equal their own jobs", not diffs,
                 "; ".join(diffs) or f"bit for bit; the batched job took {seconds:.1f} s",
                 time.perf_counter() - start)


def machine(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU, torch {torch.__version__}"


def render(checks: list[Check], device: str, tiny: bool) -> str:
    lines = [f"# GPU check, {datetime.date.today().isoformat()}", "",
             f"Device: {machine(device)}. Sizes: {'tiny (the suite)' if tiny else 'full'}. "
             f"Command: `python3 benchmarks/gpu_check.py{' --tiny' if tiny else ''}`.", "",
             "| check | result | detail | seconds |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {'ok' if c.ok else 'FAILED'} | {c.detail} | {c.seconds:.1f} |" for c in checks]
    passed = sum(c.ok for c in checks)
    lines += ["", f"checks: {passed} passed, {len(checks) - passed} failed"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the jobs' files and gpu_check.md")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the test suite's CPU mode)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="auto: cuda where torch sees a GPU, else cpu")
    args = parser.parse_args(argv)
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device cuda, but torch {torch.__version__} sees no GPU here")
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    jobs = Jobs(work, job_config(args.tiny), gpus=1 if device == "cuda" else 0)
    checks: list[Check] = []

    def guarded(name, fn, *a):
        try:
            checks.append(fn(*a))
        except Exception as err:  # one failing check must not hide the others
            checks.append(Check(name, False, f"{type(err).__name__}: {err}".replace("\n", " ")[:600], 0.0))

    jobs.run("prepare-data", "prepare-data", "--out", str(work / "data.npz"))
    references, seconds = {}, {}
    for method in ("ensemble", "vi", "hmc"):
        references[method] = work / f"{method}-seed0.h5"
        try:
            seconds[method], _ = jobs.run(f"{method}-reference", *jobs.train(method, [0], [references[method]]))
        except Exception as err:
            checks.append(Check(f"{method}: uninterrupted job", False, str(err)[:600], 0.0))
    if "ensemble" in seconds:
        guarded("tf32 off, device recorded", check_tf32, jobs, references["ensemble"], device)
    for method in seconds:
        guarded(f"{method}: killed and resumed", check_resume, jobs, method, references[method], seconds[method])
    if "hmc" in seconds:
        try:
            alone = {0: references["hmc"], 1: work / "hmc-seed1.h5"}
            jobs.run("hmc-seed1", *jobs.train("hmc", [1], [alone[1]]))
            guarded("hmc chains together", check_chains, jobs, alone)
        except Exception as err:
            checks.append(Check("hmc chains together", False, str(err)[:600], 0.0))
    table = render(checks, device, args.tiny)
    (work / "gpu_check.md").write_text(table)
    print(table)
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
