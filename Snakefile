# Permutation symmetry in Bayesian neural network posteriors: the workflow's entry point.
# Loads and validates the config before any job runs, includes one .smk per stage and names
# the targets. Science lives in the `workflow` package; rules only wire paths.
import shlex
import sys

from snakemake.utils import min_version

min_version("9.0")

# The `workflow` package is imported from this checkout, by this file and by every job: jobs run
# with PYTHONPATH set to the Snakefile's folder. So `--directory elsewhere`, a conda environment of
# dependencies only (envs/workflow.yaml) and cluster jobs all run this code, installed or not.
sys.path.insert(0, workflow.basedir)
# (Snakemake formats the prefix too: braces doubled twice)
shell.prefix(f"export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")


# the checkout's config.yaml is the default experiment (also with --directory elsewhere); a
# --configfile replaces it (it is not layered on top, so every key a config leaves out takes the
# schema's default, as `validate-config` shows)
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/align.smk"
include: "rules/metrics.smk"
include: "rules/rebasin.smk"
include: "rules/common_studies.smk"
include: "rules/studies.smk"
include: "rules/figures.smk"
include: "rules/report.smk"


report: "report/workflow.rst"


rule tables:
    input:
        barrier_tables(),
        table_files(),
        rebasin_draw_tables(),
        joint_tables(),
        [f for f in study_files() if "/tables/" in f],
        report_tables(),


rule all:
    default_target: True
    input:
        figure_files(),
        table_files(),
        rules.tables.input,
        study_files(),
        report_tables(),
        P.claims(RESULTS, "md"),


# workflow/device.py's GPU_RULES is the one list of the rules that compute with torch: a name there or
# given to heavy_resources that is no rule here is a typo that would silently run a job without its GPU
_RULE_NAMES = {r.name for r in workflow.rules}
if (GPU_RULES | HEAVY_RULES) - _RULE_NAMES:
    raise WorkflowError(f"GPU_RULES or heavy_resources name no rule: {sorted((GPU_RULES | HEAVY_RULES) - _RULE_NAMES)}")
