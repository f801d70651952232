"""Table 1 (jobs.rebasin.table1_job) on a small synthetic case: columns come from the method registry,
and the NLL comes from log-probabilities, exact even where a float32 probability underflows."""

import numpy as np
import pandas as pd
import pytest
import torch

from workflow.storage.artifacts import Posterior, write_posterior
from workflow.config import fill_defaults
from workflow.storage.datasets import Dataset
from workflow.jobs.rebasin import table1_columns, table1_job
from workflow.storage.prepared import write_prepared

from .conftest import make_mlp

ARCH = {"hidden": [16, 12], "activation": "relu"}
DATA_CFG = {"dataset": "digits", "split_seed": 0, "test_fraction": 0.25, "n_train": None, "n_test": None}


def posterior(method, kind, seed, arrays):
    fields = {"samples": arrays} if kind == "samples" else {"mean": arrays[0], "std": arrays[1]}
    return Posterior(kind=kind, method=method, architecture="mlp", architecture_args=ARCH, dataset="digits",
                     input_shape=(1, 4, 4), n_classes=5, seed=seed, config={"data": DATA_CFG}, **fields)


@pytest.fixture
def case(tmp_path):
    model, _, params = make_mlp(ARCH["hidden"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 4, 4)).astype(np.float32)
    # weights scaled up: confident predictions whose wrong-class probabilities underflow float32
    big = {k: 40.0 * v for k, v in params.items()}
    with torch.no_grad():
        logits = torch.func.functional_call(model, {k: torch.as_tensor(v) for k, v in big.items()},
                                            (torch.as_tensor(x),))
    y = ((logits.argmax(1) + torch.arange(40) % 2) % 5).numpy().astype(np.int64)  # half of them wrong
    ds = Dataset("digits", x, y, x, y, 5)
    write_prepared(tmp_path / "data.npz", ds, DATA_CFG)
    draws = {k: np.stack([v, v])[None] for k, v in big.items()}  # one chain of two equal draws
    write_posterior(tmp_path / "hmc0.h5", posterior("hmc", "samples", 0, draws))
    std = {k: np.full_like(v, 1e-6) for k, v in big.items()}
    write_posterior(tmp_path / "vi0.h5", posterior("vi", "gaussian", 0, (big, std)))
    nll = -torch.log_softmax(logits.double(), 1)[torch.arange(40), torch.as_tensor(y)].mean().item()
    return tmp_path, nll


def test_table1_nll_comes_from_log_probabilities(case):
    tmp, nll = case
    assert nll > 50  # the wrong half sits far below float32's smallest probability
    paths = {"hmc": [tmp / "hmc0.h5"], "vi": [tmp / "vi0.h5"]}
    cfg = fill_defaults({"table": {"mc_samples": 4}})
    table1_job(paths, {}, tmp / "data.npz", cfg, tmp / "t.csv", tmp / "t.md", tmp / "t.tex", tmp / "d.csv",
               device="cpu")
    t = pd.read_csv(tmp / "t.csv").pivot(index="metric", columns="column", values="value")
    assert list(t.columns) == ["HMC samples", "VI q"]
    assert t.loc["test NLL", "HMC samples"] == pytest.approx(nll, rel=1e-5)
    assert t.loc["test NLL", "VI q"] == pytest.approx(nll, rel=1e-3)  # std 1e-6: the same network
    # confident everywhere, right on half the points: the calibration error is about 1/2
    assert t.loc["test ECE", "HMC samples"] == pytest.approx(0.5, abs=0.01)
    assert t.loc["agreement with HMC", "VI q"] == 1.0
    assert (tmp / "t.md").read_text().startswith("| metric | HMC samples | VI q |")


def test_table1_columns_follow_the_registry():
    paths = {"vi": ["v0"], "ensemble": ["e0", "e1"], "hmc": ["h0"], "laplace": ["l0"]}
    fits = {f"{m}/{mt}/{r}/{f}": f"{m}{mt}{r}{f}" for m in ("hmc", "ensemble") for mt in ("activation", "weight")
            for r in ("iterated", "first") for f in ("q_r", "q_d")}
    labels = [c[0] for c in table1_columns(paths, fits)]
    q_r = lambda m: [f"{m} q_r ({mt}, {r} ref.)" for mt in ("weight", "activation")  # noqa: E731
                     for r in ("first", "iterated")]
    assert labels == ["HMC samples", "HMC q_d", *q_r("HMC"), "Ens. samples", "Ens. q_d", *q_r("Ens."), "VI q",
                      "Laplace q"]


def test_a_glm_gaussian_gets_its_sampled_predictive_beside_it(case):
    """Laplace's q predicts through the linearised network; Table 1 shows the sampled predictive next
    to it. With a tiny sigma both are the mean network."""
    tmp, nll = case
    from workflow.storage.artifacts import read_posterior

    vi = read_posterior(tmp / "vi0.h5")
    vi.method, vi.predictive = "laplace", "glm"
    write_posterior(tmp / "laplace0.h5", vi)
    paths = {"hmc": [tmp / "hmc0.h5"], "laplace": [tmp / "laplace0.h5"]}
    cfg = fill_defaults({"table": {"mc_samples": 4}})
    table1_job(paths, {}, tmp / "data.npz", cfg, tmp / "t.csv", tmp / "t.md", tmp / "t.tex", tmp / "d.csv",
               device="cpu")
    t = pd.read_csv(tmp / "t.csv").pivot(index="metric", columns="column", values="value")
    assert list(pd.unique(pd.read_csv(tmp / "t.csv")["column"])) == ["HMC samples", "Laplace q", "Laplace q (sampled)"]
    for column in ("Laplace q", "Laplace q (sampled)"):
        assert t.loc["test NLL", column] == pytest.approx(nll, rel=1e-3)


def test_each_columns_calibration_error_is_its_own_predictives(case):
    """A wide VI posterior predicts differently from HMC: its ECE row is that of its own predictive."""
    tmp, _ = case
    from workflow.storage.artifacts import read_posterior
    from workflow.evaluation.compare import expected_calibration_error
    from workflow.evaluation.predict import log_predictive
    from workflow.storage.prepared import load_prepared

    vi = read_posterior(tmp / "vi0.h5")
    vi.std = {k: np.full_like(v, 3.0) for k, v in vi.std.items()}
    write_posterior(tmp / "wide.h5", vi)
    cfg = fill_defaults({"table": {"mc_samples": 4}})
    table1_job({"hmc": [tmp / "hmc0.h5"], "vi": [tmp / "wide.h5"]}, {}, tmp / "data.npz", cfg, tmp / "t.csv",
               tmp / "t.md", tmp / "t.tex", tmp / "d.csv", device="cpu")
    t = pd.read_csv(tmp / "t.csv").pivot(index="metric", columns="column", values="value")
    data = load_prepared(tmp / "data.npz")
    model, _ = vi.build_model()
    p = log_predictive(model, vi.sample_source(4, cfg["table"]["seed"]), data["x_test"]).exp().numpy()
    ece = expected_calibration_error(p, data["y_test"].numpy())
    assert t.loc["test ECE", "VI q"] == pytest.approx(ece, rel=1e-6)
    assert abs(ece - t.loc["test ECE", "HMC samples"]) > 0.05


def test_rebasin_draw_summary_splits_the_reference_chain_from_the_others(tmp_path):
    from workflow.jobs.rebasin import summarize_draws

    rows = [("0", 0, 0, 0, True), ("0", 1, 0, 2, True), ("1", 0, 4, 0, False), ("1", 1, 4, 0, False),
            ("1", 2, 6, 2, False), ("2", 0, 0, 0, False)]
    pd.DataFrame([{"method": "hmc", "matching": "weight", "reference": "first", "draw": i, "chain": c,
                   "draw_in_chain": d, "not_to_reference": r, "not_to_chain_start": w, "units": 8,
                   "reference_chain": ref, "unit_corr_to_chain_start": 1 - 0.1 * d, "reference_updates": 1,
                   "reference_settled": True}
                  for i, (c, d, r, w, ref) in enumerate(rows)]).to_csv(
        tmp_path / "d.csv", index=False)
    summarize_draws([tmp_path / "d.csv"], tmp_path / "s.csv", tmp_path / "s.md")
    s = pd.read_csv(tmp_path / "s.csv").set_index("draws_of")
    assert s.loc["reference chain", ["chains", "draws"]].tolist() == [1, 2]
    assert s.loc["reference chain", "unpermuted_share"] == 1.0
    assert s.loc["reference chain", "permuted_unlike_chain_share"] == 0.5
    assert s.loc["reference chain", "first_permuted_lag"] == 1
    assert s.loc["reference chain", "unit_corr_at_first_permuted"] == pytest.approx(0.9)
    assert s.loc["other chains", "unit_corr_at_first_permuted"] == pytest.approx(0.8)
    assert s.loc["other chains", ["chains", "draws"]].tolist() == [2, 4]
    assert s.loc["other chains", "unpermuted_share"] == pytest.approx(1 / 4)
    assert s.loc["other chains", "not_to_reference_mean"] == pytest.approx(14 / 4)
    assert s.loc["other chains", "first_permuted_lag"] == 2  # chain 1 at its third draw; chain 2 never
    assert s["reference_updates"].tolist() == [1, 1] and s["reference_settled"].all()
