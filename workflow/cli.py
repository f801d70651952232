"""Command line of the package: ``python -m workflow <command> ...``; one command per job kind.

Configs travel as a JSON string (``--config``) holding the config sections the job depends on,
so a change elsewhere in config.yaml does not rerun it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=json.loads, default={}, help="the job's config sections as JSON")
    p.add_argument("--runtime", type=json.loads, default={},
                   help="runtime settings as JSON (device, checkpoint interval, data root), merged into --config")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs the job's rule requested (its gpu resource); with compute.device auto the job "
                        "computes on CUDA exactly when it was given a GPU. Without it, only a scheduler's "
                        "allocation to this job counts (workflow/device.py)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare-data", help="load, split and standardise the data set")
    _add_common(p)
    p.add_argument("--out", required=True)

    p = sub.add_parser("train", help="one posterior per seed (several seeds: methods that fit them together)")
    _add_common(p)
    p.add_argument("--method", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--seed", type=int, nargs="+", required=True)
    p.add_argument("--out", nargs="+", required=True, help="one output per seed, in the same order")
    p.add_argument("--checkpoint", default=None, help="resume file, written periodically and removed at the end")
    p.add_argument("--base", default=None, help="the posterior this method is fitted around (same seed), if any")

    p = sub.add_parser("align", help="permute posterior B into A's basin")
    _add_common(p)
    p.add_argument("--seeds", type=int, nargs=2, default=None, help="the seeds A and B must hold (checked)")
    p.add_argument("--kind", required=True)
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("barriers", help="the curves of several pairs in one table (one job per method and alignment)")
    _add_common(p)
    p.add_argument("--alignment", required=True, help="'naive', or an alignment kind (then B is an alignment file)")
    p.add_argument("--variant", default="base", help="sweep variant, recorded in the curve table")
    p.add_argument("--pairs", required=True, type=json.loads,
                   help="JSON list of [seed A, seed B, path A, path B] (B: a posterior, or an alignment file)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("barriers-within-chain", help="the control of sample-set barriers: two halves of each chain")
    _add_common(p)
    p.add_argument("--variant", default="base", help="sweep variant, recorded in the curve table")
    p.add_argument("--posteriors", nargs="+", required=True)
    p.add_argument("--seeds", type=int, nargs="+", required=True, help="the seed each posterior must hold (checked)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("rebasin", help="fit q_d and q_r to all samples of a method")
    _add_common(p)
    p.add_argument("--method", required=True)
    p.add_argument("--reference", required=True, help="'first' or 'iterated'")
    p.add_argument("--matching", required=True, help="'weight', 'activation' or 'correlation'")
    p.add_argument("--posteriors", nargs="+", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="the seed each posterior must hold (checked)")
    p.add_argument("--data", required=True)
    p.add_argument("--out-qd", required=True)
    p.add_argument("--out-qr", required=True)
    p.add_argument("--out-draws", required=True, help="CSV: per draw, the NoT of the permutation matching gave it")

    p = sub.add_parser("summarize-rebasin-draws", help="the rebasin control: per-draw NoT summed up per chain group")
    p.add_argument("--draws", nargs="+", required=True)
    p.add_argument("--variant", default="base")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)

    p = sub.add_parser("table1", help="Xiao et al.'s Table 1: predictives against the reference method's (HMC)")
    _add_common(p)
    p.add_argument("--posteriors", type=json.loads, required=True, help="JSON: method -> its posterior files")
    p.add_argument("--rebasin", type=json.loads, required=True, help="JSON: '<method>/<matching>/<reference>/<fit>' -> path")
    p.add_argument("--data", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-tex", required=True)
    p.add_argument("--out-diagnostics", required=True)

    p = sub.add_parser("basin", help="align other methods' Gaussians into the basin of the reference's q_r (W2)")
    _add_common(p)
    p.add_argument("--reference", required=True, help="the reference method's q_r (HMC's)")
    p.add_argument("--sources", type=json.loads, required=True, help="JSON: label -> Gaussian posterior")
    p.add_argument("--outs", type=json.loads, required=True, help="JSON: label -> alignment file to write")
    p.add_argument("--variant", default="base")
    p.add_argument("--out-csv", required=True)

    p = sub.add_parser("sigma-histograms", help="histograms of sigma of q_d, q_r and the Gaussian methods")
    p.add_argument("--rebasin", type=json.loads, default={}, help="JSON: '<method>/<matching>/<reference>/<fit>' -> path")
    p.add_argument("--gaussians", type=json.loads, default={}, help="JSON: Gaussian method -> its posterior files")
    p.add_argument("--variant", default="base")
    p.add_argument("--out-csv", required=True)

    p = sub.add_parser("pruning", help="accuracy of the mean networks pruned by sigma")
    _add_common(p)
    p.add_argument("--rebasin", type=json.loads, default={}, help="JSON: '<method>/<matching>/<reference>/<fit>' -> path")
    p.add_argument("--gaussians", type=json.loads, default={},
                   help="JSON: Gaussian method -> its first seed's posterior file")
    p.add_argument("--merged", type=json.loads, default=[],
                   help="JSON: [[reference q_r, alignment file of another q_r in its basin], ...]")
    p.add_argument("--data", required=True)
    p.add_argument("--variant", default="base")
    p.add_argument("--out-csv", required=True)

    p = sub.add_parser("not-k", help="train from initial weights permuted by k transpositions; NoT, distance, barrier")
    _add_common(p)
    p.add_argument("--k", type=int, nargs="+", required=True, help="one or several k (one retraining each)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--member", required=True, help="the member of that seed (a method that supports a permuted init)")
    p.add_argument("--data", required=True)
    p.add_argument("--variant", default="base")
    p.add_argument("--checkpoint", default=None, help="resume file, written periodically and removed at the end "
                   "(one per k, with a -k<k> suffix)")
    p.add_argument("--out", nargs="+", required=True, help="one CSV per k, in the same order")

    p = sub.add_parser("not-path", help="NoT from points of the path to its endpoints, naive and aligned")
    _add_common(p)
    p.add_argument("--method", required=True)
    p.add_argument("--a", nargs="+", required=True)
    p.add_argument("--b", nargs="+", required=True)
    p.add_argument("--alignments", nargs="+", required=True, help="alignment file of each pair (B into A's basin)")
    p.add_argument("--variant", default="base")
    p.add_argument("--out", required=True)

    p = sub.add_parser("concat-tables", help="many small CSV tables in one")
    p.add_argument("--tables", nargs="+", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("figure", help="a study's figure from its table: sigma, pruning, not_k, not_path")
    p.add_argument("--kind", required=True, help="the study: sigma, pruning, not_k, not_path")
    p.add_argument("--table", required=True)
    p.add_argument("--variant", default=None)
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", required=True)

    p = sub.add_parser("claims", help="judge every claim of both papers against a run's summary tables")
    p.add_argument("--tables", nargs="+", required=True)
    p.add_argument("--run-config", type=json.loads, required=True, help="JSON: the run's config (result sections)")
    p.add_argument("--variants", type=json.loads, default={"base": {}},
                   help="JSON: variant -> {swept dotted key: value}")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)

    p = sub.add_parser("job-resources", help="per-rule wall time and peak memory of a finished run (Snakemake's "
                       "benchmark files), and the cluster mem_mb and runtime they suggest")
    p.add_argument("--run", required=True, help="the run's folder, results/<name>")
    p.add_argument("--out-csv", help="also write the per-rule table here")

    p = sub.add_parser("results-doc", help="a finished run's claims and result tables as one Markdown page for docs/")
    p.add_argument("--run", required=True, help="the run's folder, results/<name>")
    p.add_argument("--config", dest="run_config_file", required=True, help="the config file the run used")
    p.add_argument("--variant", default="base")
    p.add_argument("--out", required=True)

    p = sub.add_parser("summarize-barriers", help="barrier table from the per-pair curves")
    p.add_argument("--curves", nargs="+", required=True)
    p.add_argument("--variants", type=json.loads, default={"base": {}},
                   help="JSON: variant -> {swept dotted key: value}")
    p.add_argument("--out-curves", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)

    p = sub.add_parser("figure-barriers", help="barrier curve figure of one method")
    p.add_argument("--curves", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--variant", default=None)
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", required=True)

    p = sub.add_parser("figure-sweep", help="barrier against each swept setting, for one method")
    p.add_argument("--table", required=True)
    p.add_argument("--base", type=json.loads, default={},
                   help="JSON: swept key -> base value; each panel holds the other swept keys at it")
    p.add_argument("--method", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", required=True)

    p = sub.add_parser("table-html", help="a CSV table as an HTML page (the report shows tables this way)")
    p.add_argument("--table", required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--caption", default="", help="the settings, seeds and pairs the table summarises")
    p.add_argument("--out", required=True)

    p = sub.add_parser("paper", help="every figure and table of both papers, from the summary tables alone")
    p.add_argument("--tables", nargs="+", required=True, help="the summary tables (results/<name>/tables/*.csv)")
    p.add_argument("--sweep-base", type=json.loads, default={},
                   help="JSON: swept key -> base value, when the config sweeps (draws the sweep figures)")
    p.add_argument("--captions", type=json.loads, default={}, help="JSON: table file name -> its caption")
    p.add_argument("--out", required=True, help="the output folder (replaced as a whole)")

    p = sub.add_parser("validate-config", help="check a config file and print it with defaults filled in")
    p.add_argument("path")
    return parser


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


def _job_resources(args, cfg, device) -> None:
    from .atomic import write_csv
    from .job_resources import markdown, read_benchmarks, summarize

    summary = summarize(read_benchmarks(args.run))
    print(markdown(summary))
    if args.out_csv:
        write_csv(args.out_csv, summary)


def _job(module: str, function: str):
    """A job function, imported only when its command runs (light commands stay light)."""
    import importlib

    return getattr(importlib.import_module(f"workflow.jobs.{module}"), function)


# commands that never compute with torch: they start without importing it (about 2 s per job)
LIGHT_COMMANDS = {"prepare-data", "align", "claims", "job-resources", "results-doc", "summarize-barriers", "summarize-rebasin-draws", "concat-tables", "figure", "figure-barriers",
                  "figure-sweep", "table-html", "paper", "validate-config"}

# command -> (args, config with defaults, device) -> None
COMMANDS = {
    "prepare-data": lambda a, c, d: _job("data", "prepare_data")(c["data"], a.out),
    "train": lambda a, c, d: _job("train", "train_posteriors")(a.method, a.data, a.seed, c, a.out,
                                                               checkpoint=a.checkpoint, device=d,
                                                               base_paths=[a.base] if a.base else None),
    "align": lambda a, c, d: _job("align", "align_pair")(a.kind, a.a, a.b, c, a.out, seeds=a.seeds),
    "barriers": lambda a, c, d: _job("metrics", "barrier_curves")(a.alignment, a.pairs, a.data, c, a.out, device=d,
                                                                  variant=a.variant),
    "barriers-within-chain": lambda a, c, d: _job("metrics", "within_chain_curves")(a.posteriors, a.seeds, a.data, c,
                                                                                a.out, device=d, variant=a.variant),
    "claims": lambda a, c, d: _job("claims", "claims_job")(a.tables, a.run_config, a.variants, a.out_csv, a.out_md),
    "results-doc": lambda a, c, d: _job("results_doc", "results_doc_job")(a.run, a.run_config_file, a.out,
                                                                           variant=a.variant),
    "summarize-barriers": lambda a, c, d: _job("metrics", "summarize_barriers")(a.curves, a.variants, a.out_curves,
                                                                                a.out_csv, a.out_md),
    "rebasin": lambda a, c, d: _job("rebasin", "rebasin_job")(a.method, a.posteriors, a.data, c, a.reference,
                                                              a.out_qd, a.out_qr, a.out_draws,
                                                              matching=a.matching, seeds=a.seeds),
    "summarize-rebasin-draws": lambda a, c, d: _job("rebasin", "summarize_draws")(a.draws, a.out_csv, a.out_md,
                                                                                 variant=a.variant),
    "table1": lambda a, c, d: _job("rebasin", "table1_job")(a.posteriors, a.rebasin, a.data, c, a.out_csv, a.out_md,
                                                            a.out_tex, a.out_diagnostics, device=d),
    "basin": lambda a, c, d: _job("studies", "basin_job")(a.reference, a.sources, a.outs, a.out_csv,
                                                          variant=a.variant, max_sweeps=c["alignment"]["max_sweeps"]),
    "sigma-histograms": lambda a, c, d: _job("studies", "sigma_histogram_job")(a.rebasin, a.gaussians, a.out_csv,
                                                                               variant=a.variant),
    "pruning": lambda a, c, d: _job("studies", "pruning_job")(a.rebasin, a.gaussians, a.merged, a.data, a.out_csv,
                                                              fractions=c["pruning"]["fractions"], variant=a.variant,
                                                              device=d, memory_mb=c["compute"]["memory_mb"]),
    "not-k": lambda a, c, d: _job("studies", "not_k_jobs")(a.k, a.seed, a.member, a.data, c, a.out, variant=a.variant,
                                                           device=d, checkpoint=a.checkpoint),
    "not-path": _not_path,
    "concat-tables": lambda a, c, d: _job("studies", "concat_tables")(a.tables, a.out),
    "figure": lambda a, c, d: _job("figures", "study_figure")(a.kind, a.table, a.png, a.pdf, variant=a.variant),
    "figure-barriers": lambda a, c, d: _job("figures", "barrier_figure")(a.curves, a.method, a.png, a.pdf,
                                                                         variant=a.variant),
    "figure-sweep": lambda a, c, d: _job("figures", "sweep_figure")(a.table, a.method, a.png, a.pdf, base=a.base),
    "table-html": lambda a, c, d: _job("report", "table_html_job")(a.table, a.out, title=a.title, caption=a.caption),
    "paper": lambda a, c, d: _job("paper", "paper_job")(a.tables, a.out, sweep_base=a.sweep_base,
                                                        captions=a.captions),
    "validate-config": _validate_config,
    "job-resources": _job_resources,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .artifacts import ArtifactError
    from .config import fill_defaults, merge_configs
    from .data import DatasetError
    from .device import set_job

    cfg = fill_defaults(merge_configs(args.config, args.runtime)) if hasattr(args, "config") else fill_defaults({})
    if getattr(args, "threads", None) and args.command not in LIGHT_COMMANDS:
        import torch

        torch.set_num_threads(args.threads)
    try:
        compute = cfg["compute"]
        # the device is decided when a job first computes with torch (device.use_device)
        set_job(compute["deterministic"], compute["mixed_precision"], gpus=getattr(args, "gpus", None))
        COMMANDS[args.command](args, cfg, compute["device"])
    except (ValueError, OSError, FloatingPointError, DatasetError, ArtifactError) as err:
        # bad input (a value, a file, data, an artifact, a diverging run): one clear line. Anything else
        # (KeyError, TypeError, ...) is a bug and keeps its traceback
        logging.getLogger("workflow").error("%s failed: %s", args.command, err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
