"""Joint alignment of all seeds (alignment.joint): MergeMany over the seeds' posteriors, the pair
files it implies, and the cycle consistency of pairwise permutations."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from workflow.alignment.permutations import compose, invert, random_permutations
from workflow.jobs.align import align_joint, align_pair, cycle_inconsistency, joint_pair, summarize_joint
from workflow.storage.artifacts import read_alignment, read_joint_alignment, write_posterior

from .conftest import make_mlp
from .test_artifacts import gaussian_posterior

CFG = {"alignment": {"max_sweeps": 100, "matcher": "weight", "joint_max_iterations": 10}}


def planted_seeds(tmp_path, n=4, noise=0.0, zero_means=False):
    """n Gaussian posteriors, each the same one with every hidden layer permuted (seed 0 unpermuted):
    paths and the planted permutations. With ``zero_means`` only the standard deviations tell the
    units apart."""
    _, spec, params = make_mlp()
    rng = np.random.default_rng(0)
    base = gaussian_posterior({k: 0 * v if zero_means else v for k, v in params.items()})
    base = dataclasses.replace(base, std={k: np.exp(rng.standard_normal(v.shape)) for k, v in params.items()})
    paths, planted = [], []
    for s in range(n):
        perms = random_permutations(spec.group_sizes(params), rng) if s else \
            {g: np.arange(k) for g, k in spec.group_sizes(params).items()}
        post = dataclasses.replace(base.permuted(spec, perms), seed=s)
        if noise:
            post = dataclasses.replace(post, mean={k: v + noise * rng.standard_normal(v.shape) for k, v in post.mean.items()})
        write_posterior(tmp_path / f"seed{s}.h5", post)
        paths.append(tmp_path / f"seed{s}.h5")
        planted.append(perms)
    return spec, paths, planted


@pytest.mark.parametrize("kind, zero_means", [("weight", False), ("w2", False), ("w2", True)])
def test_joint_alignment_puts_planted_copies_in_one_frame_and_its_pairs_undo_the_planting(tmp_path, kind,
                                                                                         zero_means):
    spec, paths, planted = planted_seeds(tmp_path, zero_means=zero_means and kind == "w2")
    align_joint(kind, paths, [0, 1, 2, 3], CFG, tmp_path / "joint.h5")
    joint = read_joint_alignment(tmp_path / "joint.h5")
    assert joint.converged and joint.seeds == [0, 1, 2, 3] and joint.alignment == kind
    # every seed lands in one frame: sigma_s undoes planted_s up to one common relabelling
    common = {g: compose(planted[0][g], joint.perms[0][g]) for g in planted[0]}
    for s in range(4):
        for g in planted[s]:
            np.testing.assert_array_equal(compose(planted[s][g], joint.perms[s][g]), common[g])
    joint_pair(tmp_path / "joint.h5", paths[1], paths[3], tmp_path / "pair.h5", seeds=(1, 3))
    pair = read_alignment(tmp_path / "pair.h5")
    assert pair.alignment == f"joint_{kind}" and pair.distance_after == pytest.approx(0, abs=1e-9)
    assert pair.distance_before > 1


def test_with_only_the_standard_deviations_to_go_by_w2_aligns_and_weight_matching_cannot(tmp_path):
    _, paths, _ = planted_seeds(tmp_path, zero_means=True)
    for kind in ("weight", "w2"):
        align_joint(kind, paths, [0, 1, 2, 3], CFG, tmp_path / f"{kind}.h5")
        joint_pair(tmp_path / f"{kind}.h5", paths[0], paths[2], tmp_path / f"{kind}-pair.h5", seeds=(0, 2))
    assert read_alignment(tmp_path / "w2-pair.h5").distance_after == pytest.approx(0, abs=1e-9)
    assert read_alignment(tmp_path / "weight-pair.h5").distance_after > 1


def test_cycle_inconsistency_counts_the_transpositions_between_the_two_routes():
    p = {"P0": np.array([1, 2, 0, 3])}
    q = {"P0": np.array([0, 1, 3, 2])}
    consistent = {(0, 1): p, (1, 2): q, (0, 2): {"P0": compose(q["P0"], p["P0"])}}
    assert cycle_inconsistency(consistent) == [{"a": 0, "b": 1, "c": 2, "not": 0, "units": 4}]
    off_by_one_swap = dict(consistent)
    off_by_one_swap[(0, 2)] = {"P0": compose(consistent[(0, 2)]["P0"], np.array([1, 0, 2, 3]))}
    assert cycle_inconsistency(off_by_one_swap)[0]["not"] == 1
    assert cycle_inconsistency({(0, 1): p, (1, 2): q}) == []  # no triple with all three pairs


def test_the_joint_table_sets_pairwise_inconsistency_beside_the_joint_alignments(tmp_path):
    _, paths, _ = planted_seeds(tmp_path, n=3, noise=0.3)
    align_joint("w2", paths, [0, 1, 2], CFG, tmp_path / "joint.h5")
    pairs = []
    for a, b in ((0, 1), (1, 2), (0, 2)):
        align_pair("w2", paths[a], paths[b], CFG, tmp_path / f"{a}-{b}.h5", seeds=(a, b))
        pairs.append(tmp_path / f"{a}-{b}.h5")
    summarize_joint([tmp_path / "joint.h5"], pairs, tmp_path / "t.csv", tmp_path / "t.md")
    row = pd.read_csv(tmp_path / "t.csv").iloc[0]
    assert row["method"] == "vi" and row["alignment"] == "w2" and row["triples"] == 1 and row["seeds"] == 3
    assert row["hidden_units"] == 28 and row["joint_cycle_not_per_100_max"] == 0 and row["joint_converged"]
    expected = cycle_inconsistency({(a, b): read_alignment(p).perms for (a, b), p in
                                    zip(((0, 1), (1, 2), (0, 2)), pairs)})[0]["not"]
    assert row["pairwise_cycle_not_per_100_mean"] == pytest.approx(100 * expected / 28)


def test_joint_alignment_refuses_too_few_seeds_and_files_of_other_seeds(tmp_path):
    _, paths, _ = planted_seeds(tmp_path, n=3)
    with pytest.raises(ValueError, match="at least 3 seeds"):
        align_joint("w2", paths[:2], [0, 1], CFG, tmp_path / "j.h5")
    with pytest.raises(Exception, match="seed"):
        align_joint("w2", paths, [0, 1, 5], CFG, tmp_path / "j.h5")
    align_joint("w2", paths, [0, 1, 2], CFG, tmp_path / "j.h5")
    with pytest.raises(ValueError, match="aligned seeds \\[0, 1, 2\\], not \\[7\\]"):
        joint_pair(tmp_path / "j.h5", paths[0], paths[1], tmp_path / "p.h5", seeds=(0, 7))
    assert not (tmp_path / "p.h5").exists()


def test_the_pair_implied_by_the_joint_alignment_maps_b_into_as_frame():
    from workflow.jobs.align import pair_from_joint

    rng = np.random.default_rng(0)
    sa, sb = {"P0": rng.permutation(6)}, {"P0": rng.permutation(6)}
    a_units = np.arange(6.0) * 10
    joint_units = a_units[sa["P0"]]  # A in the joint frame
    b_units = joint_units[invert(sb["P0"])]  # a B whose joint-frame image equals A's
    pi = pair_from_joint(sa, sb)["P0"]
    np.testing.assert_array_equal(b_units[pi], a_units)


def test_the_merge_of_gaussians_is_their_w2_barycentre_and_of_sample_sets_the_mean_network():
    """Diagonal Gaussians: the W2 barycentre has the mean of the means and the mean of the standard
    deviations (it minimises the summed squared W2 distance: checked against a nudge each way)."""
    from workflow.jobs.align import merge
    from workflow.storage.artifacts import w2_distance

    from .test_artifacts import samples_posterior

    _, _, params = make_mlp()
    rng = np.random.default_rng(1)
    posts = [dataclasses.replace(gaussian_posterior({k: v + rng.standard_normal(v.shape) for k, v in params.items()}),
                                 std={k: np.exp(rng.standard_normal(v.shape)) for k, v in params.items()})
             for _ in range(3)]
    bary = merge(posts)
    for k in params:
        np.testing.assert_allclose(bary.mean[k], np.mean([p.mean[k] for p in posts], axis=0))
        np.testing.assert_allclose(bary.std[k], np.mean([p.std[k] for p in posts], axis=0))

    def cost(m):
        return sum(w2_distance(m.mean, m.std, p.mean, p.std) ** 2 for p in posts)

    for nudge in (-1e-2, 1e-2):
        assert cost(bary) < cost(dataclasses.replace(bary, std={k: v + nudge for k, v in bary.std.items()}))
        assert cost(bary) < cost(dataclasses.replace(bary, mean={k: v + nudge for k, v in bary.mean.items()}))
    members = [samples_posterior({k: v + s for k, v in params.items()}) for s in range(3)]
    merged = merge(members)
    for k in params:
        assert merged.samples[k].shape == (1, 1, *params[k].shape)
        want = np.mean([m.samples[k].mean(axis=(0, 1)) for m in members], axis=0)  # mean of the sample means
        np.testing.assert_allclose(merged.samples[k][0, 0], want, rtol=1e-6)


def prepared_data(path, n_train=30, n_test=200):
    """A prepared data file of random 1x4x4 inputs and 5 classes (the planted posteriors' shapes)."""
    from workflow.storage.prepared import write_prepared

    rng = np.random.default_rng(2)
    ds = dataclasses.make_dataclass("DS", ["name", "n_classes", "x_train", "y_train", "x_test", "y_test"])(
        "digits", 5, rng.standard_normal((n_train, 1, 4, 4)).astype(np.float32), rng.integers(0, 5, n_train),
        rng.standard_normal((n_test, 1, 4, 4)).astype(np.float32), rng.integers(0, 5, n_test))
    write_prepared(path, ds, {"dataset": "digits"})


@pytest.mark.parametrize("kind", ["weight", "w2"])
def test_a_pair_aligned_by_the_straight_through_matcher_undoes_the_planting(tmp_path, kind):
    """align_pair with alignment.matcher ste trains on the prepared data it is given; without it,
    a clear refusal and no file."""
    _, paths, planted = planted_seeds(tmp_path, n=2)
    prepared_data(tmp_path / "data.npz", n_train=64)
    cfg = {"alignment": {**CFG["alignment"], "matcher": "ste", "ste_steps": 3, "ste_lr": 1e-3,
                         "ste_batch_size": 16, "ste_eval_points": 64}, "compute": {"threads": 1}}
    align_pair(kind, paths[0], paths[1], cfg, tmp_path / "pair.h5", seeds=(0, 1), data_path=tmp_path / "data.npz")
    pair = read_alignment(tmp_path / "pair.h5")
    for g, p in planted[1].items():
        np.testing.assert_array_equal(pair.perms[g], invert(p))
    assert len(pair.objective_trace) == 4 and pair.distance_after == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="'ste' trains on the data: give the prepared data"):
        align_pair(kind, paths[0], paths[1], cfg, tmp_path / "none.h5", seeds=(0, 1))
    assert not (tmp_path / "none.h5").exists()


@pytest.mark.parametrize("kind", ["weight", "w2"])
def test_the_merged_model_of_planted_copies_is_the_network_and_the_unaligned_merge_is_not(tmp_path, kind):
    """Seeds that are one posterior with its units permuted: merged after the joint alignment they are
    that posterior again (the NLL of each member, exactly); merged as they are, they average unrelated
    units and predict worse."""
    import torch

    from workflow.jobs.align import merged_model

    _, paths, _ = planted_seeds(tmp_path, n=3)
    prepared_data(tmp_path / "data.npz")
    align_joint(kind, paths, [0, 1, 2], CFG, tmp_path / "joint.h5")
    cfg = {"barrier": {"split": "test", "mc_samples": 16, "seed": 0}, "compute": {"memory_mb": 256}}
    torch.manual_seed(0)
    merged_model(tmp_path / "joint.h5", paths, tmp_path / "data.npz", cfg, tmp_path / "m.csv")
    row = pd.read_csv(tmp_path / "m.csv").iloc[0]
    assert row["method"] == "vi" and row["alignment"] == kind and row["seeds"] == 3
    # the merge is seed 0 in the joint frame (its Monte Carlo noise falls on other units than in the
    # members' own frames, so the members' NLLs differ from it by Monte Carlo error only)
    from workflow.evaluation.predict import log_predictive, loss_error
    from workflow.jobs.inputs import read_posterior
    from workflow.storage.prepared import load_prepared

    post0 = read_posterior(paths[0])
    model, spec = post0.build_model()
    data = load_prepared(tmp_path / "data.npz")
    logp = log_predictive(model, post0.permuted(spec, read_joint_alignment(tmp_path / "joint.h5").perms[0])
                          .sample_source(16, 0), data["x_test"])
    assert (row["merged_nll"], row["merged_error"]) == pytest.approx(loss_error(logp, data["y_test"]), abs=1e-5)
    assert row["merged_nll"] == pytest.approx(row["members_nll_mean"], abs=0.1)
    assert row["unaligned_merged_nll"] > row["merged_nll"] + 0.1
    summarize_joint([tmp_path / "joint.h5"], [], tmp_path / "t.csv", tmp_path / "t.md", [tmp_path / "m.csv"])
    table = pd.read_csv(tmp_path / "t.csv")
    assert len(table) == 1 and table.loc[0, "merged_nll"] == pytest.approx(row["merged_nll"])
    with pytest.raises(ValueError, match="one posterior per seed"):
        merged_model(tmp_path / "joint.h5", paths[:2], tmp_path / "data.npz", cfg, tmp_path / "n.csv")
