# Config validation, sweep variants, paths and small helpers shared by every rule file.
import hashlib
import json
import re
import shlex

from snakemake.exceptions import WorkflowError

from workflow.config import (ConfigError, basin_reference, expand_variants, method_seeds, result_config,
                             runtime_config, seed_pairs, sweep_table, validate_config)

try:
    _validated = validate_config(config)
    # variant name -> (overrides, validated config of that variant); "base" when nothing is swept
    VARIANTS = expand_variants(_validated)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

RESULTS = f"results/{config['name']}"
V = f"{RESULTS}/{{variant}}"  # every per-variant output lives below results/<name>/<variant>/
LOGS = f"{RESULTS}/logs"
# jobs run `python -m workflow`: the environment Snakemake runs in (the README's venv), or
# this conda environment with --software-deployment-method conda
ENV = "../envs/workflow.yaml"
METHODS = config["methods"]
GAUSSIAN_METHODS = {"vi"}  # methods whose posteriors are Gaussians (W2 alignment applies)


def seeds_of(method):
    """Seeds a method runs on (HMC may use fewer chains than there are seeds)."""
    return method_seeds(config, method)


def pairs_of(method):
    return [f"{a}-{b}" for a, b in seed_pairs(config, method)]


def variant_config(variant):
    return VARIANTS[variant][1]


def kinds_for(method):
    """Alignment kinds that apply to a method's posteriors."""
    return [k for k in config["alignment"]["kinds"] if k != "w2" or method in GAUSSIAN_METHODS]


def data_key(cfg):
    """Variants with the same data section share one prepared data file."""
    data = result_config(cfg, ["data"])["data"]
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


DATA_CONFIGS = {data_key(cfg): cfg for _, cfg in VARIANTS.values()}


def data_file(wc):
    return f"{RESULTS}/data/{data_key(variant_config(wc.variant))}.npz"


def job_config(*sections):
    """The variant's config sections a job's result depends on, as JSON (a tracked param: editing
    other sections, or runtime settings, reruns nothing). "{method}" names the job's method section."""

    def params(wc):
        names = [s.format(method=wc.method) if "{method}" in s else s for s in sections]
        return json.dumps(result_config(variant_config(wc.variant), names), sort_keys=True)

    return params


def job_runtime(wc, threads):
    """Runtime settings as JSON. Taking `threads` makes this a derived param, which Snakemake's
    params trigger ignores: a new device, thread count or checkpoint interval reruns nothing."""
    cfg = variant_config(wc.variant) if hasattr(wc, "variant") else DATA_CONFIGS[wc.datakey]
    return json.dumps(runtime_config(cfg), sort_keys=True)


def heavy_resources(mem_mb, runtime):
    """Resources of GPU-capable jobs: memory and runtime grow with each retry (--retries)."""
    return dict(
        mem_mb=lambda wc, attempt: mem_mb * attempt,
        runtime=lambda wc, attempt: runtime * attempt,
        gpu=config["compute"]["gpu"],
    )


def barrier_endpoint_b(wc):
    """Naive paths end at posterior B itself, aligned ones at B permuted (inside the alignment file)."""
    if wc.alignment == "naive":
        return f"{RESULTS}/{wc.variant}/posteriors/{wc.method}/seed{wc.b}.h5"
    return f"{RESULTS}/{wc.variant}/alignment/{wc.method}/{wc.alignment}/{wc.a}-{wc.b}.h5"


def curve_files():
    return [
        f"{RESULTS}/{variant}/barriers/{method}/{alignment}/{pair}.csv"
        for variant in VARIANTS
        for method in METHODS
        for alignment in ["naive", *kinds_for(method)]
        for pair in pairs_of(method)
    ]


def alignment_files():
    return [
        f"{RESULTS}/{variant}/alignment/{method}/{kind}/{pair}.h5"
        for variant in VARIANTS
        for method in METHODS
        for kind in kinds_for(method)
        for pair in pairs_of(method)
    ]


def pair_methods():
    """Methods with at least one pair of seeds (HMC may run a single chain): they get barriers."""
    return [m for m in METHODS if pairs_of(m)]


def barrier_tables():
    """The barrier summary, when any method has a pair to measure."""
    if not pair_methods():
        return []
    return [f"{RESULTS}/tables/{t}" for t in ("barrier_curves.csv", "barriers.csv", "barriers.md")]


def figure_files():
    files = [
        f"{RESULTS}/figures/barrier_{method}_{variant}.{ext}"
        for method in pair_methods()
        for variant in VARIANTS
        for ext in ("png", "pdf")
    ]
    if len(VARIANTS) > 1:
        files += [f"{RESULTS}/figures/sweep_{method}.{ext}" for method in pair_methods() for ext in ("png", "pdf")]
    return files


SAMPLE_METHODS = [m for m in ("hmc", "ensemble") if m in METHODS]  # rebasin applies to sample sets
TABLE1 = "hmc" in METHODS  # Table 1 compares every predictive with HMC's


def posterior_files(variant, method):
    return [f"{RESULTS}/{variant}/posteriors/{method}/seed{s}.h5" for s in seeds_of(method)]


def rebasin_files(variant):
    """'<method>/<reference>/<fit>' -> path, for every sample method and configured reference."""
    return {
        f"{m}/{r}/{fit}": f"{RESULTS}/{variant}/rebasin/{m}/{r}/{fit}.h5"
        for m in SAMPLE_METHODS
        for r in config["rebasin"]["references"]
        for fit in ("q_d", "q_r")
    }


def table_files():
    if not TABLE1:
        return []
    return [f"{RESULTS}/tables/table1_{v}.{ext}" for v in VARIANTS for ext in ("csv", "md", "tex")]


wildcard_constraints:
    variant="|".join(re.escape(v) for v in VARIANTS),
    datakey=r"[0-9a-f]{10}",
    seed=r"\d+",
    a=r"\d+",
    b=r"\d+",
    method="|".join(METHODS),
    kind="weight|w2",
    alignment="naive|weight|w2",
    reference="first|iterated",


# ---------------------------------------------------------------- weight-space studies (Xiao et al.)

BASIN_REFERENCE = basin_reference(config)
# other methods' Gaussians aligned into the basin of HMC's q_r: label -> what is aligned
BASIN_LABELS = (["ensemble"] if "ensemble" in METHODS else []) + (
    [f"vi-seed{s}" for s in seeds_of("vi")] if "vi" in METHODS else [])
BASIN = TABLE1 and bool(BASIN_LABELS)
NOT_K = "ensemble" in METHODS and bool(config["not_study"]["ks"])


def hmc_qr(variant):
    return f"{RESULTS}/{variant}/rebasin/hmc/{BASIN_REFERENCE}/q_r.h5"


def basin_sources(variant):
    """label -> Gaussian to align into HMC's basin: the ensemble's q_r, every VI posterior."""
    return {label: (f"{RESULTS}/{variant}/rebasin/ensemble/{BASIN_REFERENCE}/q_r.h5" if label == "ensemble"
                    else f"{RESULTS}/{variant}/posteriors/vi/seed{label.split('seed')[1]}.h5")
            for label in BASIN_LABELS}


def basin_outputs(variant):
    return {label: f"{RESULTS}/{variant}/hmc_basin/{label}.h5" for label in BASIN_LABELS}


def vi_files(variant):
    return posterior_files(variant, "vi") if "vi" in METHODS else []


def pruning_merged(wc):
    """HMC's q_r and the ensemble's q_r in its basin, when both methods run."""
    if BASIN and "ensemble" in BASIN_LABELS:
        return [hmc_qr(wc.variant), basin_outputs(wc.variant)["ensemble"]]
    return []


def path_alignment_kind(method):
    """The alignment whose files the NoT path study walks along (weight matching where it applies)."""
    return kinds_for(method)[0]


def not_path_methods():
    """Methods with at least one pair to walk between and an alignment of it."""
    return [m for m in pair_methods() if kinds_for(m)]


def study_tables(variant):
    """Tables of the weight-space studies that this config asks for: kind -> path."""
    kinds = []
    if SAMPLE_METHODS:
        kinds += ["sigma", "pruning"]
    if NOT_K:
        kinds.append("not_k")
    if not_path_methods():
        kinds.append("not_path")
    return {k: f"{RESULTS}/tables/{k}_{variant}.csv" for k in kinds}


def study_files():
    files = []
    for variant in VARIANTS:
        for kind, table in study_tables(variant).items():
            files += [table] + [f"{RESULTS}/figures/{kind}_{variant}.{ext}" for ext in ("png", "pdf")]
        if BASIN:
            files.append(f"{RESULTS}/tables/hmc_basin_{variant}.csv")
    return files


wildcard_constraints:
    k=r"\d+",
    study="sigma|pruning|not_k|not_path",
