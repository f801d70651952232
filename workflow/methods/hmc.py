"""Full-batch HMC: one chain per seed (leapfrog, Metropolis correction, dual-averaging warm-up)."""

from __future__ import annotations

KIND = "samples"
LABEL = "HMC"
DESCRIPTION = "full-batch Hamiltonian Monte Carlo, one chain per seed; the reference predictive of Table 1"
REFERENCE = True
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
    "mass_matrix": {"enum": ["identity", "diagonal"], "default": "identity",
                    "description": "diagonal: a diagonal mass matrix (the posterior's variances) adapted in warm-up "
                                   "in Stan's windows, the step size adapted afresh after each; needs n_warmup >= 20"},
    "data_chunk": {"type": ["integer", "null"], "minimum": 1, "default": 2048,
                   "description": "examples per pass of the full-batch potential and gradient (summed over chunks: "
                                  "memory stays bounded; null = all at once). A different chunk sums in another order, "
                                  "so the chain differs at the rounding level"},
    "checkpoint_every": {"type": "integer", "minimum": 0, "default": 50,
                         "description": "iterations between resume checkpoints (0 = none)"},
    "chains": {"type": ["integer", "null"], "minimum": 1, "default": None,
               "description": "run HMC chains on the first this-many seeds only (null = one chain per seed); "
                              "HMC is the costly method"},
}
RUNTIME_KEYS = ("checkpoint_every",)


def fit(request):
    from ..hmc import HmcSettings
    from ..hmc_bnn import sample_bnn

    model, _ = request.build_model()
    settings = {k: v for k, v in request.settings.items() if k not in ("chains", "data_chunk")}
    draws, result = sample_bnn(model, request.data["x_train"], request.data["y_train"], HmcSettings(**settings),
                               prior_std=request.prior_std, seed=request.seed, device=request.device,
                               checkpoint=request.checkpoint, identity=request.identity(),
                               data_chunk=request.settings.get("data_chunk"))
    diagnostics = {"energy": result.energy, "accepted": result.accepted}
    if result.inv_mass is not None:
        diagnostics["inv_mass"] = result.inv_mass.astype("float32")  # the adapted metric, flat parameter order
    post = request.posterior("samples", samples={k: v[None] for k, v in draws.items()},  # [chain=1, draw, ...]
                             diagnostics=diagnostics)
    post.diagnostic_attrs = {"acceptance_rate": result.acceptance_rate, "divergences": result.divergences,
                             "step_size": result.step_size, "resumed_from": result.resumed_from}
    return post
