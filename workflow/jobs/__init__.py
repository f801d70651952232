"""The job layer: one module per rules/*.smk stage, one function per job.

Each job reads its inputs (checked), calls the science code and writes its outputs atomically.
Snakemake rules reach them through ``python -m workflow <command>`` (cli.py); nothing here knows
about Snakemake, so every job can also be run by hand or from a notebook. Job configs arrive with
the schema's defaults filled in (config.fill_defaults), so jobs read every key directly.
"""
