"""Stage train: one posterior per (method, seed), through the method registry."""

from __future__ import annotations

import logging
from pathlib import Path

from ..storage import artifacts
from .. import methods
from ..config import model_args
from ..device import use_device
from ..storage.prepared import load_prepared
from .inputs import read_posterior

log = logging.getLogger(__name__)


def train_posterior(method: str, data_path, seed: int, cfg: dict, out, *, checkpoint=None, device: str = "auto",
                    base_path=None) -> None:
    """Fit one posterior with the method's ``fit`` and record train / test NLL and error of its predictive.

    ``base_path``: the posterior this method is fitted around (its FITTED_AROUND method, same seed)."""
    train_posteriors(method, data_path, [seed], cfg, [out], checkpoint=checkpoint, device=device,
                     base_paths=[base_path] if base_path else None)


def train_posteriors(method: str, data_path, seeds: list[int], cfg: dict, outs: list, *, checkpoint=None,
                     device: str = "auto", base_paths=None) -> None:
    """Fit one posterior per seed, in one job: with ``fit`` for one seed, with the method's
    ``fit_together`` for several (the same posteriors, fitted as one batch), and record each one's
    train / test NLL and error. ``base_paths``: per seed, the posterior it is fitted around."""
    from ..evaluation.predict import marginal_loss_error

    seeds = [int(s) for s in seeds]
    if len(outs) != len(seeds) or not seeds:
        raise ValueError(f"one output per seed: got {len(outs)} outputs for seeds {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the seeds of one job must differ, got {seeds}")
    mod = methods.load(method)
    if len(seeds) > 1 and not methods.fits_together(method):
        raise ValueError(f"method {method!r} fits one seed per job, got seeds {seeds}; methods that fit several: "
                         f"{', '.join(m for m in methods.names() if methods.fits_together(m)) or 'none'}")
    around = getattr(mod, "FITTED_AROUND", None)
    if base_paths and len(base_paths) != len(seeds):
        raise ValueError(f"one base posterior per seed: got {len(base_paths)} for seeds {seeds}")
    if around and not base_paths:
        raise ValueError(f"method {method!r} is fitted around a {around} posterior of the same seed: pass --base")
    data = load_prepared(data_path)
    dev = use_device(device)
    requests = []
    for i, seed in enumerate(seeds):
        base = read_posterior(base_paths[i], seed=seed, data=data) if base_paths else None
        requests.append(methods.FitRequest(method=method, architecture=cfg["model"]["architecture"],
                                           architecture_args=model_args(cfg), data=data, seed=seed, config=cfg,
                                           device=dev, checkpoint=checkpoint, base=base))
    posts = mod.fit_together(requests) if len(seeds) > 1 else [mod.fit(requests[0])]
    for post, seed, out in zip(posts, seeds, outs):
        if post.kind != mod.KIND:
            raise ValueError(f"method {method!r} declares kind {mod.KIND!r} but its fit returned {post.kind!r}")
        model, _ = post.build_model()
        model.to(dev)
        n_mc = cfg[method]["eval_samples"] if post.kind == "gaussian" else 0  # every Gaussian method declares it
        metrics = {}
        for split in ("train", "test"):
            nll, err = marginal_loss_error(model, post.sample_source(n_mc, seed), data[f"x_{split}"].to(dev),
                                           data[f"y_{split}"].to(dev), memory_mb=cfg["compute"]["memory_mb"])
            metrics.update({f"{split}_nll": nll, f"{split}_error": err})
        log.info("%s seed %d: train NLL %.4f err %.4f | test NLL %.4f err %.4f", method, seed, metrics["train_nll"],
                 metrics["train_error"], metrics["test_nll"], metrics["test_error"])
        post.diagnostic_attrs = {**post.diagnostic_attrs, **metrics, "device": str(dev)}
        artifacts.write_posterior(out, post)
    if checkpoint and Path(checkpoint).exists():
        Path(checkpoint).unlink()  # the artifacts supersede it
