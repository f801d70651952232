"""The weight-space studies (workflow.jobs.studies) on small synthetic and digits cases, without Snakemake."""

import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest

from workflow.storage.artifacts import ArtifactError, read_posterior
from workflow.config import fill_defaults
from workflow.jobs import align as align_jobs, data as data_jobs, studies, train as train_jobs
from workflow.storage.artifacts import Posterior, read_alignment, write_posterior
from workflow.alignment.permutations import apply_permutation, number_of_transpositions, random_permutations

from .conftest import make_mlp

ARCH = {"hidden": [16, 12], "activation": "relu"}


def gaussian(params, std, method="hmc", seed=0):
    return Posterior(kind="gaussian", method=method, architecture="mlp", architecture_args=ARCH, dataset="digits",
                     input_shape=(1, 4, 4), n_classes=5, seed=seed, mean=params, std=std)


@pytest.fixture
def reference_and_permuted(tmp_path, rng):
    _, spec, params = make_mlp()
    std = {k: rng.uniform(0.01, 1.0, v.shape).astype(np.float32) for k, v in params.items()}
    perms = random_permutations(spec.group_sizes(params), rng)
    ref = gaussian(params, std)
    src = gaussian(apply_permutation(params, spec, perms), apply_permutation(std, spec, perms), "vi", seed=1)
    write_posterior(tmp_path / "ref.h5", ref)
    write_posterior(tmp_path / "src.h5", src)
    return tmp_path, perms


def test_a_permuted_copy_lands_exactly_in_hmc_basin(reference_and_permuted):
    tmp, perms = reference_and_permuted
    out = {"vi-seed1": tmp / "basin" / "vi-seed1.h5"}
    studies.basin_job(tmp / "ref.h5", {"vi-seed1": tmp / "src.h5"}, out, tmp / "basin.csv")
    row = pd.read_csv(tmp / "basin.csv").iloc[0]
    assert row["w2_before"] > 1.0 and row["w2_after"] == pytest.approx(0.0, abs=1e-5)
    assert row["std_corr_after"] == pytest.approx(1.0) and row["std_corr_before"] < 0.9
    assert row["not_total"] == sum(number_of_transpositions(p) for p in perms.values())
    al = read_alignment(out["vi-seed1"])
    assert al.alignment == "w2" and al.aligned.method == "vi"


def test_sigma_histograms_count_every_weight(reference_and_permuted):
    tmp, _ = reference_and_permuted
    fits = {"hmc/weight/first/q_d": tmp / "ref.h5", "hmc/weight/first/q_r": tmp / "ref.h5",
            "hmc/activation/iterated/q_d": tmp / "ref.h5"}
    studies.sigma_histogram_job(fits, {"vi": [tmp / "src.h5"]}, tmp / "sigma.csv", bins=10)
    table = pd.read_csv(tmp / "sigma.csv")
    # q_d once, whatever the matching and the reference
    assert set(table["label"]) == {"HMC q_d", "HMC q_r (weight, first ref.)", "VI q"}
    n = sum(v.size for v in make_mlp()[2].values())
    assert (table.groupby("label")["count"].sum() == n).all()
    assert table.groupby("label")["fraction"].sum().to_numpy() == pytest.approx(1.0)
    src = read_posterior(tmp / "src.h5")
    vi = table[table["label"] == "VI q"].iloc[0]
    all_sigma = np.concatenate([v.ravel() for v in src.std.values()])
    assert vi["sigma_q10"] == pytest.approx(np.percentile(all_sigma, 10))
    assert vi["sigma_q90"] == pytest.approx(np.percentile(all_sigma, 90))
    assert np.isnan(vi["kl_share"]) and np.isnan(vi["test_error"])  # this posterior records no training
    with pytest.raises(ValueError, match="rebasin key"):
        studies.sigma_histogram_job({"hmc/q_r": tmp / "ref.h5"}, {}, tmp / "bad.csv")


@pytest.fixture(scope="module")
def digits_member(tmp_path_factory):
    """Prepared digits data and one small ensemble member (seed 0) trained on it."""
    tmp = tmp_path_factory.mktemp("member")
    cfg = fill_defaults({"name": "t", "data": {"dataset": "digits", "split_seed": 0, "test_fraction": 0.3, "n_train": 300,
                                 "n_test": 150},
           "model": {"architecture": "mlp", "hidden": [24], "activation": "relu"}, "prior": {"std": 1.0},
           "ensemble": {"epochs": 4, "batch_size": 32, "lr": 0.003}, "barrier": {"n_points": 5},
           "alignment": {"max_sweeps": 100}})
    data_jobs.prepare_data(cfg["data"], tmp / "data.npz")
    for seed in (0, 1):
        train_jobs.train_posterior("ensemble", tmp / "data.npz", seed, cfg, tmp / f"seed{seed}.h5", device="cpu")
    return tmp, cfg


def test_same_minibatch_order_recovers_the_planted_permutation(digits_member, tmp_path):
    """Training is permutation-equivariant: from a permuted init with the same minibatch order it
    ends at the permuted solution, so matching undoes exactly the planted permutation."""
    tmp, cfg = digits_member
    cfg = fill_defaults({**cfg, "not_study": {"data_order": "same", "seed": 3}})
    studies.not_k_job(8, 0, tmp / "seed0.h5", tmp / "data.npz", cfg, tmp_path / "k8.csv", device="cpu")
    row = pd.read_csv(tmp_path / "k8.csv").iloc[0]
    assert 0 < row["not_planted"] <= 8 and row["not_found"] == row["not_planted"] and row["not_residual"] == 0
    assert row["l2_aligned"] < 1e-3 * row["l2_naive"]
    assert row["loss_barrier_aligned"] == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ArtifactError, match="seed 0"):
        studies.not_k_job(8, 1, tmp / "seed0.h5", tmp / "data.npz", cfg, tmp_path / "bad.csv", device="cpu")


def test_not_along_the_path_is_zero_after_alignment(digits_member, tmp_path):
    tmp, cfg = digits_member
    align_jobs.align_pair("weight", tmp / "seed0.h5", tmp / "seed1.h5", cfg, tmp_path / "al.h5", seeds=(0, 1))
    found = sum(read_alignment(tmp_path / "al.h5").not_per_group.values())
    studies.not_path_job("ensemble", [(tmp / "seed0.h5", tmp / "seed1.h5", tmp_path / "al.h5")], tmp_path / "p.csv",
                         n_points=5)
    table = pd.read_csv(tmp_path / "p.csv")
    naive, aligned = table[table.alignment == "naive"], table[table.alignment == "weight"]
    assert len(naive) == len(aligned) == 5
    assert naive["not_to_a"].iloc[0] == 0 and naive["not_to_b"].iloc[-1] == 0
    assert naive["not_to_a"].iloc[-1] == found > 0  # the far end of the naive path is B: its NoT to A
    assert (aligned["not_to_a"] == 0).all()  # B aligned is A's basin: the path never leaves it


def test_pruning_curves_start_at_the_mean_network(digits_member, tmp_path, rng):
    tmp, _ = digits_member
    member = read_posterior(tmp / "seed0.h5")
    mean = {k: v[0, 0] for k, v in member.samples.items()}
    std = {k: rng.uniform(0.01, 1.0, v.shape).astype(np.float32) for k, v in mean.items()}
    fit = dataclasses.replace(member, kind="gaussian", samples=None, mean=mean, std=std, config={})
    write_posterior(tmp_path / "q_r.h5", fit)
    studies.pruning_job({"ensemble/weight/first/q_r": tmp_path / "q_r.h5"}, {}, [], tmp / "data.npz",
                        tmp_path / "pruning.csv", fractions=[1.0, 0.5, 0.0], device="cpu")
    table = pd.read_csv(tmp_path / "pruning.csv")
    assert list(table["fraction_retained"]) == [1.0, 0.5, 0.0]
    assert table["test_accuracy"].iloc[0] == pytest.approx(1 - member.diagnostic_attrs["test_error"], abs=1e-6)
    assert table["test_accuracy"].iloc[-1] < 0.5  # all weights zero: a constant prediction


def test_killed_not_k_run_resumes_to_the_same_row(digits_member, tmp_path, monkeypatch, caplog):
    import workflow.inference.resume as resume

    tmp, cfg = digits_member
    cfg = {**cfg, "ensemble": {**cfg["ensemble"], "checkpoint_every": 1}}
    studies.not_k_job(4, 0, tmp / "seed0.h5", tmp / "data.npz", cfg, tmp_path / "plain.csv", device="cpu")
    real_save = resume.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt  # killed right after its second checkpoint

    monkeypatch.setattr(resume, "save_checkpoint", save_then_die)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        studies.not_k_job(4, 0, tmp / "seed0.h5", tmp / "data.npz", cfg, tmp_path / "resumed.csv", device="cpu",
                          checkpoint=ckpt)
    assert ckpt.exists() and not (tmp_path / "resumed.csv").exists()
    monkeypatch.setattr(resume, "save_checkpoint", real_save)
    with caplog.at_level(logging.INFO, logger="workflow.inference.training"):
        studies.not_k_job(4, 0, tmp / "seed0.h5", tmp / "data.npz", cfg, tmp_path / "resumed.csv", device="cpu",
                          checkpoint=ckpt)
    assert "at epoch 2" in caplog.text
    assert not ckpt.exists()  # removed once the row is written
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "plain.csv"), pd.read_csv(tmp_path / "resumed.csv"))


def test_not_k_of_several_ks_in_one_job_equals_one_job_per_k(digits_member, tmp_path, monkeypatch):
    import workflow.inference.resume as resume

    tmp, cfg = digits_member
    cfg = {**cfg, "ensemble": {**cfg["ensemble"], "checkpoint_every": 1}}
    for k in (0, 4):
        studies.not_k_job(k, 0, tmp / "seed0.h5", tmp / "data.npz", cfg, tmp_path / f"alone{k}.csv", device="cpu")
    saved = []
    real_save = resume.save_checkpoint
    monkeypatch.setattr(resume, "save_checkpoint", lambda path, state: (saved.append(path), real_save(path, state)))
    studies.not_k_jobs([4, 0], 0, tmp / "seed0.h5", tmp / "data.npz", cfg,
                       [tmp_path / "group4.csv", tmp_path / "group0.csv"], device="cpu", checkpoint=tmp_path / "s0.pt")
    for k in (0, 4):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / f"alone{k}.csv"), pd.read_csv(tmp_path / f"group{k}.csv"))
    assert {p.name for p in saved} == {"s0-k4.pt", "s0-k0.pt"}  # a resume file per k, each removed at its end
    assert not list(tmp_path.glob("*.pt"))
    with pytest.raises(ValueError, match="one output per k"):
        studies.not_k_jobs([4, 0], 0, tmp / "seed0.h5", tmp / "data.npz", cfg, [tmp_path / "x.csv"], device="cpu")
    with pytest.raises(ValueError, match="must differ"):
        studies.not_k_jobs([4, 4], 0, tmp / "seed0.h5", tmp / "data.npz", cfg, [tmp_path / "x.csv"] * 2, device="cpu")
    assert not (tmp_path / "x.csv").exists()


def test_the_within_chain_control_pairs_the_two_halves_of_each_chain(digits_member, tmp_path, rng):
    """A 'chain' of a trained network's draws: when its second half repeats the first, the path between
    the halves is flat (barrier 0); when the second half sits in a permuted copy of the mode, the
    path crosses a barrier. An odd last draw is left out; a chain of one draw is refused."""
    from workflow.jobs.metrics import within_chain_curves

    tmp, cfg = digits_member
    member = read_posterior(tmp / "seed0.h5")
    model, spec = member.build_model()
    w = {k: v[0, 0] for k, v in member.samples.items()}
    far = apply_permutation(w, spec, random_permutations(spec.group_sizes(w), rng))
    near = [{k: v + 0.01 * rng.standard_normal(v.shape).astype(v.dtype) for k, v in w.items()} for _ in range(2)]

    def chain(draws, seed):
        post = dataclasses.replace(member, method="hmc", seed=seed,
                                   samples={k: np.stack([d[k] for d in draws])[None] for k in w})
        write_posterior(tmp_path / f"hmc{seed}.h5", post)
        return tmp_path / f"hmc{seed}.h5"

    paths = [chain([*near, *near, w], 0), chain([*near, far, far], 1)]
    within_chain_curves(paths, [0, 1], tmp / "data.npz", cfg, tmp_path / "within.csv", device="cpu")
    curves = pd.read_csv(tmp_path / "within.csv", dtype={"pair": str})
    assert set(curves["alignment"]) == {"within-chain", "within-chain weight"}
    plain, matched = (curves[curves["alignment"] == a] for a in ("within-chain", "within-chain weight"))
    assert not plain["aligned"].any() and plain["not_total"].isna().all()
    # every chain's halves also weight-matched, as pairs of chains are: aligned, with the matching's NoT
    assert matched["aligned"].all() and matched["not_total"].notna().all()
    assert (matched["units_total"] == 24).all()
    for frame in (plain, matched):
        assert list(frame.groupby("pair")["draws"].first()) == [2, 2]
    from workflow.evaluation.barriers import summarize

    summary = summarize(curves)
    barrier = summary[summary["alignment"] == "within-chain"].set_index("pair")["loss_barrier"]
    assert barrier["0-0"] == pytest.approx(0.0, abs=1e-6)
    assert barrier["1-1"] > 0.1
    # matching never moves the halves apart: the objective starts at the identity and only improves
    dist = curves.groupby(["alignment", "pair"])["distance"].first()
    assert (dist["within-chain weight"] <= dist["within-chain"] + 1e-6).all()
    assert dist["within-chain weight"]["1-1"] < 0.1 * dist["within-chain"]["1-1"]
    with pytest.raises(ArtifactError, match="1 draw"):
        within_chain_curves([chain([w], 2)], [2], tmp / "data.npz", cfg, tmp_path / "bad.csv", device="cpu")


def test_the_weight_matched_within_chain_control_undoes_a_chain_that_changed_modes(digits_member, tmp_path, rng):
    """A planted mode switch: one chain whose second half is its first half with the hidden units
    permuted (Posterior.permuted). Unaligned the halves lie far apart and a barrier divides them;
    matched as chains are, the second half is the first again: distance and barrier ~0, and the NoT
    is the planted permutation's."""
    from workflow.evaluation.barriers import summarize
    from workflow.jobs.metrics import WITHIN_CHAIN, WITHIN_CHAIN_ALIGNED, within_chain_curves

    tmp, cfg = digits_member
    member = read_posterior(tmp / "seed0.h5")
    spec = member.permutation_spec()
    w = {k: v[0, 0] for k, v in member.samples.items()}
    draws = [{k: v + 0.01 * rng.standard_normal(v.shape).astype(v.dtype) for k, v in w.items()} for _ in range(3)]
    first = dataclasses.replace(member, method="hmc", seed=3,
                                samples={k: np.stack([d[k] for d in draws])[None] for k in w})
    perms = random_permutations(spec.group_sizes(w), rng)
    second = first.permuted(spec, perms)
    chain = dataclasses.replace(first, samples={k: np.concatenate([first.samples[k], second.samples[k]], axis=1)
                                                for k in w})
    write_posterior(tmp_path / "hmc3.h5", chain)
    within_chain_curves([tmp_path / "hmc3.h5"], [3], tmp / "data.npz", cfg, tmp_path / "within.csv", device="cpu")
    curves = pd.read_csv(tmp_path / "within.csv", dtype={"pair": str})
    rows = summarize(curves).merge(curves.groupby("alignment")[["distance", "not_total"]].first().reset_index(),
                                   on="alignment").set_index("alignment")
    plain, matched = rows.loc[WITHIN_CHAIN], rows.loc[WITHIN_CHAIN_ALIGNED]
    assert plain["pair"] == matched["pair"] == "3-3"
    assert plain["distance"] > 1.0 and plain["loss_barrier"] > 0.1
    assert matched["distance"] == pytest.approx(0.0, abs=1e-4)
    assert matched["loss_barrier"] == pytest.approx(0.0, abs=1e-5)
    assert matched["not_total"] == sum(number_of_transpositions(p) for p in perms.values()) > 0


def test_the_not_study_in_xiaos_setting_recovers_the_planted_units_that_matter(digits_member, tmp_path):
    """Plain SGD without a prior, matched by activations: with the same minibatch order the permuted run
    is the baseline permuted, so matching undoes the planted permutation on every unit that the data
    reach (units never active are interchangeable: activation matching may swap them freely)."""
    tmp, cfg = digits_member
    cfg = fill_defaults({**cfg, "not_study": {"data_order": "same", "seed": 3, "setting": "xiao", "sgd_lr": 0.05}})
    baseline = studies.xiao_baseline(0, tmp / "seed0.h5", tmp / "data.npz", cfg, device="cpu")
    member = read_posterior(tmp / "seed0.h5").representative()
    assert not np.allclose(baseline["hidden.0.weight"], member["hidden.0.weight"], atol=1e-3)  # SGD, no prior
    studies.not_k_job(8, 0, tmp / "seed0.h5", tmp / "data.npz", cfg, tmp_path / "k8.csv", device="cpu",
                      baseline=baseline)
    row = pd.read_csv(tmp_path / "k8.csv").iloc[0]
    assert row["setting"] == "xiao" and row["matching"] == "activation"
    assert 0 < row["not_planted"] <= 8 and row["not_residual_live"] == 0
    assert row["not_planted_live"] <= row["not_planted"] and row["units_live"] <= row["units_total"]
    assert row["loss_barrier_aligned"] == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="baseline"):
        studies.not_k_job(8, 0, tmp / "seed0.h5", tmp / "data.npz", cfg, tmp_path / "bad.csv", device="cpu")


def test_units_the_data_never_reach_are_not_units_that_matter():
    acts = {"P0": np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 3.0, 0.0, 2.0], [0.0, 0.5, 1e-3, 2.0]])}
    assert studies.live_units(acts)["P0"].tolist() == [False, True, True, False]  # dead, live, live, constant
