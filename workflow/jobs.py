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
from .config import model_args
from .matching import weight_matching
from .models import build_model
from .permutations import apply_permutation, number_of_transpositions
from .predict import marginal_loss_error, resolve_device, to_torch
from .training import MapSettings, train_map

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
            name, n_classes = str(z["name"]), int(z["n_classes"])
    except (OSError, KeyError, ValueError, EOFError) as err:
        raise ArtifactError(f"{path}: not a prepared data set written by 'prepare-data' ({err})") from err
    out = {k: torch.from_numpy(v) for k, v in data.items()}
    out.update(name=name, n_classes=n_classes, input_shape=tuple(data["x_train"].shape[1:]))
    return out


# ---------------------------------------------------------------- posteriors


def train_posterior(method: str, data_path, seed: int, cfg: dict, out, *, checkpoint=None,
                    device: str = "auto") -> None:
    """One posterior per seed. Methods: 'ensemble' (one MAP member)."""
    if method != "ensemble":
        raise ValueError(f"unknown posterior method {method!r}; allowed: 'ensemble'")
    data = load_prepared(data_path)
    dev = resolve_device(device)
    model, _ = build_model(cfg["model"]["architecture"], data["input_shape"], data["n_classes"], **model_args(cfg))
    settings = MapSettings(prior_std=cfg.get("prior", {}).get("std", 1.0), **cfg.get("ensemble", {}))
    result = train_map(model, data["x_train"], data["y_train"], settings, seed=seed, device=dev,
                       checkpoint=checkpoint)
    stack = to_torch({k: v[None] for k, v in result.params.items()}, dev)
    model.to(dev)
    train_nll, train_err = marginal_loss_error(model, stack, data["x_train"].to(dev), data["y_train"].to(dev))
    test_nll, test_err = marginal_loss_error(model, stack, data["x_test"].to(dev), data["y_test"].to(dev))
    log.info("seed %d: train NLL %.4f err %.4f | test NLL %.4f err %.4f", seed, train_nll, train_err, test_nll,
             test_err)
    post = Posterior(
        kind="samples", method=method, architecture=cfg["model"]["architecture"],
        architecture_args=model_args(cfg), dataset=data["name"], input_shape=data["input_shape"],
        n_classes=data["n_classes"], seed=seed,
        samples={k: v[None, None] for k, v in result.params.items()},  # [chain=1, draw=1, ...]
        config=cfg, diagnostics=result.diagnostics,
        diagnostic_attrs={"train_nll": train_nll, "train_error": train_err, "test_nll": test_nll,
                          "test_error": test_err, "resumed_from_epoch": result.resumed_from_epoch,
                          "device": str(dev)},
    )
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


def align_pair(kind: str, path_a, path_b, cfg: dict, out) -> None:
    """Permute B into A's basin; kinds: 'weight' (Git Re-Basin weight matching)."""
    if kind != "weight":
        raise ValueError(f"unknown alignment kind {kind!r}; allowed: 'weight'")
    a, b = artifacts.read_posterior(path_a), artifacts.read_posterior(path_b)
    _check_compatible(a, b, f"aligning {path_a} and {path_b}")
    _, spec = build_model(a.architecture, a.input_shape, a.n_classes, **a.architecture_args)
    # the matching seed depends on the pair alone, so reruns give identical files
    result = weight_matching(representative(a), representative(b), spec, seed=1000 * a.seed + b.seed,
                             max_sweeps=cfg.get("alignment", {}).get("max_sweeps", 100))
    nots = {g: number_of_transpositions(p) for g, p in result.perms.items()}
    log.info("%s-%s: objective %.4g -> %.4g in %d sweeps (converged: %s); NoT %s", a.seed, b.seed,
             result.objective_trace[0], result.objective_trace[-1], result.sweeps, result.converged, nots)
    artifacts.write_alignment(out, Alignment(
        alignment=kind, method=a.method, seed_a=a.seed, seed_b=b.seed, perms=result.perms,
        objective_trace=np.asarray(result.objective_trace), aligned=permute_posterior(b, spec, result.perms),
        source_a=str(path_a), source_b=str(path_b), sweeps=result.sweeps, converged=result.converged))


# ---------------------------------------------------------------- barriers


def barrier_curve(alignment: str, path_a, path_b, data_path, cfg: dict, out, *, device: str = "auto") -> None:
    """Loss and error along the linear path from A to B ('naive') or to B aligned (B is then an alignment file)."""
    a = artifacts.read_posterior(path_a)
    if alignment == "naive":
        b = artifacts.read_posterior(path_b)
    else:
        al = artifacts.read_alignment(path_b)
        if al.alignment != alignment:
            raise ArtifactError(f"{path_b}: holds a {al.alignment!r} alignment, expected {alignment!r}")
        if al.seed_a != a.seed:
            raise ArtifactError(f"{path_b}: aligns onto seed {al.seed_a}, but {path_a} is seed {a.seed}")
        b = al.aligned
    _check_compatible(a, b, f"path between {path_a} and {path_b}")
    if a.kind != "samples":
        raise ValueError("barriers between Gaussian posteriors are not supported yet; use sample posteriors")
    data = load_prepared(data_path)
    split = cfg.get("barrier", {}).get("split", "test")
    dev = resolve_device(device)
    model, _ = build_model(a.architecture, a.input_shape, a.n_classes, **a.architecture_args)
    model.to(dev)
    ts = barriers.t_grid(cfg.get("barrier", {}).get("n_points", 21))
    curve = barriers.linear_path(model, to_torch(a.flat_samples(), dev), to_torch(b.flat_samples(), dev),
                                 data[f"x_{split}"].to(dev), data[f"y_{split}"].to(dev), ts)
    curve.insert(0, "method", a.method)
    curve.insert(1, "alignment", alignment)
    curve.insert(2, "aligned", alignment != "naive")
    curve.insert(3, "pair", f"{a.seed}-{b.seed}")
    curve.insert(4, "seed_a", a.seed)
    curve.insert(5, "seed_b", b.seed)
    curve["split"] = split
    write_csv(out, curve)


def summarize_barriers(curve_paths, alignment_paths, out_curves, out_csv, out_md) -> None:
    """Concatenate all curves; one barrier row per (method, alignment, pair) with NoT; Markdown summary."""
    curves = pd.concat([pd.read_csv(p) for p in curve_paths], ignore_index=True)
    summary = barriers.summarize(curves)
    nots = []
    for p in alignment_paths:
        al = artifacts.read_alignment(p)
        nots.append({"method": al.method, "alignment": al.alignment, "pair": f"{al.seed_a}-{al.seed_b}",
                     "not_total": sum(al.not_per_group.values()),
                     "units_total": sum(len(v) for v in al.perms.values())})
    if nots:
        summary = summary.merge(pd.DataFrame(nots), on=["method", "alignment", "pair"], how="left")
    write_csv(out_curves, curves)
    write_csv(out_csv, summary)
    agg = summary.groupby(["method", "alignment"], sort=True).agg(
        pairs=("pair", "count"), loss_barrier_mean=("loss_barrier", "mean"), loss_barrier_sd=("loss_barrier", "std"),
        error_barrier_mean=("error_barrier", "mean"), error_barrier_sd=("error_barrier", "std")).reset_index()
    lines = ["| method | alignment | pairs | loss barrier (mean ± sd) | error barrier (mean ± sd) |",
             "|---|---|---|---|---|"]
    for r in agg.itertuples():
        lines.append(f"| {r.method} | {r.alignment} | {r.pairs} | {r.loss_barrier_mean:.4f} ± "
                     f"{np.nan_to_num(r.loss_barrier_sd):.4f} | {r.error_barrier_mean:.4f} ± "
                     f"{np.nan_to_num(r.error_barrier_sd):.4f} |")
    write_text(out_md, "\n".join(lines) + "\n")
