"""The job layer (workflow/jobs/), called as Snakemake's jobs call it but without Snakemake: input
checks, the alignment job end to end on files, table concatenation, the report's HTML tables and
the paper job that redraws every figure and table from the summary tables alone."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from workflow.storage.artifacts import ArtifactError, read_alignment, write_posterior
from workflow.jobs.align import align_pair
from workflow.jobs.inputs import read_posterior
from workflow.jobs.report import table_html, table_html_job
from workflow.jobs.studies import concat_tables
from workflow.alignment.permutations import invert, number_of_transpositions, random_permutations

from .conftest import make_mlp
from .fingerprints import h5_digest
from .test_artifacts import gaussian_posterior

CFG = {"alignment": {"max_sweeps": 100}}


@pytest.fixture
def planted(tmp_path, rng):
    """Posterior A (seed 0) and B (seed 1) = A with every hidden layer permuted: files and permutation."""
    _, spec, params = make_mlp()
    a = dataclasses.replace(gaussian_posterior(params), seed=0)
    perms = random_permutations(spec.group_sizes(params), rng)
    b = dataclasses.replace(a.permuted(spec, perms), seed=1)
    write_posterior(tmp_path / "a.h5", a)
    write_posterior(tmp_path / "b.h5", b)
    return tmp_path, perms


@pytest.mark.parametrize("kind", ["weight", "w2"])
def test_align_job_undoes_a_planted_permutation_and_reruns_identically(planted, kind):
    d, perms = planted
    align_pair(kind, d / "a.h5", d / "b.h5", CFG, d / "al.h5", seeds=(0, 1))
    al = read_alignment(d / "al.h5")
    assert al.seed_a == 0 and al.seed_b == 1 and al.distance_after == pytest.approx(0, abs=1e-5)
    assert al.distance_before > 1
    for g, p in perms.items():
        np.testing.assert_array_equal(al.perms[g], invert(p))
        assert al.not_per_group[g] == number_of_transpositions(p)
    align_pair(kind, d / "a.h5", d / "b.h5", CFG, d / "again.h5", seeds=(0, 1))
    assert h5_digest(d / "al.h5") == h5_digest(d / "again.h5")


def test_align_job_finds_the_permutations_with_the_configured_matcher(planted, monkeypatch):
    import workflow.alignment.sinkhorn as sinkhorn

    calls = []
    original = sinkhorn.sinkhorn_matching
    monkeypatch.setattr(sinkhorn, "sinkhorn_matching", lambda *a, **k: calls.append(1) or original(*a, **k))
    d, perms = planted
    align_pair("w2", d / "a.h5", d / "b.h5", {"alignment": {"max_sweeps": 100, "matcher": "sinkhorn"}}, d / "al.h5",
               seeds=(0, 1))
    assert calls == [1]
    for g, p in perms.items():
        np.testing.assert_array_equal(read_alignment(d / "al.h5").perms[g], invert(p))
    with pytest.raises(ValueError, match="unknown matcher that compares weights or loss 'correlation'; allowed: "
                                         "weight, sinkhorn, ste"):
        align_pair("w2", d / "a.h5", d / "b.h5", {"alignment": {"max_sweeps": 100, "matcher": "correlation"}},
                   d / "x.h5", seeds=(0, 1))
    assert calls == [1] and not (d / "x.h5").exists()


@pytest.mark.parametrize("kind", ["weight", "w2"])
def test_align_job_starts_without_torch(planted, kind):
    """Alignment permutes weights: its spec comes from the parameter names, so its jobs (the most
    numerous of a run) do not pay seconds of start-up for importing torch."""
    d, _ = planted
    argv = ["align", "--kind", kind, "--a", str(d / "a.h5"), "--b", str(d / "b.h5"), "--seeds", "0", "1",
            "--config", json.dumps(CFG), "--threads", "1", "--out", str(d / "al.h5")]
    code = f"import sys; from workflow import cli; code = cli.main({argv!r}); print(code, 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["0", "False"], proc.stdout + proc.stderr[-2000:]
    assert read_alignment(d / "al.h5").distance_after == pytest.approx(0, abs=1e-5)


def test_align_job_refuses_files_holding_other_seeds_and_writes_nothing(planted):
    d, _ = planted
    with pytest.raises(ArtifactError, match="holds the posterior of seed 1, but is used as seed 2"):
        align_pair("weight", d / "a.h5", d / "b.h5", CFG, d / "al.h5", seeds=(0, 2))
    assert not (d / "al.h5").exists()


def test_a_posterior_of_other_data_is_refused(planted):
    d, _ = planted
    post = dataclasses.replace(read_posterior(d / "a.h5"), config={"data": {"dataset": "digits", "n_train": 10}})
    write_posterior(d / "c.h5", post)
    data = {"config": {"dataset": "digits", "n_train": 20, "root": "/elsewhere"}}
    with pytest.raises(ArtifactError, match="was trained on data"):
        read_posterior(d / "c.h5", data=data)
    # the data root is where files are read from, not which examples: it is not compared
    read_posterior(d / "c.h5", data={"config": {"dataset": "digits", "n_train": 10, "root": "/elsewhere"}})


def test_concat_tables_keeps_every_row_in_order(tmp_path):
    for i in range(3):
        pd.DataFrame({"k": [i, i], "v": [0.5 * i, 1.0]}).to_csv(tmp_path / f"{i}.csv", index=False)
    concat_tables([tmp_path / f"{i}.csv" for i in range(3)], tmp_path / "all.csv")
    assert pd.read_csv(tmp_path / "all.csv")["k"].tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="nothing to concatenate"):
        concat_tables([], tmp_path / "none.csv")


def test_html_table_holds_every_cell_escaped_and_rounded(tmp_path):
    frame = pd.DataFrame({"method": ["<vi>", "hmc"], "loss": [0.123456789, np.nan], "pairs": [3, 1]})
    page = table_html(frame, "Barriers & co", "seeds 0, 1")
    assert page.count("<tr>") == 3  # header and both rows
    assert "&lt;vi&gt;" in page and "<vi>" not in page.split("<body>")[1]
    assert ">0.1235<" in page and ">nan<" not in page and "Barriers &amp; co" in page
    assert "seeds 0, 1 2 rows, 3 columns." in page
    (tmp_path / "t.csv").write_text(frame.to_csv(index=False))
    table_html_job(tmp_path / "t.csv", tmp_path / "t.html", title="t")
    assert (tmp_path / "t.html").read_text().count("<td") == 6  # 2 rows x 3 columns
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="not a readable table"):
        table_html_job(tmp_path / "empty.csv", tmp_path / "e.html", title="e")
    assert not (tmp_path / "e.html").exists()



def test_paper_job_names_a_missing_table_and_keeps_the_old_folder_when_a_draw_fails(tmp_path):
    from workflow.jobs.paper import paper_job

    from .test_figures import study_tables

    out = tmp_path / "paper"
    out.mkdir()
    (out / "old.txt").write_text("the last complete paper")
    with pytest.raises(FileNotFoundError, match="missing: .*sigma_base.csv"):
        paper_job([tmp_path / "sigma_base.csv"], out)
    study_tables()["pruning"].to_csv(tmp_path / "pruning_base.csv", index=False)
    study_tables()["sigma"].drop(columns=["fraction"]).to_csv(tmp_path / "sigma_base.csv", index=False)
    with pytest.raises(ValueError, match="the sigma figure needs"):
        paper_job([tmp_path / "pruning_base.csv", tmp_path / "sigma_base.csv"], out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["paper"]  # no half-drawn folder
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    study_tables()["sigma"].to_csv(tmp_path / "sigma_base.csv", index=False)
    paper_job([tmp_path / "pruning_base.csv", tmp_path / "sigma_base.csv"], out,
              captions={"sigma_base.csv": "Seeds 0, 1."})
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "xiao2023/pruning_base.png", "xiao2023/sigma_base.png"]
    assert "the sigma study, variant base. Seeds 0, 1." in (out / "README.md").read_text()
