"""The default run as a newcomer runs it: a fresh clone of the current commit, the README's first
command, timed (target: under 4 minutes on 2 cores); then the run's per-rule time and memory from
Snakemake's own benchmark files (``python -m workflow job-resources``).

    python benchmarks/default_run.py [--fresh-venv] [--doc] [--results-page]

Without --fresh-venv the clone runs ``snakemake --profile profiles/local`` in this environment;
with it, the README's whole first command (a new venv, the install, the run), and the install and
the run are timed apart. --doc writes the measurement into docs/performance.md (blocks
"default-run" and "job-resources"); --results-page also regenerates docs/results/digits-default.md
and the README's result block from this run. Uncommitted changes are not in the clone, so the
measurement names the commit it ran. Timings on a shared or busy machine say little: measure on an
idle one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_model  # noqa: E402
from doc_blocks import REPO, STARTED_AT, stamp, write_block  # noqa: E402

TARGET_S = 240
RUN_COMMAND = "snakemake --profile profiles/local"


def readme_command(readme: Path) -> tuple[str, str]:
    """The README's first command, split into (install, run) at the run."""
    blocks = re.findall(r"```bash\n(.+?)\n```", readme.read_text(), flags=re.S)
    if not blocks or f" && {RUN_COMMAND}" not in blocks[0]:
        raise ValueError(f"{readme}: the first bash block should end with '&& {RUN_COMMAND}'")
    install, run = blocks[0].strip().rsplit(" && ", 1)
    return install, run


def timed(command: str, cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:])
        raise SystemExit(f"`{command}` failed with exit status {done.returncode} in {cwd}")
    return seconds


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def measure(clone: Path, fresh_venv: bool) -> dict:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    if fresh_venv:
        install, run = readme_command(clone / "README.md")
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
        install_s = timed(install, clone, env)
        run_s = timed(f". .venv/bin/activate && {run}", clone, env)
        return {"install_s": install_s, "run_s": run_s}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    return {"install_s": None, "run_s": timed(RUN_COMMAND, clone, env)}


def report(timing: dict, summary, run_name: str, fresh_venv: bool) -> str:
    jobs = int(summary["jobs"].sum())
    met = "met" if timing["run_s"] <= TARGET_S else "NOT met"
    lines = [stamp(), "",
             f"{cpu_model()}, {os.cpu_count()} CPUs; `results/{run_name}` in a fresh clone, "
             + ("a fresh venv (the README's first command)." if fresh_venv else "this environment."), "",
             "| measure | value | target | met |", "|---|---|---|---|",
             f"| `{RUN_COMMAND}`: {jobs} jobs, wall time | {minutes(timing['run_s'])} "
             f"| <= {TARGET_S // 60} min | {met} |"]
    if timing["install_s"] is not None:
        lines.append(f"| the venv and the install before it | {minutes(timing['install_s'])} | - | - |")
        lines.append(f"| the README's first command in all | {minutes(timing['install_s'] + timing['run_s'])} "
                     "| - | - |")
    busy = summary["wall_s_total"].sum()
    lines.append(f"| job-seconds (wall time summed over jobs) / wall time | {busy / timing['run_s']:.2f} | - | - |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh-venv", action="store_true", help="run the README's whole first command")
    parser.add_argument("--doc", action="store_true", help="write the blocks of docs/performance.md")
    parser.add_argument("--results-page", action="store_true",
                        help="also regenerate docs/results/digits-default.md and the README's result block")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    opts = parser.parse_args(argv)
    if STARTED_AT.endswith("+changes"):
        print("note: uncommitted changes are not measured; the clone is of HEAD", file=sys.stderr)
    sys.path.insert(0, str(REPO))
    from workflow.config import load_config, variant_configs
    from workflow.job_resources import compare, compare_markdown, load_reference, markdown, read_benchmarks, summarize

    work = Path(tempfile.mkdtemp(prefix="default-run-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    try:
        timing = measure(clone, opts.fresh_venv)
        import yaml

        run_name = yaml.safe_load((clone / "config.yaml").read_text())["name"]
        benchmarks = read_benchmarks(clone / "results" / run_name)
        summary = summarize(benchmarks)
        text = report(timing, summary, run_name, opts.fresh_venv)
        # a config the shipped reference was not measured on (digits, a smaller MLP): how well it scales
        variants = variant_configs(load_config(clone / "config.yaml"))
        against = compare_markdown(compare(benchmarks, variants, load_reference(clone / "workflow" / "measured_resources.csv")))
        resources = (f"{stamp()} From the run above:\n\n{markdown(summary)}\n\nThe same jobs as the rules size them "
                     f"(`workflow/measured_resources.csv`, measured on MNIST t10k, scaled by `workflow/job_sizes.py`; "
                     f"`job-resources --run-config config.yaml --against workflow/measured_resources.csv`):\n\n{against}")
        print(text, "\n", resources, sep="\n")
        if opts.doc:
            write_block("default-run", text)
            write_block("job-resources", resources)
        if opts.results_page:
            page = "docs/results/digits-default.md"
            py = sys.executable
            subprocess.run([py, "-m", "workflow", "results-doc", "--run", f"results/{run_name}", "--config",
                            "config.yaml", "--out", page], cwd=clone, check=True)
            shutil.copyfile(clone / page, REPO / page)
            subprocess.run([py, "-m", "workflow", "readme-result"], cwd=REPO, check=True)
    finally:
        if opts.keep:
            print(f"clone kept at {clone}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
