"""The settings, seeds and pairs behind each figure and table, as one plain sentence for its report
caption (report/*.rst): a reader of the report sees what every item summarises without the config.

Runtime settings (device, threads, checkpoint interval, data paths) are left out.
"""

from __future__ import annotations

from . import methods as registry
from .config import method_seeds, runtime_keys, seed_pairs
from .study_registry import STUDIES, BY_KEY as STUDY

# item -> the config sections it depends on, besides its methods' own sections
ITEM_SECTIONS = {
    "barrier": ("data", "model", "prior", "alignment", "barrier"),
    "barriers": ("data", "model", "prior", "alignment", "barrier"),
    "sweep": ("data", "model", "prior", "alignment", "barrier"),
    "table1": ("data", "model", "prior", "rebasin", "table"),
    "chain_diagnostics": ("data", "model", "prior", "table"),
    "rebasin_draws": ("data", "model", "prior", "rebasin"),
    "basin": ("data", "model", "prior", "rebasin", "alignment"),
    "joint_alignment": ("data", "model", "prior", "alignment"),
    **{s.key: s.sections for s in STUDIES},
}


def _value(v) -> str:
    if isinstance(v, dict):
        return "(" + ", ".join(f"{k} {_value(x)}" for k, x in v.items()) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def settings_text(cfg: dict, sections) -> str:
    """'data: dataset digits, n_train 400; model: ...' for the sections' result-deciding keys."""
    runtime = runtime_keys()
    parts = []
    for s in sections:
        body = cfg.get(s)
        if isinstance(body, dict) and s in runtime:
            body = {} if runtime[s] is None else {k: v for k, v in body.items() if k not in runtime[s]}
        if body not in ({}, None):
            parts.append(f"{s}: " + (", ".join(f"{k} {_value(v)}" for k, v in body.items())
                                     if isinstance(body, dict) else _value(body)))
    return "; ".join(parts)


def seeds_text(cfg: dict, methods) -> str:
    """'seeds 0, 1, 2 (ensemble, vi); 0, 1 (hmc)': methods grouped by the seeds they ran on."""
    groups: dict[tuple, list[str]] = {}
    for m in methods:
        groups.setdefault(tuple(method_seeds(cfg, m)), []).append(m)
    return "seeds " + "; ".join(f"{', '.join(map(str, s))} ({', '.join(ms)})" for s, ms in groups.items())


def pairs_text(cfg: dict, methods) -> str:
    groups: dict[tuple, list[str]] = {}
    for m in methods:
        groups.setdefault(tuple(seed_pairs(cfg, m)), []).append(m)
    return "seed pairs " + "; ".join(
        f"{', '.join(f'{a}-{b}' for a, b in p) or 'none'} ({', '.join(ms)})" for p, ms in groups.items())


def item_methods(item: str, cfg: dict, method: str | None = None) -> list[str]:
    """The methods an item summarises: its own method, or those of the config it draws on."""
    selected = list(cfg["methods"])
    if method is not None:
        return [method]
    if item in STUDY:
        return STUDY[item].methods(selected, cfg)
    if item in ("table1", "basin"):
        return selected
    if item == "chain_diagnostics":
        return [registry.reference_method(selected)]
    if item == "rebasin_draws":
        return registry.of_kind(selected, "samples")
    if item == "joint_alignment":
        return [m for m in selected if len(method_seeds(cfg, m)) >= 3]
    return [m for m in selected if seed_pairs(cfg, m)]  # barriers: methods with pairs


def caption_text(item: str, cfg: dict, *, method: str | None = None, variant: str | None = None,
                 swept: dict | None = None) -> str:
    """One paragraph: the variant, the swept values (sweep figures), seeds, pairs and settings."""
    if item not in ITEM_SECTIONS:
        raise ValueError(f"no caption for item {item!r}; known: {', '.join(ITEM_SECTIONS)}")
    ms = item_methods(item, cfg, method)
    sentences = []
    if variant is not None:
        sentences.append(f"Variant {variant}.")
    if swept:
        sentences.append("Swept: " + "; ".join(f"{k} over {', '.join(_value(v) for v in vs)}"
                                                 for k, vs in swept.items()) + ".")
    sentences.append(f"Methods {', '.join(ms)}; {seeds_text(cfg, ms)}.")
    if item in ("barrier", "barriers", "sweep") or (item in STUDY and STUDY[item].pairs):
        sentences.append(f"Each curve or row is one of the {pairs_text(cfg, ms)}.")
    if item in STUDY and STUDY[item].caption:
        sentences.append(STUDY[item].caption(cfg))
    sections = [*ITEM_SECTIONS[item], *ms]
    sentences.append("Settings: " + settings_text(cfg, list(dict.fromkeys(sections))) + ".")
    return " ".join(sentences)


# summary table -> (item it is, title); '<kind>_<variant>' tables are per variant
TABLE_TITLES = {
    "barrier_curves": ("barriers", "Barrier curves: loss and error at every point of every path"),
    "barriers": ("barriers", "Loss and error barriers, one row per seed pair and alignment"),
    "table1": ("table1", "Table 1: every predictive against HMC's"),
    "chain_diagnostics": ("chain_diagnostics", "HMC chains: rank-normalised R-hat, bulk and tail ESS of p(y|x) on the test points"),
    "rebasin_draws": ("rebasin_draws", "Rebasin control: NoT matching gave the draws of the reference's chain and of "
                      "the other chains"),
    "basin": ("basin", "Gaussians aligned into the basin of HMC's q_r"),
    "joint_alignment": ("joint_alignment", "Joint alignment of all seeds: cycle consistency of the pairwise "
                        "permutations"),
    **{s.key: (s.key, s.title) for s in STUDIES},
}


def table_item(stem: str, variants) -> tuple[str, str, str | None]:
    """(item, title, variant or None) of a summary table's file stem ('table1_base', 'barriers')."""
    if stem in TABLE_TITLES:
        item, title = TABLE_TITLES[stem]
        return item, title, None
    for kind, (item, title) in TABLE_TITLES.items():
        variant = stem[len(kind) + 1:]
        if stem.startswith(kind + "_") and variant in variants:
            return item, f"{title} (variant {variant})", variant
    raise ValueError(f"unknown summary table {stem!r}; known: {', '.join(TABLE_TITLES)} (with _<variant>)")
