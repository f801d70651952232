"""REPAIR (Jordan et al., ICLR 2023): renormalise the channels of an interpolated network.

Along the path between two networks A and B, the hidden channels of (1 - t) A + t B lose variance
("variance collapse"): averaging two sets of weights whose units do not match exactly shrinks the
spread of each unit's pre-activation, and the barrier then measures this collapse as well as a
change of basin. REPAIR rescales and shifts every channel of the interpolated network's repair
layers so that its mean and standard deviation on training data are the interpolation of the
endpoints': mu_t = (1 - t) mu_A + t mu_B and sigma_t = (1 - t) sigma_A + t sigma_B.

The repair layers are the architecture's ``repair_layers`` hook, in forward order: modules whose
output channel c is ``weight[c] * z + bias[c]`` (a normalisation layer's affine; a linear layer's
rows). The correction (out - m) r + mu_t, with r = sigma_t / s, is then folded into those
parameters exactly (weight[c] r, (bias[c] - m) r + mu_t), so a repaired network is a plain
parameter set. All layers are corrected in one forward pass: each layer's statistics are taken on
its input as already repaired upstream, as Jordan et al.'s sequential reset does.

Marginalized paths are repaired per weight sample: draw s at t is repaired toward draw s of A and
draw s of B (the same pairing, or the same Gaussian noise, as the plain path).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch.func import functional_call

from .predict import SampleSource

TINY = 1e-12  # a channel whose std on the repair data is below this is constant there: it is shifted, not scaled


def layer_names(model: torch.nn.Module) -> list[str]:
    """The model's repair layers (its architecture's ``repair_layers`` hook), in forward order."""
    from .predict import _hook

    hook = _hook(model, "repair_layers")
    if hook is None:
        raise ValueError(f"barrier.repair: the architecture of {type(model).__name__} names no repair layers "
                         f"(its module has no repair_layers hook); set barrier.repair: false")
    return list(hook(model))


def _channel_moments(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (dimension 1) mean and population standard deviation over every other dimension."""
    dims = [d for d in range(out.ndim) if d != 1]
    return out.mean(dims), out.std(dims, unbiased=False)


def _broadcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, *([1] * (like.ndim - 2)))


def _forward(model: torch.nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, layers: list[str],
             hook_of) -> None:
    """One forward pass under ``params`` with the forward hook ``hook_of(name)`` on every repair layer."""
    handles = [model.get_submodule(name).register_forward_hook(hook_of(name)) for name in layers]
    try:
        functional_call(model, dict(params), (x,))
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def channel_stats(model: torch.nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor,
                  layers: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(mean, std) per channel of every repair layer's output on ``x`` under ``params``."""
    stats = {}

    def record(name):
        def hook(_module, _inputs, out):
            stats[name] = _channel_moments(out)
        return hook

    _forward(model, params, x, layers, record)
    return stats


def interpolate_stats(a: Mapping, b: Mapping, t: float) -> dict:
    return {k: ((1.0 - t) * a[k][0] + t * b[k][0], (1.0 - t) * a[k][1] + t * b[k][1]) for k in a}


@torch.no_grad()
def repair(model: torch.nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, layers: list[str],
           targets: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``params`` with every repair layer's channels moved to the target (mean, std) on ``x``."""
    folds = {}

    def correct(name):
        def hook(_module, _inputs, out):
            m, s = _channel_moments(out)
            mu, sd = targets[name]
            # a constant channel cannot be rescaled to sd (its r would blow up on other data): shift it only
            r = torch.where(s > TINY, sd / s.clamp_min(TINY), torch.ones_like(s))
            folds[name] = (m, r, mu)
            return (out - _broadcast(m, out)) * _broadcast(r, out) + _broadcast(mu, out)
        return hook

    _forward(model, params, x, layers, correct)
    out = dict(params)
    for name, (m, r, mu) in folds.items():
        w, b = params[f"{name}.weight"], params[f"{name}.bias"]
        out[f"{name}.weight"] = w * r.view(-1, *([1] * (w.ndim - 1)))
        out[f"{name}.bias"] = (b - m) * r + mu
    return out


def sample_stats(model: torch.nn.Module, source: SampleSource, x: torch.Tensor, layers: list[str]) -> list[dict]:
    """The repair layers' channel statistics of every draw of ``source``, one dict per draw."""
    dtype = next(model.parameters()).dtype
    return [channel_stats(model, {k: v[0] for k, v in source.chunk(s, s + 1, x.device, dtype).items()}, x, layers)
            for s in range(source.n)]


class Repaired(SampleSource):
    """The draws of ``path`` (the point ``t`` of a path), each repaired toward the interpolation at ``t``
    of the statistics of the same draw of A and of B (``stats_a``, ``stats_b`` from :func:`sample_stats`)."""

    def __init__(self, model: torch.nn.Module, path: SampleSource, t: float, stats_a: list[dict],
                 stats_b: list[dict], x: torch.Tensor, layers: list[str]):
        if not len(stats_a) == len(stats_b) == path.n:
            raise ValueError(f"REPAIR pairs draw s of the path with draw s of each endpoint: the path has {path.n} "
                             f"draws, the endpoints {len(stats_a)} and {len(stats_b)}")
        self.model, self.path, self.t, self.x, self.layers = model, path, float(t), x, list(layers)
        self.stats_a, self.stats_b = stats_a, stats_b
        self.n, self.names, self.numel = path.n, path.names, path.numel

    def chunk(self, start, stop, device, dtype=torch.float32):
        drawn = self.path.chunk(start, stop, device, dtype)
        x = self.x.to(device)
        fixed = []
        for i, s in enumerate(range(start, stop)):
            targets = interpolate_stats(self.stats_a[s], self.stats_b[s], self.t)
            fixed.append(repair(self.model, {k: v[i] for k, v in drawn.items()}, x, self.layers, targets))
        return {k: torch.stack([f[k] for f in fixed]) for k in self.names}
