"""Full-batch HMC: one chain per seed (leapfrog, Metropolis correction, dual-averaging warm-up);
``chains_per_job`` seeds' chains may run in one job, advanced together (the same draws)."""

from __future__ import annotations

KIND = "samples"
LABEL = "HMC"
DESCRIPTION = "full-batch Hamiltonian Monte Carlo, one chain per seed; the reference predictive of Table 1"
REFERENCE = True
MARKOV_CHAIN = True
SEED_LIMIT_KEY = "chains"
SETTINGS = {
    "step_size": {"type": "number", "exclusiveMinimum": 0, "default": 0.001, "description": "initial leapfrog step size"},
    "n_leapfrog": {"type": "integer", "minimum": 1, "default": 100, "description": "leapfrog steps per proposal"},
    "n_warmup": {"type": "integer", "minimum": 0, "default": 100,
                 "description": "iterations of step-size adaptation (dual averaging); never kept"},
    "n_samples": {"type": "integer", "minimum": 1, "default": 100, "description": "samples kept per chain after warm-up"},
    "thinning": {"type": "integer", "minimum": 1, "default": 1, "description": "keep every k-th post-warm-up iteration"},
    "target_accept": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.8,
                      "description": "acceptance rate the warm-up aims for"},
    "adapt_step_size": {"type": "boolean", "default": True, "description": "adapt the step size during warm-up"},
    "mass_matrix": {"enum": ["identity", "diagonal", "ggn"], "default": "identity",
                    "description": "diagonal: a diagonal mass matrix (the posterior's variances, estimated from the "
                                   "draws) adapted in warm-up in Stan's windows, the step size adapted afresh after "
                                   "each; ggn: the same windows, the metric the diagonal Laplace variance at the "
                                   "chain's position, 1 / (diag GGN of the NLL + 1 / prior std^2), taken at each "
                                   "window's start and end; both need n_warmup >= 20"},
    "data_chunk": {"type": ["integer", "null"], "minimum": 1, "default": 2048,
                   "description": "examples per pass of the full-batch potential and gradient (summed over chunks: "
                                  "memory stays bounded; null = all at once). A different chunk sums in another order, "
                                  "so the chain differs at the rounding level"},
    "checkpoint_every": {"type": "integer", "minimum": 0, "default": 50,
                         "description": "iterations between resume checkpoints (0 = none)"},
    "chains_per_job": {"type": "integer", "minimum": 1, "default": 1,
                       "description": "chains (seeds) advanced together in one job as one batch: one trajectory loop "
                                      "and one host sync per iteration for all of them. Every chain's draws are the "
                                      "same, bit for bit on one machine, whatever the grouping; more than 1 pays where "
                                      "one chain of a small network leaves the device idle (a GPU), not where jobs "
                                      "already fill the CPU cores"},
    "chains": {"type": ["integer", "null"], "minimum": 1, "default": None,
               "description": "run HMC chains on the first this-many seeds only (null = one chain per seed); "
                              "HMC is the costly method"},
}
RUNTIME_KEYS = ("checkpoint_every", "chains_per_job")


NOT_SETTINGS = ("chains", "data_chunk", "chains_per_job")  # of the job, not of one chain's sampler


def fit(request):
    return fit_together([request])[0]


def fit_together(requests):
    """One chain per request (same data and settings, different seeds), advanced together."""
    from ..inference.hmc_sampler import HmcSettings
    from ..inference.hmc_bnn import sample_bnn_chains

    first = requests[0]
    if any(r.config != first.config or r.data is not first.data for r in requests[1:]):
        raise ValueError("chains advanced together must share their data and config; only the seeds differ")
    model, _ = first.build_model()
    settings = HmcSettings(**{k: v for k, v in first.settings.items() if k not in NOT_SETTINGS})
    chains = sample_bnn_chains(model, first.data["x_train"], first.data["y_train"], settings,
                               prior_std=first.prior_std, seeds=[r.seed for r in requests], device=first.device,
                               checkpoint=first.checkpoint, identity=first.identity(),
                               data_chunk=first.settings.get("data_chunk"))
    out = []
    for request, (draws, result) in zip(requests, chains):
        diagnostics = {"energy": result.energy, "accepted": result.accepted}
        if result.inv_mass is not None:
            diagnostics["inv_mass"] = result.inv_mass.astype("float32")  # the adapted metric, flat parameter order
        post = request.posterior("samples", samples={k: v[None] for k, v in draws.items()},  # [chain=1, draw, ...]
                                 diagnostics=diagnostics)
        post.diagnostic_attrs = {"acceptance_rate": result.acceptance_rate, "divergences": result.divergences,
                                 "step_size": result.step_size, "resumed_from": result.resumed_from}
        out.append(post)
    return out
