"""Full-batch HMC for a Bayesian neural network: U(w) = -log p(D|w) - log p(w), prior N(0, sigma_p^2).

The potential and its gradient are sums over the whole data set, accumulated chunk by chunk, so
memory does not grow with the data set; the sum is the same full-batch potential (exact HMC).
With ``mass_matrix: ggn`` the metric is the diagonal Laplace variance at the chain's position,
1 / (diag GGN of the NLL + 1 / sigma_p^2) (``ggn_metric``).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
from torch.func import functional_call

from ..device import autocast, mixed_precision
from .hmc_sampler import HmcResult, HmcSettings, flatten, run_hmc_chains, unflatten
from .training import reset_parameters


def bnn_potential(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, prior_std: float, like: dict):
    """U(theta) on the flat parameter vector in one pass over the data (differentiable)."""

    def potential(theta: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, unflatten(theta, like), (x,))
        nll = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
        return nll + (theta ** 2).sum() / (2.0 * prior_std ** 2)

    return potential


def chunked_value_and_grad(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, prior_std: float, like: dict,
                           chunk: int, forward_context=contextlib.nullcontext):
    """(U, dU/dtheta) summed over data chunks of ``chunk`` examples: only one chunk's graph is alive at a time.
    ``forward_context()`` wraps each forward pass (bfloat16 autocast for mixed precision); the loss
    and the sums stay in full precision."""

    def grad_fn(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = theta.detach()
        total = torch.zeros((), dtype=theta.dtype, device=theta.device)
        grad = torch.zeros_like(theta)
        with torch.enable_grad():
            for i in range(0, len(x), chunk):
                t = theta.clone().requires_grad_(True)
                with forward_context():
                    logits = functional_call(model, unflatten(t, like), (x[i:i + chunk],))
                nll = torch.nn.functional.cross_entropy(logits.to(theta.dtype), y[i:i + chunk], reduction="sum")
                (g,) = torch.autograd.grad(nll, t)
                total = total + nll.detach()
                grad += g
        total = total + (theta ** 2).sum() / (2.0 * prior_std ** 2)
        grad += theta / prior_std ** 2
        return total, grad

    return grad_fn


def chunked_potential(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, prior_std: float, like: dict,
                      chunk: int):
    """U(theta) in full precision, summed over data chunks, without a graph: the Metropolis test's energy."""

    @torch.no_grad()
    def potential(theta: torch.Tensor) -> torch.Tensor:
        params = unflatten(theta.detach(), like)
        total = torch.zeros((), dtype=theta.dtype, device=theta.device)
        for i in range(0, len(x), chunk):
            logits = functional_call(model, params, (x[i:i + chunk],))
            total = total + torch.nn.functional.cross_entropy(logits, y[i:i + chunk], reduction="sum")
        return total + (theta ** 2).sum() / (2.0 * prior_std ** 2)

    return potential


def ggn_metric(model: torch.nn.Module, x: torch.Tensor, prior_std: float, like: dict):
    """metric_fn of ``run_hmc_chains``: per chain, the diagonal Laplace variance at its position,
    1 / (diag GGN of the summed NLL + 1 / sigma_p^2), as the inverse mass matrix.

    Where the data constrain a weight, its metric is its curvature's inverse; where they do not
    (weights of pixels that are always 0, say), the prior's variance. So one step size serves
    directions whose scales differ by orders of magnitude, without estimating 10^5 variances from
    a short warm-up (a draw-based estimate sees only how far a slow direction has moved yet, and
    shrinks it further)."""
    from .laplace_ggn import diagonal_ggn

    def metric_fn(positions: torch.Tensor) -> torch.Tensor:
        rows = []
        for theta in positions.unbind(0):
            # a fresh copy: a row's offset in the batch would change how vectorised sums round,
            # and a chain's metric must not depend on its batch
            ggn = diagonal_ggn(model, unflatten(theta.detach().clone(), like), x)
            rows.append(1.0 / (flatten({k: ggn[k] for k in like}) + 1.0 / prior_std ** 2))
        return torch.stack(rows).to(positions.dtype)

    return metric_fn


def sample_bnn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: HmcSettings, *,
               prior_std: float, seed: int, device: torch.device, checkpoint: str | os.PathLike | None = None,
               identity: dict | None = None, data_chunk: int | None = None) -> tuple[dict[str, np.ndarray], HmcResult]:
    """One chain started at the architecture's usual initialisation for ``seed``; samples [n_samples, *shape].
    ``sample_bnn_chains`` with one seed."""
    return sample_bnn_chains(model, x, y, settings, prior_std=prior_std, seeds=[seed], device=device,
                             checkpoint=checkpoint, identity=identity, data_chunk=data_chunk)[0]


def sample_bnn_chains(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: HmcSettings, *,
                      prior_std: float, seeds: list[int], device: torch.device,
                      checkpoint: str | os.PathLike | None = None, identity: dict | None = None,
                      data_chunk: int | None = None) -> list[tuple[dict[str, np.ndarray], HmcResult]]:
    """One chain per seed, each started at the architecture's usual initialisation for its seed, all
    advanced together (``run_hmc_chains``); per chain, samples [n_samples, *shape] and its result.
    A chain's draws are the same whether it runs alone or with others.

    ``data_chunk`` examples per pass of the potential (None: all at once). It bounds memory; being a
    different summation order, it changes the chain at the rounding level, so it is a setting of the
    result, not of the machine."""
    inits = []
    for seed in seeds:
        reset_parameters(model, seed)
        inits.append(flatten({k: v.detach() for k, v in model.named_parameters()}))
    model.to(device)
    like = {k: v.detach() for k, v in model.named_parameters()}
    init = torch.stack(inits).to(device)
    x, y = x.to(device), y.to(device)
    chunk = len(x) if data_chunk is None else int(data_chunk)
    desc = f"HMC seed {seeds[0]}" if len(seeds) == 1 else f"HMC seeds {', '.join(map(str, seeds))}"
    common = dict(seeds=seeds, checkpoint=checkpoint, identity=identity, desc=desc,
                  metric_fn=ggn_metric(model, x, prior_std, like) if settings.mass_matrix == "ggn" else None)
    if mixed_precision() != "off":
        # gradients from bfloat16 forward passes; the Metropolis test on the full-precision potential
        results = run_hmc_chains(None, init, settings, **common,
                                 grad_fn=chunked_value_and_grad(model, x, y, prior_std, like, chunk,
                                                                forward_context=lambda: autocast(device)),
                                 energy_fn=chunked_potential(model, x, y, prior_std, like, chunk))
    elif chunk >= len(x):  # one pass: plain autograd through the potential
        results = run_hmc_chains(bnn_potential(model, x, y, prior_std, like), init, settings, **common)
    else:
        results = run_hmc_chains(None, init, settings, **common,
                                 grad_fn=chunked_value_and_grad(model, x, y, prior_std, like, chunk))
    out = []
    for result in results:
        # split the [draws, dim] matrix by columns once, the same layout flatten() made
        columns = np.split(result.samples, np.cumsum([v.numel() for v in like.values()])[:-1], axis=1)
        out.append(({k: c.reshape(len(c), *v.shape) for (k, v), c in zip(like.items(), columns)}, result))
    return out
