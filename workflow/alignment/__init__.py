"""Alignment: permutation specs and their algebra, weight and W2 matching, rebasin of sample sets."""
