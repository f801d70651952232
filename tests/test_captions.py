"""Report captions (workflow/captions.py): each names the seeds, pairs and result settings behind
its item, and never a runtime setting."""

import pytest

from workflow.captions import caption_text, table_item
from workflow.config import fill_defaults, validate_config


def cfg(**over):
    base = {"name": "c", "seeds": [0, 1, 2], "methods": ["ensemble", "vi", "hmc"],
            "data": {"dataset": "digits", "n_train": 100, "root": "/data/root"},
            "model": {"architecture": "mlp", "hidden": [8]}, "hmc": {"chains": 2},
            "compute": {"device": "cpu", "threads": 7}}
    return validate_config({**base, **over})


def test_a_barrier_caption_names_the_methods_seeds_pairs_and_settings():
    text = caption_text("barrier", cfg(), method="hmc", variant="base")
    assert "Variant base." in text and "Methods hmc; seeds 0, 1 (hmc)." in text
    assert "seed pairs 0-1 (hmc)" in text
    assert "hmc: chains 2, step_size 0.001" in text and "n_train 100" in text and "hidden [8]" in text
    # runtime settings are not what the numbers depend on
    assert "/data/root" not in text and "threads" not in text and "compute" not in text


def test_methods_on_other_seeds_are_listed_apart():
    text = caption_text("barriers", cfg())
    assert "seeds 0, 1, 2 (ensemble, vi); 0, 1 (hmc)" in text
    assert "seed pairs 0-1, 0-2, 1-2 (ensemble, vi); 0-1 (hmc)" in text


def test_sweep_and_not_k_captions_state_what_varies():
    assert "Swept: model.hidden over [16], [32]." in caption_text("sweep", cfg(), method="ensemble",
                                                                  swept={"model.hidden": [[16], [32]]})
    assert "k transpositions in [0, 4], on the first 1 seed(s)." in caption_text(
        "not_k", cfg(not_study={"ks": [0, 4], "seeds": 1}))


def test_summary_tables_are_named_and_unknown_ones_refused():
    assert table_item("barriers", {"base": None})[::2] == ("barriers", None)
    item, title, variant = table_item("table1_prior.std-0.1", {"base": None, "prior.std-0.1": None})
    assert (item, variant) == ("table1", "prior.std-0.1") and "Table 1" in title
    with pytest.raises(ValueError, match="unknown summary table 'table1_nope'"):
        table_item("table1_nope", {"base": None})
    with pytest.raises(ValueError, match="no caption for item 'nope'"):
        caption_text("nope", fill_defaults({"name": "c"}))
