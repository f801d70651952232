"""The weight-space studies of Xiao et al., each declared once: its table and figure stem, the title
of its table, the config sections its results depend on, the figure drawn from its table, and the
methods it summarises. The report's captions and titles (captions.py), the figure job
(jobs/figures.py), the paper target (jobs/paper.py) and the rules' study wildcard read these
declarations; the rules that compute a study's table are in rules/studies.smk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import methods as registry
from .config import seed_pairs


@dataclass(frozen=True)
class Study:
    key: str  # tables/<key>_<variant>.csv, figures/<key>_<variant>.{png,pdf}
    title: str
    sections: tuple[str, ...]  # config sections its results depend on, besides its methods' own
    figure: str  # function of workflow.plots drawing the study from its table
    methods: Callable[[list[str], dict], list[str]]  # (the config's methods, config) -> those it summarises
    pairs: bool = False  # its rows are seed pairs: the caption lists them
    caption: Callable[[dict], str] | None = None  # one more sentence of its caption, from the config


def _all(selected, cfg):
    return list(selected)


def _with_pairs(selected, cfg):
    return [m for m in selected if seed_pairs(cfg, m)]


def _first_permuted_init(selected, cfg):
    return [m for m in selected if registry.permuted_init(m)][:1]


def _not_k_caption(cfg):
    study = cfg["not_study"]
    return f"k transpositions in {study['ks']}, on the first {study['seeds']} seed(s)."


STUDIES = (
    Study("sigma", "Sigma histograms of q_d, q_r and the Gaussian methods", ("data", "model", "prior", "rebasin"),
          "sigma_histogram_figure", _all),
    Study("pruning", "Pruning by sigma: test accuracy of the pruned mean network",
          ("data", "model", "prior", "rebasin", "pruning"), "pruning_figure", _all),
    Study("not_k", "NoT under training from initial weights permuted by k transpositions",
          ("data", "model", "prior", "not_study", "alignment", "barrier"), "not_k_figure", _first_permuted_init,
          caption=_not_k_caption),
    Study("not_path", "NoT from each point of the path to either endpoint",
          ("data", "model", "prior", "alignment", "barrier"), "not_path_figure", _with_pairs, pairs=True),
)
BY_KEY = {s.key: s for s in STUDIES}


def study(key: str) -> Study:
    if key not in BY_KEY:
        raise ValueError(f"unknown study {key!r}; known: {', '.join(BY_KEY)}")
    return BY_KEY[key]


def wildcard() -> str:
    """The rules' regex of the study wildcard."""
    return "|".join(BY_KEY)
