import pathlib

import pytest

from workflow.config import (ConfigError, basin_reference, expand_variants, load_config, method_seeds, result_config,
                             seed_groups, seed_pairs, validate_config)

MINIMAL = {"name": "x", "seeds": [0, 1], "data": {"dataset": "digits"}, "model": {"architecture": "mlp"}}


def test_defaults_are_filled_at_every_level():
    cfg = validate_config(MINIMAL)
    assert cfg["methods"] == ["ensemble"]
    assert cfg["prior"]["std"] == 1.0
    assert cfg["ensemble"]["epochs"] == 30
    assert cfg["data"]["root"] == "data" and cfg["data"]["download"] is False
    assert cfg["compute"] == {"device": "auto", "gpu": 0, "gpu_model": "", "threads": 1, "memory_mb": 1024,
                              "deterministic": True, "mixed_precision": "off"}
    assert MINIMAL["data"] == {"dataset": "digits"}  # input untouched


REPO = pathlib.Path(__file__).resolve().parents[1]


def test_the_shipped_config_is_valid():
    cfg = load_config(REPO / "config.yaml")
    assert cfg["data"]["dataset"] == "digits"


@pytest.mark.parametrize("patch, key, words", [
    ({"data": {"dataset": "imagenet"}}, "data.dataset", "'imagenet' is not one of"),
    ({"seeds": [0]}, "seeds", "too short (needs at least 2)"),
    ({"seeds": [1, 1]}, "seeds", "non-unique"),
    ({"model": {"architecture": "mlp", "hidden": [0]}}, "model.hidden.0", "less than the minimum"),
    ({"prior": {"std": -1}}, "prior.std", "less than or equal to the minimum"),
    ({"ensemble": {"epoch": 3}}, "ensemble", "allowed keys: augment, batch_size, checkpoint_every, epochs, lr, lr_schedule, momentum, optimizer"),
    ({"name": "a/b"}, "name", "does not match"),
    ({"compute": {"device": "tpu"}}, "compute.device", "does not match"),
    ({"methods": ["mcmc"]}, "methods.0", "is not one of ['ensemble', 'vi', 'hmc', 'laplace']"),
    ({"hmc": {"chains": 3}}, "hmc.chains", "3 asked for, but seeds lists only 2"),
    ({"not_study": {"seeds": 5}}, "not_study.seeds", "5 seeds asked for, but seeds lists only 2"),
    ({"methods": ["hmc"], "rebasin": {"references": ["first"], "basin_reference": "iterated"}},
     "rebasin.basin_reference", "'iterated' is not among"),
    ({"pruning": {"fractions": [1.0, 1.5]}}, "pruning.fractions.1", "greater than the maximum"),
    ({"not_study": {"data_order": "random"}}, "not_study.data_order", "'random' is not one of"),
])
def test_bad_values_name_key_value_and_what_is_allowed(patch, key, words):
    with pytest.raises(ConfigError) as err:
        validate_config({**MINIMAL, **patch})
    assert f"config key {key}:" in str(err.value)
    assert words in str(err.value)


def test_load_config_refuses_non_mapping_and_missing(tmp_path):
    (tmp_path / "c.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_seed_pairs_are_all_unordered_pairs():
    assert seed_pairs({"seeds": [3, 1, 2]}) == [(1, 2), (1, 3), (2, 3)]


def test_hmc_chains_limit_its_seeds_and_pairs_but_not_what_a_chain_computes():
    cfg = validate_config({**MINIMAL, "seeds": [4, 2, 7], "methods": ["hmc", "vi"], "hmc": {"chains": 2}})
    assert method_seeds(cfg, "hmc") == [4, 2] and method_seeds(cfg, "vi") == [4, 2, 7]
    assert seed_pairs(cfg, "hmc") == [(2, 4)] and len(seed_pairs(cfg, "vi")) == 3
    assert "chains" not in result_config(cfg, ["hmc"])["hmc"]
    one = validate_config({**MINIMAL, "methods": ["hmc"], "hmc": {"chains": 1}})
    assert seed_pairs(one, "hmc") == []


def test_hmc_chains_per_job_groups_its_seeds_and_no_other_method_s():
    with pytest.raises(ConfigError, match="chains_per_job"):  # VI fits one seed per job: no such key
        validate_config({**MINIMAL, "methods": ["vi"], "vi": {"chains_per_job": 3}})
    cfg = validate_config({**MINIMAL, "seeds": [4, 2, 7, 1, 9], "methods": ["hmc", "vi"],
                           "hmc": {"chains": 4, "chains_per_job": 3}})
    assert seed_groups(cfg, "hmc") == [[4, 2, 7], [1]]
    assert seed_groups(cfg, "vi") == [[4], [2], [7], [1], [9]]
    assert seed_groups(validate_config({**MINIMAL, "methods": ["hmc"]}), "hmc") == [[0], [1]]  # default: 1
    assert "chains_per_job" not in result_config(cfg, ["hmc"])["hmc"]  # what a chain computes is unchanged
    with pytest.raises(ConfigError, match="chains_per_job"):
        validate_config({**MINIMAL, "hmc": {"chains_per_job": 0}})


def test_keys_that_decide_which_jobs_run_cannot_be_swept_and_trigger_no_rerun():
    for key in ("hmc.chains", "hmc.chains_per_job", "rebasin.basin_reference"):
        with pytest.raises(ConfigError, match="cannot be swept"):
            expand_variants(validate_config({**MINIMAL, "sweep": [{key: [1, 2]}]}))
    cfg = validate_config({**MINIMAL, "alignment": {"kinds": ["weight", "w2"]}})
    assert "kinds" not in result_config(cfg, ["alignment"])["alignment"]
    assert result_config(cfg, ["barrier.n_points"]) == {"name": "x", "barrier": {"n_points": 21}}
    assert basin_reference(cfg) == "iterated"
    assert basin_reference(validate_config({**MINIMAL, "rebasin": {"references": ["first"]}})) == "first"


def test_experiment_configs_are_valid():
    paths = sorted((REPO / "experiments").glob("*.yaml"))
    assert paths
    for path in paths:
        load_config(path)


def test_whole_floats_become_integers_and_non_finite_numbers_are_refused():
    cfg = validate_config({**MINIMAL, "seeds": [0.0, 1.0], "ensemble": {"epochs": 2.0}})
    assert cfg["seeds"] == [0, 1] and isinstance(cfg["ensemble"]["epochs"], int)
    with pytest.raises(ConfigError, match="config key seeds.1: 1.5 is not of type 'integer'"):
        validate_config({**MINIMAL, "seeds": [0, 1.5]})
    with pytest.raises(ConfigError, match="config key prior.std: nan is not a finite number"):
        validate_config({**MINIMAL, "prior": {"std": float("nan")}})
    with pytest.raises(ConfigError, match="config key prior.std: inf is not a finite number"):
        validate_config({**MINIMAL, "prior": {"std": float("inf")}})


def test_result_config_leaves_out_runtime_settings():
    from workflow.config import merge_configs, result_config, runtime_config

    cfg = validate_config(MINIMAL)
    res = result_config(cfg, ["data", "ensemble", "compute"])
    assert "compute" not in res and "root" not in res["data"] and "checkpoint_every" not in res["ensemble"]
    assert res["data"]["dataset"] == "digits" and res["name"] == "x"
    rt = runtime_config(cfg)
    assert rt["compute"]["device"] == "auto" and rt["data"] == {"root": "data", "download": False}
    merged = merge_configs(res, rt)
    assert merged["data"] == cfg["data"] and merged["ensemble"] == cfg["ensemble"]


def test_strings_from_the_command_line_become_the_types_the_schema_asks_for():
    # snakemake --config 'seeds=[5,11]' model='{architecture: mlp, hidden: [8]}' passes strings
    cfg = validate_config({**MINIMAL, "seeds": ["5", "11"], "model": {"architecture": "mlp", "hidden": ["8"]},
                           "prior": {"std": "0.5"}, "data": {"dataset": "digits", "download": "false",
                                                               "n_train": "null"}})
    assert cfg["seeds"] == [5, 11] and cfg["model"]["hidden"] == [8] and cfg["prior"]["std"] == 0.5
    assert cfg["data"]["download"] is False and cfg["data"]["n_train"] is None
    with pytest.raises(ConfigError, match="config key seeds.0: 'five'"):
        validate_config({**MINIMAL, "seeds": ["five", "6"]})


def test_sweep_variants_are_named_deduplicated_and_validated():
    from workflow.config import expand_variants, sweep_table

    cfg = validate_config({**MINIMAL, "model": {"architecture": "mlp", "hidden": [64]}, "prior": {"std": 1.0},
                           "sweep": [{"model.hidden": [[32], [64]]}, {"prior.std": [0.5, 1.0]}]})
    variants = expand_variants(cfg)
    # prior.std-1.0 is the same experiment as model.hidden-64 (the base point): computed once
    assert list(variants) == ["model.hidden-32", "model.hidden-64", "prior.std-0.5"]
    overrides, v = variants["prior.std-0.5"]
    assert overrides == {"prior.std": 0.5} and v["prior"]["std"] == 0.5 and v["model"]["hidden"] == [64]
    assert v["sweep"] == []
    table = sweep_table(cfg, variants)
    assert table["base"] == {"model.hidden": [64], "prior.std": 1.0}
    assert table["variants"]["model.hidden-32"] == {"model.hidden": [32], "prior.std": 1.0}
    assert list(expand_variants(validate_config(MINIMAL))) == ["base"]


def test_product_grids_and_bad_sweeps():
    from workflow.config import expand_variants

    cfg = validate_config({**MINIMAL, "sweep": [{"prior.std": [0.5, 2.0], "vi.temperature": [0.1, 1.0]}]})
    assert len(expand_variants(cfg)) == 4
    with pytest.raises(ConfigError, match="cannot be swept"):
        expand_variants(validate_config({**MINIMAL, "sweep": [{"seeds": [[0, 1]]}]}))
    with pytest.raises(ConfigError, match="sweep variant prior.std--1.0: invalid config"):
        expand_variants(validate_config({**MINIMAL, "sweep": [{"prior.std": [-1.0]}]}))


def test_the_configuration_reference_is_generated_from_the_schema():
    """docs/config-reference.md is the config-doc command's output: a new or changed setting without
    regenerating it fails here (python -m workflow config-doc --out docs/config-reference.md)."""
    from pathlib import Path

    from workflow.config_doc import reference

    doc = (Path(__file__).resolve().parents[1] / "docs" / "config-reference.md").read_text()
    assert doc == reference()
    assert "| `vi.sigma_lr_scale` | number | 1.0 | > 0 |" in doc and "| `model.width` |" in doc
