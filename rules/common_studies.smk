# Helpers of the weight-space studies (rules/studies.smk): which methods take part, from the
# method registry, and the paths of the studies' inputs and outputs.
from workflow.config import basin_reference
from workflow.study_registry import wildcard as study_wildcard

BASIN_REFERENCE = basin_reference(config)
BASIN_MATCHING = config["rebasin"]["matchings"][0]  # the studies read the first listed matching's q_r
# Gaussians aligned into the basin of the reference's q_r: every other sample method's q_r, and
# every Gaussian method's posterior of every seed (label -> what is aligned)
BASIN_LABELS = [m for m in SAMPLE_METHODS if m != REFERENCE] + [
    f"{m}-seed{s}" for m in GAUSSIAN_METHODS for s in seeds_of(m)
]
BASIN = bool(REFERENCE) and bool(BASIN_LABELS)
# the method the NoT study retrains from permuted initial weights
NOT_K_METHOD = next((m for m in METHODS if registry.permuted_init(m)), None)
NOT_K = NOT_K_METHOD is not None and bool(config["not_study"]["ks"])


def reference_qr(variant):
    return P.rebasin(RESULTS, variant, REFERENCE, BASIN_MATCHING, BASIN_REFERENCE, "q_r")


def basin_sources(variant):
    """label -> Gaussian to align into the reference's basin."""
    out = {}
    for label in BASIN_LABELS:
        if label in SAMPLE_METHODS:
            out[label] = P.rebasin(RESULTS, variant, label, BASIN_MATCHING, BASIN_REFERENCE, "q_r")
        else:
            method, seed = label.rsplit("-seed", 1)
            out[label] = posterior_file(variant, method, seed)
    return out


def basin_outputs(variant):
    return {label: P.basin(RESULTS, variant, label) for label in BASIN_LABELS}


def pruning_merged(variant):
    """[reference q_r, another sample method's q_r in its basin] per other sample method."""
    if not BASIN:
        return []
    return [[reference_qr(variant), basin_outputs(variant)[m]] for m in SAMPLE_METHODS if m != REFERENCE]


def path_alignment_kind(method):
    """The alignment whose files the NoT path study walks along (weight matching where it applies)."""
    return kinds_for(method)[0]


def not_path_methods():
    """Methods with at least one pair to walk between and an alignment of it."""
    return [m for m in pair_methods() if kinds_for(m)]


def study_tables(variant):
    """Tables of the weight-space studies that this config asks for: kind -> path."""
    kinds = []
    if SAMPLE_METHODS or GAUSSIAN_METHODS:  # a VI-only run has sigmas too (the vi-learned claim reads them)
        kinds += ["sigma", "pruning"]
    if NOT_K:
        kinds.append("not_k")
    if not_path_methods():
        kinds.append("not_path")
    return {k: P.table(RESULTS, f"{k}_{variant}") for k in kinds}


def study_files():
    files = []
    for variant in VARIANTS:
        for kind, table in study_tables(variant).items():
            files += [table] + [P.figure(RESULTS, f"{kind}_{variant}", ext) for ext in ("png", "pdf")]
        if BASIN:
            files.append(P.table(RESULTS, f"basin_{variant}"))
    return files


wildcard_constraints:
    k=r"\d+",
    study=study_wildcard(),  # the studies declared in workflow/study_registry.py
