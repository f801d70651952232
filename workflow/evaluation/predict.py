"""Prediction under many weight samples, within a memory budget, and the marginalized loss and error.

Marginalized loss (Rossi et al.): L(q) = -(1/N) sum_n log((1/S) sum_s p(y_n | x_n, w_s)), computed
with log-sum-exp over the S samples; the error is that of the averaged predictive's argmax.

Samples come from a :class:`SampleSource` (a stack of draws, or a diagonal Gaussian that draws its
noise chunk by chunk), so neither all S weight sets nor all S x N activations are ever held at
once: points and samples go through in chunks sized to ``memory_mb``. An architecture may provide a
fast batched path (its ``sample_logits`` hook); any other goes through ``vmap(functional_call)``.

A Gaussian marked ``linearized`` is predicted through the network linearised at its mean (the GLM
predictive of the Laplace literature: Immer, Korzepa and Bauer 2021; laplace-torch's default):
logits f(x; mu) + J_mu(x) (w - mu) for each draw w, one Jacobian-vector product per draw. Sampling
the weights of a network instead puts them where the Laplace approximation (a second-order
expansion at mu) no longer describes the network, and its predictive underfits.
"""

from __future__ import annotations

import math
import sys
from typing import Mapping

import numpy as np
import torch
from torch.func import functional_call, jvp, vmap

DEFAULT_MEMORY_MB = 1024  # the schema's compute.memory_mb default; jobs pass the configured value


def to_torch(params: Mapping[str, np.ndarray], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=device) for k, v in params.items()}


# ---------------------------------------------------------------- sample sources


class SampleSource:
    """S weight sets, handed out in chunks [stop - start, *shape] per parameter."""

    n: int
    names: list[str]
    numel: int  # parameters per sample

    def chunk(self, start: int, stop: int, device, dtype=torch.float32) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class Stacked(SampleSource):
    """Draws already at hand ([S, *shape] numpy arrays or tensors), converted chunk by chunk."""

    def __init__(self, stack: Mapping[str, np.ndarray | torch.Tensor]):
        self.stack = dict(stack)
        self.names = list(self.stack)
        self.n = int(next(iter(self.stack.values())).shape[0])
        self.numel = sum(int(np.prod(v.shape[1:])) for v in self.stack.values())

    def chunk(self, start, stop, device, dtype=torch.float32):
        return {k: torch.as_tensor(v[start:stop]).to(device=device, dtype=dtype) for k, v in self.stack.items()}


class Gaussian(SampleSource):
    """S draws mean + std * eps of a diagonal Gaussian; eps of draw s comes from its own seed, so every
    chunking gives the same draws, and two Gaussians with the same ``seed`` share their noise (common
    random numbers along a path)."""

    def __init__(self, mean: Mapping, std: Mapping, n: int, seed: int, linearized: bool = False):
        self.mean, self.std = dict(mean), dict(std)
        self.names = list(self.mean)
        self.n, self.seed = int(n), int(seed)
        self.numel = sum(int(np.prod(np.shape(v))) for v in self.mean.values())
        self.linearized = bool(linearized)  # predicted through the network linearised at the mean

    def noise(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        eps = {k: [] for k in self.names}
        for s in range(start, stop):
            gen = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, s]).generate_state(1)[0]))
            for k in self.names:
                eps[k].append(torch.randn(tuple(np.shape(self.mean[k])), generator=gen))
        return {k: torch.stack(v) for k, v in eps.items()}

    def chunk(self, start, stop, device, dtype=torch.float32):
        mean = self.mean_tensors(device, dtype)
        return {k: mean[k] + d for k, d in self.deltas(start, stop, device, dtype).items()}

    def mean_tensors(self, device, dtype=torch.float32) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(np.asarray(v)).to(device=device, dtype=dtype) for k, v in self.mean.items()}

    def deltas(self, start, stop, device, dtype=torch.float32) -> dict[str, torch.Tensor]:
        """The draws' offsets from the mean, std * eps, [stop - start, *shape] per parameter."""
        eps = self.noise(start, stop)
        return {k: torch.as_tensor(np.asarray(self.std[k])).to(device=device, dtype=dtype)
                * eps[k].to(device=device, dtype=dtype) for k in self.names}


def as_source(samples) -> SampleSource:
    return samples if isinstance(samples, SampleSource) else Stacked(samples)


# ---------------------------------------------------------------- batched forward


def _hook(model: torch.nn.Module, name: str):
    """An architecture hook, looked up in the registered module that defines the model's class."""
    from .. import architectures

    modname = type(model).__module__
    if modname not in {e.module for e in architectures.REGISTRY.values()}:
        return None
    return getattr(sys.modules[modname], name, None)


def batched_logits(model: torch.nn.Module, stack: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits [S, N, C] of the model under S stacked parameter sets."""
    fast = _hook(model, "sample_logits")
    if fast is not None:
        return fast(model, stack, x)
    return vmap(lambda p, xb: functional_call(model, p, (xb,)), in_dims=(0, None))(dict(stack), x)


def linearized_logits(model: torch.nn.Module, mean: Mapping[str, torch.Tensor], deltas: Mapping[str, torch.Tensor],
                      x: torch.Tensor) -> torch.Tensor:
    """Logits [S, N, C] of the network linearised at ``mean``: f(x; mean) + J_mean(x) delta_s for each of
    the S offsets ``deltas`` ([S, *shape] per parameter), one forward-mode product per offset."""
    mean = dict(mean)

    def f(p):
        return functional_call(model, p, (x,))

    def tangent(d):
        return jvp(f, (mean,), (d,))[1]

    return f(mean).unsqueeze(0) + vmap(tangent)(dict(deltas))


def activation_elements(model: torch.nn.Module, input_shape) -> int:
    """Elements of activations held at once per example and sample, estimated from one forward pass:
    four times the largest module output (its input, output, a residual and a normalisation temporary)."""
    cache = model.__dict__.setdefault("_activation_elements", {})  # per model: ids of dead models get reused
    key = tuple(input_shape)
    if key not in cache:
        largest = [int(np.prod(input_shape))]

        def record(_, __, out):
            if torch.is_tensor(out):
                largest[0] = max(largest[0], out[0].numel())

        handles = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
        try:
            with torch.no_grad():
                p = next(model.parameters())
                model(torch.zeros(1, *input_shape, dtype=p.dtype, device=p.device))
        finally:
            for h in handles:
                h.remove()
        cache[key] = 4 * largest[0]
    return cache[key]


def chunk_sizes(model, source: SampleSource, x: torch.Tensor, memory_mb: float) -> tuple[int, int]:
    """(samples per chunk, points per chunk) such that the chunk's weights and activations fit the budget."""
    budget = float(memory_mb) * 2 ** 20 / 4  # float32 elements
    per_point = activation_elements(model, tuple(x.shape[1:]))
    points = int(min(len(x), max(1, budget // (2 * per_point))))
    samples = int(min(source.n, max(1, budget // (source.numel + points * per_point))))
    return samples, points


def _chunks(model, samples, x, memory_mb):
    """Yield (sample slice, point slice, log-softmax [s, n, C]) over every chunk."""
    source = as_source(samples)
    linearized = getattr(source, "linearized", False)
    # a Jacobian-vector product carries a tangent beside every activation: half the chunk
    s_chunk, n_chunk = chunk_sizes(model, source, x, memory_mb / 2 if linearized else memory_mb)
    dtype = next(model.parameters()).dtype  # the network's precision (float32 unless a test asks for float64)
    mean = source.mean_tensors(x.device, dtype) if linearized else None
    for s0 in range(0, source.n, s_chunk):
        stop = min(source.n, s0 + s_chunk)
        if linearized:
            deltas = source.deltas(s0, stop, x.device, dtype)
        else:
            stack = source.chunk(s0, stop, x.device, dtype)
        for i in range(0, len(x), n_chunk):
            xb = x[i:i + n_chunk]
            logits = linearized_logits(model, mean, deltas, xb) if linearized else batched_logits(model, stack, xb)
            yield slice(s0, s0 + s_chunk), slice(i, i + n_chunk), torch.log_softmax(logits, dim=-1)


@torch.no_grad()
def log_predictive(model: torch.nn.Module, samples, x: torch.Tensor, *,
                   memory_mb: float = DEFAULT_MEMORY_MB) -> torch.Tensor:
    """log of the predictive averaged over all S samples, [N, C], float32 (accumulated in float64)."""
    source = as_source(samples)
    acc = None
    for _, pts, logp in _chunks(model, source, x, memory_mb):
        part = torch.logsumexp(logp.double(), 0)
        if acc is None:
            acc = torch.full((len(x), part.shape[-1]), -math.inf, dtype=torch.float64, device=x.device)
        acc[pts] = torch.logaddexp(acc[pts], part)
    return (acc - math.log(source.n)).float()


@torch.no_grad()
def sample_log_probs(model: torch.nn.Module, samples, x: torch.Tensor, *,
                     memory_mb: float = DEFAULT_MEMORY_MB) -> torch.Tensor:
    """Per-sample log-softmax outputs [S, N, C] (for few samples: pruned copies, one chain's draws)."""
    source = as_source(samples)
    out = None
    for smp, pts, logp in _chunks(model, source, x, memory_mb):
        if out is None:
            out = torch.empty(source.n, len(x), logp.shape[-1], dtype=logp.dtype, device=x.device)
        out[smp, pts] = logp
    return out


def loss_error(logp: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(NLL, error rate) of a predictive given as log-probabilities [N, C]."""
    return -logp.double().gather(1, y[:, None]).mean().item(), (logp.argmax(1) != y).float().mean().item()


def marginal_loss_error(model: torch.nn.Module, samples, x: torch.Tensor, y: torch.Tensor, *,
                        memory_mb: float = DEFAULT_MEMORY_MB) -> tuple[float, float]:
    """(marginalized NLL, error rate of the averaged predictive) on (x, y)."""
    return loss_error(log_predictive(model, samples, x, memory_mb=memory_mb), y)


@torch.no_grad()
def sample_label_log_probs(model: torch.nn.Module, samples, x: torch.Tensor, y: torch.Tensor, *,
                           memory_mb: float = DEFAULT_MEMORY_MB) -> torch.Tensor:
    """log p(y_n | x_n, w_s) per sample and point, [S, N] (chain diagnostics on predictive quantities)."""
    source = as_source(samples)
    out = torch.empty(source.n, len(x), device=x.device)
    for smp, pts, logp in _chunks(model, source, x, memory_mb):
        out[smp, pts] = logp.gather(2, y[pts][None, :, None].expand(logp.shape[0], -1, 1))[..., 0]
    return out
