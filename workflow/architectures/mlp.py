"""Fully connected networks: input (flattened) -> hidden layers ``hidden.{i}`` -> output ``out``.

One permutation group per hidden layer (its output units and the next layer's input units). The
hooks give a fast batched prediction path, hidden activations for activation matching and the
local reparameterisation of VI.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..alignment.permutations import PermutationSpec
from .specs import mlp_spec

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU, "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU,
}


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: list[int], n_classes: int, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; allowed: {sorted(ACTIVATIONS)}")
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden widths must be a non-empty list of positive integers, got {hidden!r}")
        widths = [in_features, *map(int, hidden)]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(widths[-1], n_classes)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.out(h)


def build(input_shape, n_classes: int, *, hidden=(128,), activation: str = "relu") -> MLP:
    return MLP(math.prod(input_shape), list(hidden), n_classes, activation)


def permutation_spec(model: MLP) -> PermutationSpec:
    return mlp_spec(len(model.hidden))


# ---------------------------------------------------------------- hooks

# CPU only: elements of the largest intermediate [samples, points, width] per chunk, small enough to
# stay in cache, so the activations and bias additions between matmuls are not bound by memory
# bandwidth. A GPU takes every sample of the call at once (the caller's chunks already fit its
# memory budget): cache-sized chunks there would be S small sequential matmuls.
_CPU_CHUNK_ELEMENTS = 2 ** 20


def sample_chunk(n_samples: int, n_points: int, widest: int, device: torch.device) -> int:
    """Samples per chunk of ``sample_logits``: cache-sized on the CPU, all of them elsewhere."""
    if torch.device(device).type != "cpu":
        return max(1, n_samples)
    return max(1, min(n_samples, _CPU_CHUNK_ELEMENTS // max(1, n_points * widest)))


def _activate_(model: MLP, h: torch.Tensor) -> torch.Tensor:
    return torch.relu_(h) if isinstance(model.act, nn.ReLU) else model.act(h)


def sample_logits(model: MLP, stack: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits [S, N, C] under S stacked parameter sets: the first layer of all samples is one large
    matmul (the input is shared), later layers one batched matmul each, in cache-sized sample chunks."""
    n_hidden = len(model.hidden)
    n_samples = stack["hidden.0.weight"].shape[0]
    widest = max(stack[f"hidden.{i}.weight"].shape[1] for i in range(n_hidden))
    chunk = sample_chunk(n_samples, len(x), widest, x.device)
    xf = x.flatten(1)
    out = []
    for s0 in range(0, n_samples, chunk):
        w0, b0 = stack["hidden.0.weight"][s0:s0 + chunk], stack["hidden.0.bias"][s0:s0 + chunk]
        s, h0, d = w0.shape
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


def hidden_activations(model: MLP, params: Mapping[str, np.ndarray], x: torch.Tensor) -> dict[str, np.ndarray]:
    """Post-activation units of every hidden layer, [N, width] each, keyed by the group that permutes them."""
    h = x.flatten(1).double()
    acts = {}
    with torch.no_grad():
        for i in range(len(model.hidden)):
            w = torch.as_tensor(np.asarray(params[f"hidden.{i}.weight"]), dtype=torch.float64, device=h.device)
            b = torch.as_tensor(np.asarray(params[f"hidden.{i}.bias"]), dtype=torch.float64, device=h.device)
            h = model.act(h @ w.T + b)
            acts[f"P{i}"] = h.cpu().numpy()
    return acts


def local_reparam_logits(model: MLP, mean: Mapping[str, torch.Tensor], std: Mapping[str, torch.Tensor],
                         x: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Logits [S, B, C] sampling each linear layer's pre-activations instead of its weights."""
    layers = [f"hidden.{i}" for i in range(len(model.hidden))] + ["out"]
    h = x.flatten(1).expand(n_samples, *x.flatten(1).shape)
    for i, name in enumerate(layers):
        w_mu, w_s, b_mu, b_s = (mean[f"{name}.weight"], std[f"{name}.weight"], mean[f"{name}.bias"],
                                std[f"{name}.bias"])
        mu = h @ w_mu.T + b_mu
        var = (h ** 2) @ (w_s ** 2).T + b_s ** 2
        h = mu + var.sqrt() * torch.randn_like(mu)
        if i < len(layers) - 1:
            h = model.act(h)
    return h


def repair_layers(model: MLP) -> list[str]:
    """REPAIR's layers (evaluation/repair.py): every hidden linear layer, whose rows and bias set its
    pre-activations."""
    return [f"hidden.{i}" for i in range(len(model.hidden))]
