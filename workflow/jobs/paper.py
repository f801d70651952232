"""Stage paper: every figure and table of both papers, drawn again from the summary tables alone.

It reads only the small CSVs under results/<name>/tables/ (never a posterior), so it runs anywhere
those were copied to, without a GPU and without retraining; after a change to the plotting code,
`snakemake -f paper` redraws everything in one job. Layout of the output folder:

    rossi2023/  barrier_<method>_<variant>.{png,pdf}, sweep_<method>.{png,pdf} (sweeps),
                barriers.{csv,md,tex}, barrier_curves.csv
    xiao2023/   table1_<variant>.{csv,md,tex}, chain_diagnostics_<variant>.csv, basin_<variant>.csv,
                <study>_<variant>.{csv,png,pdf} for the sigma, pruning, not_k and not_path studies
    README.md   what each file reproduces, with the settings, seeds and pairs behind it
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from .. import tables
from ..captions import TABLE_TITLES
from .figures import STUDY_FIGURES, read_table, study_figure

# the per-variant summary tables, '<kind>_<variant>.csv' (the barrier tables are one for all variants)
PER_VARIANT = [k for k in TABLE_TITLES if k not in ("barrier_curves", "barriers")]
TABLE_NAME = re.compile(rf"(?P<kind>{'|'.join(PER_VARIANT)})_(?P<variant>.+)")


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def paper_job(table_paths, out_dir, *, sweep_base: dict | None = None, captions: dict | None = None) -> None:
    """Draw every figure and write every table of both papers into ``out_dir`` (replaced as a whole,
    atomically). ``table_paths``: the summary tables (barrier_curves.csv, barriers.csv and the
    '<kind>_<variant>.csv' tables); ``sweep_base``: swept key -> base value, when the config sweeps;
    ``captions``: table file name -> the settings, seeds and pairs it summarises."""
    paths = {Path(p).name: Path(p) for p in table_paths}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"the paper is drawn from existing summary tables; missing: {', '.join(missing)}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        notes = _draw(paths, tmp, sweep_base or {}, captions or {})
        (tmp / "README.md").write_text(_index(tmp, notes))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _draw(paths: dict[str, Path], out: Path, sweep_base: dict, captions: dict) -> dict[str, str]:
    """Write every item; file name -> what it reproduces (and the caption of the table it comes from)."""
    from .. import plots

    rossi, xiao = out / "rossi2023", out / "xiao2023"
    rossi.mkdir()
    xiao.mkdir()
    notes, source = {}, {}
    if "barrier_curves.csv" in paths:
        curves = read_table(paths["barrier_curves.csv"])
        shutil.copyfile(paths["barrier_curves.csv"], rossi / "barrier_curves.csv")
        for (method, variant), _ in curves.groupby(["method", "variant"], sort=False):
            stem = f"barrier_{method}_{variant}"
            plots.barrier_curves_figure(curves, method, rossi / f"{stem}.png", rossi / f"{stem}.pdf",
                                          variant=variant)
            notes[f"rossi2023/{stem}.png"] = (f"Rossi et al.: loss and error along the naive and aligned paths, "
                                              f"{method}, variant {variant}.")
            source[f"rossi2023/{stem}.png"] = "barriers.csv"
    if "barriers.csv" in paths:
        summary = read_table(paths["barriers.csv"])
        wide = tables.barriers_wide(summary)
        shutil.copyfile(paths["barriers.csv"], rossi / "barriers.csv")
        (rossi / "barriers.md").write_text(tables.markdown(wide, index_name="variant"))
        (rossi / "barriers.tex").write_text(tables.latex(wide, index_name="variant"))
        notes["rossi2023/barriers.md"] = "Rossi et al.: loss and error barriers, mean ± sd over seed pairs."
        source["rossi2023/barriers.md"] = "barriers.csv"
        if sweep_base:
            for method in summary["method"].unique():
                plots.barrier_sweep_figure(summary, method, rossi / f"sweep_{method}.png",
                                             rossi / f"sweep_{method}.pdf", base=sweep_base)
                notes[f"rossi2023/sweep_{method}.png"] = f"Rossi et al.: barriers against the swept settings, {method}."
    for name, path in paths.items():
        match = TABLE_NAME.fullmatch(Path(name).stem)
        if match is None:
            continue
        kind, variant = match["kind"], match["variant"]
        if kind == "joint_alignment":  # neither paper's: MergeMany and the cycle consistency of pairwise matching
            from .align import joint_markdown

            joint = out / "alignment"
            joint.mkdir(exist_ok=True)
            shutil.copyfile(path, joint / name)
            (joint / f"{kind}_{variant}.md").write_text(joint_markdown(read_table(path)))
            rel = f"alignment/{kind}_{variant}.md"
            notes[rel] = f"Joint alignment of all seeds against the pairwise alignments, variant {variant}."
            source[rel] = name
            continue
        shutil.copyfile(path, xiao / name)
        if kind == "table1":
            wide = tables.table1_wide(read_table(path))
            (xiao / f"table1_{variant}.md").write_text(tables.markdown(wide, index_name="metric"))
            (xiao / f"table1_{variant}.tex").write_text(tables.latex(wide, index_name="metric"))
            rel = f"xiao2023/table1_{variant}.md"
            notes[rel] = f"Xiao et al., Table 1: predictives against HMC's, variant {variant}."
        elif kind == "rebasin_draws":
            from .rebasin import draws_markdown

            (xiao / f"{kind}_{variant}.md").write_text(draws_markdown(read_table(path)))
            rel = f"xiao2023/{kind}_{variant}.md"
            notes[rel] = f"Rebasin control: what matching did to the draws of each chain, variant {variant}."
        elif kind in STUDY_FIGURES:
            study_figure(kind, path, xiao / f"{kind}_{variant}.png", xiao / f"{kind}_{variant}.pdf", variant=variant)
            rel = f"xiao2023/{kind}_{variant}.png"
            notes[rel] = f"Xiao et al.: the {kind} study, variant {variant}."
        else:
            rel = f"xiao2023/{name}"
            notes[rel] = f"Xiao et al.: {kind.replace('_', ' ')} table, variant {variant}."
        source[rel] = name
    for rel, table in source.items():
        if table in captions:
            notes[rel] += " " + captions[table]
    return notes


def _index(folder: Path, notes: dict[str, str]) -> str:
    lines = ["# Figures and tables of both papers", "",
             "Drawn by `snakemake paper` from the summary tables alone (no posterior is read).", ""]
    lines += [f"- `{rel}`: {notes[rel]}" if rel in notes else f"- `{rel}`" for rel in _files(folder)]
    return "\n".join(lines) + "\n"
