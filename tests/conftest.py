import os

import numpy as np
import pytest
import torch
from hypothesis import settings

# CI draws the same Hypothesis examples every run (reproducible); elsewhere they vary, to find more
settings.register_profile("ci", derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

from workflow.architectures import build_model, get_params


@pytest.fixture(autouse=True)
def torch_threads():
    """Each test starts with the process's thread count: jobs run in-process (cli.main) set it to
    their --threads, and a test after them would otherwise compute with another summation order."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def make_mlp(hidden=(16, 12), activation="relu", input_shape=(1, 4, 4), n_classes=5, seed=0):
    torch.manual_seed(seed)
    model, spec = build_model("mlp", input_shape, n_classes, hidden=list(hidden), activation=activation)
    return model, spec, {k: v.numpy() for k, v in get_params(model).items()}
