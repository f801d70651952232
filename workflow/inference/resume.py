"""The one checkpoint and resume protocol of long jobs (optimisation in training.py, HMC in hmc.py).

A checkpoint holds a job's state together with its fingerprint: what the state is a state of (seeds,
settings, data or start, parameter shapes, device type and GPU model, the job's identity). It is
written atomically (a killed job leaves the previous checkpoint or none, never half a file) and
resumed only when the fingerprint is the same; otherwise it is ignored with a warning, and the job
starts over. Random states are saved with it: the CPU's, and the job's GPU's alone.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from ..storage.atomic import atomic_path
from ..device import device_identity

log = logging.getLogger(__name__)


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's state with every tensor on the CPU: a generator's state must be a CPU
    ByteTensor (``set_state`` refuses one on CUDA), and each piece is moved where it belongs by
    whoever restores it (load_state_dict copies onto the parameters' device)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state(device: torch.device) -> dict:
    """The global random states a job on ``device`` draws from: the CPU's, and that GPU's alone (not
    every visible GPU's: a retry may see another number of them)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def fingerprint(device: torch.device, identity: dict | None, **parts) -> dict:
    """What a checkpoint is a state of: the job's own ``parts``, the device (type and GPU model:
    another rounds differently) and ``identity`` (e.g. the job's config)."""
    return {**parts, "device": device_identity(device),
            "identity": json.dumps(identity or {}, sort_keys=True, default=str)}


class Resume:
    """A job's checkpoint file (or none: ``path`` None) and the fingerprint its state must carry."""

    def __init__(self, path: str | os.PathLike | None, fingerprint: dict, desc: str):
        self.path = Path(path) if path else None
        self.fingerprint, self.desc = fingerprint, desc

    def saved_state(self) -> dict | None:
        """The state to resume from, or None: no checkpoint, or one made for something else."""
        if not (self.path and self.path.is_file()):
            return None
        state = load_checkpoint(self.path)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("%s: ignoring checkpoint %s: it was made with other seeds, settings, data, start, "
                        "architecture or device", self.desc, self.path)
            return None
        return state

    def save(self, state: dict) -> None:
        if self.path:
            save_checkpoint(self.path, {"fingerprint": self.fingerprint, **state})
