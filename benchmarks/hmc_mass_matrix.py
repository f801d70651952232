"""Benchmark: HMC mixing with the identity against the adapted diagonal mass matrices (hmc.mass_matrix:
diagonal, from the draws; ggn, the diagonal Laplace variance at the position), on the default
config's digits MLP and HMC settings, same seeds, same budget of gradients.

Mixing is judged on the test predictive p(y_n | x_n, w) (unchanged by hidden-unit permutations): the
median over test points of its effective sample size, per chain and per second of sampling, and
the median split R-hat across chains. Prints one row per measure, one column per metric and each
metric's ratio to the identity's. Not a test: run it by hand (about 20 s per chain and metric on 2
CPU cores),

    python benchmarks/hmc_mass_matrix.py [--config config.yaml] [--chains 2] [--threads 2]
                                         [--metrics identity,diagonal,ggn]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "config.yaml"))
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--metrics", default="identity,diagonal,ggn",
                        help="comma-separated hmc.mass_matrix values; the first is the ratios' baseline")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    from workflow.architectures import build_model
    from workflow.config import load_config, model_args
    from workflow.storage.datasets import load_dataset
    from workflow.inference.hmc_sampler import MASS_MATRICES, HmcSettings
    from workflow.evaluation.mcmc_diagnostics import ess_bulk, rhat
    from workflow.inference.hmc_bnn import sample_bnn
    from workflow.evaluation.predict import Stacked, sample_label_log_probs

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    d = cfg["data"]
    ds = load_dataset(d["dataset"], d["root"], split_seed=d["split_seed"], test_fraction=d["test_fraction"],
                      n_train=d["n_train"], n_test=d["n_test"], download=False)
    x, y = torch.as_tensor(ds.x_train), torch.as_tensor(ds.y_train)
    xt, yt = torch.as_tensor(ds.x_test), torch.as_tensor(ds.y_test)
    keys = {f.name for f in dataclasses.fields(HmcSettings)}
    base = HmcSettings(**{k: v for k, v in cfg["hmc"].items() if k in keys} | {"checkpoint_every": 0})
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = sorted(set(metrics) - set(MASS_MATRICES))
    if unknown or not metrics:
        parser.error(f"--metrics: unknown {', '.join(unknown) or '(none given)'}; allowed: {', '.join(MASS_MATRICES)}")
    rows = {}
    for metric in metrics:
        settings = dataclasses.replace(base, mass_matrix=metric)
        probs, seconds, accept = [], 0.0, []
        for seed in range(args.chains):
            model, _ = build_model(cfg["model"]["architecture"], ds.input_shape, ds.n_classes, **model_args(cfg))
            start = time.perf_counter()
            draws, result = sample_bnn(model, x, y, settings, prior_std=cfg["prior"]["std"], seed=seed,
                                       device=torch.device("cpu"), data_chunk=cfg["hmc"]["data_chunk"])
            seconds += time.perf_counter() - start
            accept.append(result.acceptance_rate)
            stack = {k: torch.as_tensor(v) for k, v in draws.items()}
            probs.append(sample_label_log_probs(model, Stacked(stack), xt, yt).exp().numpy())  # [draws, N]
        chains = np.stack(probs)  # [chains, draws, N]
        ess = ess_bulk(chains)
        rows[metric] = {"median bulk ESS of p(y|x), all chains": float(np.nanmedian(ess)),
                        "ESS per second of sampling": float(np.nanmedian(ess)) / seconds,
                        "median R-hat (rank-normalised)": float(np.nanmedian(rhat(chains))) if args.chains > 1 else np.nan,
                        "seconds of sampling": seconds, "acceptance": float(np.mean(accept))}
    print(f"# {platform.machine()}, {args.threads} threads, torch {torch.__version__}; config {Path(args.config).name}: "
          f"{base.n_warmup} warm-up, {base.n_samples} draws x thinning {base.thinning}, L = {base.n_leapfrog}, "
          f"{args.chains} chain(s)")
    base_metric = metrics[0]
    ratios = [f"{m} / {base_metric}" for m in metrics[1:]]
    print(f"{'measure':<34} " + " ".join(f"{m:>10}" for m in metrics) + " " + " ".join(f"{r:>18}" for r in ratios))
    for name in rows[base_metric]:
        a = rows[base_metric][name]
        values = " ".join(f"{rows[m][name]:>10.3g}" for m in metrics)
        print(f"{name:<34} {values} " + " ".join(f"{rows[m][name] / a if a else np.nan:>18.2f}" for m in metrics[1:]))


if __name__ == "__main__":
    main()
