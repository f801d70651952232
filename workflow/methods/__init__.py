"""Posterior-method registry: the one place that knows which methods exist.

Each method is one module below, light to import (torch only inside ``fit``), declaring:

- ``KIND``: the artifact it writes, "samples" (draws [chain, draw, ...]) or "gaussian" (mean, std)
- ``LABEL``: its name in tables and legends ("HMC", "Ens.", "VI", ...)
- ``DESCRIPTION``
- ``SETTINGS``: JSON-schema properties of its config section (``<name>:``), defaults included; a
  Gaussian method includes ``eval_samples`` (Monte Carlo samples of the metrics in its artifact)
- ``RUNTIME_KEYS``: settings of that section that change how it runs, not what it computes
- ``fit(request: FitRequest) -> Posterior``: the same signature for every method

and optionally ``FITTED_AROUND`` (a method whose posterior of the same seed it starts from),
``REFERENCE = True`` (its predictive is the gold standard that Table 1 compares with),
``MARKOV_CHAIN = True`` (its draws come from Markov chains: the within-chain barrier control applies),
``SEED_LIMIT_KEY`` (a setting that runs it on the first N seeds only) and
``PERMUTED_INIT = True`` (``fit`` honours ``request.init_permutation``: the NoT study retrains it) and
``fit_together(requests) -> list[Posterior]`` (several seeds fitted in one job, as one batch, each
result the same as its own ``fit``; its ``chains_per_job`` setting sizes the groups).

Rules, Table 1 columns, alignment kinds, figure styles and studies read this registry, so a new
method is its module plus one line in ``MODULES``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

KINDS = ("samples", "gaussian")

MODULES = {
    "ensemble": "workflow.methods.ensemble",
    "vi": "workflow.methods.vi",
    "hmc": "workflow.methods.hmc",
    "laplace": "workflow.methods.laplace",
}


def names() -> list[str]:
    return list(MODULES)


def load(name: str) -> ModuleType:
    if name not in MODULES:
        raise ValueError(f"unknown posterior method {name!r}; allowed: {', '.join(MODULES)}")
    mod = importlib.import_module(MODULES[name])
    if getattr(mod, "KIND", None) not in KINDS:
        raise ValueError(f"method module {MODULES[name]} must declare KIND as one of {KINDS}")
    return mod


def kind(name: str) -> str:
    return load(name).KIND


def label(name: str) -> str:
    return load(name).LABEL


def fitted_around(name: str) -> str | None:
    return getattr(load(name), "FITTED_AROUND", None)


def is_reference(name: str) -> bool:
    return bool(getattr(load(name), "REFERENCE", False))


def markov_chain(name: str) -> bool:
    """Whether the method's draws of one seed form a Markov chain (halves of it sample one mode)."""
    return bool(getattr(load(name), "MARKOV_CHAIN", False))


def seed_limit_key(name: str) -> str | None:
    return getattr(load(name), "SEED_LIMIT_KEY", None)


def permuted_init(name: str) -> bool:
    return bool(getattr(load(name), "PERMUTED_INIT", False))


def fits_together(name: str) -> bool:
    """Whether the method can fit several seeds in one job (``fit_together``)."""
    return callable(getattr(load(name), "fit_together", None))


def runtime_keys(name: str) -> tuple[str, ...]:
    return tuple(getattr(load(name), "RUNTIME_KEYS", ()))


def of_kind(selected, k: str) -> list[str]:
    """The selected methods whose artifacts are of kind ``k``, in the given order."""
    return [m for m in selected if kind(m) == k]


def reference_method(selected) -> str | None:
    """The selected method whose predictive the others are compared with (Table 1), if any."""
    refs = [m for m in selected if is_reference(m)]
    return refs[0] if refs else None


# alignment kind -> the posterior kinds it applies to
ALIGNMENT_KINDS = {
    "weight": ("samples", "gaussian"),  # weight matching of the representatives (for Gaussians: means only)
    "w2": ("gaussian",),  # means and standard deviations share the permutation: minimises W2
}


def alignment_kinds(method: str, configured) -> list[str]:
    """The configured alignment kinds that apply to a method's posteriors."""
    return [k for k in configured if kind(method) in ALIGNMENT_KINDS[k]]


def section_schemas() -> dict[str, dict]:
    """Config section of every method, as JSON-schema objects (the schema's method branches)."""
    out = {}
    for name in MODULES:
        mod = load(name)
        out[name] = {"type": "object", "additionalProperties": False, "default": {},
                     "description": mod.DESCRIPTION, "properties": mod.SETTINGS}
    return out


@dataclass
class FitRequest:
    """Everything a method's ``fit`` gets: the same for every method."""

    method: str
    architecture: str
    architecture_args: dict
    data: dict  # the prepared data set (torch tensors; see jobs.data.load_prepared)
    seed: int
    config: dict  # the job's config sections, defaults filled: data, model, prior, <method>
    device: Any = "cpu"  # torch.device
    checkpoint: Any = None  # resume file (path) or None
    base: Any = None  # Posterior this one is fitted around (FITTED_AROUND), else None
    init_permutation: Any = None  # (spec, perms) applied to the initial weights (PERMUTED_INIT methods)
    data_seed: int | None = None  # minibatch order from another seed than the initialisation
    extra_identity: dict = field(default_factory=dict)  # more that a checkpoint must match

    @property
    def settings(self) -> dict:
        return dict(self.config.get(self.method, {}))

    @property
    def prior_std(self) -> float | None:
        """The prior's standard deviation; None only where a study trains without a prior (no user config can)."""
        std = self.config["prior"]["std"]
        return None if std is None else float(std)

    def build_model(self):
        from ..architectures import build_model

        return build_model(self.architecture, self.data["input_shape"], self.data["n_classes"],
                           **self.architecture_args)

    def identity(self) -> dict:
        """What a checkpoint must have been made for: method, data, model, prior (settings are checked too)."""
        from ..config import result_config

        return {"method": self.method, **result_config(self.config, ("data", "model", "prior")),
                **self.extra_identity}

    def posterior(self, kind: str, **fields):
        """A Posterior of this request's method, architecture, data and seed."""
        from ..storage.artifacts import Posterior

        return Posterior(kind=kind, method=self.method, architecture=self.architecture,
                         architecture_args=self.architecture_args, dataset=self.data["name"],
                         input_shape=tuple(self.data["input_shape"]), n_classes=self.data["n_classes"],
                         seed=self.seed, config=self.config, **fields)
