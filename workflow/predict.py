"""Prediction with many weight samples at once, and the marginalized loss and error.

Marginalized loss (Rossi et al.): L(q) = -(1/N) sum_n log((1/S) sum_s p(y_n | x_n, w_s)), computed
with log-sum-exp over the S samples; the error is that of the averaged predictive's argmax.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch.func import functional_call, vmap


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; anything else must be a device torch knows."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {name!r}; allowed: 'auto', 'cpu', 'cuda', 'cuda:N'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'")
    return device


def to_torch(params: Mapping[str, np.ndarray], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=device) for k, v in params.items()}


@torch.no_grad()
def sample_log_probs(model: torch.nn.Module, stack: Mapping[str, torch.Tensor], x: torch.Tensor,
                     batch_size: int = 4096) -> torch.Tensor:
    """Per-sample log-softmax outputs [S, N, C] for a stack of S parameter sets ([S, *shape] each)."""

    def one(params, xb):
        return torch.log_softmax(functional_call(model, params, (xb,)), dim=-1)

    batched = vmap(one, in_dims=(0, None))
    outs = [batched(dict(stack), x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(outs, dim=1)


def predictive_log_probs(sample_logp: torch.Tensor) -> torch.Tensor:
    """log of the sample-averaged predictive, [N, C], from per-sample log-probs [S, N, C]."""
    return torch.logsumexp(sample_logp, dim=0) - math.log(sample_logp.shape[0])


def marginal_loss_error(model: torch.nn.Module, stack: Mapping[str, torch.Tensor], x: torch.Tensor,
                        y: torch.Tensor) -> tuple[float, float]:
    """(marginalized NLL, error rate of the averaged predictive) on (x, y)."""
    logp = predictive_log_probs(sample_log_probs(model, stack, x))
    nll = -logp.gather(1, y[:, None]).mean().item()
    error = (logp.argmax(1) != y).float().mean().item()
    return nll, error
