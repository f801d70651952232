"""The device policy: each combination of compute.device, the rule's GPUs and the scheduler's
CUDA_VISIBLE_DEVICES decides the device as workflow/device.py documents; artifacts record it."""

import h5py
import pytest

from workflow import device as dev
from workflow.device import DeviceError, decide_device

NO_GPU = {}
EXPORTED = {"CUDA_VISIBLE_DEVICES": "0"}  # exported by hand (a login shell, a notebook): no allocation
SLURM_GPU = {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "3"}  # SLURM allocated this job a GPU
NOT_GIVEN = None  # the job was started without --gpus (by hand); the workflow's rules always pass it

# (compute.device, rule's gpus, environment, CUDA usable) -> device, or the error's words
POLICY = [
    # auto: CUDA exactly when the job was given a GPU
    ("auto", 0, NO_GPU, True, "cpu"),  # a GPU on the machine is not taken unasked
    ("auto", 0, NO_GPU, False, "cpu"),
    ("auto", 1, NO_GPU, True, "cuda:0"),  # the rule's GPU resource
    ("auto", 2, {"CUDA_VISIBLE_DEVICES": "2,3"}, True, "cuda:0"),
    # an exported CUDA_VISIBLE_DEVICES is no allocation: a rule that asked for no GPU gets none,
    # so the local profile's cap of one GPU job at a time holds
    ("auto", 0, EXPORTED, True, "cpu"),
    ("auto", NOT_GIVEN, EXPORTED, True, "cpu"),
    # inside the workflow the rule's request decides, even within a scheduler's GPU allocation
    ("auto", 0, SLURM_GPU, True, "cpu"),
    # a job started by hand under a scheduler that allocated it a GPU
    ("auto", NOT_GIVEN, SLURM_GPU, True, "cuda:0"),
    ("auto", NOT_GIVEN, {"CUDA_VISIBLE_DEVICES": "1", "SLURM_STEP_GPUS": "1"}, True, "cuda:0"),
    ("auto", NOT_GIVEN, {"CUDA_VISIBLE_DEVICES": "0", "SLURM_GPUS_ON_NODE": "1"}, True, "cuda:0"),
    ("auto", NOT_GIVEN, {"CUDA_VISIBLE_DEVICES": "0", "SLURM_GPUS_ON_NODE": "0"}, True, "cpu"),
    ("auto", NOT_GIVEN, {"CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_GPUS": "3"}, True, "cpu"),  # all hidden
    ("auto", NOT_GIVEN, {"CUDA_VISIBLE_DEVICES": "-1", "SLURM_JOB_GPUS": "3"}, True, "cpu"),
    ("auto", NOT_GIVEN, {"CUDA_VISIBLE_DEVICES": "NoDevFiles", "SLURM_JOB_GPUS": "3"}, True, "cpu"),
    ("auto", NOT_GIVEN, NO_GPU, True, "cpu"),
    ("auto", 1, NO_GPU, False, "given a GPU (its rule requested 1 GPU(s))"),
    ("auto", NOT_GIVEN, SLURM_GPU, False, "given a GPU (the scheduler allocated it GPUs (SLURM_JOB_GPUS=3"),
    # cpu: forced, whatever was given
    ("cpu", 0, NO_GPU, True, "cpu"),
    ("cpu", 1, SLURM_GPU, True, "cpu"),
    ("cpu", 1, SLURM_GPU, False, "cpu"),
    # cuda / cuda:N: forced; an error where CUDA is unusable
    ("cuda", 0, NO_GPU, True, "cuda:0"),
    ("cuda", 1, SLURM_GPU, True, "cuda:0"),
    ("cuda:1", 0, NO_GPU, True, "cuda:1"),
    ("cuda", 0, NO_GPU, False, "compute.device is 'cuda'"),
    ("cuda:0", 1, SLURM_GPU, False, "compute.device is 'cuda:0'"),
]


@pytest.mark.parametrize("configured, gpus, environ, cuda, expected", POLICY)
def test_device_policy(configured, gpus, environ, cuda, expected):
    if expected.startswith(("cpu", "cuda")) and " " not in expected:
        assert decide_device(configured, gpus, environ, cuda_available=cuda, torch_version="2.x",
                             device_count=2) == expected
    else:
        with pytest.raises(DeviceError) as err:
            decide_device(configured, gpus, environ, cuda_available=cuda, torch_version="2.x+cpu", device_count=2)
        assert expected in str(err.value)
        assert "torch 2.x+cpu has no usable CUDA" in str(err.value)
        assert "compute.device: cpu" in str(err.value)  # what to do instead


@pytest.mark.parametrize("configured, count, environ, words", [
    ("cuda:3", 1, {"CUDA_VISIBLE_DEVICES": "3", "SLURM_JOB_GPUS": "3"},
     ["'cuda:3'", "sees 1 GPU(s), cuda:0..cuda:0", "CUDA_VISIBLE_DEVICES=3 makes those GPUs the job's cuda:0..cuda:0",
      "renumbers"]),
    ("cuda:2", 2, NO_GPU, ["sees 2 GPU(s), cuda:0..cuda:1", "an index below the count"]),
    ("cuda", 0, NO_GPU, ["sees no GPU"]),
])
def test_cuda_index_is_checked_against_the_visible_gpus(configured, count, environ, words):
    """A scheduler renumbers the GPUs it gives a job from 0: cuda:3 of the node is the job's cuda:0.
    An index the job cannot see is refused up front, saying so, not later by CUDA's 'invalid device'."""
    with pytest.raises(DeviceError) as err:
        decide_device(configured, 1, environ, cuda_available=True, torch_version="2.x", device_count=count)
    for word in words:
        assert word in str(err.value)
    assert decide_device("cuda:0", 1, environ, cuda_available=True, device_count=1, torch_version="2.x") == "cuda:0"


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "CPU", "cuda:x", "", None])
def test_unknown_device_names_are_refused_with_the_allowed_ones(bad):
    with pytest.raises(DeviceError, match="allowed: 'auto', 'cpu', 'cuda', 'cuda:N'"):
        decide_device(bad, 0, NO_GPU, cuda_available=True, torch_version="2.x")


@pytest.mark.parametrize("gpus", [-1, 1.5, True, "1"])
def test_gpu_counts_must_be_whole_and_non_negative(gpus):
    with pytest.raises(DeviceError, match=">= 0"):
        decide_device("auto", gpus, NO_GPU, cuda_available=True, torch_version="2.x")


def test_cuda_is_not_probed_when_no_gpu_was_given(monkeypatch):
    # light jobs and CPU jobs decide without asking torch (no CUDA initialisation, no import cost)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: pytest.fail("probed CUDA"))
    assert decide_device("auto", 0, NO_GPU) == "cpu"
    assert decide_device("auto", NOT_GIVEN, EXPORTED) == "cpu"
    assert decide_device("cpu", 1, SLURM_GPU) == "cpu"


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

    from workflow.storage import artifacts

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


def fake_cuda(monkeypatch, name="NVIDIA H200", capability=(9, 0), count=1):
    """torch.cuda as a machine with ``count`` GPUs of one model would answer (this machine has none)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


def test_a_gpu_job_records_its_device_index_and_name(monkeypatch):
    """Artifacts and the tables' device column say 'cuda:0 (name)', as documented, not 'cuda (name)'."""
    fake_cuda(monkeypatch)
    try:
        dev.set_job(gpus=1)
        assert str(dev.use_device("auto")) == "cuda:0"
        assert dev.job_record()["device"] == "cuda:0"
        assert dev.device_label() == "cuda:0 (NVIDIA H200)"
        assert dev.device_identity("cuda:0") == "cuda (NVIDIA H200)"  # what a checkpoint must match
        assert dev.compute_record("cuda")["device"] == "cuda:0"
    finally:
        dev.set_job()
        dev.use_device("cpu")


def test_float32_stays_float32_no_tf32():
    """TF32 (10-bit mantissas) is off for cuBLAS matmuls and cuDNN convolutions, whose torch default
    is on, and the record says so: the HMC energy, the GGN and the predictives are full float32."""
    import torch

    torch.backends.cudnn.allow_tf32 = True  # torch's default for convolutions
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    try:
        dev.set_job()
        dev.use_device("cpu")
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == "highest"
        record = dev.job_record()
        assert (record["tf32_matmul"], record["tf32_cudnn"], record["float32_matmul_precision"]) == (
            False, False, "highest")
    finally:
        torch.set_float32_matmul_precision("highest")


@pytest.mark.parametrize("capability, refused", [((7, 0), True), ((7, 5), True), ((8, 0), False), ((9, 0), False)])
def test_bf16_is_refused_on_gpus_that_emulate_it(monkeypatch, capability, refused):
    """V100 (7.0) and T4 (7.5) emulate bfloat16, slower than float32: refused, naming the GPU and
    what to set; Ampere (8.0) and Hopper (9.0) run it."""
    fake_cuda(monkeypatch, name="Tesla V100" if refused else "NVIDIA A100", capability=capability)
    try:
        dev.set_job(gpus=1, mixed_precision="bf16")
        if refused:
            with pytest.raises(DeviceError) as err:
                dev.use_device("auto")
            for words in ("bf16 needs a GPU of compute capability 8.0", "Tesla V100", f"{capability[0]}.{capability[1]}",
                          "compute.mixed_precision: off"):
                assert words in str(err.value)
        else:
            assert dev.use_device("auto").type == "cuda"
        dev.set_job(gpus=1)  # float32 runs on any GPU
        assert dev.use_device("auto").type == "cuda"
    finally:
        dev.set_job()
        dev.use_device("cpu")
