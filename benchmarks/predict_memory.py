"""Benchmark: peak memory of a Gaussian predictive of ResNet20 x4 on 32x32x3 images under the
memory budget (compute.memory_mb), against the memory that S x N at once would need.

Points and samples go through in chunks sized to the budget, so every chunk of a run has the same
shape once N and S exceed one chunk: the peak does not grow with N x S. Each case runs in a fresh
process (peak resident memory is per process) and prints its chunk shape, its peak and the ratio
of peak growth to N x S growth. Not a test: run it by hand (a few minutes on 2 CPU cores),

    python benchmarks/predict_memory.py [--width 4] [--budget 1024] [--threads 2]

The paper-scale case (10,000 images x 100 samples) has the chunk shape of every case here; on a
CPU it takes hours, so it is not run by default (add --full to run it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from doc_blocks import Transcript, write_block  # benchmarks/ is the script's folder, on sys.path

CASES = [(512, 1), (1024, 2), (2048, 4)]  # (points, samples): N x S grows 16x
FULL = (10_000, 100)


def one_case(width: int, n: int, s: int, budget: float, threads: int) -> dict:
    import numpy as np
    import torch

    from workflow.architectures import build_model
    from workflow.evaluation.predict import Gaussian, activation_elements, chunk_sizes, log_predictive

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, _ = build_model("resnet20", (3, 32, 32), 10, width=width)
    mean = {k: v.detach().numpy() for k, v in model.named_parameters()}
    std = {k: np.full_like(v, 0.01) for k, v in mean.items()}
    x = torch.randn(n, 3, 32, 32)
    source = Gaussian(mean, std, s, seed=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    logp = log_predictive(model, source, x, memory_mb=budget)
    seconds = time.perf_counter() - t0
    assert torch.isfinite(logp).all()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_point = activation_elements(model, (3, 32, 32))
    return {"points": n, "samples": s, "chunk": list(chunk_sizes(model, source, x, budget)),
            "peak_mb": peak, "before_mb": before, "seconds": seconds,
            "per_point": per_point, "numel": source.numel,
            "all_at_once_mb": 4 * s * (n * per_point + source.numel) / 2 ** 20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--budget", type=float, default=1024, help="compute.memory_mb")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also run 10,000 images x 100 samples (hours on a CPU)")
    parser.add_argument("--case", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--doc", action="store_true", help="write the output into docs/performance.md")
    args = parser.parse_args()
    say = Transcript()
    if args.case:
        print(json.dumps(one_case(args.width, *args.case, args.budget, args.threads)))
        return
    import torch

    say(f"ResNet20 x{args.width}, 3x32x32, memory budget {args.budget:g} MiB, torch {torch.__version__}, "
          f"{args.threads} threads")
    say(f"{'points':>7} {'samples':>7} {'chunk (S, N)':>13} {'peak MiB':>9} {'peak - start':>12} "
          f"{'S x N at once MiB':>17} {'seconds':>8}")
    rows = []
    for n, s in CASES + ([FULL] if args.full else []):
        out = subprocess.run([sys.executable, __file__, "--case", str(n), str(s), "--width", str(args.width),
                              "--budget", str(args.budget), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        say(f"{r['points']:>7} {r['samples']:>7} {str(tuple(r['chunk'])):>13} {r['peak_mb']:>9.0f} "
              f"{r['peak_mb'] - r['before_mb']:>12.0f} {r['all_at_once_mb']:>17.0f} {r['seconds']:>8.1f}")
    first, last = rows[0], rows[-1]
    growth = (last["points"] * last["samples"]) / (first["points"] * first["samples"])
    say(f"N x S grew {growth:.0f}x; peak grew {last['peak_mb'] / first['peak_mb']:.2f}x "
          f"(all at once would grow {last['all_at_once_mb'] / first['all_at_once_mb']:.0f}x); "
          f"{FULL[0]:,} x {FULL[1]} at once would need "
          f"{4 * FULL[1] * (FULL[0] * first['per_point'] + first['numel']) / 2 ** 20:,.0f} MiB")
    if args.doc:
        write_block("predict-memory", say.block())


if __name__ == "__main__":
    main()
