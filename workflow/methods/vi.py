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
    "sigma_param": {"type": "string", "enum": ["softplus", "exp"], "default": "softplus",
                    "description": "sigma = softplus(rho) or exp(rho)"},
    "local_reparam": {"type": "boolean", "default": False,
                      "description": "sample pre-activations instead of weights (architectures with that hook: mlp)"},
    "eval_samples": {"type": "integer", "minimum": 1, "default": 100,
                     "description": "Monte Carlo samples for the accuracy reported in the artifact"},
}
RUNTIME_KEYS = ("checkpoint_every",)


def fit(request):
    from ..vi import ViSettings, train_vi

    model, _ = request.build_model()
    settings = {k: v for k, v in request.settings.items() if k != "eval_samples"}
    mean, std, traces, resumed = train_vi(model, request.data["x_train"], request.data["y_train"],
                                          ViSettings(prior_std=request.prior_std, **settings), seed=request.seed,
                                          device=request.device, checkpoint=request.checkpoint,
                                          identity=request.identity())
    post = request.posterior("gaussian", mean=mean, std=std, diagnostics=traces)
    post.diagnostic_attrs["resumed_from"] = resumed
    return post
