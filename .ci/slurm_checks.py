"""The checks of .ci/slurm-check, on what SLURM and the two runs left behind.

    python .ci/slurm_checks.py gpu-requests JOBS.txt       (`scontrol show job -o` output)
    python .ci/slurm_checks.py same-posteriors LOCAL SLURM  (two results/<name>/<variant>/posteriors)
"""
import collections
import re
import sys
from pathlib import Path

from workflow.device import GPU_RULES  # the rules that compute with torch (the package is installed in CI's venv)


def gpu_requests(jobs_file):
    """Every job completed; exactly the GPU rules' jobs carried a GPU request."""
    jobs = collections.defaultdict(lambda: [0, 0])  # rule -> [jobs, jobs with a GPU]
    for line in open(jobs_file):
        comment = re.search(r"\bComment=rule_(\w+?)(?:_wildcards_\S*)?(?:\s|$)", line)
        if not comment:
            continue
        rule = comment.group(1)
        if re.fullmatch(r"train_\w+_seeds_\w+", rule):  # seeds of a method trained together (rules/train.smk)
            rule = "train_posterior"
        state = re.search(r"\bJobState=(\w+)", line).group(1)
        if state != "COMPLETED":
            sys.exit(f"SLURM job of rule {rule} ended {state}")
        gpu = re.search(r"\bTresPerJob=\S*gres[:/]gpu", line) or re.search(r"\bTresPerNode=\S*gpu", line)
        jobs[rule][0] += 1
        jobs[rule][1] += bool(gpu)
    if not jobs:
        sys.exit("no SLURM job found: nothing was submitted")
    print(f"{'rule':<20} {'jobs':>5} {'with a GPU':>11}")
    bad = []
    for rule, (n, with_gpu) in sorted(jobs.items()):
        print(f"{rule:<20} {n:>5} {with_gpu:>11}")
        if with_gpu != (n if rule in GPU_RULES else 0):
            bad.append(rule)
    missing = GPU_RULES - set(jobs)
    if missing:
        sys.exit(f"GPU rules never submitted: {sorted(missing)}")
    if bad:
        sys.exit(f"wrong GPU requests for: {bad} (GPU rules: {sorted(GPU_RULES)})")
    print(f"{sum(n for n, _ in jobs.values())} jobs submitted to SLURM; the GPU rules requested a GPU, the others none")


def same_posteriors(local, slurm):
    """The ensemble and VI posteriors of both runs hold the same bytes."""
    import h5py

    local, slurm = Path(local), Path(slurm)
    compared = 0
    for method in ("ensemble", "vi"):
        files = sorted((local / method).glob("*.h5"))
        if not files:
            sys.exit(f"no local {method} posteriors in {local}")
        for path in files:
            with h5py.File(path) as a, h5py.File(slurm / method / path.name) as b:
                for block in ("samples", "mean", "std"):
                    for name in a.get(block, {}):
                        x, y = a[block][name][()], b[block][name][()]
                        if x.shape != y.shape or x.tobytes() != y.tobytes():
                            sys.exit(f"{method}/{path.name} /{block}/{name} differs between the local and the SLURM run")
                        compared += 1
    print(f"{compared} datasets bit-identical (ensemble and VI, every seed)")


if __name__ == "__main__":
    commands = {"gpu-requests": gpu_requests, "same-posteriors": same_posteriors}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: slurm_checks.py {{{'|'.join(commands)}}} ARGS")
    commands[sys.argv[1]](*sys.argv[2:])
