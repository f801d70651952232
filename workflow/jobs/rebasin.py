"""Stage rebasin: Gaussians fitted to a method's samples before (q_d) and after (q_r) aligning them
into one basin, and Xiao et al.'s Table 1 of every predictive against the reference method's."""

from __future__ import annotations

import functools
import json
import logging

import numpy as np
import pandas as pd

from ..storage import artifacts
from .. import methods, tables
from ..storage.artifacts import Posterior
from ..storage.atomic import write_csv, write_text
from ..device import device_label, use_device
from ..storage.prepared import load_prepared
from .inputs import pooled_samples, read_posterior, read_sample_sets

log = logging.getLogger(__name__)

FITS = ("q_d", "q_r")


def fit_label(method: str, fit: str, reference: str | None = None, matching: str | None = None) -> str:
    """Column and legend label of a fitted Gaussian, as in Table 1: 'HMC q_d', 'Ens. q_r (weight, first ref.)'."""
    return f"{methods.label(method)} {fit}" + (f" ({matching}, {reference} ref.)" if fit == "q_r" else "")


def parse_fit_key(key: str) -> tuple[str, str, str, str]:
    """'<method>/<matching>/<reference>/<fit>' -> (method, matching, reference, fit), with a clear error otherwise."""
    from ..alignment.matchers import SAMPLE_MATCHERS, names
    from ..alignment.rebasing import REFERENCES

    matchings = names(SAMPLE_MATCHERS)
    parts = key.split("/")
    if len(parts) != 4 or parts[3] not in FITS or parts[0] not in methods.names() \
            or methods.kind(parts[0]) != "samples" or parts[1] not in matchings or parts[2] not in REFERENCES:
        raise ValueError(f"rebasin key {key!r} is not '<sample method>/<matching>/<reference>/<q_d|q_r>' (sample "
                         f"methods: {', '.join(methods.of_kind(methods.names(), 'samples'))}; matchings: "
                         f"{', '.join(matchings)}; references: {', '.join(REFERENCES)})")
    return parts[0], parts[1], parts[2], parts[3]


def chain_labels(posts: list[Posterior]) -> list[str]:
    """The chain of every pooled draw (pooled_samples order): the seed, and the chain within the file
    where a file holds several ('3.1')."""
    labels = []
    for post in posts:
        n_chains, n_draws = next(iter(post.samples.values())).shape[:2]
        labels += [str(post.seed) if n_chains == 1 else f"{post.seed}.{c}" for c in range(n_chains)
                   for _ in range(n_draws)]
    return labels


def activation_points(hook, model, params: dict, x, requested: int | None, budget_mb: float, matching: str) -> int:
    """How many training examples activation matching reads: rebasin.activation_points (None: all of
    them). Refused, before any is computed, when the activations of the two networks that matching
    compares would exceed the job's memory budget (compute.memory_mb): a ResNet20's float64
    activations take about a megabyte per 28x28 example, and all 8,000 of MNIST t10k were killed for
    memory at 19 GB."""
    n = len(x) if requested is None else min(int(requested), len(x))
    probe = hook(model, params, x[:2])
    per_example = sum(np.asarray(a).nbytes for a in probe.values()) / min(2, len(x))
    need_mb = 2 * per_example * n / 2**20
    if need_mb > budget_mb:
        fits = int(budget_mb * 2**20 // (2 * per_example))
        raise ValueError(f"rebasin matching {matching!r}: the hidden activations of {n} examples take about "
                         f"{need_mb:,.0f} MB for the two networks it compares, above compute.memory_mb {budget_mb:g}; "
                         f"set rebasin.activation_points to at most {fits}, or raise compute.memory_mb")
    return n


def rebasin_job(method: str, paths, data_path, cfg: dict, reference: str, out_qd, out_qr, out_draws, *,
                matching: str = "weight", seeds=None) -> None:
    """Fit q_d (samples as they are) and q_r (after aligning every sample to one reference by
    ``matching``); ``out_draws``: per draw, the NoT matching applied (rebasin.draw_diagnostics)."""
    from .. import architectures
    from ..alignment import matchers
    from ..alignment.rebasing import draw_diagnostics, fit_diagonal_gaussian, rebase

    data = load_prepared(data_path)
    posts = read_sample_sets(paths, seeds, data)
    samples = pooled_samples(posts)
    first = posts[0]
    model, spec = first.build_model()
    rcfg = cfg["rebasin"]
    activations = None
    if matchers.get(matching).compares == matchers.ACTIVATIONS:
        hook = architectures.hook(first.architecture, "hidden_activations")
        if hook is None:
            raise ValueError(f"rebasin matching {matching!r} needs the hidden_activations hook, which architecture "
                             f"{first.architecture!r} does not provide; use 'weight'")
        points = activation_points(hook, model, {k: v[0] for k, v in samples.items()}, data["x_train"],
                                   rcfg["activation_points"], cfg["compute"]["memory_mb"], matching)
        activations = functools.partial(hook, model, x=data["x_train"][:points])
    result = rebase(samples, spec, reference=reference, matching=matching, activations=activations,
                    max_iterations=rcfg["max_iterations"])
    n = len(next(iter(samples.values())))
    chains = chain_labels(posts)
    draws = pd.DataFrame(draw_diagnostics(result.perms, chains, samples, spec))
    draws.insert(0, "method", method)
    draws.insert(1, "matching", matching)
    draws.insert(2, "reference", reference)
    # the chain whose first draw is (first) or seeded (iterated) the reference
    draws["reference_chain"] = draws["chain"] == chains[0]
    # an iterated reference that still moved at its last update is not MergeMany's fixed point
    draws["reference_updates"] = result.iterations
    draws["reference_settled"] = reference == "first" or bool(result.changed and result.changed[-1] == 0)
    log.info("%s rebasin (%s reference, %s matching): %d samples, %d reference updates, changed %s; draws "
             "left unpermuted %d of %d", method, reference, matching, n, result.iterations, result.changed,
             int((draws["not_to_reference"] == 0).sum()), n)
    write_csv(out_draws, draws)
    info = {"reference": reference, "matching": matching, "n_samples": int(n),
            "reference_updates": result.iterations, "sources": json.dumps([str(p) for p in paths])}
    for fit, arrays, out in (("q_d", samples, out_qd), ("q_r", result.aligned, out_qr)):
        mean, std = fit_diagonal_gaussian(arrays)
        artifacts.write_posterior(out, Posterior(
            kind="gaussian", method=method, architecture=first.architecture,
            architecture_args=first.architecture_args, dataset=first.dataset, input_shape=first.input_shape,
            n_classes=first.n_classes, seed=first.seed, mean=mean, std=std, config=cfg,
            diagnostic_attrs={"fit": fit, **info}))


def summarize_draws(draw_paths, out_csv, out_md, *, variant: str = "base") -> None:
    """The rebasin control per (method, matching, reference) and group of draws (the reference's chain,
    the other chains): how many draws matching left unpermuted, their mean NoT to the reference, and
    how many were permuted unlike their chain's first draw, and how far into a chain that starts
    (``first_permuted_lag``, median over chains; empty when never), with how much that draw's units
    still resembled the chain's start (``unit_corr_at_first_permuted``, no matching involved): a draw
    permuted while its units still match the chain's start (correlation near 1) is matching noise; one
    permuted after the chain moved its units (near 0) shows the chain itself travelled across unit
    labellings."""
    draws = pd.concat([pd.read_csv(p, dtype={"chain": str}) for p in draw_paths], ignore_index=True)
    draws["draws_of"] = np.where(draws["reference_chain"], "reference chain", "other chains")
    rows = []
    for (method, matching, reference, group), g in draws.groupby(
            ["method", "matching", "reference", "draws_of"], sort=False):
        lag, corr = _first_permuted(g)
        rows.append({"variant": variant, "method": method, "matching": matching, "reference": reference,
                     "draws_of": group, "chains": g["chain"].nunique(), "draws": len(g),
                     "unpermuted_share": float((g["not_to_reference"] == 0).mean()),
                     "not_to_reference_mean": float(g["not_to_reference"].mean()),
                     "permuted_unlike_chain_share": float((g["not_to_chain_start"] > 0).mean()),
                     "not_to_chain_start_mean": float(g["not_to_chain_start"].mean()),
                     "first_permuted_lag": lag, "unit_corr_at_first_permuted": corr,
                     "units": int(g["units"].iloc[0]), "reference_updates": int(g["reference_updates"].iloc[0]),
                     "reference_settled": bool(g["reference_settled"].iloc[0])})
    table = pd.DataFrame(rows)
    write_csv(out_csv, table)
    write_text(out_md, draws_markdown(table))


def draws_markdown(table: pd.DataFrame) -> str:
    """The rebasin control table as printed (summarize_draws' CSV without the variant column)."""
    return tables.markdown(table.drop(columns="variant").set_index("method"), index_name="method")


def _first_permuted(draws: pd.DataFrame) -> tuple[float, float]:
    """Median over chains of the first draw (counted from the chain's start) that matching permuted
    unlike the chain's first draw, and of that draw's unit correlation with the chain's start; NaN
    when no chain has one."""
    lags, corrs = [], []
    for _, g in draws.groupby("chain"):
        permuted = g[g["not_to_chain_start"] > 0]
        if len(permuted):
            first = permuted.loc[permuted["draw_in_chain"].idxmin()]
            lags.append(first["draw_in_chain"])
            corrs.append(first.get("unit_corr_to_chain_start", np.nan))
    if not lags:
        return float("nan"), float("nan")
    return float(np.median(lags)), float(np.nanmedian(corrs)) if not np.all(np.isnan(corrs)) else float("nan")


def table1_columns(posterior_paths: dict, rebasin_paths: dict) -> list[tuple[str, str, object]]:
    """(label, what, source) per column, in the paper's order: for every sample method (the reference
    first) its samples, q_d and q_r per reference; then every Gaussian method's q (its first seed)."""
    from ..alignment.matchers import names as matchings
    from ..alignment.rebasing import REFERENCES

    selected = list(posterior_paths)
    ref = methods.reference_method(selected)
    sample_methods = [ref] + [m for m in methods.of_kind(selected, "samples") if m != ref]
    cols = []
    for m in sample_methods:
        cols.append((f"{methods.label(m)} samples", "samples", posterior_paths[m]))
        fits = sorted((parse_fit_key(k) + (k,) for k in rebasin_paths if k.startswith(f"{m}/")),
                      key=lambda f: (f[3], matchings().index(f[1]), REFERENCES.index(f[2])))
        for _, matching, reference, fit, key in fits:
            label = fit_label(m, fit, reference, matching)
            if label not in [c[0] for c in cols]:  # q_d depends on neither the matching nor the reference
                cols.append((label, "fit", rebasin_paths[key]))
    for m in methods.of_kind(selected, "gaussian"):
        cols.append((f"{methods.label(m)} q", "gaussian", posterior_paths[m][0]))
    return cols


def table1_job(posterior_paths: dict, rebasin_paths: dict, data_path, cfg: dict, out_csv, out_md, out_tex,
               out_diag, *, device: str = "auto", out_replicates=None) -> None:
    """Xiao et al.'s Table 1: every predictive against the reference method's (agreement, TV), accuracies
    and NLL, each with its 95% bootstrap interval (``low``, ``high``; ``evaluation.bootstrap``: test points,
    and the reference's chains where it has 3 or more). ``posterior_paths``: method -> its posteriors (seed
    order); ``rebasin_paths``: '<method>/<matching>/<reference>/<fit>' -> Gaussian fit. The bootstrap replicates
    go to ``out_replicates`` (the claims derive their intervals from them). The reference chains' convergence on
    p(y|x) at the test points goes to ``out_diag``: the share of test points whose rank-normalised R-hat
    meets 1.01 and 1.1, chainwise and nested R-hat, bulk and tail ESS
    (``mcmc_diagnostics.predictive_convergence`` and ``summary``)."""
    from ..evaluation import bootstrap
    from ..evaluation.compare import accuracy, agreement, expected_calibration_error, total_variation
    from ..evaluation.mcmc_diagnostics import predictive_convergence
    from ..evaluation.mcmc_diagnostics import summary as chain_summary
    from ..evaluation.predict import log_predictive, sample_label_log_probs

    ref = methods.reference_method(list(posterior_paths))
    if ref is None:
        raise ValueError(f"Table 1 compares with a reference method ({', '.join(m for m in methods.names() if methods.is_reference(m))}); "
                         f"none among {sorted(posterior_paths)}")
    data = load_prepared(data_path)
    dev = use_device(device)
    x, y = data["x_test"].to(dev), data["y_test"].to(dev)
    budget, n_mc, seed = cfg["compute"]["memory_mb"], cfg["table"]["mc_samples"], cfg["table"]["seed"]
    reference_posts = read_sample_sets(posterior_paths[ref], data=data, what="Table 1")
    model, _ = reference_posts[0].build_model()
    model.to(dev)
    columns, units = {}, {}  # units: a sample column's predictive per chain or member, for the bootstrap
    for label, what, source in table1_columns(posterior_paths, rebasin_paths):
        if what == "samples":
            posts = reference_posts if source is posterior_paths[ref] else read_sample_sets(source, data=data,
                                                                                              what="Table 1")
            reference_posts[0].check_compatible(posts[0], f"Table 1 column {label}")
            logp, logp_mean = log_predictive(model, _pooled_source(posts), x, memory_mb=budget), None
            units[label] = np.stack([log_predictive(model, source, x, memory_mb=budget).exp().cpu().numpy()
                                     for _, source in _unit_sources(posts)])
        else:
            # rebasin fits were checked against the data by their own job
            post = read_posterior(source, data=data if what == "gaussian" else None, kind="gaussian", what="Table 1")
            reference_posts[0].check_compatible(post, f"Table 1 column {label}", same_kind=False)
            logp = log_predictive(model, post.sample_source(n_mc, seed), x, memory_mb=budget)
            logp_mean = log_predictive(model, post.mean_network(), x, memory_mb=budget)
            if what == "gaussian" and post.predictive == "glm":  # the sampled predictive beside it
                columns[label] = (logp, logp_mean)
                label = f"{label} (sampled)"
                logp = log_predictive(model, post.sample_source(n_mc, seed, "sample"), x, memory_mb=budget)
        columns[label] = (logp, logp_mean)
    ref_label = f"{methods.label(ref)} samples"
    p_ref = columns[ref_label][0].exp().cpu().numpy()
    y_np = y.cpu().numpy()
    rows, per_point = [], {}
    for label, (logp, logp_mean) in columns.items():
        p = logp.exp().cpu().numpy()
        # from log-probabilities: -log of a float32 probability underflows for confident errors
        logp_y = logp.double().gather(1, y[:, None])[:, 0].cpu().numpy()
        p_mean = logp_mean.exp().cpu().numpy() if logp_mean is not None else None
        per_point[label] = (p, p_mean, logp_y)
        values = {"agreement with HMC": agreement(p, p_ref), "TV to HMC": total_variation(p, p_ref),
                  "test accuracy %": 100 * accuracy(p, y_np),
                  "test accuracy % of mean network": (100 * accuracy(p_mean, y_np) if p_mean is not None else np.nan),
                  "test NLL": float(-logp_y.mean()),
                  "test ECE": expected_calibration_error(p, y_np)}
        rows += [{"metric": m, "column": label, "value": values[m]} for m in tables.TABLE1_METRICS]
    replicates = bootstrap.table1_replicates(units, per_point, y_np, ref_label, seed=seed)
    table = pd.DataFrame(rows)
    bounds = [bootstrap.interval(replicates[bootstrap.replicate_column(m, c)])
              if m in bootstrap.REPLICATE_METRICS else (np.nan, np.nan) for m, c in zip(table["metric"], table["column"])]
    table["low"], table["high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    table["interval"] = bootstrap.scheme({label: len(u) for label, u in units.items()})
    if out_replicates is not None:
        write_csv(out_replicates, replicates)
    write_csv(out_csv, table.assign(device=device_label()))
    wide = tables.table1_wide(table)
    write_text(out_md, tables.markdown(wide, index_name="metric"))
    write_text(out_tex, tables.latex(wide, index_name="metric"))
    # convergence of the chains, judged on predictive quantities (unchanged by permutations)
    chain_sources = _unit_sources(reference_posts)
    chains = np.stack([sample_label_log_probs(model, source, x, y, memory_mb=budget).exp().cpu().numpy()
                       for _, source in chain_sources])  # [chains, draws, N]
    diag = {"method": ref, "chains": len(chains), "draws_per_chain": chains.shape[1]}
    if chains.shape[1] >= 4:
        diag.update(chain_summary(chains))
        # the chains of one file share its start (one seed): nested R-hat's superchains
        diag.update(predictive_convergence(chains, [seed for seed, _ in chain_sources]))
    for p in reference_posts:
        diag[f"acceptance_seed{p.seed}"] = float(p.diagnostic_attrs.get("acceptance_rate", np.nan))
        diag[f"divergences_seed{p.seed}"] = int(p.diagnostic_attrs.get("divergences", 0))
    diag["device"] = device_label()
    write_csv(out_diag, pd.DataFrame([diag]))


def _unit_sources(posts) -> list:
    """(seed, draws) of every chain (or member) of the posteriors: the units a bootstrap resamples."""
    from ..evaluation.predict import Stacked

    return [(post.seed, Stacked({k: v[c] for k, v in post.samples.items()})) for post in posts
            for c in range(next(iter(post.samples.values())).shape[0])]


def _pooled_source(posts):
    from ..evaluation.predict import Stacked

    return Stacked(pooled_samples(posts))
