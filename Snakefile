# Permutation symmetry in Bayesian neural network posteriors: the workflow's entry point.
# Loads and validates the config before any job runs, includes one .smk per stage and names
# the targets. Science lives in the `workflow` package; rules only wire paths.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/align.smk"
include: "rules/metrics.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        figure_files(),
        rules.tables.input,
