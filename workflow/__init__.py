"""Permutation symmetry in Bayesian neural network posteriors: the science code of the workflow.

Importable without Snakemake; the rules call it through ``python -m workflow``.
"""

__version__ = "0.1.0"
