"""The one device policy of every job, its numerical switches, and the record artifacts keep of it.

A job computes on CUDA exactly when it was given a GPU, or when the config forces a device:

=====================  =============================================  ==============================
``compute.device``     the job was given a GPU                        the job was given none
=====================  =============================================  ==============================
``auto``               ``cuda`` (error if torch has no usable CUDA)   ``cpu``
``cpu``                ``cpu`` (forced)                               ``cpu``
``cuda`` / ``cuda:N``  that device (error if CUDA is unusable)        that device (forced)
=====================  =============================================  ==============================

"Given a GPU" means the rule's ``gpu`` resource is above 0 (passed as ``--gpus``), or a scheduler
made GPUs visible through ``CUDA_VISIBLE_DEVICES`` (SLURM sets it for a job that asked for one).
So a job that did not ask for a GPU never takes one that merely happens to be on the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Mapping

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")
MIXED_PRECISION = ("off", "bf16")  # compute.mixed_precision values
# values of CUDA_VISIBLE_DEVICES that hide every GPU
_NO_GPU_VALUES = {"", "-1", "none", "nodevfiles", "void"}


class DeviceError(ValueError):
    """A device that was asked for cannot be used here."""


def visible_gpus(environ: Mapping[str, str]) -> list[str]:
    """The GPUs a scheduler made visible (CUDA_VISIBLE_DEVICES), or [] when unset or hiding all."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None or value.strip().lower() in _NO_GPU_VALUES:
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def gpu_given(gpus: int, environ: Mapping[str, str]) -> str | None:
    """Why the job counts as given a GPU (for messages), or None."""
    if gpus > 0:
        return f"its rule requested {gpus} GPU(s)"
    visible = visible_gpus(environ)
    if visible:
        return f"CUDA_VISIBLE_DEVICES={','.join(visible)}"
    return None


def decide_device(configured: str, gpus: int = 0, environ: Mapping[str, str] | None = None,
                  cuda_available: bool | None = None, torch_version: str | None = None) -> str:
    """The device name a job computes on, following the table in this module's docstring.

    ``gpus``: the rule's GPU resource; ``environ`` defaults to os.environ; ``cuda_available``
    defaults to torch.cuda.is_available() (asked only when it matters).
    """
    if not isinstance(configured, str) or not DEVICE_PATTERN.match(configured):
        raise DeviceError(f"compute.device {configured!r} is not allowed; allowed: 'auto', 'cpu', 'cuda', 'cuda:N'")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise DeviceError(f"the number of GPUs given to a job must be an integer >= 0, got {gpus!r}")
    environ = os.environ if environ is None else environ
    if configured == "cpu":
        return "cpu"
    reason = gpu_given(gpus, environ)
    if configured == "auto" and reason is None:
        return "cpu"
    if cuda_available is None or torch_version is None:
        import torch

        cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
        torch_version = torch.__version__ if torch_version is None else torch_version
    if not cuda_available:
        why = f"the job was given a GPU ({reason})" if configured == "auto" else f"compute.device is {configured!r}"
        raise DeviceError(f"{why}, but torch {torch_version} has no usable CUDA here; install a CUDA build of "
                          "torch, or set compute.device: cpu to compute on the CPU anyway")
    return "cuda" if configured == "auto" else configured


# the job's GPUs and numerical switches, set by the command line before the job runs (no torch import)
_JOB = {"gpus": 0, "deterministic": True, "mixed_precision": "off"}
# what the job computed on, once it chose its device: provenance records it in every artifact
_RECORD: dict = {}


def set_job(deterministic: bool = True, mixed_precision: str = "off", gpus: int = 0) -> None:
    """The job's compute.deterministic, compute.mixed_precision and the GPUs its rule requested,
    used by ``use_device``."""
    if mixed_precision not in MIXED_PRECISION:
        raise DeviceError(f"compute.mixed_precision {mixed_precision!r} is not allowed; allowed: "
                          f"{', '.join(MIXED_PRECISION)}")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise DeviceError(f"--gpus must be an integer >= 0, got {gpus!r}")
    _JOB.update(deterministic=bool(deterministic), mixed_precision=mixed_precision, gpus=gpus)


def use_device(configured: str = "auto"):
    """The torch.device a job computes on (``decide_device`` of compute.device and the job's GPUs),
    with the numerical switches applied and recorded for the job's artifacts.

    deterministic (default): deterministic algorithms only (a warning where an op has none), no
    cuDNN autotuning, and the cuBLAS workspace setting that makes CUDA matmuls reproducible. Off:
    cuDNN autotuning. Bit-identity holds only on the same machine: another CPU or GPU rounds
    differently.
    """
    name = decide_device(configured, _JOB["gpus"])
    import torch

    deterministic = _JOB["deterministic"]
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when CUDA starts
    set_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    device = torch.device(name)
    _RECORD.clear()
    _RECORD.update(compute_record(device))
    return device


def set_deterministic_algorithms(mode: bool) -> None:
    """torch.use_deterministic_algorithms(mode, warn_only=True), without importing torch._inductor.

    The public call also sets the flag of compiled (inductor) code, and importing inductor for that
    costs every job about 1.7 s (torch 2.13). Jobs never compile: unless inductor is already loaded,
    only the runtime flag, the one eager kernels read, is set."""
    import torch

    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if "torch._inductor.config" in sys.modules or setter is None:
        torch.use_deterministic_algorithms(mode, warn_only=True)
    else:
        setter(mode, warn_only=True)


def mixed_precision() -> str:
    """The job's compute.mixed_precision ('off' or 'bf16'); used for training passes and HMC
    gradients only, never for the Metropolis test or for evaluation."""
    return _JOB["mixed_precision"]


def autocast(device):
    """Context for a training forward pass: bfloat16 autocast when mixed precision is on."""
    import torch

    if mixed_precision() == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def compute_record(device) -> dict:
    """Where an artifact was computed: device, GPU name, torch / CUDA / cuDNN versions and the
    numerical switches."""
    import torch

    dev = torch.device(device)
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else ""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"device": str(dev), "gpu_name": str(gpu), "torch": str(torch.__version__), "cuda": str(torch.version.cuda or ""),
            "cudnn": str(cudnn or ""), "deterministic": _JOB["deterministic"],
            "mixed_precision": _JOB["mixed_precision"]}


def job_record() -> dict:
    """The record of the device this job chose (``use_device``); a job that never chose one
    computed on the CPU only, and one that never imported torch (alignment, summaries) records
    torch's installed version without importing it: CUDA and cuDNN stay empty, as it used neither."""
    if _RECORD:
        return dict(_RECORD)
    if "torch" not in sys.modules:
        from importlib import metadata

        try:
            version = metadata.version("torch")
        except metadata.PackageNotFoundError:
            version = "not installed"
        return {"device": "cpu", "gpu_name": "", "torch": version, "cuda": "", "cudnn": "",
                "deterministic": _JOB["deterministic"], "mixed_precision": _JOB["mixed_precision"]}
    return compute_record("cpu")


def device_label() -> str:
    """The job's device in one table cell: 'cpu', or 'cuda:0 (NVIDIA H100 80GB HBM3)'; the column
    `device` of the tables computed with torch."""
    record = job_record()
    return f"{record['device']} ({record['gpu_name']})" if record["gpu_name"] else record["device"]
