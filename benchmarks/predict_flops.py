"""Benchmark: Monte Carlo prediction over many weight samples (the hot path of every metric).

Prints, for a digits-size and an MNIST-size MLP, the FLOP rate of the fast MLP path as a
fraction of this machine's dense matmul rate (target: >= 0.5), and its speed-up over a plain
per-sample loop and over vmap(functional_call). Not a test: run it by hand,

    python benchmarks/predict_flops.py [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.func import functional_call, vmap

from workflow.architectures import build_model
from workflow.evaluation.predict import sample_log_probs

from doc_blocks import Transcript, write_block  # benchmarks/ is the script's folder, on sys.path

CASES = {  # name: (input shape, hidden widths, classes, test points, samples)
    "digits MLP 64-128-128-10": ((1, 8, 8), [128, 128], 10, 450, 100),
    "MNIST MLP 784-512-10": ((1, 28, 28), [512], 10, 2000, 100),
    "MNIST MLP 784-1024-1024-10": ((1, 28, 28), [1024, 1024], 10, 2000, 100),
}


def timeit(fn, device, min_time=1.0):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n


def matmul_rate(device, size=2048):
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    return 2 * size ** 3 / timeit(lambda: a @ b, device)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--doc", action="store_true", help="write the output into docs/performance.md")
    args = parser.parse_args()
    say = Transcript()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    peak = matmul_rate(device)
    say(f"device {device}, torch threads {torch.get_num_threads()}, dense float32 matmul (2048^3): "
          f"{peak / 1e9:.1f} GFLOP/s")
    say(f"{'case':30s} {'GFLOP':>7s} {'fast GFLOP/s':>13s} {'of matmul':>10s} {'vs loop':>8s} {'vs vmap':>8s}")
    for name, (shape, hidden, classes, n, s) in CASES.items():
        model, _ = build_model("mlp", shape, classes, hidden=hidden)
        model.to(device)
        stack = {k: v.detach()[None] + 0.01 * torch.randn(s, *v.shape, device=device)
                 for k, v in model.named_parameters()}
        x = torch.randn(n, *shape, device=device)
        widths = [torch.tensor(shape).prod().item(), *hidden, classes]
        flops = 2 * s * n * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        with torch.no_grad():
            fast = timeit(lambda: sample_log_probs(model, stack, x), device)
            loop = timeit(lambda: [torch.log_softmax(functional_call(model, {k: v[i] for k, v in stack.items()}, (x,)), -1)
                                   for i in range(s)], device)
            batched = vmap(lambda p: torch.log_softmax(functional_call(model, p, (x,)), -1))
            vm = timeit(lambda: batched(stack), device)
        rate = flops / fast
        say(f"{name:30s} {flops / 1e9:7.2f} {rate / 1e9:13.1f} {rate / peak:10.2f} {loop / fast:7.2f}x "
              f"{vm / fast:7.2f}x")
    if args.doc:
        write_block("predict-flops", say.block())


if __name__ == "__main__":
    main()
