"""Prediction with many weight samples at once, and the marginalized loss and error.

Marginalized loss (Rossi et al.): L(q) = -(1/N) sum_n log((1/S) sum_s p(y_n | x_n, w_s)), computed
with log-sum-exp over the S samples; the error is that of the averaged predictive's argmax.

Prediction over many samples is the hot path of every metric. MLPs take a dedicated path: the
first layer of all samples is one large matmul (the input is shared), later layers one batched
matmul each; other architectures go through ``vmap(functional_call)``.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch.func import functional_call, vmap

from .models import MLP


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


# elements of the largest intermediate [samples, points, width] per chunk: small enough to stay in
# cache, so the activations and bias additions between matmuls are not bound by memory bandwidth
_CHUNK_ELEMENTS = 2 ** 20


def _activate_(model: MLP, h: torch.Tensor) -> torch.Tensor:
    return torch.relu_(h) if isinstance(model.act, torch.nn.ReLU) else model.act(h)


def mlp_sample_logits(model: MLP, stack: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits [S, N, C] of an MLP under S stacked parameter sets, in cache-sized chunks of samples."""
    n_hidden = len(model.hidden)
    n_samples = stack["hidden.0.weight"].shape[0]
    widest = max(stack[f"hidden.{i}.weight"].shape[1] for i in range(n_hidden))
    chunk = max(1, min(n_samples, _CHUNK_ELEMENTS // (len(x) * widest)))
    xf = x.flatten(1)
    out = []
    for s0 in range(0, n_samples, chunk):
        w0, b0 = stack["hidden.0.weight"][s0:s0 + chunk], stack["hidden.0.bias"][s0:s0 + chunk]
        s, h0, d = w0.shape
        # shared input: one (N, D) x (D, s*H) matmul for the first layer of every sample, bias fused
        h = torch.addmm(b0.reshape(-1), xf, w0.reshape(s * h0, d).T).view(len(x), s, h0)
        h = _activate_(model, h).transpose(0, 1)
        for i in range(1, n_hidden + 1):
            name = f"hidden.{i}" if i < n_hidden else "out"
            w, b = stack[f"{name}.weight"][s0:s0 + chunk], stack[f"{name}.bias"][s0:s0 + chunk]
            h = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
            if i < n_hidden:
                h = _activate_(model, h)
        out.append(h)
    return torch.cat(out)


@torch.no_grad()
def sample_log_probs(model: torch.nn.Module, stack: Mapping[str, torch.Tensor], x: torch.Tensor,
                     batch_size: int = 4096) -> torch.Tensor:
    """Per-sample log-softmax outputs [S, N, C] for a stack of S parameter sets ([S, *shape] each)."""
    if isinstance(model, MLP):
        def forward(xb):
            return mlp_sample_logits(model, stack, xb)
    else:
        batched = vmap(lambda p, xb: functional_call(model, p, (xb,)), in_dims=(0, None))

        def forward(xb):
            return batched(dict(stack), xb)
    outs = [torch.log_softmax(forward(x[i:i + batch_size]), dim=-1) for i in range(0, len(x), batch_size)]
    return torch.cat(outs, dim=1)


def predictive_log_probs(sample_logp: torch.Tensor) -> torch.Tensor:
    """log of the sample-averaged predictive, [N, C], from per-sample log-probs [S, N, C]."""
    return torch.logsumexp(sample_logp, dim=0) - math.log(sample_logp.shape[0])


@torch.no_grad()
def predictive(model: torch.nn.Module, stack: Mapping[str, torch.Tensor], x: torch.Tensor,
               sample_chunk: int = 128) -> torch.Tensor:
    """log of the predictive averaged over all S samples, [N, C]; samples go in chunks to bound memory."""
    n_samples = next(iter(stack.values())).shape[0]
    acc = None
    for i in range(0, n_samples, sample_chunk):
        part = torch.logsumexp(sample_log_probs(model, {k: v[i:i + sample_chunk] for k, v in stack.items()}, x), 0)
        acc = part if acc is None else torch.logaddexp(acc, part)
    return acc - math.log(n_samples)


def loss_error(logp: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(NLL, error rate) of a predictive given as log-probabilities [N, C]."""
    return -logp.gather(1, y[:, None]).mean().item(), (logp.argmax(1) != y).float().mean().item()


def marginal_loss_error(model: torch.nn.Module, stack: Mapping[str, torch.Tensor], x: torch.Tensor,
                        y: torch.Tensor) -> tuple[float, float]:
    """(marginalized NLL, error rate of the averaged predictive) on (x, y)."""
    return loss_error(predictive(model, stack, x), y)


def standard_normal_like(mean: Mapping[str, np.ndarray | torch.Tensor], n_samples: int, seed: int,
                         device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Fixed noise eps [S, *shape] per parameter: common random numbers for every point of a path."""
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(n_samples, *np.shape(v), generator=gen).to(device) for k, v in mean.items()}


def gaussian_samples(mean: Mapping[str, torch.Tensor], std: Mapping[str, torch.Tensor],
                     eps: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """w_s = mean + std * eps_s for every parameter."""
    return {k: mean[k] + std[k] * eps[k] for k in mean}
