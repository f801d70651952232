"""Evaluation: predictives under a memory budget, barriers, comparisons with the reference, pruning, MCMC diagnostics, and the claims table."""
