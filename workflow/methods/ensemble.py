"""Deep ensemble: one MAP solution per seed (the N(0, sigma_p^2) prior as weight decay).

Its artifact is a sample set of one draw, [chain=1, draw=1, ...]; the members of all seeds
together are the ensemble.
"""

from __future__ import annotations

from ._optim import OPTIM_SETTINGS

KIND = "samples"
LABEL = "Ens."
DESCRIPTION = "deep ensemble: one MAP member per seed, minibatch training"
SETTINGS = dict(OPTIM_SETTINGS)
RUNTIME_KEYS = ("checkpoint_every",)
PERMUTED_INIT = True


def fit(request):
    from ..inference.training import MapSettings, train_map

    model, _ = request.build_model()
    settings = MapSettings(prior_std=request.prior_std, **request.settings)
    result = train_map(model, request.data["x_train"], request.data["y_train"], settings, seed=request.seed,
                       device=request.device, checkpoint=request.checkpoint, identity=request.identity(),
                       init_permutation=request.init_permutation, data_seed=request.data_seed)
    post = request.posterior("samples", samples={k: v[None, None] for k, v in result.params.items()},
                             diagnostics=result.diagnostics)
    post.diagnostic_attrs["resumed_from"] = result.resumed_from_epoch
    return post
