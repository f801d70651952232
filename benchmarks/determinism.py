"""Measurement: what a different torch thread count changes in the posteriors, on this machine.

Each method of a config (the default config.yaml unless --config) is trained for one seed three
times through the job command line, in fresh processes: twice with 1 thread and once with
--threads N (default 2). It prints, per method, whether the two 1-thread runs are bit-identical
(tests/test_determinism.py checks that on small settings), whether the N-thread run is, the largest
absolute difference of any parameter (means, or HMC draws), and the difference of test NLL and
error. Not a test: run it by hand (a few minutes on 2 CPU cores),

    python benchmarks/determinism.py [--config config.yaml] [--threads 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "config.yaml"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", default=None, help="default: the config's methods")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from workflow import methods as registry
    from workflow.storage.artifacts import read_posterior
    from workflow.config import load_config, result_config

    cfg = load_config(args.config)
    chosen = args.methods or cfg["methods"]
    work = Path(tempfile.mkdtemp(prefix="determinism-"))

    def run(*cli):
        subprocess.run([sys.executable, "-m", "workflow", *map(str, cli)], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    data = work / "data.npz"
    run("prepare-data", "--config", json.dumps({"data": cfg["data"]}), "--out", data)
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "?"
    print(f"# {platform.processor() or platform.machine()}, {_cpu_model()}, torch {torch_version}, "
          f"config {Path(args.config).name}, seed {args.seed}")
    print(f"{'method':<9} {'1 vs 1 thread':>14} {f'1 vs {args.threads} threads':>16} {'max |param diff|':>17} "
          f"{'test NLL diff':>14} {'test error diff':>16} {'s per run':>10}")
    for method in chosen:
        base = registry.fitted_around(method)
        sections = ["data", "model", "prior", method] + ([base] if base else [])
        job_cfg = json.dumps(result_config(cfg, sections))
        posts = {}
        seconds = []
        for label, threads in (("a", 1), ("b", 1), ("n", args.threads)):
            out = work / label
            base_args = []
            if base:
                run("train", "--method", base, "--seed", args.seed, "--data", data, "--config", job_cfg,
                    "--threads", threads, "--out", out / f"{base}.h5")
                base_args = ["--base", out / f"{base}.h5"]
            start = time.perf_counter()
            run("train", "--method", method, "--seed", args.seed, "--data", data, "--config", job_cfg,
                "--threads", threads, *base_args, "--out", out / f"{method}.h5")
            seconds.append(time.perf_counter() - start)
            posts[label] = read_posterior(out / f"{method}.h5")
        same = _params(posts["a"]) == _params(posts["b"])
        diff = max(float(np.max(np.abs(x - y))) for x, y in zip(_arrays(posts["a"]), _arrays(posts["n"])))
        nll = abs(posts["a"].diagnostic_attrs["test_nll"] - posts["n"].diagnostic_attrs["test_nll"])
        err = abs(posts["a"].diagnostic_attrs["test_error"] - posts["n"].diagnostic_attrs["test_error"])
        print(f"{method:<9} {'identical' if same else 'DIFFER':>14} "
              f"{'identical' if diff == 0 else 'differ':>16} {diff:>17.3g} {nll:>14.3g} {err:>16.3g} "
              f"{np.median(seconds):>10.1f}")


def _arrays(post):
    blocks = [post.samples] if post.kind == "samples" else [post.mean, post.std]
    return [np.asarray(b[k]) for b in blocks for k in sorted(b)]


def _params(post) -> list[bytes]:
    return [a.tobytes() for a in _arrays(post)]


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
