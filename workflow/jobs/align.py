"""Stage align: permute posterior B into A's basin (weight matching, or the W2 alignment of Gaussians)."""

from __future__ import annotations

import logging

import numpy as np

from ..storage import artifacts
from ..storage.artifacts import Alignment
from ..alignment import matchers
from ..methods import ALIGNMENT_KINDS
from .inputs import check_posterior, read_posterior

log = logging.getLogger(__name__)

def align(a, b, kind: str, *, seed: int, max_sweeps: int, restarts: int = 1, matcher: str = "weight",
          data: dict | None = None, alignment_cfg: dict | None = None):
    """(matching result, B aligned) for posteriors A and B, by a pair matcher of the registry; a loss
    matcher trains on ``data``'s training split with its settings from ``alignment_cfg`` (ste_*)."""
    _check_kind(kind, a)
    spec = a.permutation_spec()  # from the parameter names: a weight matcher's job never imports torch
    extra = [(a.std, b.std, 1.0)] if kind == "w2" else []
    m = matchers.get(matcher, matchers.PAIR_MATCHERS)
    if m.compares == matchers.LOSS:
        if data is None:
            raise ValueError(f"alignment.matcher {matcher!r} trains on the data: give the prepared data (--data)")
        model, _ = a.build_model()
        result = m.match(model, a.representative(), b.representative(), spec, data["x_train"], data["y_train"],
                         seed=seed, max_sweeps=max_sweeps, extra_channels=extra, restarts=restarts,
                         **loss_matcher_settings(alignment_cfg))
    else:
        result = m.match(a.representative(), b.representative(), spec, seed=seed, max_sweeps=max_sweeps,
                         extra_channels=extra, restarts=restarts)
    return result, b.permuted(spec, result.perms)


def align_as_configured(a, b, kind: str, *, seed: int, alignment_cfg: dict, data: dict | None = None):
    """``align`` with the run's alignment section (max_sweeps, restarts, matcher, its ste_* settings)."""
    return align(a, b, kind, seed=seed, max_sweeps=alignment_cfg["max_sweeps"],
                 restarts=alignment_cfg.get("restarts", 1), matcher=alignment_cfg.get("matcher", "weight"), data=data,
                 alignment_cfg=alignment_cfg)


def loss_matcher_settings(alignment_cfg: dict) -> dict:
    """The straight-through matcher's keyword arguments from the alignment section."""
    return {"steps": alignment_cfg["ste_steps"], "lr": alignment_cfg["ste_lr"],
            "batch_size": alignment_cfg["ste_batch_size"], "eval_points": alignment_cfg["ste_eval_points"]}


def align_pair(kind: str, path_a, path_b, cfg: dict, out, *, seeds: tuple[int, int] | None = None,
               data_path=None) -> None:
    """Permute B into A's basin and write the alignment file (permutations, trace, NoT, distances, B aligned)."""
    a = read_posterior(path_a, seed=seeds[0] if seeds else None)
    b = read_posterior(path_b, seed=seeds[1] if seeds else None)
    a.check_compatible(b, f"aligning {path_a} and {path_b}")
    data = None
    if data_path is not None:
        import torch

        from ..storage.prepared import load_prepared

        torch.set_num_threads(cfg["compute"]["threads"])
        data = load_prepared(data_path)
        check_posterior(a, path_a, data=data)
    # the matching's random group order depends on the pair alone, so reruns give identical files
    result, aligned = align_as_configured(a, b, kind, seed=1000 * a.seed + b.seed, alignment_cfg=cfg["alignment"],
                                          data=data)
    dist_kind, before = a.distance_to(b)
    _, after = a.distance_to(aligned)
    al = Alignment(alignment=kind, method=a.method, seed_a=a.seed, seed_b=b.seed, perms=result.perms,
                   objective_trace=np.asarray(result.objective_trace), aligned=aligned, source_a=str(path_a),
                   source_b=str(path_b), sweeps=result.sweeps, converged=result.converged,
                   distance_kind=dist_kind, distance_before=before, distance_after=after)
    log.info("%s-%s %s: %s distance %.4g -> %.4g, %d sweeps (converged: %s); NoT %s", a.seed, b.seed, kind,
             dist_kind, before, after, result.sweeps, result.converged, al.not_per_group)
    artifacts.write_alignment(out, al)


# ---------------------------------------------------------------- joint alignment of all seeds


def _check_kind(kind: str, post) -> None:
    if kind not in ALIGNMENT_KINDS:
        raise ValueError(f"unknown alignment kind {kind!r}; allowed: {', '.join(ALIGNMENT_KINDS)}")
    if post.kind not in ALIGNMENT_KINDS[kind]:
        raise ValueError(f"alignment {kind!r} applies to {' and '.join(ALIGNMENT_KINDS[kind])} posteriors, "
                         f"not to {post.kind} ({post.method})")


def align_joint(kind: str, paths, seeds, cfg: dict, out) -> None:
    """Every seed's posterior permuted into one basin together (MergeMany: one seed after another
    matched, by alignment.matcher, to the mean of the others as aligned, until no permutation
    changes; for W2 the others' mean and mean standard deviation, their W2 barycentre)."""
    from ..alignment.rebasing import rebase

    if len(paths) != len(seeds) or len(seeds) < 3:
        raise ValueError(f"joint alignment needs one posterior per seed and at least 3 seeds, got {len(paths)} "
                         f"files for seeds {list(seeds)}")
    posts = [read_posterior(p, seed=s) for p, s in zip(paths, seeds)]
    for p, post in zip(paths, posts):
        posts[0].check_compatible(post, f"joint alignment of {paths[0]} and {p}")
    _check_kind(kind, posts[0])
    spec = posts[0].permutation_spec()
    means = {k: np.stack([post.representative()[k] for post in posts]) for k in posts[0].representative()}
    stds = {k: np.stack([post.std[k] for post in posts]) for k in means} if kind == "w2" else None
    matcher = cfg["alignment"].get("matcher", "weight")
    matchers.get(matcher, matchers.WEIGHTS)
    result = rebase(means, spec, reference="iterated", matching=matcher, extra=stds,
                    max_iterations=cfg["alignment"].get("joint_max_iterations", 10), seed=1000 * min(seeds))
    joint = artifacts.JointAlignment(alignment=kind, matcher=matcher, method=posts[0].method, seeds=list(seeds),
                                     perms=dict(zip(seeds, result.perms)), iterations=result.iterations,
                                     changed=result.changed, sources=[str(p) for p in paths])
    log.info("%s %s joint alignment of seeds %s: %d reference updates, changed per update %s", joint.method, kind,
             list(seeds), joint.iterations, joint.changed)
    artifacts.write_joint_alignment(out, joint)


def pair_from_joint(perms_a: dict, perms_b: dict) -> dict:
    """The permutation of B into A's frame that the joint alignment implies: B into the joint basin,
    then out of it by A's inverse (aligned[i] = B[sigma_b[inverse(sigma_a)[i]]])."""
    from ..alignment.permutations import compose, invert

    return {g: compose(perms_b[g], invert(perms_a[g])) for g in perms_a}


def joint_pair(joint_path, path_a, path_b, out, *, seeds: tuple[int, int]) -> None:
    """The alignment file of one pair under the joint alignment: B in A's frame, as align_pair writes it,
    so the barrier rules read joint and pairwise alignments alike."""
    joint = artifacts.read_joint_alignment(joint_path)
    missing = [s for s in seeds if s not in joint.perms]
    if missing:
        raise ValueError(f"{joint_path} aligned seeds {joint.seeds}, not {missing}")
    a, b = read_posterior(path_a, seed=seeds[0]), read_posterior(path_b, seed=seeds[1])
    a.check_compatible(b, f"aligning {path_a} and {path_b}")
    spec = a.permutation_spec()
    perms = pair_from_joint(joint.perms[seeds[0]], joint.perms[seeds[1]])
    aligned = b.permuted(spec, perms)
    dist_kind, before = a.distance_to(b)
    _, after = a.distance_to(aligned)
    al = Alignment(alignment=f"joint_{joint.alignment}", method=a.method, seed_a=a.seed, seed_b=b.seed, perms=perms,
                   objective_trace=np.zeros(0), aligned=aligned, source_a=str(path_a), source_b=str(path_b),
                   sweeps=joint.iterations, converged=joint.converged, distance_kind=dist_kind,
                   distance_before=before, distance_after=after)
    artifacts.write_alignment(out, al)


def merge(posts: list) -> "artifacts.Posterior":
    """The merged model of posteriors in one frame: sample sets merge into one network at the mean of
    their sample means (model merging); diagonal Gaussians into their W2 barycentre, whose mean is the
    mean of the means and whose standard deviations are the mean of the standard deviations (exact for
    diagonal covariances, which commute)."""
    import dataclasses

    first = posts[0]
    if first.kind == "gaussian":
        return dataclasses.replace(first, mean={k: np.mean([p.mean[k] for p in posts], axis=0) for k in first.mean},
                                   std={k: np.mean([p.std[k] for p in posts], axis=0) for k in first.std})
    centre = {k: np.mean([p.representative()[k] for p in posts], axis=0) for k in first.samples}
    return dataclasses.replace(first, samples={k: v[None, None] for k, v in centre.items()})


def merged_model(joint_path, paths, data_path, cfg: dict, out) -> None:
    """Test NLL and error of the merged model of a joint alignment (:func:`merge` of the aligned
    posteriors), beside the same merge of the unaligned posteriors (the control: merging across
    basins), the members on their own (mean over seeds) and the members' mixture (every member's
    predictive averaged, the ensemble the merge would replace). Gaussians predict with
    barrier.mc_samples draws (through the linearised network where their predictive is 'glm')."""
    import pandas as pd
    import torch

    from ..evaluation.predict import log_predictive, loss_error
    from ..storage.atomic import write_csv
    from ..storage.prepared import load_prepared

    joint = artifacts.read_joint_alignment(joint_path)
    if len(paths) != len(joint.seeds):
        raise ValueError(f"{joint_path} aligned seeds {joint.seeds}: give one posterior per seed, got {len(paths)}")
    data = load_prepared(data_path)
    posts = [read_posterior(p, seed=s, data=data) for p, s in zip(paths, joint.seeds)]
    for p, post in zip(paths, posts):
        posts[0].check_compatible(post, f"merging {paths[0]} and {p}")
    spec = posts[0].permutation_spec()
    aligned = [post.permuted(spec, joint.perms[post.seed]) for post in posts]
    split, n_mc, seed = cfg["barrier"]["split"], cfg["barrier"]["mc_samples"], cfg["barrier"]["seed"]
    x, y = data[f"x_{split}"], data[f"y_{split}"]
    model, _ = posts[0].build_model()
    budget = cfg["compute"]["memory_mb"]

    def logp(post):
        return log_predictive(model, post.sample_source(n_mc, seed), x, memory_mb=budget)

    members = [logp(post) for post in posts]
    scores = {"merged": loss_error(logp(merge(aligned)), y), "unaligned_merged": loss_error(logp(merge(posts)), y),
              "mixture": loss_error(torch.logsumexp(torch.stack(members), 0) - np.log(len(members)), y)}
    member_scores = [loss_error(m, y) for m in members]
    row = {"method": joint.method, "alignment": joint.alignment, "seeds": len(posts), "split": split}
    for name, (nll, err) in scores.items():
        row[f"{name}_nll"], row[f"{name}_error"] = nll, err
    row["members_nll_mean"] = float(np.mean([s[0] for s in member_scores]))
    row["members_error_mean"] = float(np.mean([s[1] for s in member_scores]))
    log.info("%s %s merged model of seeds %s: NLL %.4f (unaligned %.4f, members %.4f, mixture %.4f)", joint.method,
             joint.alignment, joint.seeds, row["merged_nll"], row["unaligned_merged_nll"], row["members_nll_mean"],
             row["mixture_nll"])
    write_csv(out, pd.DataFrame([row]))


def cycle_inconsistency(perms: dict[tuple[int, int], dict[str, np.ndarray]]) -> list[dict]:
    """Per triple a < b < c of seeds whose three pairs were aligned: the transpositions between
    aligning C to A through B (C to B, then B to A) and aligning C to A directly, summed over the
    groups (NoT of the one permutation times the other's inverse: 0 when the pairs agree)."""
    import itertools

    from ..alignment.permutations import compose, invert, number_of_transpositions

    seeds = sorted({s for pair in perms for s in pair})
    rows = []
    for a, b, c in itertools.combinations(seeds, 3):
        if not {(a, b), (b, c), (a, c)} <= set(perms):
            continue
        through_b = {g: compose(perms[(b, c)][g], perms[(a, b)][g]) for g in perms[(a, c)]}
        rows.append({"a": a, "b": b, "c": c,
                     "not": sum(number_of_transpositions(compose(through_b[g], invert(perms[(a, c)][g])))
                                for g in through_b),
                     "units": sum(len(p) for p in perms[(a, c)].values())})
    return rows


def summarize_joint(joint_paths, pair_paths, out_csv, out_md, merged_paths=()) -> None:
    """One row per method and alignment kind: the pairwise alignments' cycle inconsistency (NoT per
    100 hidden units over all triples of seeds), the same for the joint alignment (0 by construction:
    checked, not assumed), how the joint alignment ended, and the merged model's scores
    (``merged_paths``: the tables of :func:`merged_model`)."""
    import pandas as pd

    from ..storage.atomic import write_csv, write_text

    pairwise: dict[tuple[str, str], dict] = {}
    for path in pair_paths:
        al = artifacts.read_alignment(path)
        pairwise.setdefault((al.method, al.alignment), {})[(al.seed_a, al.seed_b)] = al.perms
    rows = []
    for path in joint_paths:
        joint = artifacts.read_joint_alignment(path)
        implied = {(a, b): pair_from_joint(joint.perms[a], joint.perms[b]) for a in joint.seeds for b in joint.seeds
                   if a < b}
        pw = cycle_inconsistency(pairwise.get((joint.method, joint.alignment), {}))
        jt = cycle_inconsistency(implied)
        units = jt[0]["units"] if jt else 0
        rows.append({
            "method": joint.method, "alignment": joint.alignment, "matcher": joint.matcher, "seeds": len(joint.seeds),
            "triples": len(pw), "hidden_units": units,
            "pairwise_cycle_not_per_100_mean": 100 * np.mean([r["not"] for r in pw]) / units if pw else np.nan,
            "pairwise_cycle_not_per_100_max": 100 * max(r["not"] for r in pw) / units if pw else np.nan,
            "pairwise_consistent_triples": sum(r["not"] == 0 for r in pw) / len(pw) if pw else np.nan,
            "joint_cycle_not_per_100_max": 100 * max(r["not"] for r in jt) / units if jt else np.nan,
            "joint_reference_updates": joint.iterations, "joint_converged": joint.converged,
        })
    frame = pd.DataFrame(rows)
    if len(merged_paths):
        merged = pd.concat([pd.read_csv(p) for p in merged_paths], ignore_index=True).drop(columns=["seeds"])
        frame = frame.merge(merged, on=["method", "alignment"], how="left", validate="one_to_one")
    write_csv(out_csv, frame)
    write_text(out_md, joint_markdown(frame))


def joint_markdown(frame) -> str:
    """The joint-alignment table as printed (the paper target redraws it from the CSV alone)."""
    from .. import tables

    return tables.markdown(frame.set_index("method"), index_name="method")
