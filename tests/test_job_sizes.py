"""Job sizes from the config alone (workflow/job_sizes.py) and the resources scaled from them
(workflow/job_resources.py: reference, estimate): checked against the data loader, the built
networks, and the arithmetic of scaling."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from workflow import job_sizes as J
from workflow.architectures import build_model
from workflow.config import validate_config
from workflow.job_resources import (ANY, MEMORY_FLOOR_MB, REFERENCE_FILE, estimate, load_reference, merge_reference,
                                    propose, reference)
from workflow.storage.datasets import load_dataset


def cfg(**sections):
    base = {"name": "t", "seeds": [0, 1, 2], "methods": ["ensemble", "vi", "hmc"],
            "data": {"dataset": "digits"}, "model": {"architecture": "mlp", "hidden": [32]}}
    for key, value in sections.items():
        merge = isinstance(value, dict) and key not in ("model", "data")  # those two: replaced whole
        base[key] = base.get(key, {}) | value if merge else value
    return validate_config(base)


@pytest.mark.parametrize("data", [{}, {"test_fraction": 0.5, "split_seed": 3}, {"n_train": 100, "n_test": 50}])
def test_split_rows_are_the_loaders(data):
    c = cfg(data={"dataset": "digits", **data})
    d = c["data"]
    ds = load_dataset("digits", split_seed=d["split_seed"], test_fraction=d["test_fraction"], n_train=d.get("n_train"),
                      n_test=d.get("n_test"))
    assert J.split_rows(c["data"]) == (len(ds.y_train), len(ds.y_test))
    assert J.input_shape(c["data"]) == ds.x_train.shape[1:]


@pytest.mark.parametrize("model, dataset", [({"architecture": "mlp", "hidden": [32, 16]}, "digits"),
                                            ({"architecture": "mlp", "hidden": [512]}, "mnist-t10k"),
                                            ({"architecture": "resnet20", "width": 1}, "mnist-t10k"),
                                            ({"architecture": "resnet20", "width": 2}, "cifar10")])
def test_parameters_and_multiply_adds_are_the_built_networks(model, dataset):
    """The parameter count is the built model's; the multiply-adds are those its convolutions and
    linear layers do on one example (counted with forward hooks)."""
    c = cfg(model=model, data={"dataset": dataset})
    shape, classes = J.DATASET_SHAPES[dataset][2], J.DATASET_SHAPES[dataset][3]
    net, _ = build_model(model["architecture"], shape, classes, **{k: v for k, v in model.items() if k != "architecture"})
    assert J.n_params(c) == sum(p.numel() for p in net.parameters())
    counted = []

    def hook(module, inputs, out):
        if isinstance(module, torch.nn.Conv2d):
            counted.append(module.weight.numel() * out.shape[-1] * out.shape[-2])
        elif isinstance(module, torch.nn.Linear):
            counted.append(module.weight.numel())

    for m in net.modules():
        m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, *shape))
    assert J.macs(c) == sum(counted)


def test_time_sizes_grow_with_data_samples_and_epochs():
    base = cfg()
    double_data = cfg(data={"dataset": "digits", "test_fraction": 0.25, "n_train": 600})
    half = cfg(data={"dataset": "digits", "test_fraction": 0.25, "n_train": 300})
    for method in ("ensemble", "vi", "hmc"):
        wc = {"method": method}
        assert J.time_size("train_posterior", wc, double_data) == 2 * J.time_size("train_posterior", wc, half)
        assert J.time_size("train_posterior", wc | {"chains": 2}, base) == 2 * J.time_size("train_posterior", wc, base)
    assert (J.time_size("train_posterior", {"method": "hmc"}, cfg(hmc={"n_samples": 400, "n_warmup": 0, "thinning": 1}))
            == 2 * J.time_size("train_posterior", {"method": "hmc"}, cfg(hmc={"n_samples": 200, "n_warmup": 0, "thinning": 1})))
    assert (J.time_size("train_posterior", {"method": "vi"}, cfg(vi={"mc_samples": 3}))
            == 3 * J.time_size("train_posterior", {"method": "vi"}, cfg(vi={"mc_samples": 1})))
    # barriers: pairs of seeds x points x samples; REPAIR measures every path twice
    b = J.time_size("barrier_curves", {"method": "vi"}, cfg(barrier={"n_points": 5, "mc_samples": 10}))
    assert J.time_size("barrier_curves", {"method": "vi"}, cfg(seeds=[0, 1, 2, 3], barrier={"n_points": 5, "mc_samples": 10})) == 2 * b
    assert J.time_size("barrier_curves", {"method": "vi"}, cfg(barrier={"n_points": 5, "mc_samples": 10, "repair": True})) == 2 * b
    # rebasin: every draw, and every reference update of the iterated reference
    first = J.time_size("rebasin", {"method": "hmc", "matching": "weight", "reference": "first"}, cfg(hmc={"n_samples": 20}))
    assert J.time_size("rebasin", {"method": "hmc", "matching": "weight", "reference": "iterated"},
                       cfg(hmc={"n_samples": 20}, rebasin={"max_iterations": 4})) == 4 * first
    assert J.time_size("rebasin", {"method": "hmc", "matching": "weight", "reference": "first"}, cfg(hmc={"n_samples": 40})) == 2 * first
    assert J.time_size("claims", {}, base) == 1.0


def test_job_paths_read_back_as_wildcards_and_chains_rules_as_training():
    methods = ["ensemble", "vi", "hmc", "laplace"]
    assert J.job_wildcards("train_posterior", "base/train/hmc/seeds0-1-2", methods) == {
        "variant": "base", "method": "hmc", "chains": 3}
    assert J.job_wildcards("rebasin", "prior.std-0.1/rebasin/hmc/activation/iterated", methods) == {
        "variant": "prior.std-0.1", "method": "hmc", "matching": "activation", "reference": "iterated"}
    assert J.job_wildcards("claims", "claims", methods) == {"variant": "claims"}
    assert J.sizing_rule(J.chains_rule("hmc", [2, 3]), {"variant": "base"}) == (
        "train_posterior", {"variant": "base", "method": "hmc", "chains": 2})
    assert J.sizing_rule("align_pair", {"a": "0"}) == ("align_pair", {"a": "0"})


def measured(jobs):
    """Benchmark rows as read_benchmarks gives them."""
    return pd.DataFrame([{"rule": r, "job": j, "s": s, "max_rss": rss, "cpu_time": s} for r, j, s, rss in jobs])


def test_a_reference_reproduces_its_own_jobs_and_scales_to_other_configs():
    small = cfg(data={"dataset": "digits", "n_train": 300})
    ref = reference(measured([("train_posterior", "base/train/hmc/seed0", 100.0, 1256.0),
                              ("train_posterior", "base/train/vi/seed0", 10.0, 400.0),
                              ("train_posterior", "base/train/vi/seed1", 30.0, 500.0)]), {"base": small}, "run")
    assert list(ref["method"]) == ["hmc", "vi"] and list(ref["jobs"]) == [1, 2]
    seconds, rss = estimate(ref, "train_posterior", {"method": "hmc"}, small)
    assert seconds == pytest.approx(100.0) and rss == pytest.approx(1256.0)
    # time: the median of the key's jobs (one job slowed by a busy machine does not set it); memory: the largest
    assert estimate(ref, "train_posterior", {"method": "vi"}, small) == pytest.approx((20.0, 500.0))
    big = cfg(data={"dataset": "digits", "n_train": 900})
    seconds, rss = estimate(ref, "train_posterior", {"method": "hmc"}, big)
    assert seconds == pytest.approx(300.0)  # three times the data
    grow = J.memory_size("train_posterior", {"method": "hmc"}, big) / J.memory_size("train_posterior", {"method": "hmc"}, small)
    assert rss == pytest.approx(MEMORY_FLOOR_MB + 1000.0 * grow) and grow > 1
    # a method never measured takes its rule's slowest rate; an architecture never measured, nothing
    assert estimate(ref, "train_posterior", {"method": "ensemble"}, small) is not None
    assert estimate(ref, "train_posterior", {"method": "hmc"}, cfg(model={"architecture": "resnet20"})) is None
    assert estimate(ref, "table1", {}, small) is None


def test_a_merged_reference_replaces_only_what_was_measured_again():
    c = cfg()
    old = reference(measured([("train_posterior", "base/train/vi/seed0", 10.0, 400.0),
                              ("table1", "base/table1", 5.0, 300.0)]), {"base": c}, "old")
    new = reference(measured([("train_posterior", "base/train/vi/seed0", 20.0, 400.0)]), {"base": c}, "new")
    merged = merge_reference(old, new).set_index(["rule", "method"])
    assert merged.loc[("train_posterior", "vi"), "run"] == "new" and merged.loc[("table1", ANY), "run"] == "old"
    with pytest.raises(ValueError, match="no variant 'sweep1'"):
        reference(measured([("train_posterior", "sweep1/train/vi/seed0", 5.0, 300.0)]), {"other": c}, "r")
    # a sweep has no variant "base": the run's own jobs (data, figures, claims) take its first variant
    ref = reference(measured([("prepare_data", "prepare_data/abc123", 1.0, 150.0), ("claims", "claims", 0.5, 90.0)]),
                    {"model.hidden-32": c, "model.hidden-64": cfg(model={"architecture": "mlp", "hidden": [64]})}, "r")
    assert set(ref["rule"]) == {"prepare_data", "claims"}


def test_a_barrier_path_evaluates_a_gaussians_samples_and_a_sample_sets_draws():
    def size(method, **sections):
        return J.time_size("barrier_curves", {"method": method}, cfg(**sections))

    assert size("vi", barrier={"mc_samples": 40}) == 2 * size("vi", barrier={"mc_samples": 20})
    assert size("ensemble", barrier={"mc_samples": 40}) == size("ensemble", barrier={"mc_samples": 20})
    assert size("hmc", hmc={"n_samples": 40}) == 2 * size("hmc", hmc={"n_samples": 20})
    assert size("hmc", barrier={"mc_samples": 40}) == size("hmc", barrier={"mc_samples": 20})
    within = J.time_size("barrier_within_chain", {"method": "hmc"}, cfg(hmc={"n_samples": 40}))
    assert within == 2 * J.time_size("barrier_within_chain", {"method": "hmc"}, cfg(hmc={"n_samples": 20}))
    # two paths per chain (the halves unaligned and weight-matched), each of one pair's size without REPAIR
    one = cfg(seeds=[0, 1], barrier={"repair": False})
    path = J.time_size("barrier_curves", {"method": "hmc"}, one)  # seeds 0 and 1: one pair
    assert J.time_size("barrier_within_chain", {"method": "hmc"}, one) == 2 * 2 * path


def test_a_matcher_never_measured_takes_the_rate_of_its_family():
    """Correlation compares activations as activation matching does; sinkhorn and ste are weight-like."""
    c = cfg()
    ref = reference(measured([("rebasin", "base/rebasin/hmc/activation/first", 100.0, 500.0),
                              ("rebasin", "base/rebasin/hmc/weight/first", 1.0, 300.0)]), {"base": c}, "r")
    act = {"method": "hmc", "reference": "first"}
    assert estimate(ref, "rebasin", act | {"matching": "correlation"}, c) == estimate(ref, "rebasin", act | {"matching": "activation"}, c)
    assert estimate(ref, "rebasin", act | {"matching": "sinkhorn"}, c)[0] == pytest.approx(1.0)


def test_the_shipped_reference_sizes_every_job_rule_of_the_mnist_configs():
    """workflow/measured_resources.csv (what the rules ask for): measured for MLP, with every trained
    method of Table 1 and every heavy rule; its requests are propose()'s of the estimates."""
    ref = load_reference(REFERENCE_FILE)
    mlp = ref[ref["architecture"] == "mlp"]
    assert {"train_posterior", "barrier_curves", "rebasin", "table1", "pruning", "not_k", "align_pair"} <= set(mlp["rule"])
    assert {"ensemble", "vi", "hmc"} <= set(mlp.loc[mlp["rule"] == "train_posterior", "method"])
    assert np.isfinite(ref[["s_per_unit", "mb_per_unit"]].to_numpy()).all()
    c = cfg(data={"dataset": "mnist-t10k", "test_fraction": 0.2}, model={"architecture": "mlp", "hidden": [512]})
    seconds, rss = estimate(ref, "train_posterior", {"method": "hmc"}, c)
    mem, runtime = propose(rss, seconds)
    assert runtime >= math.ceil(seconds / 60) and mem > rss


@pytest.mark.parametrize("rule, wc", [("train_posterior", {"method": "ensemble"}), ("train_posterior", {"method": "vi"}),
                                      ("train_posterior", {"method": "hmc"}), ("train_posterior", {"method": "laplace"}),
                                      ("barrier_curves", {"method": "vi"}), ("barrier_within_chain", {"method": "hmc"}),
                                      ("table1", {}), ("pruning", {}), ("not_k", {}),
                                      ("rebasin", {"method": "hmc", "matching": "activation", "reference": "first"})])
def test_every_forward_pass_rule_grows_with_the_networks_multiply_adds(rule, wc):
    """Twice the hidden units of a one-layer MLP on digits: twice the multiply-adds, twice the time."""
    narrow, wide = cfg(model={"architecture": "mlp", "hidden": [32]}), cfg(model={"architecture": "mlp", "hidden": [64]})
    assert J.macs(wide) == 2 * J.macs(narrow)
    assert J.time_size(rule, wc, wide) == pytest.approx(2 * J.time_size(rule, wc, narrow))
