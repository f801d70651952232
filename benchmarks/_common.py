"""Shared pieces of the benchmark suite (`python benchmarks/run_all.py`): result rows, timing by
median over repeats, the machine's description, and the two problems of issue #10 (the default
digits MLP and an MNIST-sized MLP on synthetic inputs, so no data file is needed)."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass
class Row:
    """One measured ratio. ``ratio`` is oriented so that larger is better for us; ``target`` is
    the least ratio (or, with ``at_most``, the largest value) that meets the issue's target."""

    section: str
    name: str
    ours: float  # seconds or the measured quantity, as ``unit`` says
    peer: float | None
    unit: str
    ratio: float | None
    target: float | None = None
    at_most: bool = False  # target bounds ``ours`` from above (e.g. seconds) instead of the ratio from below
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.at_most:
            return self.ours <= self.target
        return self.ratio is not None and self.ratio >= self.target


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def header(threads: int) -> str:
    packages = ("torch", "numpy", "scipy", "snakemake", "pyro-ppl", "rebasin")
    return (f"{datetime.date.today().isoformat()}, {cpu_model()}, {os.cpu_count()} CPUs, {threads} torch threads, "
            f"Python {platform.python_version()}; " + ", ".join(f"{p} {version(p)}" for p in packages))


def markdown(rows: list[Row]) -> str:
    lines = ["| section | benchmark | ours | peer / baseline | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        peer = "-" if r.peer is None else f"{r.peer:.4g}"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        if r.target is None:
            target = "-"
        else:
            target = f"<= {r.target:g} {r.unit}" if r.at_most else f">= {r.target:g}x"
        met = {None: "-", True: "met", False: "NOT met"}[r.met]
        name = r.name + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.section} | {name} | {r.ours:.4g} {r.unit} | {peer} | {ratio} | {target} | {met} |")
    return "\n".join(lines)


@dataclass
class Problem:
    """An MLP classification problem: training inputs, labels, test split and the model's arguments."""

    name: str
    x: object
    y: object
    x_test: object
    y_test: object
    input_shape: tuple
    n_classes: int
    hidden: list[int]

    def model(self, seed: int = 0):
        import torch

        from workflow.architectures import build_model

        torch.manual_seed(seed)
        model, _ = build_model("mlp", self.input_shape, self.n_classes, hidden=self.hidden, activation="relu")
        return model


def digits_problem() -> Problem:
    """The default config's data and MLP 64-128-10 (1,347 training digits)."""
    import torch

    from workflow.config import load_config
    from workflow.storage.datasets import load_dataset

    cfg = load_config(REPO / "config.yaml")
    d = cfg["data"]
    ds = load_dataset(d["dataset"], d["root"], split_seed=d["split_seed"], test_fraction=d["test_fraction"],
                      n_train=d["n_train"], n_test=d["n_test"], download=False)
    return Problem("digits", torch.as_tensor(ds.x_train), torch.as_tensor(ds.y_train), torch.as_tensor(ds.x_test),
                   torch.as_tensor(ds.y_test), tuple(ds.input_shape), ds.n_classes, list(cfg["model"]["hidden"]))


def mnist_sized_problem(n: int = 8000) -> Problem:
    """784-512-10 on ``n`` synthetic MNIST-sized inputs (timing does not depend on the pixel values)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 784, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return Problem(f"MNIST-sized ({n})", x, y, x[:500], y[:500], (784,), 10, [512])
