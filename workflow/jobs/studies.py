"""Stage studies: the weight-space studies of Xiao et al. (2023), one function per job.

- ``basin_job``: Gaussians of other methods (every other sample method's q_r, every Gaussian
  method's posteriors) aligned into the basin of the reference method's q_r by the W2 alignment,
  with distances and correlations of the means and standard deviations before and after.
- ``sigma_histogram_job``: histograms of the standard deviations of q_d, q_r and every Gaussian method.
- ``pruning_job``: accuracy of the mean network against the fraction of weights kept, keeping
  the lowest sigma; "merged" prunes another method's mean (in the reference's basin) by the
  reference's sigma.
- ``not_k_job``: one network trained from its seed's initial weights permuted by k random
  transpositions, compared with the unpermuted member: NoT found, distance and barrier.
- ``not_path_job``: NoT from every point of the path between two solutions to each endpoint,
  before and after alignment.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..storage import artifacts
from ..evaluation import barriers
from .. import methods
from ..storage.artifacts import Alignment, ArtifactError, l2_distance, w2_distance
from ..storage.atomic import write_csv
from ..device import device_label, use_device
from ..alignment.permutations import (apply_permutation, compose, induced_permutation, number_of_transpositions,
                            random_transpositions)
from ..storage.prepared import load_prepared
from .inputs import read_posterior
from .rebasin import fit_label, parse_fit_key

log = logging.getLogger(__name__)


def _flat(params) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in params.values()])


def _corr(a, b) -> float:
    a, b = _flat(a), _flat(b)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _read_gaussian(path, data=None):
    return read_posterior(path, data=data, kind="gaussian", what="this study (a rebasin fit or a Gaussian method)")


# ---------------------------------------------------------------- other methods in the reference's basin


def basin_job(reference_path, sources: dict, out_alignments: dict, out_csv, *, variant: str = "base",
              max_sweeps: int = 100) -> None:
    """Align every Gaussian in ``sources`` (label -> path) into the basin of the reference method's q_r
    (``reference_path``) by W2 alignment (means and standard deviations share the permutation); write one
    alignment file per label (``out_alignments``) and a table of W2 distances and correlations before and after."""
    from .align import align

    if set(sources) != set(out_alignments):
        raise ValueError(f"sources and outputs name different labels: {sorted(set(sources) ^ set(out_alignments))}")
    ref = _read_gaussian(reference_path)
    rows = []
    for label, path in sorted(sources.items()):
        src = _read_gaussian(path)
        ref.check_compatible(src, f"aligning {path} into the basin of {reference_path}")
        result, aligned = align(ref, src, "w2", seed=src.seed, max_sweeps=max_sweeps)
        before = w2_distance(ref.mean, ref.std, src.mean, src.std)
        after = w2_distance(ref.mean, ref.std, aligned.mean, aligned.std)
        al = Alignment(alignment="w2", method=src.method, seed_a=ref.seed, seed_b=src.seed, perms=result.perms,
                       objective_trace=np.asarray(result.objective_trace), aligned=aligned,
                       source_a=str(reference_path), source_b=str(path), sweeps=result.sweeps,
                       converged=result.converged, distance_kind="w2", distance_before=before, distance_after=after)
        artifacts.write_alignment(out_alignments[label], al)
        rows.append({"variant": variant, "source": label, "method": src.method, "seed": src.seed,
                     "reference_method": ref.method, "w2_before": before, "w2_after": after,
                     "not_total": sum(al.not_per_group.values()),
                     "units_total": sum(len(p) for p in result.perms.values()),
                     "mean_corr_before": _corr(ref.mean, src.mean), "mean_corr_after": _corr(ref.mean, aligned.mean),
                     "std_corr_before": _corr(ref.std, src.std), "std_corr_after": _corr(ref.std, aligned.std)})
        log.info("%s into %s's basin: W2 %.4g -> %.4g, NoT %d; corr of sigma %.3f -> %.3f", label, ref.method,
                 before, after, rows[-1]["not_total"], rows[-1]["std_corr_before"], rows[-1]["std_corr_after"])
    write_csv(out_csv, pd.DataFrame(rows))


# ---------------------------------------------------------------- sigma histograms


def sigma_histogram_job(rebasin_paths: dict, gaussian_paths: dict, out_csv, *, variant: str = "base",
                        bins: int = 50) -> None:
    """Histograms of sigma (log-spaced bins shared by all fits) of every q_d and q_r, and of every Gaussian
    method's q (``gaussian_paths``: method -> its posteriors, seeds pooled); tidy: one row per (label, bin),
    with each label's median and 10th / 90th percentile of sigma, and for a method that records them
    (VI) its sigma_init, the KL's share of its objective and its test error (means over seeds)."""
    stds = {}
    for key, path in sorted(rebasin_paths.items()):
        method, matching, reference, fit = parse_fit_key(key)
        label = fit_label(method, fit, reference, matching)
        if label not in stds:  # q_d depends on neither the matching nor the reference
            q_r = fit == "q_r"
            stds[label] = (method, fit, matching if q_r else "", reference if q_r else "",
                           _flat(_read_gaussian(path).std))
    learned = {}  # label -> what the method records of its own training (VI: sigma_init, KL share)
    for method, paths in gaussian_paths.items():
        if paths:
            posts = [_read_gaussian(p) for p in paths]
            label = f"{methods.label(method)} q"
            stds[label] = (method, "q", "", "", np.concatenate([_flat(p.std) for p in posts]))
            learned[label] = {k: float(np.mean([p.diagnostic_attrs.get(k, np.nan) for p in posts]))
                              for k in ("sigma_init", "kl_share", "test_error")}
    if not stds:
        raise ValueError("sigma histograms need at least one rebasin fit or Gaussian posterior")
    positive = np.concatenate([s[s > 0] for *_, s in stds.values()])
    if positive.size == 0:
        raise ValueError("every sigma is zero: nothing to histogram")
    # from the 0.1st percentile up: a few near-zero sigmas would stretch the log axis; they count in the first bin
    low, high = np.percentile(positive, 0.1), positive.max()
    edges = np.logspace(np.log10(low), np.log10(high if high > low else low * 10), bins + 1)
    rows = []
    for label, (method, fit, matching, reference, s) in stds.items():
        counts, _ = np.histogram(np.clip(s[s > 0], edges[0], edges[-1]), bins=edges)
        zeros = int(np.sum(s <= 0))
        q10, q90 = np.percentile(s, [10, 90])
        extra = {"sigma_q10": float(q10), "sigma_q90": float(q90),
                 **learned.get(label, {"sigma_init": np.nan, "kl_share": np.nan, "test_error": np.nan})}
        for lo, hi, c in zip(edges[:-1], edges[1:], counts):
            rows.append({"variant": variant, "label": label, "method": method, "fit": fit, "matching": matching,
                         "reference": reference,
                         "bin_left": lo, "bin_right": hi, "count": int(c), "fraction": c / s.size,
                         "median_sigma": float(np.median(s)), "zero_sigma": zeros, "n": int(s.size), **extra})
    write_csv(out_csv, pd.DataFrame(rows))


# ---------------------------------------------------------------- pruning by sigma


def pruning_job(rebasin_paths: dict, gaussian_paths: dict, merged: list, data_path, out_csv, *, fractions,
                variant: str = "base", device: str = "auto", memory_mb: float = 1024) -> None:
    """Test accuracy and NLL of the mean network of every q_r, q_d and Gaussian method's q (its first
    seed: ``gaussian_paths`` method -> path), keeping the given fractions of its parameters with the
    lowest sigma. ``merged``: pairs (reference q_r path, alignment file of another method's q_r in the
    reference's basin), each adding that mean pruned by the reference's sigma, and the same mean pruned
    by magnitude (keeping the largest |mu|) as a baseline."""
    from ..evaluation import bootstrap
    from ..evaluation.predict import loss_error, sample_log_probs
    from ..evaluation.pruning import pruned_stack

    fractions = sorted({float(f) for f in fractions}, reverse=True)
    data = load_prepared(data_path)
    dev = use_device(device)
    curves = {}  # label -> (posterior it comes from, mean, score, criterion)
    for key, path in sorted(rebasin_paths.items()):
        method, matching, reference, fit = parse_fit_key(key)
        post = _read_gaussian(path)  # the rebasin job checked its samples' data
        curves.setdefault(fit_label(method, fit, reference, matching), (post, post.mean, post.std, "sigma"))
    for method, path in gaussian_paths.items():
        post = _read_gaussian(path, data)
        curves[f"{methods.label(method)} q (seed {post.seed})"] = (post, post.mean, post.std, "sigma")
    for ref_path, basin_path in merged:
        ref = _read_gaussian(ref_path)
        other = artifacts.read_alignment(basin_path).aligned
        ref.check_compatible(other, f"merging {basin_path} with {ref_path}")
        name, ref_name = methods.label(other.method), methods.label(ref.method)
        curves[f"merged: {name} mean + {ref_name} sigma"] = (other, other.mean, ref.std, "sigma")
        curves[f"{name} mean by magnitude"] = (other, other.mean, {k: -np.abs(v) for k, v in other.mean.items()},
                                               "|mu|")
    if not curves:
        raise ValueError("pruning needs at least one rebasin fit or Gaussian posterior")
    first = next(iter(curves.values()))[0]
    model, _ = first.build_model()
    model.to(dev)
    x, y = data["x_test"].to(dev), data["y_test"].to(dev)
    rows = []
    for label, (_, mean, score, criterion) in curves.items():
        # every pruned copy is a network of its own: one batched pass, then loss and error per copy
        logp = sample_log_probs(model, pruned_stack(mean, score, fractions), x, memory_mb=memory_mb)
        correct = (logp.argmax(-1) == y).cpu().numpy()  # [fractions, N]
        for i, (f, logp_f) in enumerate(zip(fractions, logp)):
            nll, err = loss_error(logp_f, y)
            # the points lost against keeping every weight (the first fraction is the largest), paired over test points
            low, high = bootstrap.paired_drop_interval(correct[0], correct[i], seed=0)
            rows.append({"variant": variant, "label": label, "criterion": criterion, "fraction_retained": f,
                         "test_accuracy": 1.0 - err, "test_nll": nll, "accuracy_drop_low": low,
                         "accuracy_drop_high": high, "device": device_label()})
        log.info("pruning %s: accuracy %.4f kept all, %.4f at %.2f", label, rows[-len(fractions)]["test_accuracy"],
                 rows[-1]["test_accuracy"], fractions[-1])
    write_csv(out_csv, pd.DataFrame(rows))


# ---------------------------------------------------------------- NoT studies


def _barrier(model, a, b, x, y, ts, memory_mb) -> tuple[float, float]:
    curve = barriers.linear_path(model, a, b, x, y, ts, memory_mb=memory_mb)
    return barriers.barrier_height(curve["t"], curve["loss"]), barriers.barrier_height(curve["t"], curve["error"])


def xiao_config(cfg: dict, method: str) -> dict:
    """The config of the NoT study's runs in Xiao et al.'s setting: plain SGD, no prior."""
    out = copy.deepcopy(cfg)
    out[method] = {**cfg[method], "optimizer": "sgd", "momentum": 0.0, "lr": cfg["not_study"]["sgd_lr"]}
    out["prior"] = {**cfg["prior"], "std": None}
    return out


def live_units(acts: dict) -> dict[str, np.ndarray]:
    """Per group, the units that matter: those whose activation varies over the data (a unit the data
    never reach, a dead ReLU, is constant and interchangeable with any other such unit)."""
    out = {}
    for g, a in acts.items():
        std = a.std(0)
        out[g] = std > 1e-8 * max(float(std.max()), 1e-300)
    return out


def _not_live(perms: dict, live: dict | None) -> int | float:
    if live is None:
        return np.nan
    return sum(number_of_transpositions(induced_permutation(perms[g], live[g])) for g in perms)


def _fit_for_not_study(member, data, seed: int, cfg: dict, dev, *, checkpoint, init_permutation, data_seed,
                       extra_identity):
    request = methods.FitRequest(
        method=member.method, architecture=member.architecture, architecture_args=member.architecture_args, data=data,
        seed=seed, config=cfg, device=dev, checkpoint=checkpoint, init_permutation=init_permutation,
        data_seed=data_seed, extra_identity=extra_identity)
    result = methods.load(member.method).fit(request)
    if checkpoint and Path(checkpoint).exists():
        Path(checkpoint).unlink()  # the result supersedes it
    return result.representative()


def xiao_baseline(seed: int, member_path, data_path, cfg: dict, *, device: str = "auto", checkpoint=None) -> dict:
    """The unpermuted run of Xiao et al.'s setting for seed ``seed``: the member's initialisation and
    minibatch order, trained with plain SGD and no prior."""
    data = load_prepared(data_path)
    member = read_posterior(member_path, seed=seed, data=data)
    return _fit_for_not_study(member, data, seed, xiao_config(cfg, member.method), use_device(device),
                              checkpoint=checkpoint, init_permutation=None, data_seed=None,
                              extra_identity={"not_k": "xiao baseline"})


def not_k_job(k: int, seed: int, member_path, data_path, cfg: dict, out_csv, *, variant: str = "base",
              device: str = "auto", checkpoint=None, baseline: dict | None = None) -> None:
    """Train from seed ``seed``'s initial weights permuted by ``k`` random transpositions (minibatch order
    reshuffled unless not_study.data_order is 'same'), then compare with the unpermuted run: the NoT that
    matching finds, how far that is from the planted permutation, and L2 distance and loss / error
    barriers before and after alignment. Setting 'workflow': trained with the member's own method and
    compared with the member (``member_path``) by weight matching; setting 'xiao': plain SGD without a
    prior, compared with ``baseline`` (``xiao_baseline``) by activation matching. NoT is also counted over
    the units that matter only (``live_units`` of the unpermuted run), as ``*_live`` columns."""
    from .. import architectures
    from ..evaluation.predict import Stacked, marginal_loss_error

    data = load_prepared(data_path)
    member = read_posterior(member_path, seed=seed, data=data)
    if not methods.permuted_init(member.method) or member.kind != "samples":
        allowed = ", ".join(m for m in methods.names() if methods.permuted_init(m))
        raise ArtifactError(f"{member_path}: the NoT study retrains a method that starts from a permuted "
                            f"initialisation ({allowed}); found {member.method}")
    study = cfg["not_study"]
    xiao = study["setting"] == "xiao"
    if xiao and baseline is None:
        raise ValueError("not_study.setting xiao compares with the unpermuted run of that setting: pass its "
                         "parameters as baseline (xiao_baseline)")
    dev = use_device(device)
    model, spec = member.build_model()
    sizes = spec.group_sizes({n: p.detach().numpy() for n, p in model.named_parameters()})
    rng = np.random.default_rng(np.random.SeedSequence([study["seed"], seed, k]))
    planted = random_transpositions(sizes, k, rng)
    same_order = study["data_order"] == "same"
    # a checkpoint resumes only this run: the same member's settings, k, planted permutation and order
    b = _fit_for_not_study(member, data, seed, xiao_config(cfg, member.method) if xiao else cfg, dev,
                           checkpoint=checkpoint, init_permutation=(spec, planted),
                           data_seed=None if same_order else seed + 100_000,
                           extra_identity={"not_k": k, "planted": {g: p.tolist() for g, p in planted.items()},
                                           "same_order": same_order})
    a = baseline if xiao else member.representative()
    hook = architectures.hook(member.architecture, "hidden_activations")
    points = study["activation_points"]
    x_act = data["x_train"][:points] if points else data["x_train"]
    acts_a = hook(model, a, x_act) if hook is not None else None
    found = _not_study_matching(xiao, a, b, model, spec, hook, acts_a, x_act, seed, cfg, member.architecture)
    b_aligned = apply_permutation(b, spec, found)
    # planted P then found Q: the identity when matching undoes exactly the planted permutation
    residual = {g: compose(planted[g], found[g]) for g in planted}
    live = live_units(acts_a) if acts_a is not None else None
    ts = barriers.t_grid(cfg["barrier"]["n_points"])
    split = cfg["barrier"]["split"]
    budget = cfg["compute"]["memory_mb"]
    model.to(dev)
    x, y = data[f"x_{split}"].to(dev), data[f"y_{split}"].to(dev)

    def stack(p):
        return {k_: np.asarray(v)[None] for k_, v in p.items()}

    naive_loss, naive_err = _barrier(model, stack(a), stack(b), x, y, ts, budget)
    aligned_loss, aligned_err = _barrier(model, stack(a), stack(b_aligned), x, y, ts, budget)
    _, err_b = marginal_loss_error(model, Stacked(stack(b)), x, y, memory_mb=budget)
    row = {"variant": variant, "k": k, "seed": seed, "data_order": "same" if same_order else "reshuffled",
           "setting": study["setting"], "matching": "activation" if xiao else "weight", "split": split,
           "not_planted": sum(number_of_transpositions(p) for p in planted.values()),
           "not_found": sum(number_of_transpositions(p) for p in found.values()),
           "not_residual": sum(number_of_transpositions(p) for p in residual.values()),
           "units_total": sum(sizes.values()),
           "units_live": sum(int(m.sum()) for m in live.values()) if live is not None else np.nan,
           "not_planted_live": _not_live(planted, live), "not_found_live": _not_live(found, live),
           "not_residual_live": _not_live(residual, live), "l2_naive": l2_distance(a, b), "l2_aligned": l2_distance(a, b_aligned),
           "loss_barrier_naive": naive_loss, "loss_barrier_aligned": aligned_loss,
           "error_barrier_naive": naive_err, "error_barrier_aligned": aligned_err, "error": err_b,
           "device": device_label()}
    log.info("k=%d seed %d (%s setting): NoT planted %d, found %d, residual %d (units that matter: %s of %d, residual "
             "%s); loss barrier %.4f -> %.4f", k, seed, study["setting"], row["not_planted"], row["not_found"],
             row["not_residual"], row["units_live"], row["units_total"], row["not_residual_live"], naive_loss,
             aligned_loss)
    write_csv(out_csv, pd.DataFrame([row]))


def _not_study_matching(xiao: bool, a, b, model, spec, hook, acts_a, x_act, seed: int, cfg: dict,
                        architecture: str) -> dict:
    """The permutation of B onto A: Xiao et al.'s activation matching, or the workflow's weight matching."""
    if xiao:
        from ..alignment.rebasing import activation_matching

        if hook is None:
            raise ValueError(f"not_study.setting xiao matches by activations, which architecture {architecture!r} "
                             "does not provide (no hidden_activations hook); use setting workflow")
        return activation_matching(acts_a, hook(model, b, x_act), cost="inner")
    from ..alignment.matching import weight_matching

    return weight_matching(a, b, spec, seed=seed, max_sweeps=cfg["alignment"]["max_sweeps"],
                           restarts=cfg["alignment"].get("restarts", 1)).perms


def not_k_jobs(ks, seed: int, member_path, data_path, cfg: dict, outs, *, variant: str = "base",
               device: str = "auto", checkpoint=None) -> None:
    """``not_k_job`` for each k of one seed in one job (one torch start instead of one per k), into
    one output per k, in order. ``checkpoint`` (a resume file) gains a ``-k<k>`` suffix per k."""
    ckpt = Path(checkpoint) if checkpoint else None
    ks = [int(k) for k in ks]
    if len(outs) != len(ks) or not ks:
        raise ValueError(f"one output per k: got {len(outs)} outputs for ks {ks}")
    if len(set(ks)) != len(ks):
        raise ValueError(f"the ks of one job must differ, got {ks}")
    baseline = None
    if cfg["not_study"]["setting"] == "xiao":  # one unpermuted run of the setting serves every k
        baseline = xiao_baseline(seed, member_path, data_path, cfg, device=device,
                                 checkpoint=ckpt.with_name(f"{ckpt.stem}-base{ckpt.suffix}") if ckpt else None)
    for k, out in zip(ks, outs):
        not_k_job(k, seed, member_path, data_path, cfg, out, variant=variant, device=device,
                  checkpoint=ckpt.with_name(f"{ckpt.stem}-k{k}{ckpt.suffix}") if ckpt else None, baseline=baseline)


def not_path_job(method: str, pairs, out_csv, *, n_points: int = 21, variant: str = "base",
                 max_sweeps: int = 100) -> None:
    """For each pair (path A, path B, alignment file of B into A's basin), the NoT weight matching finds
    from every point w_t = (1 - t) A + t B of the path to A and to B, on the naive path and on the path
    to B aligned. Posteriors stand in by their representative (mean of the samples, or the Gaussian's mean)."""
    from ..alignment.matching import weight_matching

    ts = barriers.t_grid(n_points)
    rows = []
    for path_a, path_b, path_al in pairs:
        a, b = artifacts.read_posterior(path_a), artifacts.read_posterior(path_b)
        al = artifacts.read_alignment(path_al)
        if (al.seed_a, al.seed_b) != (a.seed, b.seed):
            raise ArtifactError(f"{path_al}: aligns seed {al.seed_b} onto {al.seed_a}, not {b.seed} onto {a.seed}")
        a.check_compatible(b, f"path between {path_a} and {path_b}")
        spec = a.permutation_spec()
        ra = a.representative()
        ends = {"naive": b.representative(), al.alignment: al.aligned.representative()}
        for alignment, rb in ends.items():
            for t in ts:
                wt = {k: (1.0 - t) * np.float64(ra[k]) + t * rb[k] for k in ra}
                to_a = weight_matching(ra, wt, spec, seed=0, max_sweeps=max_sweeps).perms
                to_b = weight_matching(rb, wt, spec, seed=0, max_sweeps=max_sweeps).perms
                rows.append({"variant": variant, "method": method, "posterior_kind": a.kind,
                             "pair": f"{a.seed}-{b.seed}",
                             "alignment": alignment, "aligned": alignment != "naive", "t": float(t),
                             "not_to_a": sum(number_of_transpositions(p) for p in to_a.values()),
                             "not_to_b": sum(number_of_transpositions(p) for p in to_b.values()),
                             "units_total": sum(len(p) for p in to_a.values())})
    if not rows:
        raise ValueError(f"no pairs given for the NoT path study of {method}")
    write_csv(out_csv, pd.DataFrame(rows))


def concat_tables(paths, out_csv) -> None:
    """Many small CSVs (one per job) in one table."""
    if not paths:
        raise ValueError("nothing to concatenate: no tables given")
    write_csv(out_csv, pd.concat([pd.read_csv(p) for p in paths], ignore_index=True))
