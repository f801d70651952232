"""Architecture registry: the one place that knows which network families exist.

Each entry names the module that implements the family and the JSON-schema properties of its
config arguments (the ``model`` section less ``architecture``; defaults live here and nowhere
else). The module provides:

- ``build(input_shape, n_classes, **args) -> torch.nn.Module``
- ``permutation_spec(model) -> PermutationSpec``: the hidden-unit permutations that leave the
  function unchanged (an entry may also name a torch-free function of the parameter names in
  ``specs.py`` giving the same spec, for jobs that permute weights without running the network)

and, optionally, hooks that other code uses when present (and replaces by generic code when not):

- ``sample_logits(model, stack, x) -> [S, N, C]``: fast prediction under S stacked parameter sets
- ``hidden_activations(model, params, x) -> {group: [rows, units]}``: activations each
  permutation group reorders (activation matching)
- ``local_reparam_logits(model, mean, std, x, n_samples) -> [S, N, C]``: VI's local
  reparameterisation
- ``repair_layers(model) -> [module name]``: the layers whose output channels REPAIR renormalises
  along barrier paths (``barrier.repair``), in forward order

Registering a new family is its module plus one entry below. This module imports no torch, so
the config can be validated (and the workflow's job graph built) without it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType


@dataclass(frozen=True)
class ArchitectureEntry:
    name: str
    module: str  # implements build, permutation_spec and optional hooks
    description: str
    args: dict = field(default_factory=dict)  # JSON-schema properties of the config arguments
    # torch-free functions in workflow.architectures.specs: the parameter shapes from the arguments, and
    # the spec from the parameter names; jobs that only read and permute weights then start without
    # torch. None: both come from the built model
    param_shapes: str | None = None
    spec_from_names: str | None = None


ACTIVATIONS = ["relu", "tanh", "gelu", "elu", "sigmoid", "leaky_relu", "silu"]

REGISTRY: dict[str, ArchitectureEntry] = {e.name: e for e in (
    ArchitectureEntry(
        "mlp", "workflow.architectures.mlp",
        "fully connected network; one permutation group per hidden layer",
        args={
            "hidden": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                       "default": [128], "description": "widths of the hidden layers"},
            "activation": {"type": "string", "enum": ACTIVATIONS, "default": "relu",
                           "description": "elementwise activation"},
        },
        param_shapes="mlp_param_shapes", spec_from_names="mlp_spec_from_names"),
    ArchitectureEntry(
        "resnet20", "workflow.architectures.resnet",
        "ResNet20 with LayerNorm (exactly permutation invariant), as in Git Re-Basin; input channels and size "
        "come from the data",
        args={
            "width": {"type": "integer", "minimum": 1, "default": 1,
                      "description": "width multiplier: 16, 32, 64 channels times this in the three block groups"},
        },
        param_shapes="resnet20_param_shapes", spec_from_names="resnet20_spec_from_names"),
)}


def names() -> list[str]:
    return list(REGISTRY)


def entry(name: str) -> ArchitectureEntry:
    if name not in REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; allowed: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def module(name: str) -> ModuleType:
    return importlib.import_module(entry(name).module)


def hook(name: str, hook_name: str):
    """An optional hook of the architecture, or None."""
    return getattr(module(name), hook_name, None)


def resolve_args(name: str, args: dict) -> dict:
    """The architecture's arguments with defaults filled; unknown keys name the allowed ones."""
    spec = entry(name).args
    unknown = sorted(set(args) - set(spec))
    if unknown:
        raise ValueError(f"architecture {name!r} takes no argument(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(spec) or 'none'}")
    return {k: args.get(k, s.get("default")) for k, s in spec.items()}


def build_model(name: str, input_shape, n_classes: int, **args):
    """(model, permutation spec) of a registered architecture; bad names or arguments raise ValueError."""
    mod = module(name)
    args = resolve_args(name, args)
    try:
        model = mod.build(tuple(int(s) for s in input_shape), int(n_classes), **args)
    except TypeError as err:
        raise ValueError(f"bad arguments {args} for architecture {name!r}: {err}") from err
    return model, mod.permutation_spec(model)


def permutation_spec(name: str, param_names, input_shape, n_classes: int, **args):
    """The permutation spec of a registered architecture, from its parameter names without torch
    where the entry has a ``spec_from_names`` function, else from the built model."""
    fn = entry(name).spec_from_names
    if fn is not None:
        from . import specs

        return getattr(specs, fn)(list(param_names))
    return build_model(name, input_shape, n_classes, **args)[1]


def parameter_shapes(name: str, input_shape, n_classes: int, **args) -> dict[str, tuple[int, ...]]:
    """Shapes of the architecture's parameters, without torch where the registry can; bad names or
    arguments raise ValueError."""
    fn = entry(name).param_shapes
    args = resolve_args(name, args)
    if fn is None:
        model, _ = build_model(name, input_shape, n_classes, **args)
        return {k: tuple(v.shape) for k, v in model.named_parameters()}
    from . import specs

    try:
        return getattr(specs, fn)(tuple(int(s) for s in input_shape), int(n_classes), **args)
    except TypeError as err:
        raise ValueError(f"bad arguments {args} for architecture {name!r}: {err}") from err


def get_params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters()}
