"""Where every artifact of a run lives: the one place that spells the layout of ``results/<name>/``.

``run`` is a run's folder, ``results/<name>``. The rules build their inputs and outputs here, with
Snakemake wildcards as arguments (``posterior(RESULTS, "{variant}", "{method}", "{seed}")``), and
the jobs that read a finished run (results-doc, job-resources) find its files here too.

    results/<name>/
        data/<key>.npz                                   prepared data (shared by variants)
        <variant>/posteriors/<method>/seed<s>.h5         one posterior per method and seed
        <variant>/checkpoints/<kind>/<name>.pt           resume files of running jobs
        <variant>/alignment/<method>/<kind>/<a>-<b>.h5   B aligned into A's basin
        <variant>/barriers/<method>/<alignment>.csv      barrier curves of every pair
        <variant>/rebasin/<method>/<matching>/<reference>/{q_d,q_r}.h5, draws.csv
        <variant>/basin/<label>.h5                       a Gaussian in the reference's basin
        <variant>/not_study/k<k>/seed<s>.csv, <variant>/not_path/<method>.csv
        tables/, figures/, report/, paper/, claims.{csv,md}
        logs/<...>.log, benchmarks/<rule>/<...>.tsv      per job: its log, Snakemake's benchmark
"""

from __future__ import annotations


def data(run: str, key: str) -> str:
    return f"{run}/data/{key}.npz"


def posterior(run: str, variant: str, method: str, seed) -> str:
    return f"{run}/{variant}/posteriors/{method}/seed{seed}.h5"


def checkpoint(run: str, variant: str, kind: str, name: str) -> str:
    return f"{run}/{variant}/checkpoints/{kind}/{name}.pt"


def alignment(run: str, variant: str, method: str, kind: str, pair: str) -> str:
    return f"{run}/{variant}/alignment/{method}/{kind}/{pair}.h5"


def joint_alignment(run: str, variant: str, method: str, kind: str) -> str:
    return f"{run}/{variant}/alignment/{method}/joint_{kind}/all-seeds.h5"


def joint_merged(run: str, variant: str, method: str, kind: str) -> str:
    return f"{run}/{variant}/alignment/{method}/joint_{kind}/merged.csv"


def curves(run: str, variant: str, method: str, alignment_kind: str) -> str:
    return f"{run}/{variant}/barriers/{method}/{alignment_kind}.csv"


def rebasin(run: str, variant: str, method: str, matching: str, reference: str, fit: str) -> str:
    """A fitted Gaussian (fit q_d or q_r), or with fit 'draws' the per-draw table."""
    ext = "csv" if fit == "draws" else "h5"
    return f"{run}/{variant}/rebasin/{method}/{matching}/{reference}/{fit}.{ext}"


def replicates(run: str, variant: str) -> str:
    """Table 1's bootstrap replicates: beside the summary tables, not among them (no report item, no paper file)."""
    return f"{run}/{variant}/bootstrap/table1_replicates_{variant}.csv"


def basin(run: str, variant: str, label: str) -> str:
    return f"{run}/{variant}/basin/{label}.h5"


def not_k(run: str, variant: str, k, seed) -> str:
    return f"{run}/{variant}/not_study/k{k}/seed{seed}.csv"


def not_path(run: str, variant: str, method: str) -> str:
    return f"{run}/{variant}/not_path/{method}.csv"


def table(run: str, stem: str, ext: str = "csv") -> str:
    return f"{run}/tables/{stem}.{ext}"


def figure(run: str, stem: str, ext: str) -> str:
    return f"{run}/figures/{stem}.{ext}"


def report(run: str, stem: str) -> str:
    return f"{run}/report/{stem}.html"


def claims(run: str, ext: str) -> str:
    return f"{run}/claims.{ext}"


def log(run: str, job: str) -> str:
    return f"{run}/logs/{job}.log"


def benchmark(run: str, rule: str, job: str) -> str:
    """Snakemake's benchmark file of a job: beside its log's path, below the rule's name."""
    return f"{run}/benchmarks/{rule}/{job}.tsv"


def benchmarks(run: str) -> str:
    return f"{run}/benchmarks"


def paper(run: str) -> str:
    return f"{run}/paper"
