"""Architectures and their permutation specs.

Every architecture is built by :func:`build_model` from a name and keyword arguments (the
``model`` section of the config) and comes with the :class:`PermutationSpec` that leaves its
function unchanged.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .permutations import PermutationSpec

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


class MLP(nn.Module):
    """Fully connected net: input (flattened) -> hidden layers ``fc{i}`` -> output ``out``."""

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


def mlp_permutation_spec(n_hidden: int) -> PermutationSpec:
    """One group per hidden layer: its output units and the next layer's input units."""
    groups = {}
    for i in range(n_hidden):
        nxt = f"hidden.{i + 1}.weight" if i + 1 < n_hidden else "out.weight"
        groups[f"P{i}"] = ((f"hidden.{i}.weight", 0), (f"hidden.{i}.bias", 0), (nxt, 1))
    return PermutationSpec(groups)


def _build_mlp(input_shape, n_classes, hidden=(128,), activation="relu"):
    model = MLP(math.prod(input_shape), list(hidden), n_classes, activation)
    return model, mlp_permutation_spec(len(model.hidden))


ARCHITECTURES = {"mlp": _build_mlp}


def build_model(architecture: str, input_shape, n_classes: int, **kwargs) -> tuple[nn.Module, PermutationSpec]:
    """Model and its permutation spec; unknown names or arguments fail with the allowed ones."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; allowed: {sorted(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[architecture](tuple(input_shape), int(n_classes), **kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments {kwargs} for architecture {architecture!r}: {err}") from err


def get_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}
