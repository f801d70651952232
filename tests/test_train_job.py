"""The train job: several seeds in one job for methods that fit them together (HMC's chains), the
same posteriors as one job per seed, and bad requests refused before anything is written."""

import numpy as np
import pytest

from workflow.storage.artifacts import read_posterior
from workflow.config import fill_defaults
from workflow.jobs import data as data_jobs
from workflow.jobs import train as train_jobs


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    cfg = fill_defaults({"name": "t", "data": {"dataset": "digits", "split_seed": 0, "test_fraction": 0.3,
                                               "n_train": 200, "n_test": 100},
                         "model": {"architecture": "mlp", "hidden": [16], "activation": "relu"}, "prior": {"std": 1.0},
                         "hmc": {"step_size": 0.001, "n_leapfrog": 5, "n_warmup": 25, "n_samples": 6,
                                 "mass_matrix": "diagonal", "checkpoint_every": 10}})
    data_jobs.prepare_data(cfg["data"], tmp / "data.npz")
    return tmp / "data.npz", cfg


def test_hmc_seeds_fitted_in_one_job_equal_one_job_per_seed(digits, tmp_path):
    data, cfg = digits
    train_jobs.train_posteriors("hmc", data, [3, 0], cfg, [tmp_path / "g3.h5", tmp_path / "g0.h5"], device="cpu",
                                checkpoint=tmp_path / "group.pt")
    assert not (tmp_path / "group.pt").exists()
    for seed in (3, 0):
        train_jobs.train_posterior("hmc", data, seed, cfg, tmp_path / f"s{seed}.h5", device="cpu")
        together, alone = read_posterior(tmp_path / f"g{seed}.h5"), read_posterior(tmp_path / f"s{seed}.h5")
        assert together.seed == alone.seed == seed
        for k in alone.samples:
            np.testing.assert_array_equal(together.samples[k], alone.samples[k])
        for k in alone.diagnostics:
            np.testing.assert_array_equal(together.diagnostics[k], alone.diagnostics[k])
        assert together.diagnostic_attrs == alone.diagnostic_attrs


def test_hmc_with_the_ggn_metric_keeps_the_laplace_variance_it_sampled_with(digits, tmp_path):
    """hmc.mass_matrix: ggn, from the config to the artifact: the metric is the diagonal Laplace
    variance at the chain's position, between 0 and the prior's variance (1 here)."""
    data, cfg = digits
    cfg = {**cfg, "hmc": {**cfg["hmc"], "mass_matrix": "ggn"}}
    train_jobs.train_posterior("hmc", data, 2, cfg, tmp_path / "ggn.h5", device="cpu")
    inv_mass = read_posterior(tmp_path / "ggn.h5").diagnostics["inv_mass"]
    assert inv_mass.shape == (16 * 64 + 16 + 16 * 10 + 10,)
    assert np.all((inv_mass > 0) & (inv_mass <= 1.0)) and inv_mass.min() < 0.1  # the data sharpen some weights


@pytest.mark.parametrize("method, seeds, n_outs, message", [
    ("ensemble", [0, 1], 2, "fits one seed per job.*hmc"),
    ("hmc", [0, 1], 1, "one output per seed"),
    ("hmc", [1, 1], 2, "must differ"),
])
def test_bad_train_requests_are_refused_and_write_nothing(digits, tmp_path, method, seeds, n_outs, message):
    _, cfg = digits
    outs = [tmp_path / f"out{i}.h5" for i in range(n_outs)]
    with pytest.raises(ValueError, match=message):  # refused before the data (absent here) is read
        train_jobs.train_posteriors(method, tmp_path / "absent.npz", seeds, cfg, outs, device="cpu")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("predictive", ["glm", "sample"])
def test_laplace_writes_the_predictive_it_was_configured_with(digits, tmp_path, predictive):
    """laplace.predictive, from the config to the artifact (glm by default): its sample source is the
    linearised network's, and the job's recorded test NLL is that predictive's."""
    from workflow.evaluation.predict import marginal_loss_error
    from workflow.storage.prepared import load_prepared

    data, cfg = digits
    cfg = {**cfg, "ensemble": {**cfg["ensemble"], "epochs": 3}, "laplace": {**cfg["laplace"], "predictive": predictive}}
    train_jobs.train_posterior("ensemble", data, 0, cfg, tmp_path / "e.h5", device="cpu")
    train_jobs.train_posterior("laplace", data, 0, cfg, tmp_path / "l.h5", device="cpu", base_path=tmp_path / "e.h5")
    post = read_posterior(tmp_path / "l.h5")
    assert post.predictive == predictive
    assert post.sample_source(3, 0).linearized is (predictive == "glm")
    prepared = load_prepared(data)
    model, _ = post.build_model()
    nll, _ = marginal_loss_error(model, post.sample_source(cfg["laplace"]["eval_samples"], 0), prepared["x_test"],
                                 prepared["y_test"])
    assert post.diagnostic_attrs["test_nll"] == pytest.approx(nll, rel=1e-5)
