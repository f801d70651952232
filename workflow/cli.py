"""Command line of the package: ``python -m workflow <command> ...``; one command per job kind.

Configs travel as a JSON string (``--config``) holding the config sections the job depends on,
so a change elsewhere in config.yaml does not rerun it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import torch


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=json.loads, default={}, help="the job's config sections as JSON")
    p.add_argument("--runtime", type=json.loads, default={},
                   help="runtime settings as JSON (device, checkpoint interval, data root), merged into --config")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")


# figure kind -> function name in workflow.figures (imported only when a figure is drawn)
FIGURES = {"sigma": "sigma_histogram_figure", "pruning": "pruning_figure", "not_k": "not_k_figure",
           "not_path": "not_path_figure"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare-data", help="load, split and standardise the data set")
    _add_common(p)
    p.add_argument("--out", required=True)

    p = sub.add_parser("train", help="one posterior for one seed")
    _add_common(p)
    p.add_argument("--method", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoint", default=None, help="resume file, written periodically and removed at the end")

    p = sub.add_parser("align", help="permute posterior B into A's basin")
    _add_common(p)
    p.add_argument("--seeds", type=int, nargs=2, default=None, help="the seeds A and B must hold (checked)")
    p.add_argument("--kind", required=True)
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("barrier", help="loss and error along the path from A to B (or to B aligned)")
    _add_common(p)
    p.add_argument("--alignment", required=True, help="'naive', or an alignment kind (then --b is an alignment file)")
    p.add_argument("--variant", default="base", help="sweep variant, recorded in the curve table")
    p.add_argument("--seeds", type=int, nargs=2, default=None, help="the seeds A and B must hold (checked)")
    p.add_argument("--a", required=True)
    p.add_argument("--b", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("rebasin", help="fit q_d and q_r to all samples of a method")
    _add_common(p)
    p.add_argument("--method", required=True)
    p.add_argument("--reference", required=True, help="'first' or 'iterated'")
    p.add_argument("--posteriors", nargs="+", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="the seed each posterior must hold (checked)")
    p.add_argument("--data", required=True)
    p.add_argument("--out-qd", required=True)
    p.add_argument("--out-qr", required=True)

    p = sub.add_parser("table1", help="Xiao et al.'s Table 1: predictives against HMC's")
    _add_common(p)
    p.add_argument("--hmc", nargs="+", required=True)
    p.add_argument("--ensemble", nargs="*", default=[])
    p.add_argument("--vi", nargs="*", default=[])
    p.add_argument("--rebasin", type=json.loads, required=True, help="JSON: '<method>/<reference>/<fit>' -> path")
    p.add_argument("--data", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-tex", required=True)
    p.add_argument("--out-diagnostics", required=True)

    p = sub.add_parser("hmc-basin", help="align other methods' Gaussians into the basin of HMC's q_r (W2)")
    _add_common(p)
    p.add_argument("--reference", required=True, help="HMC's q_r")
    p.add_argument("--sources", type=json.loads, required=True, help="JSON: label -> Gaussian posterior")
    p.add_argument("--outs", type=json.loads, required=True, help="JSON: label -> alignment file to write")
    p.add_argument("--variant", default="base")
    p.add_argument("--out-csv", required=True)

    p = sub.add_parser("sigma-histograms", help="histograms of sigma of q_d, q_r and VI")
    p.add_argument("--rebasin", type=json.loads, default={}, help="JSON: '<method>/<reference>/<fit>' -> path")
    p.add_argument("--vi", nargs="*", default=[])
    p.add_argument("--variant", default="base")
    p.add_argument("--out-csv", required=True)

    p = sub.add_parser("pruning", help="accuracy of the mean networks pruned by sigma")
    _add_common(p)
    p.add_argument("--rebasin", type=json.loads, default={}, help="JSON: '<method>/<reference>/<fit>' -> path")
    p.add_argument("--vi", nargs="*", default=[])
    p.add_argument("--merged", nargs=2, default=None, metavar=("HMC_Q_R", "ENSEMBLE_IN_HMC_BASIN"),
                   help="add the ensemble mean pruned by HMC's sigma")
    p.add_argument("--data", required=True)
    p.add_argument("--variant", default="base")
    p.add_argument("--out-csv", required=True)

    p = sub.add_parser("not-k", help="train from initial weights permuted by k transpositions; NoT, distance, barrier")
    _add_common(p)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--member", required=True, help="the ensemble member of that seed")
    p.add_argument("--data", required=True)
    p.add_argument("--variant", default="base")
    p.add_argument("--checkpoint", default=None, help="resume file, written periodically and removed at the end")
    p.add_argument("--out", required=True)

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
    p.add_argument("--kind", required=True, choices=sorted(FIGURES))
    p.add_argument("--table", required=True)
    p.add_argument("--variant", default=None)
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", required=True)

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

    p = sub.add_parser("validate-config", help="check a config file and print it with defaults filled in")
    p.add_argument("path")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    from . import jobs, studies  # after logging is set up
    from .data import DatasetError

    if hasattr(args, "config"):
        from .config import merge_configs

        args.config = merge_configs(args.config, args.runtime)
    device = getattr(args, "config", {}).get("compute", {}).get("device", "auto")
    try:
        if args.command == "prepare-data":
            jobs.prepare_data(args.config["data"], args.out)
        elif args.command == "train":
            jobs.train_posterior(args.method, args.data, args.seed, args.config, args.out,
                                 checkpoint=args.checkpoint, device=device)
        elif args.command == "align":
            jobs.align_pair(args.kind, args.a, args.b, args.config, args.out, seeds=args.seeds)
        elif args.command == "barrier":
            jobs.barrier_curve(args.alignment, args.a, args.b, args.data, args.config, args.out, device=device,
                               variant=args.variant, seeds=args.seeds)
        elif args.command == "rebasin":
            jobs.rebasin_job(args.method, args.posteriors, args.data, args.config, args.reference, args.out_qd,
                             args.out_qr, seeds=args.seeds)
        elif args.command == "table1":
            jobs.table1_job(args.hmc, args.ensemble, args.vi, args.rebasin, args.data, args.config, args.out_csv,
                            args.out_md, args.out_tex, args.out_diagnostics, device=device)
        elif args.command == "hmc-basin":
            studies.hmc_basin_job(args.reference, args.sources, args.outs, args.out_csv, variant=args.variant,
                                  max_sweeps=args.config.get("alignment", {}).get("max_sweeps", 100))
        elif args.command == "sigma-histograms":
            studies.sigma_histogram_job(args.rebasin, args.vi, args.out_csv, variant=args.variant)
        elif args.command == "pruning":
            if "fractions" not in args.config.get("pruning", {}):
                raise ValueError("pruning needs the fractions to keep: --config '{\"pruning\": {\"fractions\": [...]}}'")
            studies.pruning_job(args.rebasin, args.vi, args.merged, args.data, args.out_csv,
                                fractions=args.config["pruning"]["fractions"], variant=args.variant, device=device)
        elif args.command == "not-k":
            studies.not_k_job(args.k, args.seed, args.member, args.data, args.config, args.out, variant=args.variant,
                              device=device, checkpoint=args.checkpoint)
        elif args.command == "not-path":
            if not len(args.a) == len(args.b) == len(args.alignments):
                raise ValueError(f"--a, --b and --alignments must name as many files each, got {len(args.a)}, "
                                 f"{len(args.b)} and {len(args.alignments)}")
            studies.not_path_job(args.method, list(zip(args.a, args.b, args.alignments)), args.out,
                                 n_points=args.config.get("barrier", {}).get("n_points", 21), variant=args.variant,
                                 max_sweeps=args.config.get("alignment", {}).get("max_sweeps", 100))
        elif args.command == "concat-tables":
            studies.concat_tables(args.tables, args.out)
        elif args.command == "figure":
            import pandas as pd

            from . import figures

            getattr(figures, FIGURES[args.kind])(pd.read_csv(args.table), args.png, args.pdf, variant=args.variant)
        elif args.command == "summarize-barriers":
            jobs.summarize_barriers(args.curves, args.variants, args.out_curves, args.out_csv, args.out_md)
        elif args.command == "figure-barriers":
            import pandas as pd

            from .figures import barrier_curves_figure

            barrier_curves_figure(pd.read_csv(args.curves), args.method, args.png, args.pdf, variant=args.variant)
        elif args.command == "figure-sweep":
            import pandas as pd

            from .figures import barrier_sweep_figure

            barrier_sweep_figure(pd.read_csv(args.table), args.method, args.png, args.pdf, base=args.base)
        elif args.command == "validate-config":
            from .config import load_config

            print(json.dumps(load_config(args.path), indent=2))
    except (ValueError, KeyError, OSError, FloatingPointError, DatasetError) as err:
        # known failure kinds: one clear line instead of a traceback
        logging.getLogger("workflow").error("%s failed: %s", args.command, err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
