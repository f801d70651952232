"""The comparisons benchmarks/gpu_check.py judges by: where each job computed, its peak GPU memory,
the same artifacts evaluated on two devices, the same training run on two devices, HMC on two
devices (statistically), mixed precision recorded, and two posteriors bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import gpu_pipeline as gp
from gpu_report import Check

# the same inputs evaluated on two devices: float32 sums in another order, and an argmax that flips
# on a near tie (one test point moves an error or agreement by 1 / n_test)
EVALUATION_TOLERANCE = {"atol": 5e-3, "rtol": 1e-3}
# the same training run on two devices: rounding differs from the first step and training amplifies
# it, so the runs end at nearby, not equal, solutions; |difference| <= atol + rtol x |CPU's value|.
# No CPU run here rounds a training run differently (one and two threads give the same bits), so
# the tolerance sits at the spread between the two seeds of the check's digits config on this
# CPU (test NLL 0.015 to 0.06 apart, error 0.005 to 0.02): two devices must not differ more than
# two seeds do
TRAINING_TOLERANCE = {"test_nll": (0.05, 0.1), "test_error": (0.03, 0.0)}
HMC_Z_MAX = 4.0  # |difference of a chain's means on two devices| / its standard error (each run's ESS)


def artifact_devices(paths) -> dict[str, set[str]]:
    """The devices each artifact records: a posterior's provenance, a table's device column."""
    import pandas as pd

    from workflow.storage.artifacts import read_posterior

    found = {}
    for path in paths:
        path = Path(path)
        if path.suffix == ".h5":
            found[path.name] = {read_posterior(path).provenance["compute"]["device"]}
        elif path.suffix == ".csv":
            found[path.name] = set(pd.read_csv(path)["device"].astype(str).str.split(" ").str[0])
    return found


def check_devices(setup: str, runs: list, want: str) -> Check:
    """Every GPU job logged that it computed on ``want`` and every artifact it wrote records it."""
    gpu_runs = [r for r in runs if r.command in gp.GPU_COMMANDS]
    wrong = [f"{r.name} computed on {sorted(r.devices)}" for r in gpu_runs if r.devices != {want}]
    recorded = artifact_devices(p for r in gpu_runs for p in r.outputs)
    wrong += [f"{name} records {sorted(d)}" for name, d in recorded.items() if d != {want}]
    return Check(f"{setup}: every GPU job on {want}", not wrong, "; ".join(wrong)[:700] or
                 f"{len(gpu_runs)} jobs logged {want}; {len(recorded)} artifacts record it")


def check_memory(setup: str, runs: list, memory_mb: float, device: str) -> Check:
    """Evaluation jobs' peak GPU memory (torch.cuda.max_memory_allocated) within compute.memory_mb."""
    evals = [r for r in runs if r.command in gp.EVALUATION_COMMANDS]
    name = f"{setup}: evaluation peak GPU memory within compute.memory_mb"
    if device != "cuda":
        return Check(name, True, f"not measured on the CPU ({len(evals)} evaluation jobs ran)")
    missing = [r.name for r in evals if r.peak_mb is None]
    over = [f"{r.name} {r.peak_mb:.0f} MiB" for r in evals if r.peak_mb is not None and r.peak_mb > memory_mb]
    peak = max((r.peak_mb for r in evals if r.peak_mb is not None), default=0.0)
    return Check(name, not (missing or over),
                 "; ".join(filter(None, [f"over {memory_mb:.0f} MiB: {', '.join(over)}" if over else "",
                                         f"no peak logged: {', '.join(missing)}" if missing else ""]))
                 or f"largest {peak:.0f} MiB of {memory_mb:.0f}")


def compare_tables(a_path: Path, b_path: Path, atol: float, rtol: float) -> tuple[float, list[str]]:
    """(largest |difference| of the numeric columns, problems): tables of the same inputs on two devices."""
    import pandas as pd

    a, b = pd.read_csv(a_path), pd.read_csv(b_path)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return float("inf"), [f"{a_path.name}: other shape {a.shape} vs {b.shape}"]
    worst, problems = 0.0, []
    for col in a.columns:
        if col == "device":
            continue
        if pd.api.types.is_numeric_dtype(a[col]) and pd.api.types.is_numeric_dtype(b[col]):
            x, y = a[col].to_numpy(float), b[col].to_numpy(float)
            both = ~(np.isnan(x) & np.isnan(y))
            diff = np.abs(x - y)[both]
            worst = max(worst, float(np.nanmax(diff, initial=0.0)))
            if not np.allclose(x[both], y[both], atol=atol, rtol=rtol):
                problems.append(f"{a_path.name}[{col}] differs by {float(np.nanmax(diff)):.3g}")
        elif not a[col].astype(str).equals(b[col].astype(str)):
            problems.append(f"{a_path.name}[{col}] differs")
    return worst, problems


def check_cross_evaluation(setup: str, ours: dict, reference: dict) -> Check:
    """Evaluation jobs of the same artifacts on two devices: their tables, key by key."""
    worst, problems = 0.0, [f"{key}: no CPU table" for key in ours if key not in reference]
    for key in (k for k in ours if k in reference):
        w, p = compare_tables(ours[key], reference[key], **EVALUATION_TOLERANCE)
        worst, problems = max(worst, w), problems + p
    if not ours:
        problems.append("no table to compare")
    return Check(f"{setup}: evaluation of the same artifacts agrees with the CPU", not problems,
                 "; ".join(problems)[:700] or f"{len(ours)} tables; largest difference {worst:.2g} "
                 f"(tolerance {EVALUATION_TOLERANCE['atol']} + {EVALUATION_TOLERANCE['rtol']} x |value|)")


def check_training(setup: str, ours: dict, reference: dict) -> Check:
    """Trained posteriors' test NLL and error, and the NoT job's numbers, on the device and the CPU."""
    import pandas as pd

    from workflow.storage.artifacts import read_posterior

    diffs, problems = {k: 0.0 for k in TRAINING_TOLERANCE}, []
    keys = [k for k in ours if k.startswith("posterior ") and not k.startswith("posterior hmc") and k in reference]
    for key in keys:
        a, b = read_posterior(ours[key]).diagnostic_attrs, read_posterior(reference[key]).diagnostic_attrs
        for metric, (atol, rtol) in TRAINING_TOLERANCE.items():
            d = abs(float(a[metric]) - float(b[metric]))
            diffs[metric] = max(diffs[metric], d)
            if d > atol + rtol * abs(float(b[metric])):
                problems.append(f"{key.removeprefix('posterior ')} {metric} {a[metric]:.4f} vs CPU {b[metric]:.4f}")
    if not keys:
        problems.append("no trained posterior on both devices")
    if "not-k" in ours and "not-k" in reference:
        for path in sorted(Path(ours["not-k"]).parent.glob("not-k[0-9]*.csv")):
            a, b = pd.read_csv(path), pd.read_csv(Path(reference["not-k"]).parent / path.name)
            if (a["not_planted"] != b["not_planted"]).any():
                problems.append(f"{path.name}: planted NoT differs (same seed)")
            for col, metric in (("loss_barrier_aligned", "test_nll"), ("error", "test_error")):
                atol, rtol = TRAINING_TOLERANCE[metric]
                d = float(np.abs(a[col] - b[col]).max())
                if d > atol + rtol * float(np.abs(b[col]).max()):
                    problems.append(f"{path.name} {col} differs by {d:.3f}")
    largest = ", ".join(f"{k} {v:.4f}" for k, v in diffs.items())
    return Check(f"{setup}: trained posteriors agree with the CPU's", not problems, "; ".join(problems)[:700] or
                 f"{len(keys)} posteriors within (atol, rtol) {TRAINING_TOLERANCE} (largest differences: {largest}); "
                 "the NoT job's planted NoT, barrier and error too")


def draw_log_likelihoods(path: Path, data: dict) -> np.ndarray:
    """[chains, draws]: the mean test log p(y|x, w) of each draw of a sample posterior (on the CPU)."""
    from workflow.evaluation.predict import sample_label_log_probs
    from workflow.storage.artifacts import read_posterior

    post = read_posterior(path)
    model, _ = post.build_model()
    x, y = data["x_test"], data["y_test"]
    return np.stack([sample_label_log_probs(model, {k: v[c] for k, v in post.samples.items()}, x, y).mean(1).numpy()
                     for c in range(next(iter(post.samples.values())).shape[0])])


def check_hmc_statistically(setup: str, ours: dict, reference: dict, data_path: Path) -> Check:
    """HMC on two devices: each seed's chain follows one law on both, but not the same draws. Per
    seed, two statistics of the kept draws, the potential energy U and the mean test log-likelihood,
    each chain's mean on the two devices against the standard error of their difference (each
    chain's sd / sqrt(its ESS)); the acceptance rates beside them."""
    from workflow.evaluation.mcmc_diagnostics import ess_bulk
    from workflow.storage.artifacts import read_posterior
    from workflow.storage.prepared import load_prepared

    data = load_prepared(data_path)
    keys = sorted(k for k in ours if k.startswith("posterior hmc") and k in reference)
    if not keys:
        return Check(f"{setup}: HMC agrees with the CPU's statistically", False, "no HMC chain on both devices")

    def mean_and_se(series: np.ndarray) -> tuple[float, float]:
        ess = float(ess_bulk(series[None]))
        return float(series.mean()), float(series.std(ddof=1)) / np.sqrt(max(ess, 1.0))

    worst, details = 0.0, []
    for key in keys:
        posts = [read_posterior(p) for p in (ours[key], reference[key])]
        stats = {"U": [mean_and_se(np.asarray(p.diagnostics["energy"], dtype=float).ravel()) for p in posts],
                 "test log-lik": [mean_and_se(draw_log_likelihoods(p, data)[0]) for p in (ours[key], reference[key])]}
        accept = [float(p.diagnostic_attrs["acceptance_rate"]) for p in posts]
        parts = []
        for name, ((m1, se1), (m2, se2)) in stats.items():
            z = abs(m1 - m2) / max(np.hypot(se1, se2), 1e-12)
            worst = max(worst, z)
            parts.append(f"{name} {m1:.4g} vs {m2:.4g} (z {z:.2f})")
        details.append(f"{key.removeprefix('posterior hmc ')}: {', '.join(parts)}, acceptance {accept[0]:.2f} vs "
                       f"{accept[1]:.2f}")
    return Check(f"{setup}: HMC agrees with the CPU's statistically", worst <= HMC_Z_MAX,
                 f"device vs CPU, {'; '.join(details)} (limit z {HMC_Z_MAX})")


def check_mixed_precision(setup: str, out: dict, mixed: str) -> Check:
    """Every posterior records the run's compute.mixed_precision, and trained to a finite loss."""
    from workflow.storage.artifacts import read_posterior

    problems, nll = [], []
    for key, path in out.items():
        if key.startswith("posterior "):
            post = read_posterior(path)
            if post.provenance["compute"].get("mixed_precision") != mixed:
                problems.append(f"{key} records {post.provenance['compute'].get('mixed_precision')!r}")
            nll.append(float(post.diagnostic_attrs["test_nll"]))
            if not np.isfinite(nll[-1]):
                problems.append(f"{key}: test NLL {nll[-1]}")
    if not nll:
        problems.append("no posterior was trained")
    return Check(f"{setup}: compute.mixed_precision {mixed} recorded, finite results", not problems,
                 "; ".join(problems) or f"{len(nll)} posteriors; test NLL {min(nll):.3f} to {max(nll):.3f}")


def same_posterior(a_path: Path, b_path: Path) -> str:
    """'' when both posteriors hold the same arrays bit for bit, else the first difference."""
    from workflow.storage.artifacts import read_posterior

    a, b = read_posterior(a_path), read_posterior(b_path)
    for block in ("samples", "mean", "std", "diagnostics"):
        da, db = getattr(a, block) or {}, getattr(b, block) or {}
        if sorted(da) != sorted(db):
            return f"{block}: other arrays ({sorted(da)} vs {sorted(db)})"
        for k in da:
            if not np.array_equal(np.asarray(da[k]), np.asarray(db[k]), equal_nan=True):
                diff = np.nanmax(np.abs(np.asarray(da[k], dtype=float) - np.asarray(db[k], dtype=float)))
                return f"{block}[{k}] differs (max |diff| {diff:.3g})"
    return ""
