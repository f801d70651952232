"""Stage claims: every claim of both papers judged against this run's summary tables (workflow/evaluation/claims_table.py),
written as claims.csv and claims.md, stamped with the code revision and the config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from ..storage.atomic import write_csv, write_text
from ..evaluation.claims_table import Run, counts, judge, markdown
from ..storage.provenance import code_revision


def claims_job(table_paths, config: dict, variants: dict, out_csv, out_md, sweep_base: dict | None = None) -> None:
    """``table_paths``: the run's summary CSVs ('<kind>_<variant>.csv', barriers.csv); ``config``: the
    run's validated config (result-deciding sections); ``variants``: variant -> its value of every swept
    key; ``sweep_base``: swept key -> its base value."""
    frames = {Path(p).stem: pd.read_csv(p) for p in table_paths}
    table = judge(Run(frames, config, variants, sweep_base))
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    stamp = (f"Run `{config.get('name', '?')}`; code {code_revision()}; config sha1 {digest}; judged from "
             f"{len(frames)} summary tables by `snakemake claims`.")
    stamp += " " + counts(table)
    write_csv(out_csv, table.assign(code=code_revision(), config_sha1=digest))
    write_text(out_md, markdown(table, title=f"Claims of both papers, judged on run {config.get('name', '?')}",
                                stamp=stamp))
