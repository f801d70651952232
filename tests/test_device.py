"""The device policy: each combination of compute.device, the rule's GPUs and the scheduler's
CUDA_VISIBLE_DEVICES decides the device as workflow/device.py documents; artifacts record it."""

import h5py
import pytest

from workflow import device as dev
from workflow.device import DeviceError, decide_device

NO_GPU = {}
SCHEDULER_GPU = {"CUDA_VISIBLE_DEVICES": "0"}

# (compute.device, rule's gpus, environment, CUDA usable) -> device, or the error's words
POLICY = [
    # auto: CUDA exactly when the job was given a GPU
    ("auto", 0, NO_GPU, True, "cpu"),  # a GPU on the machine is not taken unasked
    ("auto", 0, NO_GPU, False, "cpu"),
    ("auto", 1, NO_GPU, True, "cuda"),  # the rule's GPU resource
    ("auto", 0, SCHEDULER_GPU, True, "cuda"),  # the scheduler's CUDA_VISIBLE_DEVICES
    ("auto", 2, {"CUDA_VISIBLE_DEVICES": "2,3"}, True, "cuda"),
    ("auto", 0, {"CUDA_VISIBLE_DEVICES": ""}, True, "cpu"),  # visible devices hidden
    ("auto", 0, {"CUDA_VISIBLE_DEVICES": "-1"}, True, "cpu"),
    ("auto", 0, {"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, True, "cpu"),
    ("auto", 1, NO_GPU, False, "given a GPU (its rule requested 1 GPU(s))"),
    ("auto", 0, SCHEDULER_GPU, False, "given a GPU (CUDA_VISIBLE_DEVICES=0)"),
    # cpu: forced, whatever was given
    ("cpu", 0, NO_GPU, True, "cpu"),
    ("cpu", 1, SCHEDULER_GPU, True, "cpu"),
    ("cpu", 1, SCHEDULER_GPU, False, "cpu"),
    # cuda / cuda:N: forced; an error where CUDA is unusable
    ("cuda", 0, NO_GPU, True, "cuda"),
    ("cuda", 1, SCHEDULER_GPU, True, "cuda"),
    ("cuda:1", 0, NO_GPU, True, "cuda:1"),
    ("cuda", 0, NO_GPU, False, "compute.device is 'cuda'"),
    ("cuda:0", 1, SCHEDULER_GPU, False, "compute.device is 'cuda:0'"),
]


@pytest.mark.parametrize("configured, gpus, environ, cuda, expected", POLICY)
def test_device_policy(configured, gpus, environ, cuda, expected):
    if expected.startswith(("cpu", "cuda")) and " " not in expected:
        assert decide_device(configured, gpus, environ, cuda_available=cuda, torch_version="2.x") == expected
    else:
        with pytest.raises(DeviceError) as err:
            decide_device(configured, gpus, environ, cuda_available=cuda, torch_version="2.x+cpu")
        assert expected in str(err.value)
        assert "torch 2.x+cpu has no usable CUDA" in str(err.value)
        assert "compute.device: cpu" in str(err.value)  # what to do instead


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "CPU", "cuda:x", "", None])
def test_unknown_device_names_are_refused_with_the_allowed_ones(bad):
    with pytest.raises(DeviceError, match="allowed: 'auto', 'cpu', 'cuda', 'cuda:N'"):
        decide_device(bad, 0, NO_GPU, cuda_available=True, torch_version="2.x")


@pytest.mark.parametrize("gpus", [-1, 1.5, True])
def test_gpu_counts_must_be_whole_and_non_negative(gpus):
    with pytest.raises(DeviceError, match=">= 0"):
        decide_device("auto", gpus, NO_GPU, cuda_available=True, torch_version="2.x")


def test_cuda_is_not_probed_when_no_gpu_was_given(monkeypatch):
    # light jobs and CPU jobs decide without asking torch (no CUDA initialisation, no import cost)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("probed CUDA"))
    assert decide_device("auto", 0, NO_GPU) == "cpu"
    assert decide_device("cpu", 1, SCHEDULER_GPU) == "cpu"


def test_use_device_follows_the_jobs_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    try:
        dev.set_job(gpus=0)
        assert dev.use_device("auto").type == "cpu"
        if not __import__("torch").cuda.is_available():
            dev.set_job(gpus=1)
            with pytest.raises(DeviceError, match="given a GPU"):
                dev.use_device("auto")
    finally:
        dev.set_job()


def test_numerical_switches_are_validated_and_applied():
    import torch

    with pytest.raises(DeviceError, match="allowed: off, bf16"):
        dev.set_job(mixed_precision="fp8")
    try:
        dev.set_job(deterministic=False)
        dev.use_device("cpu")
        assert not torch.are_deterministic_algorithms_enabled()
        assert dev.job_record()["deterministic"] is False
        dev.set_job(deterministic=True, mixed_precision="bf16")
        dev.use_device("cpu")
        assert torch.are_deterministic_algorithms_enabled()
        assert dev.job_record()["mixed_precision"] == "bf16"
        with dev.autocast("cpu"):
            assert torch.is_autocast_enabled("cpu")
    finally:
        dev.set_job()
        dev.use_device("cpu")
    with dev.autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")


def test_artifacts_record_where_they_were_computed(tmp_path):
    import torch

    from workflow import artifacts

    from .conftest import make_mlp
    from .test_artifacts import gaussian_posterior

    dev.set_job()
    dev.use_device("cpu")
    path = tmp_path / "p.h5"
    artifacts.write_posterior(path, gaussian_posterior(make_mlp()[2]))
    with h5py.File(path) as f:
        assert f.attrs["device"] == "cpu"
        assert f.attrs["gpu_name"] == ""
        assert f.attrs["torch_version"] == torch.__version__
        assert f.attrs["cuda_version"] == (torch.version.cuda or "")
    record = artifacts.read_posterior(path).provenance["compute"]
    assert record["device"] == "cpu" and record["deterministic"] is True and record["mixed_precision"] == "off"


@pytest.mark.parametrize("inductor_loaded", [False, True])
def test_deterministic_switch_is_set_without_importing_inductor(inductor_loaded):
    """use_device sets deterministic algorithms (warn only) as torch.use_deterministic_algorithms
    does, without the 1.7 s import of torch._inductor that call makes; where inductor is loaded
    already, its flag is set too."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        + ("import torch._inductor.config as ic\n" if inductor_loaded else "")
        + "from workflow import device as dev\n"
        "for mode in (True, False, True):\n"
        "    dev.set_job(deterministic=mode); dev.use_device('cpu')\n"
        "    assert torch.are_deterministic_algorithms_enabled() is mode\n"
        "    assert torch.is_deterministic_algorithms_warn_only_enabled()\n"
        + ("    assert ic.deterministic is mode\n" if inductor_loaded else
           "assert 'torch._inductor' not in sys.modules, 'inductor was imported'\n")
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
