"""Stage metrics: loss and error along the path between two posteriors, and the barrier summary."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from ..storage import artifacts
from ..evaluation import barriers
from .. import tables
from ..storage.artifacts import ArtifactError
from ..storage.atomic import write_csv, write_text
from ..config import table_cell
from ..device import device_label, use_device
from ..storage.prepared import load_prepared
from ..alignment.permutations import number_of_transpositions
from .align import align_as_configured
from .inputs import check_posterior, read_posterior

log = logging.getLogger(__name__)

WITHIN_CHAIN = "within-chain"  # the control row of sample-set barriers: two halves of one chain
# the same halves, the second weight-matched to the first as pairs of chains are (align.align_pair): the
# floor aligned chains are judged against, like with like (a chain that moves between permutation
# modes leaves its unaligned halves farther apart than two chains)
WITHIN_CHAIN_ALIGNED = "within-chain weight"
REPAIRED = "+repair"  # suffix of the alignment of a REPAIRed path (barrier.repair)


def barrier_curves(alignment: str, pairs, data_path, cfg: dict, out, *, device: str = "auto",
                   variant: str = "base") -> None:
    """The curves of every pair of a method and alignment in one table: ``pairs`` lists
    (seed A, seed B, path A, path B). One job for all pairs: the data, torch and the device are
    set up once, not once per pair."""
    data = load_prepared(data_path)
    frames = [_curve(alignment, path_a, path_b, data, cfg, device=device, variant=variant, seeds=(int(sa), int(sb)))
              for sa, sb, path_a, path_b in pairs]
    if not frames:
        raise ValueError("barrier_curves needs at least one pair")
    write_csv(out, pd.concat(frames, ignore_index=True))


def _curve(alignment: str, path_a, path_b, data, cfg: dict, *, device: str, variant: str,
           seeds: tuple[int, int] | None) -> pd.DataFrame:
    """Loss and error along the path from A to B ('naive') or to B aligned (B is then an alignment file).

    Sample sets (and point estimates) follow the linear path; Gaussians the W2 geodesic with the same
    Monte Carlo noise at every t and for every alignment of the pair."""
    a = read_posterior(path_a, seed=seeds[0] if seeds else None, data=data)
    if alignment == "naive":
        b = artifacts.read_posterior(path_b)
        dist_kind, dist = a.distance_to(b)
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
    a.check_compatible(b, f"path between {path_a} and {path_b}")
    return _path_curve(a, b, data, cfg, alignment=alignment, pair=f"{a.seed}-{b.seed}", meta=meta, device=device,
                       variant=variant)


def within_chain_curves(paths, seeds, data_path, cfg: dict, out, *, device: str = "auto",
                        variant: str = "base") -> None:
    """The control of sample-set barriers: the path between the first and the second half of every
    chain (draw i of one half paired with draw i of the other, as the pairs of chains are), twice:
    as they are (``within-chain``), and with the second half weight-matched to the first exactly as
    two chains are aligned (``within-chain weight``: alignment settings of cfg["alignment"], one
    permutation for all of the half's draws). Both halves sample one mode, so the aligned halves'
    barrier is the floor an alignment of two chains could reach; halves farther apart unaligned than
    two chains show a chain that moves between permutation modes. Neither is REPAIRed."""
    data = load_prepared(data_path)
    acfg = cfg["alignment"]
    frames = []
    for path, seed in zip(paths, seeds):
        post = read_posterior(path, seed=int(seed), data=data, kind="samples", what="the within-chain control")
        n_chains, n_draws = next(iter(post.samples.values())).shape[:2]
        if n_draws < 2:
            raise ArtifactError(f"{path}: the within-chain control halves every chain, but its chains hold "
                                f"{n_draws} draw(s)")
        half = n_draws // 2
        for c in range(n_chains):
            a = dataclasses.replace(post, samples={k: v[c:c + 1, :half] for k, v in post.samples.items()})
            b = dataclasses.replace(post, samples={k: v[c:c + 1, half:2 * half] for k, v in post.samples.items()})
            dist_kind, dist = a.distance_to(b)
            meta = {"distance_kind": dist_kind, "distance": dist, "not_total": np.nan, "units_total": np.nan}
            chain = str(post.seed) if n_chains == 1 else f"{post.seed}.{c}"
            frames.append(_path_curve(a, b, data, cfg, alignment=WITHIN_CHAIN, pair=f"{chain}-{chain}", meta=meta,
                                      device=device, variant=variant, repair=False))
            # as align_pair aligns two chains; the matching's random group order depends on the chain alone
            result, aligned = align_as_configured(a, b, "weight", seed=1000 * post.seed + c, alignment_cfg=acfg,
                                                  data=data)
            _, after = a.distance_to(aligned)
            nots = {g: number_of_transpositions(p) for g, p in result.perms.items()}
            log.info("chain %s halves weight-matched: %s distance %.4g -> %.4g, %d sweeps (converged: %s); NoT %s",
                     chain, dist_kind, dist, after, result.sweeps, result.converged, nots)
            meta = {"distance_kind": dist_kind, "distance": after, "not_total": sum(nots.values()),
                    "units_total": sum(len(p) for p in result.perms.values())}
            frames.append(_path_curve(a, aligned, data, cfg, alignment=WITHIN_CHAIN_ALIGNED, pair=f"{chain}-{chain}",
                                      meta=meta, device=device, variant=variant, repair=False))
    if not frames:
        raise ValueError("within_chain_curves needs at least one posterior")
    write_csv(out, pd.concat(frames, ignore_index=True))


def _path_curve(a, b, data, cfg: dict, *, alignment: str, pair: str, meta: dict, device: str,
                variant: str, repair: bool = True) -> pd.DataFrame:
    """The curve of the path from A to B; with ``barrier.repair`` (and ``repair``) also its REPAIRed path,
    labelled ``<alignment>+repair``."""
    bcfg = cfg["barrier"]
    split = bcfg["split"]
    dev = use_device(device)
    model, _ = a.build_model()
    model.to(dev)
    ts = barriers.t_grid(bcfg["n_points"])
    x, y = data[f"x_{split}"].to(dev), data[f"y_{split}"].to(dev)
    budget = cfg["compute"]["memory_mb"]
    linearized = a.kind == "gaussian" and a.predictive == b.predictive == "glm"
    repair_x = None
    if repair and bcfg["repair"]:
        if linearized:
            log.info("barrier.repair: %s %s pair %s predicts through the linearised network (GLM), which has no "
                     "channels to renormalise; only its plain path is measured", a.method, alignment, pair)
        else:
            repair_x = data["x_train"][:bcfg["repair_points"]].to(dev)

    def curve_of(repair_x):
        if a.kind == "gaussian":
            # the same noise for every alignment of this pair and every t: curves differ by the path alone
            noise_seed = int(np.random.SeedSequence([bcfg["seed"], a.seed, b.seed]).generate_state(1)[0])
            return barriers.gaussian_path(model, a.mean, a.std, b.mean, b.std, bcfg["mc_samples"], noise_seed, x, y,
                                          ts, memory_mb=budget, linearized=linearized, repair_x=repair_x)
        return barriers.linear_path(model, a.flat_samples(), b.flat_samples(), x, y, ts, memory_mb=budget,
                                    repair_x=repair_x)

    paths = [(alignment, curve_of(None))]
    if repair_x is not None:  # REPAIRed beside the plain path (Jordan et al.): alignment "<alignment>+repair"
        paths.append((f"{alignment}{REPAIRED}", curve_of(repair_x)))
    frames = []
    for label, curve in paths:
        front = {"variant": variant, "method": a.method, "alignment": label,
                 "aligned": alignment not in ("naive", WITHIN_CHAIN), "pair": pair, "seed_a": a.seed,
                 "seed_b": b.seed, "draws": len(next(iter(a.flat_samples().values()))) if a.kind == "samples" else np.nan}
        for i, (k, v) in enumerate(front.items()):
            curve.insert(i, k, v)
        curve["split"] = split
        for k, v in meta.items():
            curve[k] = v
        curve["device"] = device_label()
        frames.append(curve)
    return pd.concat(frames, ignore_index=True)


def summarize_barriers(curve_paths, variants: dict, out_curves, out_csv, out_md) -> None:
    """All curves in one table; one barrier row per (variant, method, alignment, pair) with the swept
    values as columns (``variants``: variant -> {dotted key: value}); Markdown mean ± sd over pairs."""
    curves = pd.concat([pd.read_csv(p) for p in curve_paths], ignore_index=True)
    summary = barriers.summarize(curves)
    meta_cols = ["distance_kind", "distance", "not_total", "units_total", *(["draws"] if "draws" in curves else [])]
    pair_meta = curves.groupby(["variant", "method", "alignment", "pair"], sort=False)[meta_cols].first().reset_index()
    summary = summary.merge(pair_meta, on=["variant", "method", "alignment", "pair"], how="left")
    for col in ("not_total", "units_total"):  # integers, empty for the naive rows
        summary[col] = summary[col].astype("Int64")
    swept = sorted({k for overrides in variants.values() for k in overrides})
    for key in swept:
        summary[key] = summary["variant"].map(lambda v, key=key: table_cell(variants.get(v, {}).get(key)))
    write_csv(out_curves, curves)
    write_csv(out_csv, summary)
    wide = tables.barriers_wide(summary)
    write_text(out_md, tables.markdown(wide, index_name="variant"))
