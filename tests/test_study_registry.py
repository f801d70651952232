"""A study is declared once (workflow/study_registry.py): captions, report titles, the figure job, the
paper target and the rules' study wildcard all read the declaration."""

import importlib

import pytest

from workflow import captions, study_registry
from workflow.jobs import figures as figure_jobs

CFG = {"methods": ["ensemble", "vi"], "seeds": [0, 1, 2], "data": {"dataset": "digits"}, "model": {"hidden": [8]},
       "prior": {"std": 1.0}, "rebasin": {"matchings": ["weight"]}, "ensemble": {"epochs": 3}, "vi": {"epochs": 3}}


@pytest.fixture
def with_a_new_study(monkeypatch):
    new = study_registry.Study("echo", "Echo: a throwaway study", ("data", "prior"), "pruning_figure",
                               lambda selected, cfg: [m for m in selected if m == "vi"],
                               caption=lambda cfg: "One more sentence.")
    monkeypatch.setattr(study_registry, "STUDIES", (*study_registry.STUDIES, new))
    monkeypatch.setattr(study_registry, "BY_KEY", {**study_registry.BY_KEY, "echo": new})
    yield new
    monkeypatch.undo()
    for module in (captions, figure_jobs):  # back to the real declarations
        importlib.reload(module)


def test_a_new_study_reaches_captions_titles_figures_and_the_wildcard(with_a_new_study):
    importlib.reload(captions)
    importlib.reload(figure_jobs)
    assert "echo" in study_registry.wildcard().split("|")
    assert captions.table_item("echo_base", ["base"]) == ("echo", "Echo: a throwaway study (variant base)", "base")
    text = captions.caption_text("echo", CFG, variant="base")
    assert "Methods vi;" in text and "One more sentence." in text and "prior: std 1.0" in text
    assert "rebasin" not in text  # not a section the study depends on
    assert figure_jobs.STUDY_FIGURES["echo"] == "pruning_figure"


def test_the_declared_studies_are_the_ones_everything_knows():
    keys = [s.key for s in study_registry.STUDIES]
    assert keys == ["sigma", "pruning", "not_k", "not_path"]
    assert set(keys) <= set(captions.ITEM_SECTIONS) and set(keys) == set(figure_jobs.STUDY_FIGURES)
    assert captions.item_methods("not_k", CFG) == ["ensemble"]  # the first method with a permuted init
    assert captions.item_methods("not_path", CFG) == ["ensemble", "vi"]
    with pytest.raises(ValueError, match="unknown study 'nope'; known: sigma, pruning, not_k, not_path"):
        study_registry.study("nope")
