"""Minibatch training shared by the optimisation-based methods, resumable from checkpoints.

``run_training`` runs Adam on any per-example objective over any module's parameters (the
network for MAP, the variational parameters for VI). It checkpoints every few epochs and, given
the same checkpoint file, resumes to exactly the result of an uninterrupted run.

MAP objective per example: mean NLL + ||w||^2 / (2 sigma_p^2 N), i.e. (-log p(D|w) - log p(w)) / N
with the N(0, sigma_p^2) prior of the Bayesian methods.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ..device import autocast
from ..methods._optim import OPTIM_SETTINGS
from .resume import Resume, fingerprint, rng_state, set_rng_state

log = logging.getLogger(__name__)

# objective(x_batch, y_batch) -> (loss to minimise, {trace name: value for this batch})
# (x_batch, y_batch) -> (loss, metrics); metrics are tensors, summed on the device over an epoch
Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


# the config schema's settings are the one source of the defaults and allowed values below
OPTIMIZERS = tuple(OPTIM_SETTINGS["optimizer"]["enum"])
LR_SCHEDULES = tuple(OPTIM_SETTINGS["lr_schedule"]["enum"])
AUGMENTATIONS = tuple(OPTIM_SETTINGS["augment"]["enum"])


def schema_default(settings: dict, key: str):
    """A setting's default, from a method's config schema (workflow/methods/<method>.py SETTINGS)."""
    return settings[key]["default"]


@dataclass
class OptimSettings:
    """How the optimisation-based methods step: shared by MAP and VI."""

    epochs: int = schema_default(OPTIM_SETTINGS, "epochs")
    batch_size: int = schema_default(OPTIM_SETTINGS, "batch_size")
    lr: float = schema_default(OPTIM_SETTINGS, "lr")
    optimizer: str = schema_default(OPTIM_SETTINGS, "optimizer")  # adam, or sgd with momentum
    momentum: float = schema_default(OPTIM_SETTINGS, "momentum")  # sgd only
    lr_schedule: str = schema_default(OPTIM_SETTINGS, "lr_schedule")  # or cosine decay to 0 over the epochs
    augment: str = schema_default(OPTIM_SETTINGS, "augment")  # random crop with zero padding, and a flip (crop_flip)
    checkpoint_every: int = schema_default(OPTIM_SETTINGS, "checkpoint_every")  # epochs; 0 disables checkpoints

    def check_optim(self) -> None:
        check_positive(self, ints=("epochs", "batch_size"), floats=("lr",))
        for key, allowed in (("optimizer", OPTIMIZERS), ("lr_schedule", LR_SCHEDULES), ("augment", AUGMENTATIONS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} {getattr(self, key)!r} is not one of {allowed}")
        if not 0.0 <= float(self.momentum) < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")


@dataclass
class MapSettings(OptimSettings):
    prior_std: float | None = 1.0  # None: no prior (no weight decay), as the NoT study in Xiao et al.'s setting

    def __post_init__(self):
        self.check_optim()
        if self.prior_std is not None:
            check_positive(self, floats=("prior_std",))


def make_optimizer(params, settings: OptimSettings, fused: bool = False) -> torch.optim.Optimizer:
    """``fused``: Adam's single-kernel update (CPU and CUDA); other rounding than the default loop,
    so only methods written for it use it (VI, whose step is otherwise dominated by the update)."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum)
    return torch.optim.Adam(params, lr=settings.lr, fused=fused or None)


def epoch_lr(settings: OptimSettings, epoch: int) -> float:
    """Learning rate of an epoch: constant, or cosine decay (a function of the epoch alone, so resumes agree)."""
    if settings.lr_schedule == "cosine":
        return settings.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / settings.epochs))
    return settings.lr


def draw_augmentation(sizes: list[int], mode: str, side: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """An epoch's random crop offsets (oy, ox) and flips, each [sum(sizes)], drawn from ``gen`` on the
    host batch by batch in the order the batches use them, so that they travel to the device in one
    copy per epoch: a copy per minibatch would make the host wait for the GPU stream every batch.
    Empty for mode 'none'."""
    if mode == "none":
        return ()
    pad = crop_padding(side)
    parts = []
    for n in sizes:
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        parts.append((oy, ox, torch.rand(n, generator=gen) < 0.5) if mode == "crop_flip" else (oy, ox))
    return tuple(torch.cat(column) for column in zip(*parts))


def crop_padding(side: int) -> int:
    """Zero padding of the random crop: an eighth of the image side (4 pixels at 32), at least 1."""
    return max(1, round(side / 8))


def augment_batch(x: torch.Tensor, mode: str, draws: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Random crop after zero padding (``crop_padding``), and for 'crop_flip' a horizontal flip, per
    example, with the offsets and flips ``draws`` (``draw_augmentation``'s, on x's device)."""
    if mode == "none":
        return x
    n, _, h, w = x.shape
    pad = crop_padding(h)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy, ox = draws[0], draws[1]
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [n, h, 1]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [n, 1, w]
    out = padded.permute(0, 2, 3, 1)[torch.arange(n, device=x.device)[:, None, None], rows, cols].permute(0, 3, 1, 2)
    if mode == "crop_flip":
        out = torch.where(draws[2][:, None, None, None], out.flip(-1), out)
    return out.contiguous()


def check_positive(settings, ints=(), floats=()) -> None:
    for key in ints:
        if int(getattr(settings, key)) < 1:
            raise ValueError(f"{key} must be >= 1, got {getattr(settings, key)!r}")
    for key in floats:
        if not float(getattr(settings, key)) > 0:
            raise ValueError(f"{key} must be > 0, got {getattr(settings, key)!r}")
    if int(getattr(settings, "checkpoint_every", 0)) < 0:
        raise ValueError(f"checkpoint_every must be >= 0, got {settings.checkpoint_every!r}")


@dataclass
class TrainResult:
    traces: dict[str, np.ndarray] = field(default_factory=dict)  # one value per epoch
    resumed_from_epoch: int = 0


@dataclass
class MapResult:
    params: dict[str, np.ndarray]
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)
    resumed_from_epoch: int = 0


def data_digest(*tensors: torch.Tensor) -> str:
    """Content hash of the training data, so a checkpoint is never resumed on other data. Takes host
    tensors: hash the data before it moves to a GPU (hashing it there copies it all back)."""
    h = hashlib.sha1()
    for t in tensors:
        if t.device.type != "cpu":
            raise ValueError(f"data_digest hashes host tensors; got one on {t.device}: take the digest "
                             "before the data moves to the device")
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def run_training(module: torch.nn.Module, objective: Objective, x: torch.Tensor, y: torch.Tensor, settings, *,
                 seed: int, data_hash: str, checkpoint: str | os.PathLike | None = None, desc: str = "train",
                 identity: dict | None = None, fused_optimizer: bool = False,
                 param_groups: list[dict] | None = None) -> TrainResult:
    """``settings.optimizer`` over ``module``'s parameters for ``settings.epochs`` epochs of shuffled,
    optionally augmented minibatches. ``data_hash``: ``data_digest(x, y)``, taken by the caller
    while the data were still on the host. ``param_groups``: the optimizer's groups of the module's
    parameters, each with an optional ``lr_scale`` (its learning rate over the schedule's).

    A checkpoint is resumed only if it was made for the same seed, settings, data, parameter shapes,
    device (type and GPU model: another rounds differently) and ``identity`` (e.g. the job's
    config); otherwise it is ignored with a warning.
    """
    n = len(x)
    opt = make_optimizer(param_groups or module.parameters(), settings, fused=fused_optimizer)
    gen = torch.Generator().manual_seed(seed)  # data order and augmentation, drawn on the host
    resume = Resume(checkpoint, fingerprint(
        x.device, identity, seed=seed, **{"class": type(settings).__name__},
        settings={k: v for k, v in vars(settings).items() if k != "checkpoint_every"}, data=data_hash,
        shapes={k: tuple(v.shape) for k, v in module.state_dict().items()}), desc)
    traces: dict[str, list[float]] = {}
    start = 0
    state = resume.saved_state()
    if state is not None:
        module.load_state_dict(state["module"])
        opt.load_state_dict(state["optimizer"])  # moves its state onto the parameters' device
        gen.set_state(state["generator"])
        set_rng_state(state["rng"], x.device)
        traces, start = {k: list(v) for k, v in state["traces"].items()}, int(state["epoch"])
        log.info("resumed from %s at epoch %d", resume.path, start)

    for epoch in tqdm(range(start, settings.epochs), desc=desc, disable=None):
        for group in opt.param_groups:
            group["lr"] = epoch_lr(settings, epoch) * group.get("lr_scale", 1.0)
        order = torch.randperm(n, generator=gen)
        starts = range(0, n, settings.batch_size)
        # the epoch's order and augmentation draws travel to the device once, not per minibatch
        order, *draws = (t.to(x.device) for t in (order, *draw_augmentation(
            [min(settings.batch_size, n - i) for i in starts], settings.augment, x.shape[-2] if x.ndim == 4 else 0,
            gen)))
        # per-minibatch metrics are summed on the device (float64): the host syncs once per epoch
        sums: dict[str, torch.Tensor] = {}
        for i in starts:
            batch = slice(i, i + settings.batch_size)
            idx = order[batch]
            with autocast(x.device):  # bfloat16 forward passes when compute.mixed_precision is on
                loss, metrics = objective(augment_batch(x[idx], settings.augment, [d[batch] for d in draws]),
                                          y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in {"loss": loss, **metrics}.items():
                sums[k] = sums.get(k, 0.0) + v.detach().double() * len(idx)
        for k, v in sums.items():
            traces.setdefault(k, []).append(float(v) / n)
        if not np.isfinite(traces["loss"][-1]):
            raise FloatingPointError(f"{desc}: training diverged at epoch {epoch + 1} (loss {traces['loss'][-1]}); "
                                     "lower the learning rate")
        done = epoch + 1
        if settings.checkpoint_every and done % settings.checkpoint_every == 0 and done < settings.epochs:
            resume.save({"epoch": done, "traces": traces, "module": module.state_dict(),
                         "optimizer": opt.state_dict(), "generator": gen.get_state(), "rng": rng_state(x.device)})
    return TrainResult({k: np.asarray(v) for k, v in traces.items()}, start)


def reset_parameters(model: torch.nn.Module, seed: int) -> None:
    """Initialise from the seed alone, so a solution does not depend on earlier RNG use."""
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def train_map(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: MapSettings, *, seed: int,
              device: torch.device, checkpoint: str | os.PathLike | None = None,
              identity: dict | None = None, init_permutation=None, data_seed: int | None = None) -> MapResult:
    """One MAP solution (a deep-ensemble member); deterministic for a given seed.

    ``init_permutation`` = (spec, perms) permutes the seed's initial weights before training (the
    NoT study); ``data_seed`` draws the minibatch order from another seed than the initialisation.
    """
    reset_parameters(model, seed)
    if init_permutation is not None:
        from ..alignment.permutations import apply_permutation

        spec, perms = init_permutation
        with torch.no_grad():
            permuted = apply_permutation(dict(model.named_parameters()), spec, perms)
            for name, param in model.named_parameters():
                param.copy_(permuted[name])
    data_hash = data_digest(x, y)  # on the host, before the data move
    model.to(device)
    x, y = x.to(device), y.to(device)
    prior_scale = 0.0 if settings.prior_std is None else 1.0 / (2.0 * settings.prior_std ** 2 * len(x))

    def objective(xb, yb):
        nll = torch.nn.functional.cross_entropy(model(xb), yb)
        penalty = sum((p ** 2).sum() for p in model.parameters())
        return nll + prior_scale * penalty, {"nll": nll}

    result = run_training(model, objective, x, y, settings, seed=seed if data_seed is None else data_seed,
                          data_hash=data_hash, checkpoint=checkpoint, desc=f"MAP seed {seed}", identity=identity)
    params = {k: v.detach().cpu().numpy() for k, v in model.named_parameters()}
    return MapResult(params, result.traces, result.resumed_from_epoch)
