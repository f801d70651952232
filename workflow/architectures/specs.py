"""The structure of each architecture without torch: parameter shapes and permutation specs.

Jobs that only read and permute weights (alignment) need the parameter shapes (to check a
posterior file) and the permutation spec, but not the network: building it would import torch,
seconds of start-up per job. ``*_param_shapes`` give the shapes of ``named_parameters`` (and
raise ValueError on the arguments the architecture's ``build`` refuses); ``*_spec_from_names``
take the parameter names and give the same spec as the architecture's ``permutation_spec(model)``.
``tests/test_architectures.py`` checks both against the built models.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Iterable, Mapping

from ..alignment.permutations import PermutationSpec


def mlp_param_shapes(input_shape, n_classes: int, *, hidden=(128,), activation: str = "relu") -> dict:
    from . import ACTIVATIONS

    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    shapes, fan_in = {}, math.prod(input_shape)
    for i, width in enumerate(hidden):
        shapes |= {f"hidden.{i}.weight": (int(width), fan_in), f"hidden.{i}.bias": (int(width),)}
        fan_in = int(width)
    return shapes | {"out.weight": (int(n_classes), fan_in), "out.bias": (int(n_classes),)}


def mlp_spec(n_hidden: int) -> PermutationSpec:
    """One group per hidden layer: its output units and the next layer's input units."""
    groups = {}
    for i in range(n_hidden):
        nxt = f"hidden.{i + 1}.weight" if i + 1 < n_hidden else "out.weight"
        groups[f"P{i}"] = ((f"hidden.{i}.weight", 0), (f"hidden.{i}.bias", 0), (nxt, 1))
    return PermutationSpec(groups)


def mlp_spec_from_names(names: Iterable[str]) -> PermutationSpec:
    return mlp_spec(sum(1 for n in names if re.fullmatch(r"hidden\.\d+\.weight", n)))


# ResNet20: each helper maps parameter name -> permutation group per axis (None: not permuted), as
# Git Re-Basin's axes_to_perm; _spec_from_axes inverts that into the groups' member lists.

def _conv(name: str, p_in, p_out) -> dict:
    return {f"{name}.weight": (p_out, p_in, None, None)}  # [out, in, kh, kw]


def _norm(name: str, p) -> dict:
    return {f"{name}.weight": (p,), f"{name}.bias": (p,)}


def _dense(name: str, p_in, p_out) -> dict:
    return {f"{name}.weight": (p_out, p_in), f"{name}.bias": (p_out,)}


def _easy_block(name: str, p, inner: str) -> dict:
    return {**_conv(f"{name}.conv1", p, inner), **_norm(f"{name}.norm1", inner),
            **_conv(f"{name}.conv2", inner, p), **_norm(f"{name}.norm2", p)}


def _shortcut_block(name: str, p_in, p_out, inner: str) -> dict:
    return {**_conv(f"{name}.conv1", p_in, inner), **_norm(f"{name}.norm1", inner),
            **_conv(f"{name}.conv2", inner, p_out), **_norm(f"{name}.norm2", p_out),
            **_conv(f"{name}.shortcut.conv", p_in, p_out), **_norm(f"{name}.shortcut.norm", p_out)}


def _spec_from_axes(axes_to_perm: Mapping[str, tuple]) -> PermutationSpec:
    groups: dict[str, list] = {}
    for name, perms in axes_to_perm.items():
        for axis, p in enumerate(perms):
            if p is not None:
                groups.setdefault(p, []).append((name, axis))
    return PermutationSpec({g: tuple(m) for g, m in groups.items()})


def _stream(g: int) -> str:
    return f"P_stream{g}"


def _inner(g: int, b: int) -> str:
    return f"P_g{g}b{b}_inner"


RESNET20_BASE_CHANNELS = (16, 32, 64)
RESNET20_STRIDES = (1, 2, 2)
RESNET20_BLOCKS_PER_GROUP = 3


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_resnet20_args(input_shape, n_classes, width) -> None:
    if not _is_int(width) or width < 1:
        raise ValueError(f"resnet20 width must be a positive integer (1, 2, 4, ...), got {width!r}")
    if len(tuple(input_shape)) != 3 or not all(_is_int(s) and s >= 1 for s in input_shape):
        raise ValueError(f"resnet20 input_shape must be (channels, height, width) with 3 positive integers, "
                         f"got {input_shape!r}")
    if not _is_int(n_classes) or n_classes < 2:
        raise ValueError(f"resnet20 n_classes must be an integer >= 2, got {n_classes!r}")


def resnet20_blocks(width: int = 1) -> list[tuple[int, int, int, int, int]]:
    """(group, block, in channels, out channels, stride) of every basic block, in order."""
    channels = [c * width for c in RESNET20_BASE_CHANNELS]
    blocks, c_in = [], channels[0]
    for g, (c_out, stride) in enumerate(zip(channels, RESNET20_STRIDES)):
        for b in range(RESNET20_BLOCKS_PER_GROUP):
            blocks.append((g, b, c_in if b == 0 else c_out, c_out, stride if b == 0 else 1))
        c_in = c_out
    return blocks


def resnet20_param_shapes(input_shape, n_classes: int, *, width: int = 1) -> dict:
    check_resnet20_args(input_shape, n_classes, width)
    c0 = RESNET20_BASE_CHANNELS[0] * width
    shapes = {"stem.conv.weight": (c0, int(input_shape[0]), 3, 3), "stem.norm.weight": (c0,), "stem.norm.bias": (c0,)}
    for g, b, c_in, c_out, stride in resnet20_blocks(width):
        name = f"groups.{g}.{b}"
        shapes |= {f"{name}.conv1.weight": (c_out, c_in, 3, 3), f"{name}.norm1.weight": (c_out,),
                   f"{name}.norm1.bias": (c_out,), f"{name}.conv2.weight": (c_out, c_out, 3, 3),
                   f"{name}.norm2.weight": (c_out,), f"{name}.norm2.bias": (c_out,)}
        if stride != 1 or c_in != c_out:
            shapes |= {f"{name}.shortcut.conv.weight": (c_out, c_in, 1, 1), f"{name}.shortcut.norm.weight": (c_out,),
                       f"{name}.shortcut.norm.bias": (c_out,)}
    c_last = RESNET20_BASE_CHANNELS[-1] * width
    return shapes | {"head.weight": (int(n_classes), c_last), "head.bias": (int(n_classes),)}


def resnet20_spec(blocks: Iterable[tuple[int, int, bool]]) -> PermutationSpec:
    """Stream groups P_stream{g}, inner groups P_g{g}b{b}_inner, from the blocks in order as
    (group, block, has a projection shortcut)."""
    stream = _stream(0)
    axes = {**_conv("stem.conv", None, stream), **_norm("stem.norm", stream)}
    for g, b, shortcut in blocks:
        name = f"groups.{g}.{b}"
        if not shortcut:
            axes.update(_easy_block(name, stream, _inner(g, b)))
        else:  # a projection shortcut starts a new residual stream
            axes.update(_shortcut_block(name, stream, _stream(g), _inner(g, b)))
            stream = _stream(g)
    axes.update(_dense("head", stream, None))
    return _spec_from_axes(axes)


def resnet20_spec_from_names(names: Iterable[str]) -> PermutationSpec:
    names = list(names)
    conv1 = (re.fullmatch(r"groups\.(\d+)\.(\d+)\.conv1\.weight", n) for n in names)
    blocks = sorted({(int(m[1]), int(m[2])) for m in conv1 if m})
    return resnet20_spec((g, b, f"groups.{g}.{b}.shortcut.conv.weight" in names) for g, b in blocks)
