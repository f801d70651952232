"""Full-batch HMC for a Bayesian neural network: U(w) = -log p(D|w) - log p(w), prior N(0, sigma_p^2)."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.func import functional_call

from .hmc import HmcResult, HmcSettings, flatten, run_hmc, unflatten
from .training import reset_parameters


def bnn_potential(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, prior_std: float, like: dict):
    """U(theta) on the flat parameter vector: summed NLL over the whole data set plus the Gaussian prior."""

    def potential(theta: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, unflatten(theta, like), (x,))
        nll = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
        return nll + (theta ** 2).sum() / (2.0 * prior_std ** 2)

    return potential


def sample_bnn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: HmcSettings, *,
               prior_std: float, seed: int, device: torch.device, checkpoint: str | os.PathLike | None = None,
               identity: dict | None = None) -> tuple[dict[str, np.ndarray], HmcResult]:
    """One chain started at the architecture's usual initialisation for ``seed``; samples [n_samples, *shape]."""
    reset_parameters(model, seed)
    model.to(device)
    like = {k: v.detach() for k, v in model.named_parameters()}
    potential = bnn_potential(model, x.to(device), y.to(device), prior_std, like)
    result = run_hmc(potential, flatten(like), settings, seed=seed, checkpoint=checkpoint, identity=identity,
                     desc=f"HMC seed {seed}")
    # split the [draws, dim] matrix by columns once, the same layout flatten() made
    columns = np.split(result.samples, np.cumsum([v.numel() for v in like.values()])[:-1], axis=1)
    samples = {k: c.reshape(len(c), *v.shape) for (k, v), c in zip(like.items(), columns)}
    return samples, result
