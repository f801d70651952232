"""Command line of the package: ``python -m workflow <command> ...``; one command per job kind.

Each job kind is declared once, in JOBS: its command, help, arguments, whether it takes the common
job arguments (config, runtime, threads, GPUs), whether it computes with torch, and what it runs.
The parser is generated from the declarations. Configs travel as a JSON string (``--config``)
holding the config sections the job depends on, so a change elsewhere in config.yaml does not
rerun it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    """One job kind of the command line."""

    name: str
    help: str
    run: Callable  # (parsed args, config with defaults, device) -> None
    args: tuple = ()  # (flags, argparse keywords) pairs, from arg()
    common: bool = False  # takes --config, --runtime, --threads and --gpus
    torch: bool = False  # computes with torch (sets its threads); a light job starts without importing it


def arg(*flags, **keywords) -> tuple:
    return flags, keywords


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=json.loads, default={}, help="the job's config sections as JSON")
    p.add_argument("--runtime", type=json.loads, default={},
                   help="runtime settings as JSON (device, checkpoint interval, data root), merged into --config")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs the job's rule requested (its gpu resource); with compute.device auto the job "
                        "computes on CUDA exactly when it was given a GPU. Without it, only a scheduler's "
                        "allocation to this job counts (workflow/device.py)")


def _not_path(args, cfg, device):
    if not len(args.a) == len(args.b) == len(args.alignments):
        raise ValueError(f"--a, --b and --alignments must name as many files each, got {len(args.a)}, "
                         f"{len(args.b)} and {len(args.alignments)}")
    from .jobs.studies import not_path_job

    not_path_job(args.method, list(zip(args.a, args.b, args.alignments)), args.out, n_points=cfg["barrier"]["n_points"],
                 variant=args.variant, max_sweeps=cfg["alignment"]["max_sweeps"])


def _validate_config(args, cfg, device):
    from .config import load_config

    print(json.dumps(load_config(args.path), indent=2))


def _config_doc(out) -> None:
    from .config_doc import reference
    from .storage.atomic import write_text

    write_text(out, reference())


def _job_resources(args, cfg, device) -> None:
    from .storage.atomic import write_csv
    from .job_resources import markdown, read_benchmarks, summarize

    benchmarks = read_benchmarks(args.run)
    summary = summarize(benchmarks)
    print(markdown(summary))
    if args.out_csv:
        write_csv(args.out_csv, summary)
    if args.reference_out and not args.run_config:
        raise ValueError("--reference-out needs --run-config, the config the run was made with")
    if args.run_config:
        from pathlib import Path

        from .config import load_config, variant_configs
        from .job_resources import load_reference, merge_reference, reference

        variants = variant_configs(load_config(args.run_config))
        new = reference(benchmarks, variants, Path(args.run).name)
        print("\nRates per architecture, rule and method (seconds per unit of job_sizes.time_size, MB per byte "
              "of job_sizes.memory_size):\n")
        print(new.to_string(index=False))
        if args.reference_out:
            old = load_reference(args.reference_out) if Path(args.reference_out).exists() else None
            write_csv(args.reference_out, merge_reference(old, new))
        if args.against:
            from .job_resources import compare, compare_markdown

            print(f"\nMeasured against the estimates of {args.against}:\n")
            print(compare_markdown(compare(benchmarks, variants, load_reference(args.against))))


def _job(module: str, function: str):
    """A job function, imported only when its command runs (light commands stay light)."""
    import importlib

    return getattr(importlib.import_module(f"workflow.jobs.{module}"), function)


JOBS = (
    Job("prepare-data", "load, split and standardise the data set",
        run=lambda a, c, d: _job("data", "prepare_data")(c["data"], a.out),
        common=True,
        args=(
            arg("--out", required=True),
        )),
    Job("train", "one posterior per seed (several seeds: methods that fit them together)",
        run=lambda a, c, d: _job("train", "train_posteriors")(a.method, a.data, a.seed, c, a.out,
                                                              checkpoint=a.checkpoint, device=d,
                                                              base_paths=[a.base] if a.base else None),
        common=True, torch=True,
        args=(
            arg("--method", required=True),
            arg("--data", required=True),
            arg("--seed", type=int, nargs="+", required=True),
            arg("--out", nargs="+", required=True, help="one output per seed, in the same order"),
            arg("--checkpoint", default=None, help="resume file, written periodically and removed at the end"),
            arg("--base", default=None, help="the posterior this method is fitted around (same seed), if any"),
        )),
    Job("align", "permute posterior B into A's basin",
        run=lambda a, c, d: _job("align", "align_pair")(a.kind, a.a, a.b, c, a.out, seeds=a.seeds, data_path=a.data),
        common=True,
        args=(
            arg("--seeds", type=int, nargs=2, default=None, help="the seeds A and B must hold (checked)"),
            arg("--kind", required=True),
            arg("--a", required=True),
            arg("--b", required=True),
            arg("--data", default=None, help="the prepared data, for a matcher that trains on it (alignment.matcher)"),
            arg("--out", required=True),
        )),
    Job("align-joint", "permute every seed's posterior into one basin together (MergeMany)",
        run=lambda a, c, d: _job("align", "align_joint")(a.kind, a.posteriors, a.seeds, c, a.out),
        common=True,
        args=(
            arg("--kind", required=True),
            arg("--posteriors", nargs="+", required=True),
            arg("--seeds", type=int, nargs="+", required=True, help="the seed each posterior must hold (checked)"),
            arg("--out", required=True),
        )),
    Job("joint-pair", "one pair's alignment file under the joint alignment (B in A's frame)",
        run=lambda a, c, d: _job("align", "joint_pair")(a.joint, a.a, a.b, a.out, seeds=a.seeds),
        args=(
            arg("--joint", required=True),
            arg("--seeds", type=int, nargs=2, required=True),
            arg("--a", required=True),
            arg("--b", required=True),
            arg("--out", required=True),
        )),
    Job("joint-merged", "test NLL and error of the merged model of a joint alignment, against the unaligned merge",
        run=lambda a, c, d: _job("align", "merged_model")(a.joint, a.posteriors, a.data, c, a.out),
        common=True, torch=True,
        args=(
            arg("--joint", required=True),
            arg("--posteriors", nargs="+", required=True, help="one per seed of the joint alignment, in its order"),
            arg("--data", required=True),
            arg("--out", required=True),
        )),
    Job("summarize-joint", "cycle consistency of the pairwise alignments against the joint one",
        run=lambda a, c, d: _job("align", "summarize_joint")(a.joint, a.pairs, a.out_csv, a.out_md, a.merged),
        args=(
            arg("--joint", nargs="+", required=True),
            arg("--pairs", nargs="+", required=True, help="the pairwise alignment files"),
            arg("--merged", nargs="*", default=[], help="the merged-model tables (joint-merged)"),
            arg("--out-csv", required=True),
            arg("--out-md", required=True),
        )),
    Job("barriers", "the curves of several pairs in one table (one job per method and alignment)",
        run=lambda a, c, d: _job("metrics", "barrier_curves")(a.alignment, a.pairs, a.data, c, a.out, device=d,
                                                              variant=a.variant),
        common=True, torch=True,
        args=(
            arg("--alignment", required=True, help="'naive', or an alignment kind (then B is an alignment file)"),
            arg("--variant", default="base", help="sweep variant, recorded in the curve table"),
            arg("--pairs", required=True, type=json.loads,
                help="JSON list of [seed A, seed B, path A, path B] (B: a posterior, or an alignment file)"),
            arg("--data", required=True),
            arg("--out", required=True),
        )),
    Job("barriers-within-chain", "the control of sample-set barriers: two halves of each chain",
        run=lambda a, c, d: _job("metrics", "within_chain_curves")(a.posteriors, a.seeds, a.data, c,
                                                                   a.out, device=d, variant=a.variant),
        common=True, torch=True,
        args=(
            arg("--variant", default="base", help="sweep variant, recorded in the curve table"),
            arg("--posteriors", nargs="+", required=True),
            arg("--seeds", type=int, nargs="+", required=True, help="the seed each posterior must hold (checked)"),
            arg("--data", required=True),
            arg("--out", required=True),
        )),
    Job("rebasin", "fit q_d and q_r to all samples of a method",
        run=lambda a, c, d: _job("rebasin", "rebasin_job")(a.method, a.posteriors, a.data, c, a.reference,
                                                           a.out_qd, a.out_qr, a.out_draws,
                                                           matching=a.matching, seeds=a.seeds),
        common=True, torch=True,
        args=(
            arg("--method", required=True),
            arg("--reference", required=True, help="'first' or 'iterated'"),
            arg("--matching", required=True, help="'weight', 'activation' or 'correlation'"),
            arg("--posteriors", nargs="+", required=True),
            arg("--seeds", type=int, nargs="+", default=None, help="the seed each posterior must hold (checked)"),
            arg("--data", required=True),
            arg("--out-qd", required=True),
            arg("--out-qr", required=True),
            arg("--out-draws", required=True, help="CSV: per draw, the NoT of the permutation matching gave it"),
        )),
    Job("summarize-rebasin-draws", "the rebasin control: per-draw NoT summed up per chain group",
        run=lambda a, c, d: _job("rebasin", "summarize_draws")(a.draws, a.out_csv, a.out_md,
                                                               variant=a.variant),
        args=(
            arg("--draws", nargs="+", required=True),
            arg("--variant", default="base"),
            arg("--out-csv", required=True),
            arg("--out-md", required=True),
        )),
    Job("table1", "Xiao et al.'s Table 1: predictives against the reference method's (HMC)",
        run=lambda a, c, d: _job("rebasin", "table1_job")(a.posteriors, a.rebasin, a.data, c, a.out_csv, a.out_md,
                                                          a.out_tex, a.out_diagnostics, device=d,
                                                          out_replicates=a.out_replicates),
        common=True, torch=True,
        args=(
            arg("--posteriors", type=json.loads, required=True, help="JSON: method -> its posterior files"),
            arg("--rebasin", type=json.loads, required=True,
                help="JSON: '<method>/<matching>/<reference>/<fit>' -> path"),
            arg("--data", required=True),
            arg("--out-csv", required=True),
            arg("--out-md", required=True),
            arg("--out-tex", required=True),
            arg("--out-replicates", help="its bootstrap replicates (CSV), from which the claims derive intervals"),
            arg("--out-diagnostics", required=True),
        )),
    Job("basin", "align other methods' Gaussians into the basin of the reference's q_r (W2)",
        run=lambda a, c, d: _job("studies", "basin_job")(a.reference, a.sources, a.outs, a.out_csv,
                                                         variant=a.variant, max_sweeps=c["alignment"]["max_sweeps"]),
        common=True, torch=True,
        args=(
            arg("--reference", required=True, help="the reference method's q_r (HMC's)"),
            arg("--sources", type=json.loads, required=True, help="JSON: label -> Gaussian posterior"),
            arg("--outs", type=json.loads, required=True, help="JSON: label -> alignment file to write"),
            arg("--variant", default="base"),
            arg("--out-csv", required=True),
        )),
    Job("sigma-histograms", "histograms of sigma of q_d, q_r and the Gaussian methods",
        run=lambda a, c, d: _job("studies", "sigma_histogram_job")(a.rebasin, a.gaussians, a.out_csv,
                                                                   variant=a.variant),
        torch=True,
        args=(
            arg("--rebasin", type=json.loads, default={}, help="JSON: '<method>/<matching>/<reference>/<fit>' -> path"),
            arg("--gaussians", type=json.loads, default={}, help="JSON: Gaussian method -> its posterior files"),
            arg("--variant", default="base"),
            arg("--out-csv", required=True),
        )),
    Job("pruning", "accuracy of the mean networks pruned by sigma",
        run=lambda a, c, d: _job("studies", "pruning_job")(a.rebasin, a.gaussians, a.merged, a.data, a.out_csv,
                                                           fractions=c["pruning"]["fractions"], variant=a.variant,
                                                           device=d, memory_mb=c["compute"]["memory_mb"]),
        common=True, torch=True,
        args=(
            arg("--rebasin", type=json.loads, default={}, help="JSON: '<method>/<matching>/<reference>/<fit>' -> path"),
            arg("--gaussians", type=json.loads, default={},
                help="JSON: Gaussian method -> its first seed's posterior file"),
            arg("--merged", type=json.loads, default=[],
                help="JSON: [[reference q_r, alignment file of another q_r in its basin], ...]"),
            arg("--data", required=True),
            arg("--variant", default="base"),
            arg("--out-csv", required=True),
        )),
    Job("not-k", "train from initial weights permuted by k transpositions; NoT, distance, barrier",
        run=lambda a, c, d: _job("studies", "not_k_jobs")(a.k, a.seed, a.member, a.data, c, a.out, variant=a.variant,
                                                          device=d, checkpoint=a.checkpoint),
        common=True, torch=True,
        args=(
            arg("--k", type=int, nargs="+", required=True, help="one or several k (one retraining each)"),
            arg("--seed", type=int, required=True),
            arg("--member", required=True, help="the member of that seed (a method that supports a permuted init)"),
            arg("--data", required=True),
            arg("--variant", default="base"),
            arg("--checkpoint", default=None, help="resume file, written periodically and removed at the end "
                   "(one per k, with a -k<k> suffix)"),
            arg("--out", nargs="+", required=True, help="one CSV per k, in the same order"),
        )),
    Job("not-path", "NoT from points of the path to its endpoints, naive and aligned",
        run=_not_path,
        common=True, torch=True,
        args=(
            arg("--method", required=True),
            arg("--a", nargs="+", required=True),
            arg("--b", nargs="+", required=True),
            arg("--alignments", nargs="+", required=True, help="alignment file of each pair (B into A's basin)"),
            arg("--variant", default="base"),
            arg("--out", required=True),
        )),
    Job("concat-tables", "many small CSV tables in one",
        run=lambda a, c, d: _job("studies", "concat_tables")(a.tables, a.out),
        args=(
            arg("--tables", nargs="+", required=True),
            arg("--out", required=True),
        )),
    Job("figure", "a study's figure from its table: sigma, pruning, not_k, not_path",
        run=lambda a, c, d: _job("figures", "study_figure")(a.kind, a.table, a.png, a.pdf, variant=a.variant),
        args=(
            arg("--kind", required=True, help="the study: sigma, pruning, not_k, not_path"),
            arg("--table", required=True),
            arg("--variant", default=None),
            arg("--png", required=True),
            arg("--pdf", required=True),
        )),
    Job("claims", "judge every claim of both papers against a run's summary tables",
        run=lambda a, c, d: _job("claims", "claims_job")(a.tables, a.run_config, a.variants, a.out_csv, a.out_md,
                                                         sweep_base=a.sweep_base),
        args=(
            arg("--tables", nargs="+", required=True),
            arg("--run-config", type=json.loads, required=True, help="JSON: the run's config (result sections)"),
            arg("--variants", type=json.loads, default={"base": {}}, help="JSON: variant -> {swept dotted key: value}"),
            arg("--sweep-base", type=json.loads, default={}, help="JSON: swept dotted key -> its base value"),
            arg("--out-csv", required=True),
            arg("--out-md", required=True),
        )),
    Job("job-resources", "per-rule wall time and peak memory of a finished run (Snakemake's "
                       "benchmark files), and the cluster mem_mb and runtime they suggest",
        run=_job_resources,
        args=(
            arg("--run", required=True, help="the run's folder, results/<name>"),
            arg("--out-csv", help="also write the per-rule table here"),
            arg("--run-config", help="the config the run was made with: also print the rates that size "
                                     "other configs' jobs (workflow/job_sizes.py)"),
            arg("--reference-out", help="merge those rates into this reference file (the rules read "
                                        "workflow/measured_resources.csv)"),
            arg("--against", help="with --run-config: also print each rule's measured times beside what this "
                                  "reference estimates for the same jobs"),
        )),
    Job("results-doc", "a finished run's claims and result tables as one Markdown page for docs/",
        run=lambda a, c, d: _job("results_doc", "results_doc_job")(a.run, a.run_config_file, a.out,
                                                                   variant=a.variant),
        args=(
            arg("--run", required=True, help="the run's folder, results/<name>"),
            arg("--config", dest="run_config_file", required=True, help="the config file the run used"),
            arg("--variant", default="base"),
            arg("--out", required=True),
        )),
    Job("runbook", "the cluster runbook: every experiment config's jobs and SLURM submissions, from dry runs",
        run=lambda a, c, d: _job("runbook", "runbook_job")(a.out),
        args=(arg("--out", default="docs/cluster-runbook.md"),)),
    Job("readme-result", "the README's one small result, copied from the default run's results page",
        run=lambda a, c, d: _job("results_doc", "readme_result_job")(a.page, a.readme),
        args=(
            arg("--page", default="docs/results/digits-default.md", help="a page written by results-doc"),
            arg("--readme", default="README.md"),
        )),
    Job("results-index", "docs/results.md's findings: every results page's verdicts, copied from the pages",
        run=lambda a, c, d: _job("results_doc", "results_index_job")(a.pages, a.out),
        args=(
            arg("--pages", nargs="+", required=True, help="pages written by results-doc (docs/results/*.md)"),
            arg("--out", default="docs/results.md"),
        )),
    Job("summarize-barriers", "barrier table from the per-pair curves",
        run=lambda a, c, d: _job("metrics", "summarize_barriers")(a.curves, a.variants, a.out_curves,
                                                                  a.out_csv, a.out_md),
        args=(
            arg("--curves", nargs="+", required=True),
            arg("--variants", type=json.loads, default={"base": {}}, help="JSON: variant -> {swept dotted key: value}"),
            arg("--out-curves", required=True),
            arg("--out-csv", required=True),
            arg("--out-md", required=True),
        )),
    Job("figure-barriers", "barrier curve figure of one method",
        run=lambda a, c, d: _job("figures", "barrier_figure")(a.curves, a.method, a.png, a.pdf,
                                                              variant=a.variant),
        args=(
            arg("--curves", required=True),
            arg("--method", required=True),
            arg("--variant", default=None),
            arg("--png", required=True),
            arg("--pdf", required=True),
        )),
    Job("figure-sweep", "barrier against each swept setting, for one method",
        run=lambda a, c, d: _job("figures", "sweep_figure")(a.table, a.method, a.png, a.pdf, base=a.base),
        args=(
            arg("--table", required=True),
            arg("--base", type=json.loads, default={},
                help="JSON: swept key -> base value; each panel holds the other swept keys at it"),
            arg("--method", required=True),
            arg("--png", required=True),
            arg("--pdf", required=True),
        )),
    Job("table-html", "a CSV table as an HTML page (the report shows tables this way)",
        run=lambda a, c, d: _job("report", "table_html_job")(a.table, a.out, title=a.title, caption=a.caption),
        args=(
            arg("--table", required=True),
            arg("--title", required=True),
            arg("--caption", default="", help="the settings, seeds and pairs the table summarises"),
            arg("--out", required=True),
        )),
    Job("paper", "every figure and table of both papers, from the summary tables alone",
        run=lambda a, c, d: _job("paper", "paper_job")(a.tables, a.out, sweep_base=a.sweep_base,
                                                       captions=a.captions),
        args=(
            arg("--tables", nargs="+", required=True, help="the summary tables (results/<name>/tables/*.csv)"),
            arg("--sweep-base", type=json.loads, default={},
                help="JSON: swept key -> base value, when the config sweeps (draws the sweep figures)"),
            arg("--captions", type=json.loads, default={}, help="JSON: table file name -> its caption"),
            arg("--out", required=True, help="the output folder (replaced as a whole)"),
        )),
    Job("config-doc", "the configuration reference, generated from the config schema",
        run=lambda a, c, d: _config_doc(a.out),
        args=(arg("--out", required=True),)),
    Job("validate-config", "check a config file and print it with defaults filled in",
        run=_validate_config,
        args=(
            arg("path"),
        )),

)


def _log_peak_gpu_memory() -> None:
    """A job that computed on CUDA logs its peak memory: what compute.memory_mb bounds (evaluation)
    and what a cluster's GPU must hold (benchmarks/gpu_check.py reads this line)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        peak = torch.cuda.max_memory_allocated() / 2 ** 20
        logging.getLogger("workflow").info("peak GPU memory %.1f MiB (torch.cuda.max_memory_allocated)", peak)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for job in JOBS:
        p = sub.add_parser(job.name, help=job.help)
        if job.common:
            _add_common(p)
        for flags, keywords in job.args:
            p.add_argument(*flags, **keywords)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .storage.artifacts import ArtifactError
    from .config import fill_defaults, merge_configs
    from .storage.datasets import DatasetError
    from .device import set_job

    cfg = fill_defaults(merge_configs(args.config, args.runtime)) if hasattr(args, "config") else fill_defaults({})
    job = next(j for j in JOBS if j.name == args.command)
    if getattr(args, "threads", None) and job.torch:  # a light job never imports torch (about 2 s per job)
        import torch

        torch.set_num_threads(args.threads)
    try:
        compute = cfg["compute"]
        # the device is decided when a job first computes with torch (device.use_device)
        set_job(compute["deterministic"], compute["mixed_precision"], gpus=getattr(args, "gpus", None))
        job.run(args, cfg, compute["device"])
        _log_peak_gpu_memory()
    except (ValueError, OSError, FloatingPointError, DatasetError, ArtifactError) as err:
        # bad input (a value, a file, data, an artifact, a diverging run): one clear line. Anything else
        # (KeyError, TypeError, ...) is a bug and keeps its traceback
        logging.getLogger("workflow").error("%s failed: %s", args.command, err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
