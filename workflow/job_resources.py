"""Per-rule wall time and peak memory of a finished run, from Snakemake's own benchmark files, and the
cluster resources they suggest.

Every job rule writes ``results/<name>/benchmarks/<rule>/<its log's path>.tsv`` (Snakemake's
``benchmark:`` directive: one row per run of the job, with its wall seconds ``s``, peak resident
memory ``max_rss`` in MB and ``cpu_time``). Nothing here times anything itself.

The proposal per rule, from the slowest and the largest of its jobs:
    mem_mb  = the peak RSS times MEMORY_HEADROOM plus MEMORY_FLOOR_MB, rounded up to MEMORY_STEP_MB
    runtime = the longest wall time times TIME_HEADROOM, in minutes, rounded up, at least
              MIN_RUNTIME_MIN
The head-room covers another machine's speed and a larger run of the same shape; a config with more
data or more samples than the measured one needs its own measurement.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .storage import paths

MEMORY_HEADROOM = 1.5
MEMORY_FLOOR_MB = 256  # the interpreter and the scheduler's own accounting
MEMORY_STEP_MB = 250
TIME_HEADROOM = 2.0
MIN_RUNTIME_MIN = 5


def read_benchmarks(run_dir) -> pd.DataFrame:
    """One row per benchmark file of a run: rule, job (its path below the rule), s, max_rss, cpu_time."""
    root = Path(paths.benchmarks(str(run_dir)))
    files = sorted(root.rglob("*.tsv")) if root.is_dir() else []
    if not files:
        raise ValueError(f"no benchmark files under {root}: run the workflow first (every job rule writes one)")
    rows = []
    for path in files:
        table = pd.read_csv(path, sep="\t", na_values=["-", "NA"])
        missing = {"s", "max_rss"} - set(table.columns)
        if missing or table.empty:
            raise ValueError(f"{path} is not a Snakemake benchmark file (missing {sorted(missing) or 'rows'})")
        # a rerun job overwrites its file; several rows are repeats (benchmark: repeat(...)): the worst counts
        rel = path.relative_to(root)
        rows.append({"rule": rel.parts[0], "job": str(Path(*rel.parts[1:]).with_suffix("")),
                     "s": float(table["s"].max()), "max_rss": float(table["max_rss"].max()),
                     "cpu_time": float(table["cpu_time"].max()) if "cpu_time" in table else math.nan})
    return pd.DataFrame(rows)


def propose(peak_rss_mb: float, max_seconds: float) -> tuple[int, int]:
    """(mem_mb, runtime in minutes) for a rule whose largest job peaked at `peak_rss_mb` and whose
    slowest took `max_seconds`. A job too short for Snakemake to sample its memory (NaN) gets the floor."""
    rss = 0.0 if math.isnan(peak_rss_mb) else peak_rss_mb
    mem = math.ceil((rss * MEMORY_HEADROOM + MEMORY_FLOOR_MB) / MEMORY_STEP_MB) * MEMORY_STEP_MB
    runtime = max(MIN_RUNTIME_MIN, math.ceil(max_seconds * TIME_HEADROOM / 60))
    return int(mem), int(runtime)


def summarize(benchmarks: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, total and longest wall seconds, total CPU seconds, peak RSS, and the proposal."""
    rows = []
    for rule, g in benchmarks.groupby("rule", sort=True):
        mem, runtime = propose(float(g["max_rss"].max()), float(g["s"].max()))
        rows.append({"rule": rule, "jobs": len(g), "wall_s_total": g["s"].sum(), "wall_s_max": g["s"].max(),
                     "cpu_s_total": g["cpu_time"].sum(), "max_rss_mb": g["max_rss"].max(),
                     "proposed_mem_mb": mem, "proposed_runtime_min": runtime})
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame) -> str:
    head = ("| rule | jobs | wall s (sum) | wall s (max) | CPU s (sum) | peak RSS MB | proposed mem_mb "
            "| proposed runtime (min) |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        rss = "n/a" if math.isnan(r.max_rss_mb) else f"{r.max_rss_mb:.0f}"
        lines.append(f"| {r.rule} | {r.jobs} | {r.wall_s_total:.1f} | {r.wall_s_max:.1f} | {r.cpu_s_total:.1f} "
                     f"| {rss} | {r.proposed_mem_mb} | {r.proposed_runtime_min} |")
    total = summary["wall_s_total"].sum()
    lines.append(f"\n{int(summary['jobs'].sum())} jobs, {total:.0f} job-seconds of wall time in all.")
    return "\n".join(lines)
