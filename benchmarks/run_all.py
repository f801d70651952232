"""Every performance benchmark of the workflow in one command, printed as one Markdown table of
ratios measured in the same run (medians over repeats), with the machine and library versions.

    pip install -e '.[bench]'          # the peers: Pyro and the rebasin package
    python benchmarks/run_all.py [--threads 2] [--repeats 3] [--only hmc,vi,matching,overhead]
                                 [--no-peers] [--quick] [--finished-run DIR]
                                 [--out table.md] [--doc]

Sections (each module's docstring says what is compared and how the comparison is kept fair):
- hmc (bench_hmc.py): cost of a gradient inside a trajectory against a bare forward + backward
  pass and against Pyro's HMC; ESS per second of the test predictive against Pyro NUTS and HMC;
- vi (bench_vi.py): a VI step in MAP steps; a VI epoch against Pyro SVI with AutoNormal;
- matching (bench_matching.py): weight matching against the rebasin package, time and objective;
- overhead (bench_overhead.py): light-job start-up, DAG construction of a large sweep, no-op rerun.

A row's ratio is oriented so that larger is better for us; "met" compares it (or, for absolute
limits, the measured value) with the target of issue #10. Without the peers (--no-peers, or the
`bench` extra not installed) their rows are left out. --quick shortens every run (a smoke test:
its numbers are not the README's).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import header, markdown  # noqa: E402
from doc_blocks import stamp, write_block  # noqa: E402

SECTIONS = ("hmc", "vi", "matching", "overhead")


def _peers_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("pyro", "rebasin"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every in-process benchmark")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per timing (the median is reported)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="skip Pyro and rebasin")
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not the README's numbers")
    parser.add_argument("--finished-run", type=Path, help="folder of a finished default run (the no-op rerun row)")
    parser.add_argument("--out", help="also write the table (with its header line) to this file")
    parser.add_argument("--doc", action="store_true", help="write the table into docs/performance.md (block 'peers')")
    opts = parser.parse_args(argv)
    sections = [s.strip() for s in opts.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}")
    if opts.peers and not _peers_installed():
        parser.error("the peers (Pyro, rebasin) are not installed: pip install -e '.[bench]', or pass --no-peers")
    import torch

    torch.set_num_threads(opts.threads)
    rows = []
    for section in sections:
        start = time.perf_counter()
        module = __import__(f"bench_{section}")
        rows += module.run(opts)
        print(f"# {section}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    text = f"{header(opts.threads)}\n\n{markdown(rows)}\n"
    print(text)
    if opts.out:
        Path(opts.out).write_text(text)
    if opts.doc:
        write_block("peers", f"{stamp()}\n\n{text}")
    missed = [r for r in rows if r.met is False]
    print(f"{sum(r.met is True for r in rows)} targets met, {len(missed)} not met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
