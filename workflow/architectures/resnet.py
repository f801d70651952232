"""ResNet20 with LayerNorm (as in Git Re-Basin, Ainsworth et al.), NCHW input of any size.

stem: conv3x3 -> LN -> relu; three block groups of three basic blocks (16w, 32w, 64w channels,
strides 1, 2, 2); global average pool; linear head. A basic block is conv3x3 -> LN -> relu ->
conv3x3 -> LN, plus a shortcut (identity, or conv1x1 with the stride -> LN where the shape
changes), then relu. Convolutions have no bias (a LayerNorm follows each one).

LayerNorm normalises each example over all of its channels and pixels, with a per-channel scale
and bias (GroupNorm with one group), so permuting channels commutes with it and the network
function is exactly permutation invariant (BatchNorm's running statistics would be buffers outside
the spec). Git Re-Basin's flax model normalises each pixel over its channels only, which is just
as invariant, but trained far more slowly here: on MNIST, 150 Adam steps (lr 1e-3, batch 64)
reached 58% test error with it and 13% with the normalisation over (C, H, W).

Permutations (Git Re-Basin's resnet20 spec): one per residual stream of each block group (the
stem/shortcut output and every block output of that group share the basis, since they are added)
and one inner permutation per block (conv1's output channels).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..alignment.permutations import PermutationSpec
from .specs import RESNET20_BASE_CHANNELS, _inner, _stream, check_resnet20_args, resnet20_blocks, resnet20_spec

EPS = 1e-5


class ChannelLayerNorm(nn.Module):
    """LayerNorm of each example of an NCHW tensor over (C, H, W), with a per-channel scale and bias."""

    def __init__(self, channels: int, eps: float = EPS):
        super().__init__()
        self.channels, self.eps = channels, eps
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # statistics over every channel and pixel: a channel permutation leaves them unchanged
        return F.group_norm(x, 1, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"


class ConvNorm(nn.Module):
    """conv (no bias) -> ChannelLayerNorm: the stem and the projection shortcuts."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
        self.norm = ChannelLayerNorm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = ChannelLayerNorm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = ChannelLayerNorm(c_out)
        # None (not nn.Identity) so that identity blocks are told apart without isinstance checks
        self.shortcut = ConvNorm(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + (x if self.shortcut is None else self.shortcut(x)))


class ResNet20(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], n_classes: int, width: int = 1):
        super().__init__()
        self.input_shape, self.n_classes, self.width = tuple(input_shape), n_classes, width
        self.stem = ConvNorm(input_shape[0], RESNET20_BASE_CHANNELS[0] * width, 3)
        groups: dict[int, list] = {}
        for g, _, c_in, c_out, stride in resnet20_blocks(width):  # the layout specs.py gives the shapes from
            groups.setdefault(g, []).append(BasicBlock(c_in, c_out, stride))
        self.groups = nn.ModuleList(nn.Sequential(*blocks) for blocks in groups.values())
        self.head = nn.Linear(RESNET20_BASE_CHANNELS[-1] * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x.reshape(x.shape[0], *self.input_shape)))
        for group in self.groups:
            h = group(h)
        return self.head(h.mean(dim=(2, 3)))


def build(input_shape: tuple[int, ...], n_classes: int, *, width: int = 1) -> ResNet20:
    check_resnet20_args(input_shape, n_classes, width)
    shape = tuple(input_shape)
    return ResNet20(tuple(int(s) for s in shape), int(n_classes), int(width))


# ---------------------------------------------------------------- permutation spec

def permutation_spec(model: ResNet20) -> PermutationSpec:
    """Stream groups P_stream{g}, inner groups P_g{g}b{b}_inner; read off the model's blocks."""
    return resnet20_spec((g, b, block.shortcut is not None) for g, group in enumerate(model.groups)
                         for b, block in enumerate(group))


# ---------------------------------------------------------------- hooks

def hidden_activations(model: ResNet20, params: Mapping[str, np.ndarray], x: torch.Tensor) -> dict[str, np.ndarray]:
    """Per permutation group, the activations it permutes as float64 [rows, units] (rows = examples x
    positions): streams get the post-relu stem output (stream 0) and every block output of the group
    stacked; inner groups the post-relu conv1 -> LN activation of their block."""
    from torch.func import functional_call

    x = torch.as_tensor(x)
    p64 = {k: torch.as_tensor(np.asarray(v.detach().cpu() if hasattr(v, "detach") else v),
                              dtype=torch.float64, device=x.device) for k, v in params.items()}
    acts: dict[str, list[torch.Tensor]] = {}

    def record(group: str, relu: bool):
        def hook(_module, _inputs, out):
            out = F.relu(out) if relu else out
            acts.setdefault(group, []).append(out.movedim(1, -1).reshape(-1, out.shape[1]))
        return hook

    handles = [model.stem.register_forward_hook(record(_stream(0), True))]
    stream = _stream(0)
    for g, group in enumerate(model.groups):
        for b, block in enumerate(group):
            if block.shortcut is not None:
                stream = _stream(g)
            handles.append(block.register_forward_hook(record(stream, False)))  # block output is post-relu
            handles.append(block.norm1.register_forward_hook(record(_inner(g, b), True)))
    try:
        with torch.no_grad():
            functional_call(model, p64, (x.to(torch.float64),))
    finally:
        for h in handles:
            h.remove()
    return {g: torch.cat(a).cpu().numpy() for g, a in acts.items()}


def sample_logits(model: ResNet20, stack: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits [S, N, C] under S stacked parameter sets, one set at a time: on the CPU a plain
    convolution per set ran about 4x faster than vmap's batched convolutions (ResNet20 x1, 28x28)."""
    n = next(iter(stack.values())).shape[0]
    return torch.stack([functional_call(model, {k: v[s] for k, v in stack.items()}, (x,)) for s in range(n)])


def repair_layers(model: ResNet20) -> list[str]:
    """REPAIR's layers (evaluation/repair.py), in forward order: every LayerNorm, whose per-channel
    scale and bias set its output channels (Jordan et al. renormalise after every normalisation)."""
    names = ["stem.norm"]
    for g, group in enumerate(model.groups):
        for b, block in enumerate(group):
            names += [f"groups.{g}.{b}.norm1", f"groups.{g}.{b}.norm2"]
            if block.shortcut is not None:
                names.append(f"groups.{g}.{b}.shortcut.norm")
    return names
