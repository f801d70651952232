"""Mean-field Gaussian VI: q(w) = N(mu, diag sigma^2), objective E_q[NLL] + T KL(q || prior)."""

from __future__ import annotations

from ._optim import with_defaults

KIND = "gaussian"
LABEL = "VI"
DESCRIPTION = "mean-field Gaussian variational inference, one posterior per seed"
SETTINGS = {
    **with_defaults(epochs=50),
    "mc_samples": {"type": "integer", "minimum": 1, "default": 1, "description": "weight samples per training step"},
    "temperature": {"type": "number", "exclusiveMinimum": 0, "default": 1.0,
                    "description": "weight T of the KL term (T < 1 is a cold posterior)"},
    "sigma_init": {"type": "number", "exclusiveMinimum": 0, "default": 0.05,
                   "description": "initial standard deviation of q"},
    "sigma_lr_scale": {"type": "number", "exclusiveMinimum": 0, "default": 1.0,
                       "description": "learning rate of the sigma parameters (rho) as a multiple of lr: rho lives on "
                                      "a log scale, where Adam's steps of about lr take thousands of steps to move a "
                                      "sigma by a factor e, so a short run leaves every sigma near sigma_init"},
    "sigma_param": {"type": "string", "enum": ["softplus", "exp"], "default": "softplus",
                    "description": "sigma = softplus(rho) or exp(rho)"},
    "local_reparam": {"type": "boolean", "default": False,
                      "description": "sample pre-activations instead of weights (architectures with that hook: mlp)"},
    "eval_samples": {"type": "integer", "minimum": 1, "default": 100,
                     "description": "Monte Carlo samples for the accuracy reported in the artifact"},
}
RUNTIME_KEYS = ("checkpoint_every",)


def fit(request):
    from ..inference.mean_field import ViSettings, train_vi

    model, _ = request.build_model()
    settings = {k: v for k, v in request.settings.items() if k != "eval_samples"}
    mean, std, traces, resumed = train_vi(model, request.data["x_train"], request.data["y_train"],
                                          ViSettings(prior_std=request.prior_std, **settings), seed=request.seed,
                                          device=request.device, checkpoint=request.checkpoint,
                                          identity=request.identity())
    post = request.posterior("gaussian", mean=mean, std=std, diagnostics=traces)
    post.diagnostic_attrs["resumed_from"] = resumed
    post.diagnostic_attrs.update(learning_record(std, traces, settings, len(request.data["x_train"])))
    return post


def learning_record(std: dict, traces: dict, settings: dict, n: int) -> dict:
    """Whether VI learned a posterior: its sigmas' median and spread against their initial value, and
    the KL's share of the last epoch's objective, T KL / (N NLL + T KL). A "VI" whose sigmas all stay
    near sigma_init, or all moved by one amount, tests nothing Bayesian."""
    import numpy as np

    sigma = np.concatenate([np.ravel(s) for s in std.values()])
    q10, q50, q90 = np.percentile(sigma, [10, 50, 90])
    kl = settings.get("temperature", 1.0) * float(traces["kl"][-1])
    return {"sigma_init": float(settings["sigma_init"]), "median_sigma": float(q50), "sigma_q10": float(q10),
            "sigma_q90": float(q90), "kl_share": kl / (n * float(traces["nll"][-1]) + kl)}
