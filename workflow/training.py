"""MAP training (one deep-ensemble member), resumable from periodic checkpoints.

Objective per example: mean NLL + ||w||^2 / (2 sigma_p^2 N), i.e. -log p(D|w) - log p(w) with the
N(0, sigma_p^2) prior of the Bayesian methods, divided by N.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .atomic import atomic_path

log = logging.getLogger(__name__)


@dataclass
class MapSettings:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    prior_std: float = 1.0
    checkpoint_every: int = 5  # epochs; 0 disables checkpoints

    def __post_init__(self):
        for key in ("epochs", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)!r}")
        for key in ("lr", "prior_std"):
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)!r}")


@dataclass
class MapResult:
    params: dict[str, np.ndarray]
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)
    resumed_from_epoch: int = 0


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def train_map(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, settings: MapSettings, *, seed: int,
              device: torch.device, checkpoint: str | os.PathLike | None = None) -> MapResult:
    """Adam on the MAP objective; deterministic for a given seed, resumable from ``checkpoint``."""
    torch.manual_seed(seed)
    # re-initialise from the seed so the member depends on it alone (not on prior RNG use)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    model.to(device)
    x, y = x.to(device), y.to(device)
    n = len(x)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    gen = torch.Generator().manual_seed(seed)
    losses, start = [], 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if state.get("seed") != seed or state.get("settings") != vars(settings):
            log.warning("ignoring checkpoint %s: it was made with other settings", ckpt)
        else:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            losses, start = list(state["losses"]), int(state["epoch"])
            log.info("resumed from %s at epoch %d", ckpt, start)

    prior_scale = 1.0 / (2.0 * settings.prior_std ** 2 * n)
    for epoch in tqdm(range(start, settings.epochs), desc=f"MAP seed {seed}", disable=None):
        order = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for i in range(0, n, settings.batch_size):
            idx = order[i:i + settings.batch_size]
            nll = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            penalty = sum((p ** 2).sum() for p in model.parameters())
            loss = nll + prior_scale * penalty
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / n)
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(f"MAP training diverged at epoch {epoch + 1} (loss {losses[-1]}); lower lr")
        done = epoch + 1
        if ckpt and settings.checkpoint_every and (done % settings.checkpoint_every == 0) and done < settings.epochs:
            _save_checkpoint(ckpt, {"seed": seed, "settings": vars(settings), "epoch": done, "losses": losses,
                                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "generator": gen.get_state()})
    params = {k: v.detach().cpu().numpy() for k, v in model.named_parameters()}
    return MapResult(params, {"loss": np.asarray(losses)}, start)
