"""Stage align: permute posterior B into A's basin (weight matching, or the W2 alignment of Gaussians)."""

from __future__ import annotations

import logging

import numpy as np

from ..storage import artifacts
from ..storage.artifacts import Alignment
from ..alignment import matchers
from ..methods import ALIGNMENT_KINDS
from .inputs import read_posterior

log = logging.getLogger(__name__)

def align(a, b, kind: str, *, seed: int, max_sweeps: int, restarts: int = 1, matcher: str = "weight"):
    """(matching result, B aligned) for posteriors A and B, by a weight matcher of the registry."""
    if kind not in ALIGNMENT_KINDS:
        raise ValueError(f"unknown alignment kind {kind!r}; allowed: {', '.join(ALIGNMENT_KINDS)}")
    if a.kind not in ALIGNMENT_KINDS[kind]:
        raise ValueError(f"alignment {kind!r} applies to {' and '.join(ALIGNMENT_KINDS[kind])} posteriors, "
                         f"not to {a.kind} ({a.method})")
    spec = a.permutation_spec()  # from the parameter names: alignment jobs never import torch
    extra = [(a.std, b.std, 1.0)] if kind == "w2" else []
    match = matchers.get(matcher, matchers.WEIGHTS).match
    result = match(a.representative(), b.representative(), spec, seed=seed, max_sweeps=max_sweeps,
                   extra_channels=extra, restarts=restarts)
    return result, b.permuted(spec, result.perms)


def align_pair(kind: str, path_a, path_b, cfg: dict, out, *, seeds: tuple[int, int] | None = None) -> None:
    """Permute B into A's basin and write the alignment file (permutations, trace, NoT, distances, B aligned)."""
    a = read_posterior(path_a, seed=seeds[0] if seeds else None)
    b = read_posterior(path_b, seed=seeds[1] if seeds else None)
    a.check_compatible(b, f"aligning {path_a} and {path_b}")
    # the matching's random group order depends on the pair alone, so reruns give identical files
    result, aligned = align(a, b, kind, seed=1000 * a.seed + b.seed, max_sweeps=cfg["alignment"]["max_sweeps"],
                            restarts=cfg["alignment"].get("restarts", 1),
                            matcher=cfg["alignment"].get("matcher", "weight"))
    dist_kind, before = a.distance_to(b)
    _, after = a.distance_to(aligned)
    al = Alignment(alignment=kind, method=a.method, seed_a=a.seed, seed_b=b.seed, perms=result.perms,
                   objective_trace=np.asarray(result.objective_trace), aligned=aligned, source_a=str(path_a),
                   source_b=str(path_b), sweeps=result.sweeps, converged=result.converged,
                   distance_kind=dist_kind, distance_before=before, distance_after=after)
    log.info("%s-%s %s: %s distance %.4g -> %.4g, %d sweeps (converged: %s); NoT %s", a.seed, b.seed, kind,
             dist_kind, before, after, result.sweeps, result.converged, al.not_per_group)
    artifacts.write_alignment(out, al)
