# Config validation, paths and small helpers shared by every rule file.
import json

from snakemake.exceptions import WorkflowError

from workflow.config import ConfigError, seed_pairs, validate_config

try:
    _validated = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

RESULTS = f"results/{config['name']}"
LOGS = f"{RESULTS}/logs"
# jobs run `python -m workflow`: the environment Snakemake runs in (the README's venv), or
# this conda environment with --software-deployment-method conda
ENV = "../envs/workflow.yaml"
METHODS = config["methods"]
ALIGNMENTS = config["alignment"]["kinds"]
PAIRS = [f"{a}-{b}" for a, b in seed_pairs(config)]


wildcard_constraints:
    seed=r"\d+",
    a=r"\d+",
    b=r"\d+",
    method="|".join(METHODS),
    kind="|".join(ALIGNMENTS),
    alignment="|".join(["naive", *ALIGNMENTS]),


def job_config(*sections):
    """The config sections a job depends on, as JSON: editing other sections reruns nothing."""
    return json.dumps({s: config[s] for s in ("name", *sections)}, sort_keys=True)


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
        return f"{RESULTS}/posteriors/{wc.method}/seed{wc.b}.h5"
    return f"{RESULTS}/alignment/{wc.method}/{wc.alignment}/{wc.a}-{wc.b}.h5"
