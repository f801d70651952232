"""Stage results-doc: a run's result tables copied into one Markdown page for docs/, by command.

No number is typed by hand: the page is the run's own claims.md, Table 1, barrier, rebasin-control
and chain-diagnostics tables, exactly as the run wrote them, under a stamp naming the code revision
that judged them, the config's sha1 and the config itself (``python -m workflow results-doc``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..storage import paths
from .. import tables
from ..storage.atomic import write_text

# (table stem and extension, heading): the pages' sections, in order, where the run has them
SECTIONS = (
    (("table1_{variant}", "md"), "Table 1 (Xiao et al.): every predictive against HMC's"),
    (("rebasin_draws_{variant}", "md"), "Rebasin control: what matching did to the draws of one chain"),
    (("chain_diagnostics_{variant}", "csv"), "HMC chains: R-hat and ESS of p(y|x) at the test points"),
    (("barriers", "md"), "Loss barriers (Rossi et al.), with HMC's within-chain control"),
    (("not_k_{variant}", "csv"), "NoT study: transpositions planted at initialisation and found after training"),
)


def results_doc_job(run_dir, config_path, out, *, variant: str = "base") -> None:
    """Write ``out`` from the finished run in ``run_dir`` (results/<name>) and its config file."""
    run_dir = Path(run_dir)
    claims = Path(paths.claims(str(run_dir), "md"))
    if not claims.exists():
        raise FileNotFoundError(f"{claims} is missing: run `snakemake claims` (or the default target) with this "
                                "config first")
    stamp = pd.read_csv(paths.claims(str(run_dir), "csv")).iloc[0]
    body = claims.read_text().split("\n", 1)[1].lstrip()
    lines = [f"# Results of `{run_dir.name}`", "",
             f"Written by `python -m workflow results-doc --run {run_dir} --config {config_path} --out {out}` from the "
             f"run's own files; code {stamp['code']}, config sha1 {stamp['config_sha1']}. Do not edit by hand.", "",
             "## Claims of both papers", "", body.replace("\n## ", "\n### ")]
    for (stem, ext), heading in SECTIONS:
        path = Path(paths.table(str(run_dir), stem.format(variant=variant), ext))
        if not path.exists():
            continue
        text = path.read_text() if path.suffix == ".md" else _csv_markdown(path)
        lines += [f"## {heading}", "", f"From `{run_dir.name}/{path.relative_to(run_dir)}`:", "", text]
    lines += ["## Config", "", "```yaml", Path(config_path).read_text().rstrip(), "```", ""]
    write_text(out, "\n".join(lines))


def _csv_markdown(path: Path) -> str:
    frame = pd.read_csv(path).drop(columns=["device"], errors="ignore")
    return tables.markdown(frame.set_index(frame.columns[0]), index_name=frame.columns[0])
