"""Mean-field Gaussian variational inference: q(w) = N(mu, diag sigma^2), prior N(0, sigma_p^2).

Objective per example: E_q[-log p(y|x, w)] + T * KL(q || prior) / N (T < 1 is a cold posterior),
with the reparameterisation trick, or the local reparameterisation trick (sample pre-activations
instead of weights; lower-variance gradients) for MLPs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .training import OptimSettings, check_positive, reset_parameters, run_training

SIGMA_PARAMS = ("softplus", "exp")


@dataclass
class ViSettings(OptimSettings):
    epochs: int = 50
    mc_samples: int = 1  # weight samples per step
    temperature: float = 1.0
    sigma_init: float = 0.05
    sigma_param: str = "softplus"
    local_reparam: bool = False
    prior_std: float = 1.0

    def __post_init__(self):
        self.check_optim()
        check_positive(self, ints=("mc_samples",), floats=("temperature", "sigma_init", "prior_std"))
        if self.sigma_param not in SIGMA_PARAMS:
            raise ValueError(f"sigma_param {self.sigma_param!r} is not one of {SIGMA_PARAMS}")


class MeanField(nn.Module):
    """Variational parameters (mu, rho) for every parameter of ``model``; sigma = softplus(rho) or exp(rho)."""

    def __init__(self, model: nn.Module, sigma_init: float, sigma_param: str = "softplus"):
        super().__init__()
        if sigma_param not in SIGMA_PARAMS:
            raise ValueError(f"sigma_param {sigma_param!r} is not one of {SIGMA_PARAMS}")
        self.sigma_param = sigma_param
        self.names = [n for n, _ in model.named_parameters()]
        rho0 = math.log(math.expm1(sigma_init)) if sigma_param == "softplus" else math.log(sigma_init)
        self.mu = nn.ParameterList(nn.Parameter(p.detach().clone()) for _, p in model.named_parameters())
        self.rho = nn.ParameterList(nn.Parameter(torch.full_like(p, rho0)) for _, p in model.named_parameters())

    def sigmas(self) -> list[torch.Tensor]:
        f = nn.functional.softplus if self.sigma_param == "softplus" else torch.exp
        return [f(r) for r in self.rho]

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        """n weight samples, each parameter stacked as [n, *shape]."""
        return {name: mu + s * torch.randn(n, *mu.shape, device=mu.device, dtype=mu.dtype)
                for name, mu, s in zip(self.names, self.mu, self.sigmas())}

    def kl(self, prior_std: float) -> torch.Tensor:
        """KL(q || N(0, prior_std^2)) summed over all weights, in closed form."""
        total = 0.0
        var_p = prior_std ** 2
        for mu, s in zip(self.mu, self.sigmas()):
            total = total + (math.log(prior_std) - torch.log(s) + (s ** 2 + mu ** 2) / (2 * var_p) - 0.5).sum()
        return total

    def mean_std(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        mean = {n: m.detach().cpu().numpy() for n, m in zip(self.names, self.mu)}
        std = {n: s.detach().cpu().numpy() for n, s in zip(self.names, self.sigmas())}
        return mean, std


def sampled_logits(model: nn.Module, q: MeanField, x: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Logits [S, B, C] under S weight samples (plain reparameterisation)."""
    from .predict import batched_logits

    return batched_logits(model, q.sample(n_samples), x)


def local_reparam_logits(model: nn.Module, q: MeanField, x: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Logits [S, B, C] sampling pre-activations instead of weights (local reparameterisation), through
    the architecture's ``local_reparam_logits`` hook."""
    from .predict import _hook

    hook = _hook(model, "local_reparam_logits")
    if hook is None:
        raise ValueError(f"local reparameterisation is not available for {type(model).__name__}; set "
                         "vi.local_reparam: false")
    sigmas = q.sigmas()
    return hook(model, dict(zip(q.names, q.mu)), dict(zip(q.names, sigmas)), x, n_samples)


def train_vi(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: ViSettings, *, seed: int,
             device: torch.device, checkpoint: str | os.PathLike | None = None, identity: dict | None = None):
    """Fit q; returns (mean, std, traces, resumed_from_epoch). Traces per epoch: loss, nll, kl, elbo."""
    reset_parameters(model, seed)  # the means start at the architecture's usual initialisation
    model.to(device)
    x, y = x.to(device), y.to(device)
    q = MeanField(model, settings.sigma_init, settings.sigma_param).to(device)
    n = len(x)
    logits_fn = local_reparam_logits if settings.local_reparam else sampled_logits

    def objective(xb, yb):
        logits = logits_fn(model, q, xb, settings.mc_samples)
        nll = nn.functional.cross_entropy(logits.flatten(0, 1), yb.repeat(settings.mc_samples))
        kl = q.kl(settings.prior_std)
        loss = nll + settings.temperature * kl / n
        return loss, {"nll": nll, "kl": kl, "elbo": -(n * nll.double() + kl.double())}

    result = run_training(q, objective, x, y, settings, seed=seed, checkpoint=checkpoint, desc=f"VI seed {seed}",
                          identity=identity)
    mean, std = q.mean_std()
    return mean, std, result.traces, result.resumed_from_epoch
