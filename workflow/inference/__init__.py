"""Inference: the optimisation loop, mean-field VI, HMC (and its BNN potential), the diagonal Laplace GGN, and the one checkpoint and resume protocol the methods (workflow/methods) call."""
