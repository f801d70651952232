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

from ..methods.vi import SETTINGS as VI_SETTINGS
from .training import OptimSettings, check_positive, data_digest, reset_parameters, run_training, schema_default

SIGMA_PARAMS = tuple(VI_SETTINGS["sigma_param"]["enum"])


@dataclass
class ViSettings(OptimSettings):
    epochs: int = schema_default(VI_SETTINGS, "epochs")
    mc_samples: int = schema_default(VI_SETTINGS, "mc_samples")  # weight samples per step
    temperature: float = schema_default(VI_SETTINGS, "temperature")
    sigma_init: float = schema_default(VI_SETTINGS, "sigma_init")
    sigma_lr_scale: float = schema_default(VI_SETTINGS, "sigma_lr_scale")  # rho's learning rate over lr
    sigma_param: str = schema_default(VI_SETTINGS, "sigma_param")
    local_reparam: bool = schema_default(VI_SETTINGS, "local_reparam")
    prior_std: float = 1.0

    def __post_init__(self):
        self.check_optim()
        check_positive(self, ints=("mc_samples",), floats=("temperature", "sigma_init", "sigma_lr_scale", "prior_std"))
        if self.sigma_param not in SIGMA_PARAMS:
            raise ValueError(f"sigma_param {self.sigma_param!r} is not one of {SIGMA_PARAMS}")


class MeanField(nn.Module):
    """Variational parameters (mu, rho) for every parameter of ``model``; sigma = softplus(rho) or exp(rho).

    Each is one flat vector over all of the model's parameters (in ``named_parameters`` order), so a
    step samples, takes the KL and updates Adam with a handful of operations whatever the number of
    layers: on small networks per-operation overhead, not arithmetic, dominates a step."""

    def __init__(self, model: nn.Module, sigma_init: float, sigma_param: str = "softplus"):
        super().__init__()
        if sigma_param not in SIGMA_PARAMS:
            raise ValueError(f"sigma_param {sigma_param!r} is not one of {SIGMA_PARAMS}")
        self.sigma_param = sigma_param
        named = list(model.named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        rho0 = math.log(math.expm1(sigma_init)) if sigma_param == "softplus" else math.log(sigma_init)
        self.mu_flat = nn.Parameter(torch.cat([p.detach().flatten() for _, p in named]))
        self.rho_flat = nn.Parameter(torch.full_like(self.mu_flat, rho0))

    def _split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of a [..., D] tensor as the model's parameters, [..., *shape] each."""
        lead = flat.shape[:-1]
        return [c.view(*lead, *shape) for c, shape in zip(flat.split(self.sizes, dim=-1), self.shapes)]

    def sigma_flat(self) -> torch.Tensor:
        return nn.functional.softplus(self.rho_flat) if self.sigma_param == "softplus" else torch.exp(self.rho_flat)

    @property
    def mu(self) -> list[torch.Tensor]:
        return self._split(self.mu_flat)

    def sigmas(self, sigma: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Sigma per parameter; ``sigma``: ``sigma_flat()`` if the caller has it already."""
        return self._split(self.sigma_flat() if sigma is None else sigma)

    def sample(self, n: int, sigma: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """n weight samples, each parameter stacked as [n, *shape] (one draw of n x D normals).
        ``sigma``: ``sigma_flat()`` if the caller has it already (a step takes it once)."""
        sigma = self.sigma_flat() if sigma is None else sigma
        eps = torch.randn(n, self.mu_flat.numel(), device=self.mu_flat.device, dtype=self.mu_flat.dtype)
        return dict(zip(self.names, self._split(torch.addcmul(self.mu_flat, sigma, eps))))

    def kl(self, prior_std: float, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q || N(0, prior_std^2)) summed over all weights, in closed form (``gaussian_kl``)."""
        return gaussian_kl(self.mu_flat, self.sigma_flat() if sigma is None else sigma, prior_std)

    def draw(self, n: int, prior_std: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A training step's n weight samples (as ``sample``) and KL(q || N(0, prior_std^2)), through
        one function whose backward pass is written out (``_DrawWithKL``)."""
        eps = torch.randn(n, self.mu_flat.numel(), device=self.mu_flat.device, dtype=self.mu_flat.dtype)
        w, kl = _DrawWithKL.apply(self.mu_flat, self.rho_flat, eps, float(prior_std), self.sigma_param)
        return dict(zip(self.names, self._split(w))), kl

    def mean_std(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        mean = {n: m.detach().cpu().numpy() for n, m in zip(self.names, self.mu)}
        std = {n: s.detach().cpu().numpy() for n, s in zip(self.names, self.sigmas())}
        return mean, std


class _GaussianKL(torch.autograd.Function):
    """sum KL(N(mu, sigma^2) || N(0, s_p^2)) = sum[log s_p - log sigma + (sigma^2 + mu^2) / (2 s_p^2) - 1/2]
    with its gradients in closed form: d/dmu = mu / s_p^2, d/dsigma = sigma / s_p^2 - 1 / sigma.

    The sums of squares are dot products and the backward pass is two expressions: on wide
    networks a VI step's KL is memory traffic over 2 x D values, and autograd's elementwise graph
    of the same formula took about twice as many passes."""

    @staticmethod
    def forward(ctx, mu, sigma, prior_std):
        var_p = prior_std ** 2
        ctx.save_for_backward(mu, sigma)
        ctx.var_p = var_p
        n = mu.numel()
        squares = torch.dot(sigma, sigma) + torch.dot(mu, mu)
        return n * (math.log(prior_std) - 0.5) - torch.log(sigma).sum() + squares / (2 * var_p)

    @staticmethod
    def backward(ctx, grad):
        mu, sigma = ctx.saved_tensors
        return mu * (grad / ctx.var_p), sigma * (grad / ctx.var_p) - grad / sigma, None


class _DrawWithKL(torch.autograd.Function):
    """w = mu + sigma * eps ([n, D]) and sum KL(N(mu, sigma^2) || N(0, s_p^2)) from flat (mu, rho),
    sigma = softplus(rho) or exp(rho). Backward, with g_w the samples' gradient and g the KL's:
        d/dmu  = sum_n g_w + g mu / s_p^2
        d/drho = (sum_n g_w eps + g (sigma / s_p^2 - 1 / sigma)) * dsigma/drho
    A VI step on a wide MLP is memory traffic over D-long vectors: autograd's graph of the same
    step (sample, KL, softplus, the sum over a broadcast sample axis) made twice as many passes
    over them and took about 0.7 ms more per step on the MNIST-sized MLP (benchmarks/bench_vi.py)."""

    @staticmethod
    def forward(ctx, mu, rho, eps, prior_std, sigma_param):
        sigma = nn.functional.softplus(rho) if sigma_param == "softplus" else torch.exp(rho)
        w = torch.addcmul(mu, sigma, eps)
        log_sigma = torch.log(sigma) if sigma_param == "softplus" else rho
        var_p = prior_std ** 2
        squares = torch.dot(sigma, sigma) + torch.dot(mu, mu)
        kl = mu.numel() * (math.log(prior_std) - 0.5) - log_sigma.sum() + squares / (2 * var_p)
        ctx.save_for_backward(mu, rho, sigma, eps)
        ctx.var_p, ctx.sigma_param = var_p, sigma_param
        return w, kl

    @staticmethod
    def backward(ctx, grad_w, grad_kl):
        mu, rho, sigma, eps = ctx.saved_tensors
        scale = grad_kl / ctx.var_p
        if len(grad_w) == 1:
            grad_sum, grad_sigma = grad_w[0], grad_w[0] * eps[0]
        else:
            grad_sum, grad_sigma = grad_w.sum(0), (grad_w * eps).sum(0)
        grad_mu = torch.addcmul(grad_sum, mu, scale)
        grad_sigma.addcmul_(sigma, scale).addcdiv_(grad_kl.expand_as(sigma), sigma, value=-1)
        grad_sigma.mul_(torch.sigmoid(rho) if ctx.sigma_param == "softplus" else sigma)
        return grad_mu, grad_sigma, None, None, None


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor, prior_std: float) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, prior_std^2 I)) of flat vectors, differentiable in mu and sigma."""
    if mu.ndim != 1 or mu.shape != sigma.shape:
        raise ValueError(f"gaussian_kl takes two flat vectors of one shape, got {tuple(mu.shape)} and "
                         f"{tuple(sigma.shape)}")
    return _GaussianKL.apply(mu, sigma, float(prior_std))


def sampled_logits(model: nn.Module, q: MeanField, x: torch.Tensor, n_samples: int,
                   sigma: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [S, B, C] under S weight samples (plain reparameterisation)."""
    from ..evaluation.predict import batched_logits

    return batched_logits(model, q.sample(n_samples, sigma), x)


def local_reparam_logits(model: nn.Module, q: MeanField, x: torch.Tensor, n_samples: int,
                         sigma: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [S, B, C] sampling pre-activations instead of weights (local reparameterisation), through
    the architecture's ``local_reparam_logits`` hook."""
    from ..evaluation.predict import _hook

    hook = _hook(model, "local_reparam_logits")
    if hook is None:
        raise ValueError(f"local reparameterisation is not available for {type(model).__name__}; set "
                         "vi.local_reparam: false")
    return hook(model, dict(zip(q.names, q.mu)), dict(zip(q.names, q.sigmas(sigma))), x, n_samples)


def train_vi(model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: ViSettings, *, seed: int,
             device: torch.device, checkpoint: str | os.PathLike | None = None, identity: dict | None = None):
    """Fit q; returns (mean, std, traces, resumed_from_epoch). Traces per epoch: loss, nll, kl, elbo."""
    from ..evaluation.predict import batched_logits

    reset_parameters(model, seed)  # the means start at the architecture's usual initialisation
    data_hash = data_digest(x, y)  # on the host, before the data move
    model.to(device)
    x, y = x.to(device), y.to(device)
    q = MeanField(model, settings.sigma_init, settings.sigma_param).to(device)
    n = len(x)

    def objective(xb, yb):
        if settings.local_reparam:
            sigma = q.sigma_flat()  # once per step: the pre-activations and the KL share it
            logits = local_reparam_logits(model, q, xb, settings.mc_samples, sigma)
            kl = q.kl(settings.prior_std, sigma)
        else:
            stack, kl = q.draw(settings.mc_samples, settings.prior_std)
            logits = batched_logits(model, stack, xb)
        nll = nn.functional.cross_entropy(logits.flatten(0, 1), yb.repeat(settings.mc_samples))
        loss = nll + settings.temperature * kl / n
        return loss, {"nll": nll, "kl": kl, "elbo": -(n * nll.double() + kl.double())}

    # fused Adam: with mu and rho flat, a step is two tensors; the update in one kernel brings a VI
    # step to about 1.5 MAP steps on the default MLP (benchmarks/bench_vi.py)
    fused = x.device.type in ("cpu", "cuda")
    groups = None  # one group, as before the setting existed, unless rho's learning rate differs
    if settings.sigma_lr_scale != 1.0:
        groups = [{"params": [q.mu_flat]}, {"params": [q.rho_flat], "lr_scale": settings.sigma_lr_scale}]
    result = run_training(q, objective, x, y, settings, seed=seed, data_hash=data_hash, checkpoint=checkpoint,
                          desc=f"VI seed {seed}", identity=identity, fused_optimizer=fused, param_groups=groups)
    mean, std = q.mean_std()
    return mean, std, result.traces, result.resumed_from_epoch
