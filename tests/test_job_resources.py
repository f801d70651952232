"""Per-rule resources from Snakemake's benchmark files: reading, the proposal's arithmetic, bad files."""

import math

import pytest

from workflow.job_resources import (MEMORY_FLOOR_MB, MIN_RUNTIME_MIN, markdown, propose, read_benchmarks,
                                    summarize)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(run, rule, job, *rows):
    path = run / "benchmarks" / rule / f"{job}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{s}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n" for s, rss, cpu in rows))


def test_per_rule_totals_maxima_and_proposal(tmp_path):
    bench(tmp_path, "train_posterior", "base/train/vi/seed0", (100.0, 800.0, 190.0))
    bench(tmp_path, "train_posterior", "base/train/vi/seed1", (40.0, 1200.0, 70.0))
    bench(tmp_path, "align_pair", "base/align/vi/w2/0-1", (1.5, "-", 1.0))  # too short for a memory sample
    table = read_benchmarks(tmp_path)
    assert set(table["job"]) == {"base/train/vi/seed0", "base/train/vi/seed1", "base/align/vi/w2/0-1"}
    s = summarize(table).set_index("rule")
    train = s.loc["train_posterior"]
    assert train["jobs"] == 2 and train["wall_s_total"] == 140.0 and train["wall_s_max"] == 100.0
    assert train["cpu_s_total"] == 260.0 and train["max_rss_mb"] == 1200.0
    assert train["proposed_mem_mb"] == 2250  # 1200 * 1.5 + 256 = 2056, up to a multiple of 250
    assert train["proposed_runtime_min"] == MIN_RUNTIME_MIN  # 200 s of head-room is under 5 minutes
    assert math.isnan(s.loc["align_pair", "max_rss_mb"]) and s.loc["align_pair", "proposed_mem_mb"] == 500
    assert "| train_posterior | 2 |" in markdown(s.reset_index()) and "| n/a |" in markdown(s.reset_index())


def test_repeats_count_their_worst_row(tmp_path):
    bench(tmp_path, "table1", "base/table1", (10.0, 300.0, 9.0), (30.0, 500.0, 25.0), (20.0, 400.0, 15.0))
    row = read_benchmarks(tmp_path).iloc[0]
    assert (row["s"], row["max_rss"], row["cpu_time"]) == (30.0, 500.0, 25.0)


@pytest.mark.parametrize("rss, seconds, mem, runtime", [
    (0.0, 0.0, 500, MIN_RUNTIME_MIN),
    (math.nan, 10.0, 500, MIN_RUNTIME_MIN),
    (4000.0, 3600.0, 6500, 120),  # 4000 * 1.5 + 256 = 6256 MB, up to 6500; an hour doubled
    (100.0, 301.0, 500, 11),  # 100 * 1.5 + 256 = 406 -> 500; 602 s -> 11 minutes (rounded up)
])
def test_proposal_arithmetic(rss, seconds, mem, runtime):
    assert propose(rss, seconds) == (mem, runtime)
    assert propose(rss, seconds)[0] > MEMORY_FLOOR_MB


def test_no_benchmarks_or_a_foreign_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no benchmark files"):
        read_benchmarks(tmp_path)
    path = tmp_path / "benchmarks" / "rule" / "x.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="not a Snakemake benchmark file"):
        read_benchmarks(tmp_path)
