"""Per-rule wall time and peak memory of a finished run, from Snakemake's own benchmark files, and the
cluster resources they suggest.

Every job rule writes ``results/<name>/benchmarks/<rule>/<its log's path>.tsv`` (Snakemake's
``benchmark:`` directive: one row per run of the job, with its wall seconds ``s``, peak resident
memory ``max_rss`` in MB and ``cpu_time``). Nothing here times anything itself.

The proposal per rule, from the slowest and the largest of its jobs:
    mem_mb  = the peak RSS times MEMORY_HEADROOM plus MEMORY_FLOOR_MB, rounded up to MEMORY_STEP_MB
    runtime = the longest wall time times TIME_HEADROOM, in minutes, rounded up, at least
              MIN_RUNTIME_MIN
The head-room covers another machine's speed and the scheduler's own accounting.

Scaling to other configs: `reference()` turns a run's benchmark files into per (architecture, rule,
method) rates: seconds per unit of workflow/job_sizes.py's `time_size` (the median of the key's
jobs: a job slowed by a busy machine does not set it; the head-room covers the spread) and MB above
the interpreter per byte of its `memory_size` (the largest). Committed as REFERENCE_FILE (measured
on the MNIST t10k configs), they give every job rule its default `mem_mb` and `runtime` for any
config: `estimate()`, then `request()`.

    python -m workflow job-resources --run results/<name> --run-config <its config> --reference-out FILE
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from . import job_sizes
from .storage import paths

MEMORY_HEADROOM = 1.5
MEMORY_FLOOR_MB = 256  # the interpreter and the scheduler's own accounting
MEMORY_STEP_MB = 250
TIME_HEADROOM = 2.0
MIN_RUNTIME_MIN = 5
REFERENCE_FILE = Path(__file__).with_name("measured_resources.csv")
ANY = "-"  # the method of a rule without one
REFERENCE_COLUMNS = ["architecture", "rule", "method", "jobs", "wall_s_max", "max_rss_mb", "s_per_unit",
                     "mb_per_unit", "run"]


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


def rate_key(rule: str, wc: dict) -> str:
    """The method column of a job's reference row: its method, and for rebasin its matcher's family
    too (weight-like matchers cost per parameter, activation-like ones per multiply-add)."""
    method = wc.get("method", ANY)
    if rule == "rebasin" and "matching" in wc:
        family = "activation" if wc["matching"] in job_sizes.ACTIVATION_MATCHERS else "weight"
        return f"{method}/{family}"  # matchers of one family share a size formula, so a rate
    return method


def reference(benchmarks: pd.DataFrame, variants: dict[str, dict], run: str) -> pd.DataFrame:
    """Per (architecture, rule, method): the measured rates that size the same rule's jobs in other
    configs. `variants`: the run's variant name -> its validated config (config.expand_variants)."""
    from . import methods

    rows = []
    for r in benchmarks.itertuples():
        wc = job_sizes.job_wildcards(r.rule, r.job, methods.names())
        cfg = variants.get(wc["variant"])
        if cfg is None and "method" in wc:  # a job of one variant's method: its variant must exist
            raise ValueError(f"benchmark {r.rule}/{r.job}: no variant {wc['variant']!r} in the config "
                             f"(variants: {', '.join(variants)}); give the config the run was made with")
        cfg = cfg or next(iter(variants.values()))  # a job of the whole run (data, figures, reports)
        rss = 0.0 if math.isnan(r.max_rss) else r.max_rss
        rows.append({"architecture": cfg["model"]["architecture"], "rule": r.rule, "method": rate_key(r.rule, wc),
                     "s": r.s, "rss": rss, "s_per_unit": r.s / job_sizes.time_size(r.rule, wc, cfg),
                     "mb_per_unit": max(rss - MEMORY_FLOOR_MB, 0.0) / job_sizes.memory_size(r.rule, wc, cfg)})
    table = pd.DataFrame(rows)
    out = table.groupby(["architecture", "rule", "method"], sort=True).agg(
        jobs=("s", "size"), wall_s_max=("s", "max"), max_rss_mb=("rss", "max"),
        s_per_unit=("s_per_unit", "median"), mb_per_unit=("mb_per_unit", "max")).reset_index()
    out["run"] = run
    return out[REFERENCE_COLUMNS]


def merge_reference(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """`new`'s rows replace `old`'s of the same (architecture, rule, method); the others stay."""
    if old is None or old.empty:
        return new.reset_index(drop=True)
    key = ["architecture", "rule", "method"]
    kept = old[~old.set_index(key).index.isin(new.set_index(key).index)]
    return pd.concat([kept, new]).sort_values(key).reset_index(drop=True)[REFERENCE_COLUMNS]


def load_reference(path=REFERENCE_FILE) -> pd.DataFrame:
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = set(REFERENCE_COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{path} is not a resource reference (missing {sorted(missing)}); write one with "
                         "python -m workflow job-resources --run RUN --run-config CONFIG --reference-out FILE")
    return table


def estimate(ref: pd.DataFrame, rule: str, wc: dict, cfg: dict) -> tuple[float, float] | None:
    """(seconds, peak RSS in MB) a job should take, scaled from the reference's rates for its
    architecture, rule and method (the rule's slowest method where its own was not measured), or
    None where the reference has no job of that rule on that architecture."""
    arch, method = cfg["model"]["architecture"], rate_key(rule, wc)
    rows = ref[(ref["architecture"] == arch) & (ref["rule"] == rule)]
    if rows.empty:
        return None
    own = rows[rows["method"] == method]
    rows = own if not own.empty else rows
    seconds = float(rows["s_per_unit"].max()) * job_sizes.time_size(rule, wc, cfg)
    rss = MEMORY_FLOOR_MB + float(rows["mb_per_unit"].max()) * job_sizes.memory_size(rule, wc, cfg)
    return seconds, rss


def request(rule: str, cfg: dict, est: tuple[float, float] | None) -> tuple[int | None, int | None]:
    """(mem_mb, runtime in minutes) a job asks for: propose() of its estimate(); None for what the
    reference cannot size: the rule on this architecture was never measured (`est` None), or the job
    computes on a GPU (a GPU-capable rule with compute.gpu > 0), whose speed no CPU measurement
    predicts. Its host memory still scales with its data and samples."""
    from .device import GPU_RULES

    if est is None:
        return None, None
    mem, runtime = propose(est[1], est[0])
    on_gpu = rule in GPU_RULES and int(cfg["compute"].get("gpu") or 0) > 0
    return mem, None if on_gpu else runtime


def compare(benchmarks: pd.DataFrame, variants: dict[str, dict], ref: pd.DataFrame) -> pd.DataFrame:
    """Per rule of a finished run: its measured total and longest wall seconds and peak RSS beside
    what `ref` estimates for the same jobs (a run that was not part of `ref` tests the scaling)."""
    from . import methods

    rows = []
    for r in benchmarks.itertuples():
        wc = job_sizes.job_wildcards(r.rule, r.job, methods.names())
        cfg = variants.get(wc["variant"], next(iter(variants.values())))
        est = estimate(ref, r.rule, wc, cfg)
        rows.append({"rule": r.rule, "s": r.s, "rss": r.max_rss, "est_s": est[0] if est else math.nan,
                     "est_rss": est[1] if est else math.nan})
    table = pd.DataFrame(rows)
    return table.groupby("rule", sort=True).agg(
        jobs=("s", "size"), wall_s_total=("s", "sum"), est_s_total=("est_s", "sum"), wall_s_max=("s", "max"),
        est_s_max=("est_s", "max"), max_rss_mb=("rss", "max"), est_rss_mb=("est_rss", "max")).reset_index()


def compare_markdown(table: pd.DataFrame) -> str:
    lines = ["| rule | jobs | wall s (sum) | estimated | wall s (max) | estimated | peak RSS MB | estimated |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.rule} | {r.jobs} | {r.wall_s_total:.1f} | {r.est_s_total:.1f} | {r.wall_s_max:.1f} "
                     f"| {r.est_s_max:.1f} | {r.max_rss_mb:.0f} | {r.est_rss_mb:.0f} |")
    measured, est = table["wall_s_total"].sum(), table["est_s_total"].sum()
    lines.append(f"\nAll jobs: {measured:.0f} s measured, {est:.0f} s estimated ({est / measured:.2f}x); "
                 "nan: a rule the reference never measured on this architecture.")
    return "\n".join(lines)
