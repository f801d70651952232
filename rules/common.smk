# Config validation, sweep variants, paths and small helpers shared by every rule file. Which
# methods exist, what their artifacts are and which alignments apply come from the method
# registry (workflow/methods); no rule names a method.
import hashlib
import json
import re
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError

from workflow import methods as registry
from workflow.storage import paths as P
from workflow.alignment.matchers import LOSS, SAMPLE_MATCHERS, get as get_matcher, names as matcher_names
from workflow.captions import caption_text, table_item
from workflow.device import GPU_RULES
from workflow.job_resources import estimate, load_reference, request
from workflow.job_sizes import chains_rule
from workflow.config import (
    ConfigError,
    expand_variants,
    method_seeds,
    result_config,
    runtime_config,
    seed_groups,
    seed_pairs,
    sweep_table,
    validate_config,
)

try:
    _validated = validate_config(config)
    # variant name -> (overrides, validated config of that variant); "base" when nothing is swept
    VARIANTS = expand_variants(_validated)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)


def _check_gpu_limit():
    """A profile's `resources: gpu=N` caps what one job (or one submission) may ask; a config whose
    GPU jobs ask for more would have its request shrunk by Snakemake, or never run."""
    cap = workflow.global_resources.get("gpu")
    cap = getattr(cap, "value", cap)
    wanted = max(v["compute"]["gpu"] for _, v in VARIANTS.values())
    if isinstance(cap, int) and wanted > cap:
        raise WorkflowError(
            f"config key compute.gpu: {wanted} GPUs per GPU job, but the profile allows {cap} per job or submission "
            f"(its resources: gpu={cap}); raise the profile's gpu to {wanted}, or lower compute.gpu"
        )


_check_gpu_limit()

# the run's folder: every path below it is spelled by workflow/storage/paths.py (P), nowhere else
RESULTS = f"results/{config['name']}"
# jobs run `python -m workflow`: the environment Snakemake runs in (the README's venv), or
# this conda environment with --software-deployment-method conda
ENV = "../envs/workflow.yaml"
METHODS = config["methods"]
# swept key -> base value, and variant -> its value of every swept key: computed once, read by several rules
SWEEP = sweep_table(config, VARIANTS)


def _with_bases(selected):
    """The selected methods and every method they are fitted around (trained as dependencies)."""
    out = list(selected)
    for m in out:
        base = registry.fitted_around(m)
        if base and base not in out:
            out.append(base)
    return out


TRAINED = _with_bases(METHODS)
SAMPLE_METHODS = registry.of_kind(METHODS, "samples")  # rebasin applies to sample sets
GAUSSIAN_METHODS = registry.of_kind(METHODS, "gaussian")
REFERENCE = registry.reference_method(METHODS)  # Table 1 compares every predictive with its (HMC's)


def seeds_of(method):
    """Seeds a method runs on (HMC may use fewer chains than there are seeds)."""
    return method_seeds(config, method)


def pairs_of(method):
    return [f"{a}-{b}" for a, b in seed_pairs(config, method)]


def variant_config(variant):
    return VARIANTS[variant][1]


def kinds_for(method):
    """Alignment kinds that apply to a method's posteriors."""
    return registry.alignment_kinds(method, config["alignment"]["kinds"])


def joint_kinds_for(method):
    """Alignment kinds aligned jointly over all seeds (alignment.joint; methods with 3 seeds or more)."""
    if not config["alignment"]["joint"] or len(seeds_of(method)) < 3:
        return []
    return kinds_for(method)


def data_key(cfg):
    """Variants with the same data section share one prepared data file."""
    data = result_config(cfg, ["data"])["data"]
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


DATA_CONFIGS = {data_key(cfg): cfg for _, cfg in VARIANTS.values()}


def data_file(wc):
    return P.data(RESULTS, data_key(variant_config(wc.variant)))


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


MEASURED = load_reference()  # workflow/measured_resources.csv: rates measured on the MNIST t10k configs


def job_resources(rule_name, mem_mb, runtime, **fixed_wildcards):
    """mem_mb and runtime of a rule's jobs, each job's own: scaled to its variant's config from the
    measured rates (workflow/job_resources.py: estimate, request), or the given values where nothing
    of the rule on this architecture was measured, and for the runtime of a job on a GPU (the rates
    are the CPU's). Both grow with each retry (--retries). `fixed_wildcards`: what a rule fixes
    instead of matching (method, chains)."""

    known = {}  # mem_mb and runtime are asked for separately: size each job once

    def sized(wc):
        wildcards = dict(wc.items()) | fixed_wildcards
        key = tuple(sorted(wildcards.items()))
        if key not in known:
            cfg = variant_config(wildcards["variant"]) if "variant" in wildcards else config
            measured_mem, measured_runtime = request(rule_name, cfg, estimate(MEASURED, rule_name, wildcards, cfg))
            known[key] = (measured_mem or mem_mb, measured_runtime or runtime)
        return known[key]

    return dict(mem_mb=lambda wc, attempt: sized(wc)[0] * attempt, runtime=lambda wc, attempt: sized(wc)[1] * attempt)


def heavy_resources(rule_name, mem_mb, runtime, **fixed_wildcards):
    """job_resources, and for the rules in workflow/device.py's GPU_RULES compute.gpu GPUs (of
    compute.gpu_model, if set): those are passed `--gpus {resources.gpu}`, so they compute on the
    GPU they were given."""
    HEAVY_RULES.add(rule_name)
    out = job_resources(rule_name, mem_mb, runtime, **fixed_wildcards)
    if rule_name in GPU_RULES:
        out["gpu"] = config["compute"]["gpu"]
        if config["compute"]["gpu"] and config["compute"]["gpu_model"]:
            out["gpu_model"] = config["compute"]["gpu_model"]
    return out


HEAVY_RULES = set()  # the rule names given to heavy_resources, checked against the rules at the end of the Snakefile


def posterior_file(variant, method, seed):
    return P.posterior(RESULTS, variant, method, seed)


def posterior_files(variant, method):
    return [posterior_file(variant, method, s) for s in seeds_of(method)]


def base_posterior(wc):
    """The posterior a method is fitted around (same seed), if it is fitted around one."""
    base = registry.fitted_around(wc.method)
    return [posterior_file(wc.variant, base, wc.seed)] if base else []


def barrier_endpoints_b(wc):
    """Per pair, in seed_pairs order: naive paths end at posterior B itself, aligned ones at B
    permuted (inside the alignment file)."""
    if wc.alignment == "naive":
        return [posterior_file(wc.variant, wc.method, b) for _, b in seed_pairs(config, wc.method)]
    return [
        P.alignment(RESULTS, wc.variant, wc.method, wc.alignment, f"{a}-{b}") for a, b in seed_pairs(config, wc.method)
    ]


def curve_files():
    """One curve table per variant, method with pairs, and alignment (all pairs in it); and the
    within-chain control of every Markov-chain method with pairs."""
    return [
        P.curves(RESULTS, variant, method, alignment)
        for variant in VARIANTS
        for method in pair_methods()
        for alignment in [
            "naive",
            *kinds_for(method),
            *[f"joint_{k}" for k in joint_kinds_for(method)],
            *(["within_chain"] if within_chain_control(method) else []),
        ]
    ]


def within_chain_control(method):
    """A chain with two draws or more can be halved: the control of the method's barriers."""
    return registry.markov_chain(method) and config[method].get("n_samples", 2) >= 2


def alignment_files():
    return [
        P.alignment(RESULTS, variant, method, kind, pair)
        for variant in VARIANTS
        for method in METHODS
        for kind in kinds_for(method)
        for pair in pairs_of(method)
    ]


def joint_files(variant):
    return [P.joint_alignment(RESULTS, variant, m, k) for m in METHODS for k in joint_kinds_for(m)]


def alignment_data(wc):
    """The prepared data, for a matcher that trains on it (alignment.matcher: a loss matcher)."""
    loss = get_matcher(variant_config(wc.variant)["alignment"]["matcher"]).compares == LOSS
    return [data_file(wc)] if loss else []


def joint_merged_files(variant):
    return [P.joint_merged(RESULTS, variant, m, k) for m in METHODS for k in joint_kinds_for(m)]


def joint_pairwise_files(variant):
    """The pairwise alignments the joint ones are compared with (cycle consistency)."""
    return [
        P.alignment(RESULTS, variant, m, k, pair) for m in METHODS for k in joint_kinds_for(m) for pair in pairs_of(m)
    ]


def joint_tables():
    if not any(joint_files(v) for v in VARIANTS):
        return []
    return [P.table(RESULTS, f"joint_alignment_{v}", ext) for v in VARIANTS for ext in ("csv", "md")]


def pair_methods():
    """Methods with at least one pair of seeds (HMC may run a single chain): they get barriers."""
    return [m for m in METHODS if pairs_of(m)]


def barrier_tables():
    """The barrier summary, when any method has a pair to measure."""
    if not pair_methods():
        return []
    return [P.table(RESULTS, "barrier_curves"), P.table(RESULTS, "barriers"), P.table(RESULTS, "barriers", "md")]


def figure_files():
    files = [
        P.figure(RESULTS, f"barrier_{method}_{variant}", ext)
        for method in pair_methods()
        for variant in VARIANTS
        for ext in ("png", "pdf")
    ]
    if len(VARIANTS) > 1:
        files += [P.figure(RESULTS, f"sweep_{method}", ext) for method in pair_methods() for ext in ("png", "pdf")]
    return files


def rebasin_files(variant):
    """'<method>/<matching>/<reference>/<fit>' -> path, for every sample method, configured matching
    and reference."""
    return {
        f"{m}/{mt}/{r}/{fit}": P.rebasin(RESULTS, variant, m, mt, r, fit)
        for m in SAMPLE_METHODS
        for mt in config["rebasin"]["matchings"]
        for r in config["rebasin"]["references"]
        for fit in ("q_d", "q_r")
    }


def rebasin_draw_files(variant):
    return [
        P.rebasin(RESULTS, variant, m, mt, r, "draws")
        for m in SAMPLE_METHODS
        for mt in config["rebasin"]["matchings"]
        for r in config["rebasin"]["references"]
    ]


def rebasin_draw_tables():
    if not SAMPLE_METHODS:
        return []
    return [P.table(RESULTS, f"rebasin_draws_{v}", ext) for v in VARIANTS for ext in ("csv", "md")]


def gaussian_files(variant):
    """Gaussian method -> its posteriors (seed order)."""
    return {m: posterior_files(variant, m) for m in GAUSSIAN_METHODS}


def table_files():
    if not REFERENCE:
        return []
    return [P.table(RESULTS, f"table1_{v}", ext) for v in VARIANTS for ext in ("csv", "md", "tex")]


def swept_values():
    """swept key -> the values it takes over the variants."""
    out = {}
    for values in SWEEP["variants"].values():
        for key, value in values.items():
            if value not in out.setdefault(key, []):
                out[key].append(value)
    return out


def summary_tables():
    """Every CSV summary table this config produces."""
    tables = [f for f in barrier_tables() if f.endswith(".csv")]
    if REFERENCE:
        tables += [P.table(RESULTS, f"{t}_{v}") for v in VARIANTS for t in ("table1", "chain_diagnostics")]
    tables += [f for f in rebasin_draw_tables() if f.endswith(".csv")]
    tables += [f for f in joint_tables() if f.endswith(".csv")]
    return tables + [f for f in study_files() if f.endswith(".csv")]


def replicate_tables():
    """The bootstrap replicates behind the intervals of the claims (not summary tables: no report item)."""
    return [P.replicates(RESULTS, v) for v in VARIANTS] if REFERENCE else []


def report_tables():
    return [P.report(RESULTS, Path(t).stem) for t in summary_tables()]


def table_caption(stem):
    item, _, variant = table_item(stem, VARIANTS)
    return caption_text(item, variant_config(variant) if variant else config, variant=variant)


wildcard_constraints:
    variant="|".join(re.escape(v) for v in VARIANTS),
    datakey=r"[0-9a-f]{10}",
    seed=r"\d+",
    a=r"\d+",
    b=r"\d+",
    method="|".join(TRAINED),
    kind="|".join(registry.ALIGNMENT_KINDS),
    alignment="|".join(["naive", *registry.ALIGNMENT_KINDS, *[f"joint_{k}" for k in registry.ALIGNMENT_KINDS]]),
    reference="first|iterated",
    matching="|".join(matcher_names(SAMPLE_MATCHERS)),
