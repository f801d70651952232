"""Workflow overhead: how long a light job takes to start (interpreter and imports, in a fresh
process, as Snakemake starts it), the time Snakemake needs to build the DAG of a large sweep, and
a no-op rerun of the default run.

- Start-up: ``python -c "import workflow.cli, workflow.jobs.<stage>"`` for the stages whose jobs
  need no torch (alignment, summaries, tables, figures), against a bare ``python -c pass``; and
  whether torch got imported.
- DAG: ``snakemake -n`` for 10 seeds x 3 methods (ensemble, VI, HMC) x all seed pairs x 3 prior
  standard deviations, in a scratch folder.
- No-op rerun: a plain rerun in the folder of a finished default run (``--finished-run DIR``;
  left out without it), which must find nothing to do.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _common import REPO, Row

LIGHT_STAGES = {"align": "alignment", "metrics": "summaries", "studies": "study tables", "report": "HTML tables",
                "figures": "figures"}


def _seconds(cmd: list[str], repeats: int, cwd=REPO) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        out = proc.stdout + proc.stderr
    return statistics.median(times), out


def startup(repeats: int) -> list[Row]:
    bare, _ = _seconds([sys.executable, "-c", "pass"], repeats)
    rows = []
    for stage, label in LIGHT_STAGES.items():
        code = f"import sys, workflow.cli, workflow.jobs.{stage}; print('torch' in sys.modules)"
        seconds, out = _seconds([sys.executable, "-c", code], repeats)
        torch_loaded = out.strip() == "True"
        rows.append(Row("overhead", f"job start, {label} (imports of workflow.jobs.{stage})", seconds, bare, "s",
                        None, target=1.0, at_most=True,
                        note=("imports torch" if torch_loaded else "no torch") + f"; bare Python {bare:.2f} s"))
    return rows


def _snakemake(args: list[str], workdir: Path) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]


def dag(repeats: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        config |= {"name": "dag-benchmark", "seeds": list(range(10)), "methods": ["ensemble", "vi", "hmc"],
                   "sweep": [{"prior.std": [0.1, 1.0, 3.0]}]}
        path = Path(tmp) / "sweep.yaml"
        path.write_text(yaml.safe_dump(config))
        seconds, out = _seconds(_snakemake(["-n", "--cores", "1", "--configfile", str(path)], Path(tmp)), repeats)
        jobs = next((line.split()[-1] for line in out.splitlines() if line.startswith("total")), "?")
    return [Row("overhead", f"DAG of 10 seeds x 3 methods x all pairs x 3 prior sds ({jobs} jobs), snakemake -n",
                seconds, None, "s", None, target=10.0, at_most=True)]


def noop_rerun(finished: Path | None, repeats: int) -> list[Row]:
    """A plain rerun in the folder of a finished default run (``--finished-run``), which must find
    nothing to do: it reads every output's metadata as a real rerun does."""
    if finished is None:
        return []
    seconds, out = _seconds(_snakemake(["--cores", "1"], Path(finished)), repeats)
    if "Nothing to be done" not in out:
        raise RuntimeError(f"{finished} is not a finished default run: the rerun ran jobs:\n{out[-2000:]}")
    return [Row("overhead", "no-op rerun of the finished default run (snakemake --cores 1)", seconds, None, "s",
                None, target=3.0, at_most=True)]


def run(opts) -> list[Row]:
    repeats = max(3, opts.repeats)
    return startup(repeats) + dag(max(1, repeats // 2)) + noop_rerun(opts.finished_run, repeats)
