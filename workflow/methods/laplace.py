"""Diagonal Laplace approximation around each ensemble member (Xiao et al. name it beside VI).

q(w) = N(w*, diag(1 / (ggn + delta))): w* the MAP member of the same seed (no retraining), ggn the
diagonal generalised Gauss-Newton of the summed training NLL at w*, delta the prior precision:
1 / sigma_p^2 of the prior, or tuned post hoc by the Laplace marginal likelihood (w* held fixed).
It predicts through the network linearised at w* (``predictive: glm``, the GLM predictive whose
Gauss-Newton the precision is; Immer et al. 2021), or, with ``predictive: sample``, through
networks at sampled weights.
"""

from __future__ import annotations

KIND = "gaussian"
LABEL = "Laplace"
DESCRIPTION = "diagonal Laplace approximation (GGN) around the ensemble member of the same seed"
FITTED_AROUND = "ensemble"
SETTINGS = {
    "prior_precision": {"type": "string", "enum": ["prior", "marglik"], "default": "prior",
                        "description": "prior precision delta: 1 / prior.std^2 (prior), or the maximiser of the "
                                       "Laplace marginal likelihood (marglik)"},
    "predictive": {"type": "string", "enum": ["glm", "sample"], "default": "glm",
                   "description": "how q predicts: through the network linearised at the mean (glm, as the Laplace "
                                  "literature does), or networks at sampled weights (sample); Table 1 shows "
                                  "the sampled one beside glm"},
    "eval_samples": {"type": "integer", "minimum": 1, "default": 100,
                     "description": "Monte Carlo samples for the accuracy reported in the artifact"},
    "ggn_batch": {"type": "integer", "minimum": 1, "default": 256,
                  "description": "examples per batch of per-example Jacobians (memory: batch x classes x parameters)"},
}
RUNTIME_KEYS = ("ggn_batch",)


def fit(request):
    import numpy as np
    import torch

    from ..inference.laplace_ggn import diagonal_ggn, laplace_std, log_marginal_likelihood, optimize_prior_precision
    from ..evaluation.predict import marginal_loss_error

    base = request.base
    if base is None or base.method != FITTED_AROUND or base.kind != "samples":
        raise ValueError(f"laplace is fitted around an {FITTED_AROUND} member of the same seed; got "
                         f"{None if base is None else (base.method, base.kind)}")
    model, _ = request.build_model()
    model.to(request.device)
    params = {k: torch.as_tensor(v[0, 0], dtype=torch.float32, device=request.device) for k, v in base.samples.items()}
    x, y = request.data["x_train"].to(request.device), request.data["y_train"].to(request.device)
    ggn = diagonal_ggn(model, params, x, y, batch_size=request.settings["ggn_batch"])
    # summed training NLL at w*, through the chunked predictive of the single network
    nll = marginal_loss_error(model, base.mean_network(), x, y, memory_mb=request.config["compute"]["memory_mb"])[0] * len(x)
    delta = 1.0 / request.prior_std ** 2
    if request.settings["prior_precision"] == "marglik":
        # search six decades either side of the prior's precision (and never exclude it)
        delta = optimize_prior_precision(nll, params, ggn, init=delta, bounds=(delta * 1e-6, delta * 1e6))
    std = laplace_std(ggn, delta)
    post = request.posterior("gaussian", mean={k: v[0, 0] for k, v in base.samples.items()},
                             std={k: v.cpu().numpy().astype(np.float32) for k, v in std.items()},
                             predictive=request.settings["predictive"])
    post.diagnostic_attrs.update(prior_precision=float(delta), train_nll_sum=nll,
                                 log_marginal_likelihood=float(log_marginal_likelihood(nll, params, ggn, delta)))
    return post
