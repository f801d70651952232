"""The report of benchmarks/gpu_check.py: its checks, targets, rates and jobs, rewritten as one
Markdown file (and the jobs as CSV) after every check, so a run stopped at its time budget, or
killed, still leaves what it measured; optionally also copied to a second folder (the device
tool's $OUT, which comes back even when the command is killed)."""

from __future__ import annotations

import csv
import datetime
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

JOB_COLUMNS = ["setup", "job", "seconds", "cpu_seconds", "cpu_here_seconds", "peak_mb"]


@dataclass
class Check:
    name: str
    ok: bool | None  # None: stopped at the time budget, neither passed nor failed
    detail: str
    seconds: float = 0.0


@dataclass
class Report:
    path: Path
    device: str
    machine: str
    tiny: bool
    budget: float | None
    copy_to: Path | None = None
    cpu_here_file: str = ""
    started: float = field(default_factory=time.monotonic)
    checks: list[Check] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)  # JOB_COLUMNS
    rates: list[dict] = field(default_factory=list)  # what, seconds, tflops, fraction
    targets: list[dict] = field(default_factory=list)  # target, measured, met, bound
    skipped: list[str] = field(default_factory=list)

    def add(self, check: Check) -> None:
        self.checks.append(check)
        self.write()

    def write(self) -> None:
        self.path.write_text(render(self))
        jobs_csv = self.path.with_name("jobs.csv")
        with open(jobs_csv, "w", newline="") as f:
            writer = csv.DictWriter(f, JOB_COLUMNS, restval="")
            writer.writeheader()
            writer.writerows(self.jobs)
        if self.copy_to is not None:
            self.copy_to.mkdir(parents=True, exist_ok=True)
            for p in (self.path, jobs_csv):
                shutil.copyfile(p, self.copy_to / p.name)

    def failed(self) -> bool:
        """A check failed, or none passed (a run cut before any check is no pass)."""
        return not any(c.ok for c in self.checks) or any(c.ok is False for c in self.checks)


def guarded(report: Report, name: str, fn, *args) -> None:
    """Run one check (or section); an exception becomes a failed check, a spent budget a cut one,
    so the others still run."""
    start = time.perf_counter()
    try:
        result = fn(*args)
        for c in result if isinstance(result, list) else [result] if result else []:
            report.add(c)
    except TimeoutError as err:
        report.add(Check(name, None, f"stopped: {err}", time.perf_counter() - start))
    except Exception as err:  # noqa: BLE001 - one failing check must not hide the others
        report.add(Check(name, False, f"{type(err).__name__}: {err}".replace("\n", " ")[:700],
                         time.perf_counter() - start))


def check_deadline(deadline: float | None, what: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError(f"the time budget was spent before {what}")


def _num(v, fmt: str) -> str:
    return "" if v is None or v == "" else format(v, fmt)


def _result(ok: bool | None) -> str:
    return {True: "ok", False: "FAILED", None: "cut (time budget)"}[ok]


def render(r: Report) -> str:
    elapsed = time.monotonic() - r.started
    lines = [f"# GPU check, {datetime.date.today().isoformat()}", "",
             f"Device: {r.machine}. Sizes: {'tiny (the suite)' if r.tiny else 'full'}. "
             f"Command: `python3 benchmarks/gpu_check.py --out DIR{' --tiny' if r.tiny else ''}`. "
             f"Elapsed: {elapsed:.0f} s" + (f" of a {r.budget:.0f} s budget." if r.budget else "."), "",
             "## Checks", "", "| check | result | detail | seconds |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {_result(c.ok)} | {c.detail} | {c.seconds:.1f} |" for c in r.checks]
    counts = {k: sum(c.ok is k for c in r.checks) for k in (True, False, None)}
    lines += ["", f"checks: {counts[True]} passed, {counts[False]} failed, {counts[None]} cut by the time budget"]
    if r.skipped:
        lines += ["", f"not run (the time budget was spent): {', '.join(r.skipped)}"]
    if r.targets:
        lines += ["", "## Targets", "", "| target | measured | met | what bounds it |", "|---|---|---|---|"]
        lines += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} | {t['bound']} |"
                  for t in r.targets]
    if r.rates:
        lines += ["", "## Rates", "", "TFLOP/s count 2 per multiply-add of the convolutions and weight matrices, "
                  "3 passes for a forward and backward pass.", "",
                  "| measurement | seconds | TFLOP/s | of bf16 matmul |", "|---|---|---|---|"]
        lines += [f"| {x['what']} | {x['seconds']:.4g} | {_num(x.get('tflops'), '.1f')} "
                  f"| {_num(x.get('fraction'), '.0%')} |" for x in r.rates]
    if r.jobs:
        lines += ["", "## Jobs", "", "Wall seconds of each `python -m workflow` job, start-up included. CPU: the "
                  "same job on this machine's CPU beside it; CPU here: on the development machine "
                  f"({r.cpu_here_file}).", "",
                  "| setup | job | seconds | CPU seconds | CPU / device | CPU here | here / device | peak GPU MiB |",
                  "|---|---|---|---|---|---|---|---|"]

        def ratio(j, key):
            return f"{j[key] / j['seconds']:.1f}x" if j.get(key, "") != "" and j["seconds"] else ""

        for j in r.jobs:
            lines.append(f"| {j['setup']} | {j['job']} | {j['seconds']:.2f} | {_num(j.get('cpu_seconds', ''), '.2f')} "
                         f"| {ratio(j, 'cpu_seconds')} | {_num(j.get('cpu_here_seconds', ''), '.2f')} "
                         f"| {ratio(j, 'cpu_here_seconds')} | {_num(j.get('peak_mb', ''), '.0f')} |")
    return "\n".join(lines) + "\n"
