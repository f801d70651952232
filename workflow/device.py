"""The one device policy of every job, its numerical switches, and the record artifacts keep of it.

A job computes on CUDA exactly when it was given a GPU, or when the config forces a device:

=====================  =============================================  ==============================
``compute.device``     the job was given a GPU                        the job was given none
=====================  =============================================  ==============================
``auto``               ``cuda`` (error if torch has no usable CUDA)   ``cpu``
``cpu``                ``cpu`` (forced)                               ``cpu``
``cuda`` / ``cuda:N``  that device (error if CUDA is unusable)        that device (forced)
=====================  =============================================  ==============================

"Given a GPU" means: the rule's ``gpu`` resource is above 0 (``--gpus N``; the workflow's rules
always pass it, so inside a run the rule's request alone decides). A job started by hand without
``--gpus`` counts as given a GPU only when a scheduler allocated one to it: SLURM sets
``CUDA_VISIBLE_DEVICES`` together with ``SLURM_STEP_GPUS``, ``SLURM_JOB_GPUS`` or
``SLURM_GPUS_ON_NODE``. An exported ``CUDA_VISIBLE_DEVICES`` alone never counts, so a job that did
not ask for a GPU never takes one that merely happens to be visible (which would also bypass the
local profile's cap of one GPU job at a time).

``cuda:N`` counts among the GPUs visible to the job: a scheduler renumbers them from 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Mapping

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")
MIXED_PRECISION = ("off", "bf16")  # compute.mixed_precision values
# values of CUDA_VISIBLE_DEVICES that hide every GPU
_NO_GPU_VALUES = {"", "-1", "none", "nodevfiles", "void"}
# a scheduler's record that it allocated GPUs to this job (SLURM: a step's, the job's, the node's count)
SCHEDULER_GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE")
# The rules whose jobs compute with torch: the one list. rules/common.smk requests compute.gpu GPUs for
# exactly these (and passes --gpus), tests/test_profiles.py and .ci/slurm_checks.py check the requests
# against it. rebasin is not here: its matching runs on the CPU.
GPU_RULES = frozenset({"train_posterior", "barrier_curves", "barrier_within_chain", "table1", "pruning", "not_k"})
# bfloat16 runs natively from compute capability 8.0 (Ampere) on; below, torch emulates it, slower than float32
BF16_MIN_CAPABILITY = (8, 0)


class DeviceError(ValueError):
    """A device that was asked for cannot be used here."""


def visible_gpus(environ: Mapping[str, str]) -> list[str]:
    """The GPUs a scheduler made visible (CUDA_VISIBLE_DEVICES), or [] when unset or hiding all."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None or value.strip().lower() in _NO_GPU_VALUES:
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def scheduler_gpus(environ: Mapping[str, str]) -> str | None:
    """The scheduler variable that records GPUs allocated to this job ('SLURM_JOB_GPUS=0'), or None."""
    for name in SCHEDULER_GPU_VARIABLES:
        value = environ.get(name, "").strip()
        if value and value not in ("0", "(null)"):
            return f"{name}={value}"
    return None


def gpu_given(gpus: int | None, environ: Mapping[str, str]) -> str | None:
    """Why the job counts as given a GPU (for messages), or None. ``gpus``: the rule's request, or
    None when the job was started without one (then only a scheduler's allocation counts)."""
    if gpus is not None:
        return f"its rule requested {gpus} GPU(s)" if gpus > 0 else None
    visible, allocated = visible_gpus(environ), scheduler_gpus(environ)
    if visible and allocated:
        return f"the scheduler allocated it GPUs ({allocated}, CUDA_VISIBLE_DEVICES={','.join(visible)})"
    return None


def _check_gpus(gpus, what: str) -> None:
    if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
        raise DeviceError(f"{what} must be an integer >= 0, got {gpus!r}")


def decide_device(configured: str, gpus: int | None = 0, environ: Mapping[str, str] | None = None,
                  cuda_available: bool | None = None, torch_version: str | None = None,
                  device_count: int | None = None) -> str:
    """The device name a job computes on, following the table in this module's docstring: 'cpu',
    or 'cuda:N' with N an index among the GPUs visible to the job ('auto' and 'cuda' take cuda:0).

    ``gpus``: the rule's GPU resource (None: none was passed); ``environ`` defaults to os.environ;
    ``cuda_available`` and ``device_count`` default to torch.cuda's (asked only when it matters).
    """
    if not isinstance(configured, str) or not DEVICE_PATTERN.match(configured):
        raise DeviceError(f"compute.device {configured!r} is not allowed; allowed: 'auto', 'cpu', 'cuda', 'cuda:N'")
    _check_gpus(gpus, "the number of GPUs given to a job")
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
    index = int(configured.partition(":")[2] or 0)
    if device_count is None:
        import torch

        device_count = torch.cuda.device_count()
    if index >= device_count:
        visible = visible_gpus(environ)
        renumbered = (f"; CUDA_VISIBLE_DEVICES={','.join(visible)} makes those GPUs the job's cuda:0.."
                      f"cuda:{len(visible) - 1} (a scheduler renumbers the GPUs it gives a job from 0)"
                      if visible else "")
        seen = f"{device_count} GPU(s), cuda:0..cuda:{device_count - 1}" if device_count else "no GPU"
        raise DeviceError(f"compute.device is {configured!r}, but this job sees {seen}{renumbered}; set "
                          "compute.device: auto or cuda (the job's first GPU), or an index below the count")
    return f"cuda:{index}"


# the job's GPUs and numerical switches, set by the command line before the job runs (no torch import);
# gpus None: the job was started without a rule's request (only a scheduler's allocation counts)
_JOB = {"gpus": None, "deterministic": True, "mixed_precision": "off"}
# what the job computed on, once it chose its device: provenance records it in every artifact
_RECORD: dict = {}


def set_job(deterministic: bool = True, mixed_precision: str = "off", gpus: int | None = None) -> None:
    """The job's compute.deterministic, compute.mixed_precision and the GPUs its rule requested
    (None: no request was passed), used by ``use_device``."""
    if mixed_precision not in MIXED_PRECISION:
        raise DeviceError(f"compute.mixed_precision {mixed_precision!r} is not allowed; allowed: "
                          f"{', '.join(MIXED_PRECISION)}")
    _check_gpus(gpus, "--gpus")
    _JOB.update(deterministic=bool(deterministic), mixed_precision=mixed_precision, gpus=gpus)


def use_device(configured: str = "auto"):
    """The torch.device a job computes on (``decide_device`` of compute.device and the job's GPUs),
    with the numerical switches applied and recorded for the job's artifacts.

    Float32 stays float32 on every device: TF32 is off for cuBLAS matmuls and cuDNN convolutions
    (torch turns it on for convolutions by default), so the HMC energy, Laplace's GGN and every
    predictive keep float32's 24-bit mantissa on Ampere and later GPUs. Speed comes from
    compute.mixed_precision: bf16 where a result allows it (training passes, HMC gradients), which
    is refused on GPUs older than Ampere, where bfloat16 is emulated and slower than float32.

    deterministic (default): deterministic algorithms only (a warning where an op has none), no
    cuDNN autotuning, and the cuBLAS workspace setting that makes CUDA matmuls reproducible. Off:
    cuDNN autotuning. Bit-identity holds only on the same machine: another CPU or GPU rounds
    differently.
    """
    name = decide_device(configured, _JOB["gpus"])
    import torch

    device = torch.device(name)
    if device.type == "cuda" and _JOB["mixed_precision"] == "bf16":
        capability = tuple(torch.cuda.get_device_capability(device))
        if capability < BF16_MIN_CAPABILITY:
            raise DeviceError(
                f"compute.mixed_precision bf16 needs a GPU of compute capability "
                f"{'.'.join(map(str, BF16_MIN_CAPABILITY))} or newer (Ampere, Hopper); {device} "
                f"({torch.cuda.get_device_name(device)}) is {'.'.join(map(str, capability))}, where bfloat16 is "
                "emulated and slower than float32; set compute.mixed_precision: off")
    # full float32: no TF32 in matmuls or convolutions (legacy flags: the one API every supported torch has)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    deterministic = _JOB["deterministic"]
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when CUDA starts
    set_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    _RECORD.clear()
    _RECORD.update(compute_record(device))
    logging.getLogger(__name__).info("computing on %s, mixed precision %s", device_label(), _JOB["mixed_precision"])
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
    """Where an artifact was computed: device ('cpu', 'cuda:0'), GPU name, torch / CUDA / cuDNN
    versions and the numerical switches, TF32 included."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else ""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"device": str(dev), "gpu_name": str(gpu), "torch": str(torch.__version__), "cuda": str(torch.version.cuda or ""),
            "cudnn": str(cudnn or ""), "deterministic": _JOB["deterministic"],
            "mixed_precision": _JOB["mixed_precision"],
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def device_identity(device) -> str:
    """What a checkpoint must have been made on to be resumed bit-identically: 'cpu', or
    'cuda (GPU model)'. Not the index: a retry on another GPU of the same model computes the same."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return dev.type


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
