"""One function per workflow job: read inputs, call the science code, write outputs atomically.

Snakemake rules reach these through ``python -m workflow <command>`` (see cli.py); nothing here
knows about Snakemake, so every job can also be run by hand or from a notebook.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import artifacts, barriers
from .artifacts import Alignment, ArtifactError, Posterior
from .atomic import atomic_path, write_csv, write_text
from .config import model_args, result_config, table_cell
from .matching import weight_matching
from .models import build_model
from .permutations import apply_permutation, number_of_transpositions
from .predict import (gaussian_samples, marginal_loss_error, predictive, resolve_device, sample_log_probs,
                      standard_normal_like, to_torch)
from .hmc import HmcSettings
from .hmc_bnn import sample_bnn
from .training import MapSettings, train_map
from .vi import ViSettings, train_vi

log = logging.getLogger(__name__)

DATA_FORMAT = "bnn-dataset"


# ---------------------------------------------------------------- data


def prepare_data(data_cfg: dict, out: str | os.PathLike) -> None:
    """Load and split the data set once; every later job reads this file."""
    from .data import load_dataset

    ds = load_dataset(data_cfg["dataset"], data_cfg.get("root", "data"), split_seed=data_cfg.get("split_seed", 0),
                      test_fraction=data_cfg.get("test_fraction", 0.25), n_train=data_cfg.get("n_train"),
                      n_test=data_cfg.get("n_test"), download=data_cfg.get("download", False))
    with atomic_path(out) as tmp:
        np.savez(tmp, format=DATA_FORMAT, name=ds.name, n_classes=ds.n_classes, config=json.dumps(data_cfg),
                 x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    log.info("%s: %d train / %d test examples, input %s, %d classes", ds.name, len(ds.y_train), len(ds.y_test),
             ds.input_shape, ds.n_classes)


def load_prepared(path: str | os.PathLike) -> dict:
    """The prepared data set as torch tensors (CPU), validated."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != DATA_FORMAT:
                raise ValueError(f"format {z['format']!r}")
            data = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            name, n_classes, data_cfg = str(z["name"]), int(z["n_classes"]), json.loads(str(z["config"]))
    except (OSError, KeyError, ValueError, EOFError) as err:
        raise ArtifactError(f"{path}: not a prepared data set written by 'prepare-data' ({err})") from err
    out = {k: torch.from_numpy(v) for k, v in data.items()}
    out.update(name=name, n_classes=n_classes, input_shape=tuple(data["x_train"].shape[1:]), config=data_cfg)
    return out


def _data_identity(data_cfg: dict) -> dict:
    return result_config({"name": "", "data": data_cfg}, ["data"])["data"]


def check_posterior(post: Posterior, path, *, seed: int | None = None, data: dict | None = None) -> None:
    """Refuse a posterior whose stored seed is not the one its place in the workflow says, or
    that was trained on another data set or split than the one it is evaluated with."""
    if seed is not None and post.seed != seed:
        raise ArtifactError(f"{path}: holds the posterior of seed {post.seed}, but is used as seed {seed} "
                            "(a file copied or renamed by hand?)")
    if data is not None and "data" in post.config:
        if _data_identity(post.config["data"]) != _data_identity(data["config"]):
            raise ArtifactError(f"{path}: was trained on data {_data_identity(post.config['data'])}, but is "
                                f"evaluated on {_data_identity(data['config'])}")


# ---------------------------------------------------------------- posteriors


POSTERIOR_METHODS = ("ensemble", "vi", "hmc")


def train_posterior(method: str, data_path, seed: int, cfg: dict, out, *, checkpoint=None,
                    device: str = "auto") -> None:
    """One posterior per seed: 'ensemble' (one MAP member), 'vi' (mean-field Gaussian) or 'hmc' (one
    full-batch HMC chain; samples [1, draws, ...])."""
    if method not in POSTERIOR_METHODS:
        raise ValueError(f"unknown posterior method {method!r}; allowed: {', '.join(POSTERIOR_METHODS)}")
    data = load_prepared(data_path)
    dev = resolve_device(device)
    model, _ = build_model(cfg["model"]["architecture"], data["input_shape"], data["n_classes"], **model_args(cfg))
    prior_std = cfg.get("prior", {}).get("std", 1.0)
    # a checkpoint resumes only for the same method, architecture and data (settings are checked too)
    identity = {"method": method, **result_config(cfg, ("data", "model", "prior"))}
    common = dict(kind="samples", method=method, architecture=cfg["model"]["architecture"],
                  architecture_args=model_args(cfg), dataset=data["name"], input_shape=data["input_shape"],
                  n_classes=data["n_classes"], seed=seed, config=cfg)
    if method == "ensemble":
        settings = MapSettings(prior_std=prior_std, **cfg.get("ensemble", {}))
        result = train_map(model, data["x_train"], data["y_train"], settings, seed=seed, device=dev,
                           checkpoint=checkpoint, identity=identity)
        post = Posterior(**common, samples={k: v[None, None] for k, v in result.params.items()},  # [1, 1, ...]
                         diagnostics=result.diagnostics)
        resumed, stack = result.resumed_from_epoch, to_torch({k: v[None] for k, v in result.params.items()}, dev)
    elif method == "hmc":
        settings = HmcSettings(**cfg.get("hmc", {}))
        draws, result = sample_bnn(model, data["x_train"], data["y_train"], settings, prior_std=prior_std,
                                   seed=seed, device=dev, checkpoint=checkpoint, identity=identity)
        post = Posterior(**common, samples={k: v[None] for k, v in draws.items()},  # [chain=1, draw, ...]
                         diagnostics={"energy": result.energy, "accepted": result.accepted})
        post.diagnostic_attrs = {"acceptance_rate": result.acceptance_rate, "divergences": result.divergences,
                                 "step_size": result.step_size}
        resumed, stack = result.resumed_from, to_torch(draws, dev)
    else:
        vi_cfg = dict(cfg.get("vi", {}))
        eval_samples = vi_cfg.pop("eval_samples", 100)
        settings = ViSettings(prior_std=prior_std, **vi_cfg)
        mean, std, traces, resumed = train_vi(model, data["x_train"], data["y_train"], settings, seed=seed,
                                              device=dev, checkpoint=checkpoint, identity=identity)
        post = Posterior(**{**common, "kind": "gaussian"}, mean=mean, std=std, diagnostics=traces)
        eps = standard_normal_like(mean, eval_samples, seed=seed, device=dev)
        stack = gaussian_samples(to_torch(mean, dev), to_torch(std, dev), eps)
    model.to(dev)
    metrics = {}
    for split in ("train", "test"):
        nll, err = marginal_loss_error(model, stack, data[f"x_{split}"].to(dev), data[f"y_{split}"].to(dev))
        metrics.update({f"{split}_nll": nll, f"{split}_error": err})
    log.info("%s seed %d: train NLL %.4f err %.4f | test NLL %.4f err %.4f", method, seed, metrics["train_nll"],
             metrics["train_error"], metrics["test_nll"], metrics["test_error"])
    post.diagnostic_attrs = {**post.diagnostic_attrs, **metrics, "resumed_from": resumed, "device": str(dev)}
    artifacts.write_posterior(out, post)
    if checkpoint and Path(checkpoint).exists():
        Path(checkpoint).unlink()  # the artifact supersedes it


# ---------------------------------------------------------------- alignment


def _check_compatible(a: Posterior, b: Posterior, where: str) -> None:
    for attr in ("architecture", "architecture_args", "dataset", "input_shape", "n_classes", "kind"):
        if getattr(a, attr) != getattr(b, attr):
            raise ArtifactError(f"{where}: posteriors differ in {attr}: {getattr(a, attr)!r} vs {getattr(b, attr)!r}")


def representative(post: Posterior) -> dict[str, np.ndarray]:
    """The point that stands for a posterior in weight matching: the sample mean (or the Gaussian's mean)."""
    if post.kind == "gaussian":
        return post.mean
    return {k: v.mean(axis=(0, 1)) for k, v in post.samples.items()}


def permute_posterior(post: Posterior, spec, perms) -> Posterior:
    """The same posterior with every sample (or mean and std) permuted."""
    import dataclasses

    if post.kind == "samples":
        return dataclasses.replace(post, samples=apply_permutation(post.samples, spec, perms, batch_dims=2))
    return dataclasses.replace(post, mean=apply_permutation(post.mean, spec, perms),
                               std=apply_permutation(post.std, spec, perms))


ALIGNMENT_KINDS = ("weight", "w2")


def distance(a: Posterior, b: Posterior) -> tuple[str, float]:
    """W2 between diagonal Gaussians (closed form), else the L2 distance of the representatives."""
    if a.kind == "gaussian":
        return "w2", w2_distance(a.mean, a.std, b.mean, b.std)
    return "l2", l2_distance(representative(a), representative(b))


def l2_distance(a, b) -> float:
    """Euclidean distance between two parameter sets (in float64)."""
    return float(np.sqrt(sum(np.sum((np.float64(a[k]) - b[k]) ** 2) for k in a)))


def w2_distance(mean_a, std_a, mean_b, std_b) -> float:
    """W2(N(mean_a, diag std_a^2), N(mean_b, diag std_b^2)) = sqrt(||mean_a - mean_b||^2 + ||std_a - std_b||^2)."""
    sq = sum(np.sum((np.float64(mean_a[k]) - mean_b[k]) ** 2) + np.sum((np.float64(std_a[k]) - std_b[k]) ** 2)
             for k in mean_a)
    return float(np.sqrt(sq))


def align_pair(kind: str, path_a, path_b, cfg: dict, out, *, seeds: tuple[int, int] | None = None) -> None:
    """Permute B into A's basin. kinds: 'weight' (weight matching of the means; for Gaussians the
    means-only baseline), 'w2' (Wasserstein alignment of Gaussians: means and stds share the permutation)."""
    if kind not in ALIGNMENT_KINDS:
        raise ValueError(f"unknown alignment kind {kind!r}; allowed: {', '.join(ALIGNMENT_KINDS)}")
    a, b = artifacts.read_posterior(path_a), artifacts.read_posterior(path_b)
    check_posterior(a, path_a, seed=seeds[0] if seeds else None)
    check_posterior(b, path_b, seed=seeds[1] if seeds else None)
    _check_compatible(a, b, f"aligning {path_a} and {path_b}")
    if a.seed == b.seed:
        raise ArtifactError(f"{path_a} and {path_b} are both seed {a.seed}: align two different solutions")
    if "data" in a.config and "data" in b.config and _data_identity(a.config["data"]) != _data_identity(b.config["data"]):
        raise ArtifactError(f"{path_a} and {path_b} were trained on different data: {a.config['data']} vs {b.config['data']}")
    if kind == "w2" and a.kind != "gaussian":
        raise ValueError(f"alignment 'w2' needs Gaussian posteriors; {path_a} holds {a.kind}")
    _, spec = build_model(a.architecture, a.input_shape, a.n_classes, **a.architecture_args)
    extra = [(a.std, b.std, 1.0)] if kind == "w2" else []
    # the matching seed depends on the pair alone, so reruns give identical files
    result = weight_matching(representative(a), representative(b), spec, seed=1000 * a.seed + b.seed,
                             max_sweeps=cfg.get("alignment", {}).get("max_sweeps", 100), extra_channels=extra)
    aligned = permute_posterior(b, spec, result.perms)
    dist_kind, before = distance(a, b)
    _, after = distance(a, aligned)
    nots = {g: number_of_transpositions(p) for g, p in result.perms.items()}
    log.info("%s-%s %s: %s distance %.4g -> %.4g, %d sweeps (converged: %s); NoT %s", a.seed, b.seed, kind,
             dist_kind, before, after, result.sweeps, result.converged, nots)
    artifacts.write_alignment(out, Alignment(
        alignment=kind, method=a.method, seed_a=a.seed, seed_b=b.seed, perms=result.perms,
        objective_trace=np.asarray(result.objective_trace), aligned=aligned, source_a=str(path_a),
        source_b=str(path_b), sweeps=result.sweeps, converged=result.converged,
        distance_kind=dist_kind, distance_before=before, distance_after=after))


# ---------------------------------------------------------------- barriers


def barrier_curve(alignment: str, path_a, path_b, data_path, cfg: dict, out, *, device: str = "auto",
                  variant: str = "base", seeds: tuple[int, int] | None = None) -> None:
    """Loss and error along the linear path from A to B ('naive') or to B aligned (B is then an alignment file)."""
    a = artifacts.read_posterior(path_a)
    data = load_prepared(data_path)
    check_posterior(a, path_a, seed=seeds[0] if seeds else None, data=data)
    if alignment == "naive":
        b = artifacts.read_posterior(path_b)
        dist_kind, dist = distance(a, b)
        meta = {"distance_kind": dist_kind, "distance": dist, "not_total": np.nan, "units_total": np.nan}
    else:
        al = artifacts.read_alignment(path_b)
        if al.alignment != alignment:
            raise ArtifactError(f"{path_b}: holds a {al.alignment!r} alignment, expected {alignment!r}")
        if al.seed_a != a.seed:
            raise ArtifactError(f"{path_b}: aligns onto seed {al.seed_a}, but {path_a} is seed {a.seed}")
        b = al.aligned
        if al.seed_b != b.seed:
            raise ArtifactError(f"{path_b}: inconsistent alignment file (seed_b {al.seed_b}, aligned posterior seed {b.seed})")
        meta = {"distance_kind": al.distance_kind, "distance": al.distance_after,
                "not_total": sum(al.not_per_group.values()), "units_total": sum(len(p) for p in al.perms.values())}
    check_posterior(b, path_b, seed=seeds[1] if seeds else None, data=data)
    _check_compatible(a, b, f"path between {path_a} and {path_b}")
    bcfg = cfg.get("barrier", {})
    split = bcfg.get("split", "test")
    dev = resolve_device(device)
    model, _ = build_model(a.architecture, a.input_shape, a.n_classes, **a.architecture_args)
    model.to(dev)
    ts = barriers.t_grid(bcfg.get("n_points", 21))
    x, y = data[f"x_{split}"].to(dev), data[f"y_{split}"].to(dev)
    if a.kind == "gaussian":
        # the same noise for every alignment of this pair and every t: curves differ by the path alone
        noise_seed = int(np.random.SeedSequence([bcfg.get("seed", 0), a.seed, b.seed]).generate_state(1)[0])
        eps = standard_normal_like(a.mean, bcfg.get("mc_samples", 100), noise_seed, dev)
        curve = barriers.gaussian_path(model, to_torch(a.mean, dev), to_torch(a.std, dev), to_torch(b.mean, dev),
                                       to_torch(b.std, dev), eps, x, y, ts)
    else:
        curve = barriers.linear_path(model, to_torch(a.flat_samples(), dev), to_torch(b.flat_samples(), dev),
                                     x, y, ts)
    front = {"variant": variant, "method": a.method, "alignment": alignment, "aligned": alignment != "naive",
             "pair": f"{a.seed}-{b.seed}", "seed_a": a.seed, "seed_b": b.seed}
    for i, (k, v) in enumerate(front.items()):
        curve.insert(i, k, v)
    curve["split"] = split
    for k, v in meta.items():
        curve[k] = v
    write_csv(out, curve)


def summarize_barriers(curve_paths, variants: dict, out_curves, out_csv, out_md) -> None:
    """All curves in one table; one barrier row per (variant, method, alignment, pair) with the swept
    values as columns (``variants``: variant -> {dotted key: value}); Markdown mean ± sd over pairs."""
    curves = pd.concat([pd.read_csv(p) for p in curve_paths], ignore_index=True)
    summary = barriers.summarize(curves)
    pair_meta = curves.groupby(["variant", "method", "alignment", "pair"], sort=False)[
        ["distance_kind", "distance", "not_total", "units_total"]].first().reset_index()
    summary = summary.merge(pair_meta, on=["variant", "method", "alignment", "pair"], how="left")
    for col in ("not_total", "units_total"):  # integers, empty for the naive rows
        summary[col] = summary[col].astype("Int64")
    swept = sorted({k for overrides in variants.values() for k in overrides})
    for key in swept:
        summary[key] = summary["variant"].map(lambda v, key=key: table_cell(variants.get(v, {}).get(key)))
    write_csv(out_curves, curves)
    write_csv(out_csv, summary)
    agg = summary.groupby(["variant", "method", "alignment"], sort=False).agg(
        pairs=("pair", "count"), loss_barrier_mean=("loss_barrier", "mean"), loss_barrier_sd=("loss_barrier", "std"),
        error_barrier_mean=("error_barrier", "mean"), error_barrier_sd=("error_barrier", "std"),
        distance_kind=("distance_kind", "first"), distance=("distance", "mean"),
        not_total=("not_total", "mean")).reset_index()
    naive = agg[agg["alignment"] == "naive"].set_index(["variant", "method"])["loss_barrier_mean"]
    agg["ratio"] = [r.loss_barrier_mean / naive.get((r.variant, r.method), np.nan) for r in agg.itertuples()]

    def mean_sd(mean, sd, pairs):
        return f"{mean:.4f} ± {sd:.4f}" if pairs > 1 else f"{mean:.4f} (one pair)"

    lines = ["| variant | method | alignment | pairs | loss barrier (mean ± sd) | loss barrier / naive "
             "| error barrier (mean ± sd) | distance (mean) | NoT (mean) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in agg.itertuples():
        nt = "-" if pd.isna(r.not_total) else f"{r.not_total:.1f}"
        lines.append(f"| {r.variant} | {r.method} | {r.alignment} | {r.pairs} | "
                     f"{mean_sd(r.loss_barrier_mean, r.loss_barrier_sd, r.pairs)} | {r.ratio:.3f} | "
                     f"{mean_sd(r.error_barrier_mean, r.error_barrier_sd, r.pairs)} | {r.distance_kind} {r.distance:.3f} | {nt} |")
    write_text(out_md, "\n".join(lines) + "\n")



# ---------------------------------------------------------------- rebasin and the comparison with HMC


def _load_sample_posteriors(paths, seeds=None, data=None) -> list[Posterior]:
    posts = [artifacts.read_posterior(p) for p in paths]
    for i, (p, post) in enumerate(zip(paths, posts)):
        check_posterior(post, p, seed=seeds[i] if seeds else None, data=data)
        if post.kind != "samples":
            raise ValueError(f"{p}: rebasin needs sample posteriors (ensemble members, HMC chains), found {post.kind}")
        _check_compatible(posts[0], post, f"rebasin of {paths[0]} and {p}")
    return posts


def pooled_samples(posts: list[Posterior]) -> dict[str, np.ndarray]:
    """All draws of all chains (or all members) of several posteriors, [total, *shape]."""
    return {k: np.concatenate([p.flat_samples()[k] for p in posts]) for k in posts[0].samples}


def rebasin_job(method: str, paths, data_path, cfg: dict, reference: str, out_qd, out_qr, *,
                seeds=None) -> None:
    """Fit q_d (samples as they are) and q_r (after aligning every sample to one reference)."""
    from .rebasin import fit_diagonal_gaussian, rebase

    data = load_prepared(data_path)
    posts = _load_sample_posteriors(paths, seeds, data)
    samples = pooled_samples(posts)
    first = posts[0]
    model, spec = build_model(first.architecture, first.input_shape, first.n_classes, **first.architecture_args)
    rcfg = cfg.get("rebasin", {})
    matching = rcfg.get("matching", "weight")
    x_act = data["x_train"][: rcfg.get("activation_points", 1000)]
    result = rebase(samples, spec, reference=reference, matching=matching, model=model, x=x_act,
                    max_iterations=rcfg.get("max_iterations", 10))
    log.info("%s rebasin (%s reference, %s matching): %d samples, %d reference updates, changed %s", method,
             reference, matching, len(next(iter(samples.values()))), result.iterations, result.changed)
    info = {"reference": reference, "matching": matching, "n_samples": int(len(next(iter(samples.values())))),
            "reference_updates": result.iterations, "sources": json.dumps([str(p) for p in paths])}
    for fit, arrays, out in (("q_d", samples, out_qd), ("q_r", result.aligned, out_qr)):
        mean, std = fit_diagonal_gaussian(arrays)
        artifacts.write_posterior(out, Posterior(
            kind="gaussian", method=method, architecture=first.architecture,
            architecture_args=first.architecture_args, dataset=first.dataset, input_shape=first.input_shape,
            n_classes=first.n_classes, seed=first.seed, mean=mean, std=std, config=cfg,
            diagnostic_attrs={"fit": fit, **info}))


def _probs(model, stack, x) -> np.ndarray:
    return predictive(model, stack, x).exp().cpu().numpy()


METHOD_LABELS = {"hmc": "HMC", "ensemble": "Ens.", "vi": "VI"}


def fit_label(method: str, fit: str, reference: str | None = None) -> str:
    """Column and legend label of a fitted Gaussian, as in Table 1: 'HMC q_d', 'Ens. q_r (first ref.)'."""
    return f"{METHOD_LABELS[method]} {fit}" + (f" ({reference} ref.)" if fit == "q_r" else "")


TABLE1_METRICS = ("agreement with HMC", "TV to HMC", "test accuracy %", "test accuracy % of mean network", "test NLL")


def table1_job(hmc_paths, ens_paths, vi_paths, rebasin_paths: dict, data_path, cfg: dict, out_csv, out_md, out_tex,
               out_diag, *, device: str = "auto") -> None:
    """Xiao et al.'s Table 1: every predictive against HMC's (agreement, TV), accuracies and NLL.

    ``rebasin_paths`` maps '<method>/<reference>/<q_d|q_r>' to a Gaussian fit; columns appear for
    each. The HMC chains' split R-hat and ESS of p(y|x) on the test points go to ``out_diag``.
    """
    from .compare import accuracy, agreement, total_variation
    from .hmc import effective_sample_size, split_rhat

    data = load_prepared(data_path)
    dev = resolve_device(device)
    x, y = data["x_test"].to(dev), data["y_test"].numpy()
    hmc = _load_sample_posteriors(hmc_paths, data=data)
    model, _ = build_model(hmc[0].architecture, hmc[0].input_shape, hmc[0].n_classes, **hmc[0].architecture_args)
    model.to(dev)
    n_mc = cfg.get("table", {}).get("mc_samples", 100)

    def samples_column(posts):
        stack = to_torch(pooled_samples(posts), dev)
        return _probs(model, stack, x), None

    def gaussian_column(post, seed):
        eps = standard_normal_like(post.mean, n_mc, seed, dev)
        mean, std = to_torch(post.mean, dev), to_torch(post.std, dev)
        return (_probs(model, gaussian_samples(mean, std, eps), x),
                _probs(model, {k: v[None] for k, v in mean.items()}, x))

    # columns in the paper's order: HMC samples, q_d, q_r; ensemble samples, q_d, q_r; VI q
    table_seed = cfg.get("table", {}).get("seed", 0)
    sample_sets = {"hmc": hmc}
    if ens_paths:
        sample_sets["ensemble"] = _load_sample_posteriors(ens_paths, data=data)
    columns = {}
    for method, posts in sample_sets.items():
        columns[f"{METHOD_LABELS[method]} samples"] = samples_column(posts)
        fits = sorted((k for k in rebasin_paths if k.startswith(f"{method}/")), key=lambda k: k.split("/")[2])
        for key in fits:
            _, reference, fit = key.split("/")
            label = fit_label(method, fit, reference)
            if label not in columns:  # q_d does not depend on the reference
                columns[label] = gaussian_column(artifacts.read_posterior(rebasin_paths[key]), seed=table_seed)
    if vi_paths:
        vi = artifacts.read_posterior(vi_paths[0])
        check_posterior(vi, vi_paths[0], data=data)
        columns["VI q"] = gaussian_column(vi, seed=table_seed)
    p_hmc = columns["HMC samples"][0]
    rows = []
    for label, (p, p_mean) in columns.items():
        values = {"agreement with HMC": agreement(p, p_hmc), "TV to HMC": total_variation(p, p_hmc),
                  "test accuracy %": 100 * accuracy(p, y),
                  "test accuracy % of mean network": 100 * accuracy(p_mean, y) if p_mean is not None else np.nan,
                  "test NLL": float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None))))}
        rows += [{"metric": m, "column": label, "value": values[m]} for m in TABLE1_METRICS]
    table = pd.DataFrame(rows)
    write_csv(out_csv, table)
    wide = table.pivot(index="metric", columns="column", values="value").reindex(
        index=list(TABLE1_METRICS), columns=list(columns))
    header = "| metric | " + " | ".join(wide.columns) + " |"
    lines = [header, "|---" * (len(wide.columns) + 1) + "|"]
    for metric, r in wide.iterrows():
        lines.append(f"| {metric} | " + " | ".join("-" if pd.isna(v) else f"{v:.4g}" for v in r) + " |")
    write_text(out_md, "\n".join(lines) + "\n")
    tex = ["\\begin{tabular}{l" + "r" * len(wide.columns) + "}", "\\toprule",
           "metric & " + " & ".join(c.replace("_", "\\_").replace("%", "\\%") for c in wide.columns) + " \\\\",
           "\\midrule"]
    for metric, r in wide.iterrows():
        tex.append(metric.replace("%", "\\%") + " & " + " & ".join("--" if pd.isna(v) else f"{v:.4g}" for v in r)
                   + " \\\\")
    tex += ["\\bottomrule", "\\end{tabular}"]
    write_text(out_tex, "\n".join(tex) + "\n")
    # convergence of the chains, judged on predictive quantities (unchanged by permutations)
    per_chain = []
    for post in hmc:
        draws = to_torch({k: v[0] for k, v in post.samples.items()}, dev)
        logp = sample_log_probs(model, draws, x).cpu().numpy()  # [draws, N, C]
        per_chain.append(np.exp(logp[:, np.arange(len(y)), y]))  # p(y_n | x_n, w) per draw
    chains = np.stack(per_chain)  # [chains, draws, N]
    diag = {"chains": len(hmc), "draws_per_chain": chains.shape[1]}
    if chains.shape[0] * chains.shape[1] >= 4 and chains.shape[1] >= 4:
        rhat, ess = split_rhat(chains), effective_sample_size(chains)
        diag.update(rhat_max=float(np.nanmax(rhat)), rhat_median=float(np.nanmedian(rhat)),
                    ess_min=float(np.nanmin(ess)), ess_median=float(np.nanmedian(ess)))
    diag.update({f"acceptance_seed{p.seed}": float(p.diagnostic_attrs.get("acceptance_rate", np.nan)) for p in hmc})
    diag.update({f"divergences_seed{p.seed}": int(p.diagnostic_attrs.get("divergences", 0)) for p in hmc})
    write_csv(out_diag, pd.DataFrame([diag]))
