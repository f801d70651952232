"""The matcher registry: every way the workflow finds the permutations that align B to A.

A matcher is declared once here: its name (the config's value), what it compares (the weights, or
the hidden units' activations on data) and its function. Pair alignment (``alignment.matcher``),
rebasin (``rebasin.matchings``), the config schema and ``benchmarks/planted_recovery.py`` read
this table, so a new matcher is one function plus one entry.

Weight matchers: ``f(params_a, params_b, spec, *, seed, max_sweeps, init, extra_channels,
restarts) -> MatchingResult`` (extra channels make weight matching a W2 alignment of Gaussians).
Activation matchers: ``f(acts_a, acts_b) -> perms``, with ``acts`` from the architecture's
``hidden_activations`` hook; every group is then an independent assignment problem.
Loss matchers: ``f(model, params_a, params_b, spec, x, y, *, seed, max_sweeps, extra_channels,
restarts, **settings) -> MatchingResult``, trained on the training points (x, y); they align pairs
(``alignment.matcher``), not sample sets: one optimisation per sample would cost a training run each.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

WEIGHTS, ACTIVATIONS, LOSS = "weights", "activations", "loss"


@dataclass(frozen=True)
class Matcher:
    name: str
    compares: str  # WEIGHTS, ACTIVATIONS or LOSS
    function: str  # "module:function" under workflow.alignment, imported when first used (the config stays light)
    description: str
    keywords: dict = field(default_factory=dict)

    @property
    def match(self) -> Callable:
        module, function = self.function.split(":")
        found = getattr(importlib.import_module(f"workflow.alignment.{module}"), function)
        return partial(found, **self.keywords) if self.keywords else found


MATCHERS = {m.name: m for m in (
    Matcher("weight", WEIGHTS, "matching:weight_matching",
            "Git Re-Basin weight matching (Ainsworth et al., 2023): coordinate descent over the groups, one linear "
            "assignment each, from the layer-wise start"),
    Matcher("sinkhorn", WEIGHTS, "sinkhorn:sinkhorn_matching",
            "the weight-matching objective over doubly stochastic matrices with an annealed entropy term "
            "(softassign; the relaxation of Sinkhorn re-basin, Pena et al., 2023), rounded and polished by "
            "coordinate descent"),
    Matcher("ste", LOSS, "straight_through:ste_matching",
            "Git Re-Basin's straight-through estimator: permutations of B that lower the training loss at the "
            "midpoint of A and B aligned, the best candidate kept from weight matching's on"),
    Matcher("activation", ACTIVATIONS, "rebasing:activation_matching",
            "Xiao et al.'s cost: raw inner products of post-activation hidden units on training data",
            {"cost": "inner"}),
    Matcher("correlation", ACTIVATIONS, "rebasing:activation_matching",
            "Pearson correlations of post-activation hidden units on training data", {"cost": "correlation"}),
)}


def names(compares: str | tuple[str, ...] | None = None) -> list[str]:
    """Every matcher's name, or those that compare ``compares`` (one of WEIGHTS, ACTIVATIONS, LOSS, or a
    tuple of them)."""
    kinds = _kinds(compares)
    return [n for n, m in MATCHERS.items() if kinds is None or m.compares in kinds]


def _kinds(compares: str | tuple[str, ...] | None) -> tuple[str, ...] | None:
    return (compares,) if isinstance(compares, str) else compares


PAIR_MATCHERS = (WEIGHTS, LOSS)  # what alignment.matcher takes (pairs of posteriors)
SAMPLE_MATCHERS = (WEIGHTS, ACTIVATIONS)  # what rebasin.matchings takes (sample sets)


def get(name: str, compares: str | tuple[str, ...] | None = None) -> Matcher:
    """The matcher ``name``; with ``compares``, refused unless it compares that (or one of those)."""
    allowed = names(compares)
    if name not in allowed:
        what = f" that compares {' or '.join(_kinds(compares))}" if compares else ""
        raise ValueError(f"unknown matcher{what} {name!r}; allowed: {', '.join(allowed)}")
    return MATCHERS[name]
