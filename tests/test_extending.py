"""What adding a job kind or a study touches, proven on a copy of the repository the way
test_method_registry proves a new method: a throwaway job (its Job declaration and its rule) runs for
real, and a throwaway study (its Study declaration, its rule and its condition) gets its table, figure
and report jobs in a dry run."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow


def copy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns(".venv", ".git", "results", ".snakemake", "__pycache__",
                                                              "*.egg-info", "docs"))
    return repo


def snakemake(repo: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["methods"] = ["ensemble"]
    (work / "cfg.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(repo)}  # the copy's package, not the installed one
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory",
                           str(work), "--configfile", str(work / "cfg.yaml"), "--cores", "1", *args],
                          capture_output=True, text=True, env=env, cwd=work, timeout=600)


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


JOB = '''
JOBS = (*JOBS, Job("count-rows", "rows of the prepared training set", common=True,
                   run=lambda a, c, d: _count_rows(a.data, a.out), args=(arg("--data", required=True),
                                                                        arg("--out", required=True))))


def _count_rows(data, out):
    import numpy as np
    from .storage.atomic import write_text

    write_text(out, f"rows\\n{len(np.load(data)['x_train'])}\\n")
'''

JOB_RULE = '''

rule count_rows:
    input:
        data=lambda wc: P.data(RESULTS, data_key(config)),
    output:
        P.table(RESULTS, "rows"),
    log:
        P.log(RESULTS, "count_rows"),
    benchmark:
        P.benchmark(RESULTS, "count_rows", "count_rows")
    shell:
        "python -m workflow count-rows --data {input.data:q} --out {output:q} > {log:q} 2>&1"
'''


def test_a_new_job_is_its_declaration_and_its_rule(tmp_path):
    repo = copy_repo(tmp_path)
    append(repo / "workflow" / "cli.py", JOB)
    append(repo / "rules" / "report.smk", JOB_RULE)
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(repo, work, "results/tiny/tables/rows.csv")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = pd.read_csv(work / "results" / "tiny" / "tables" / "rows.csv")["rows"].item()
    assert rows == yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())["data"]["n_train"]
    assert (work / "results" / "tiny" / "benchmarks" / "count_rows" / "count_rows.tsv").exists()


STUDY = '''
STUDIES = (*STUDIES, Study("echo", "Echo: the barrier table again", ("data", "barrier"), "pruning_figure", _all))
BY_KEY = {s.key: s for s in STUDIES}
'''

STUDY_RULE = '''

rule echo_study:
    input:
        P.table(RESULTS, "barriers"),
    output:
        P.table(RESULTS, "echo_{variant}"),
    log:
        P.log(RESULTS, "{variant}/echo"),
    benchmark:
        P.benchmark(RESULTS, "echo_study", "{variant}/echo")
    shell:
        "cp {input:q} {output:q} 2> {log:q}"
'''


def test_a_new_study_is_its_declaration_its_rule_and_its_condition(tmp_path):
    repo = copy_repo(tmp_path)
    append(repo / "workflow" / "study_registry.py", STUDY)
    append(repo / "rules" / "studies.smk", STUDY_RULE)
    helpers = repo / "rules" / "common_studies.smk"
    text = helpers.read_text()
    condition = "    if not_path_methods():\n"
    assert condition in text
    helpers.write_text(text.replace(condition, '    kinds.append("echo")\n' + condition, 1))
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(repo, work, "-n", "-p", "--quiet", "rules")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout, re.M)}
    assert jobs["echo_study"] == 1
    proc = snakemake(repo, work, "-n", "-p", "results/tiny/figures/echo_base.png", "results/tiny/report/echo_base.html")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "figure --kind echo" in proc.stdout  # the figure rule takes the study from the wildcard
    assert "Echo: the barrier table again (variant base)" in proc.stdout  # its report title
