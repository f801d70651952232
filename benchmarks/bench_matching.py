"""Weight matching benchmarks: our coordinate descent against the `rebasin` package's
PermutationCoordinateDescent (Git Re-Basin weight matching for torch modules), on two networks
of independent initialisations: an MLP 784-1024-1024-1024-10 and a ResNet20 x4 (CIFAR-sized).

Both solve the same problem, max over permutations of <A, P(B)>; the objective is evaluated for
both results by our `matching.objective` over every parameter (rebasin permutes B in place, so
its objective is <A, B after>). rebasin's output is also checked to compute the same function
as B: a permutation that changed B's outputs would not be a re-basin.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from _common import Row


def _nets(name: str):
    import torch

    from workflow.architectures import build_model

    if name == "mlp":
        shape, args = (784,), {"hidden": [1024, 1024, 1024]}
    else:
        shape, args = (3, 32, 32), {"width": 4}
    arch = "mlp" if name == "mlp" else "resnet20"
    torch.manual_seed(0)
    a, spec = build_model(arch, shape, 10, **args)
    torch.manual_seed(1)
    b, _ = build_model(arch, shape, 10, **args)
    return a.eval(), b.eval(), spec, shape


def _params(model) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in model.state_dict().items()}


def compare(name: str, restarts: int, peers: bool) -> list[Row]:
    import torch

    from workflow.alignment.matching import objective, weight_matching

    a, b, spec, shape = _nets(name)
    pa, pb = _params(a), _params(b)
    start = time.perf_counter()
    result = weight_matching(pa, pb, spec, seed=0, restarts=restarts)
    ours = time.perf_counter() - start
    ours_obj = objective([(pa, pb, 1.0)], spec, result.perms)
    label = "MLP 784-1024x3-10" if name == "mlp" else "ResNet20 x4"
    limit = 2.0 if name == "mlp" else 10.0
    rows = [Row("matching", f"{label}: our weight matching, seconds", ours, None, "s", None, target=limit,
                at_most=True, note=f"{result.sweeps} sweeps, {restarts} restart(s)")]
    if not peers:
        return rows
    from rebasin import PermutationCoordinateDescent

    b_peer = copy.deepcopy(b)
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(2))
    start = time.perf_counter()
    pcd = PermutationCoordinateDescent(a, b_peer, x)
    pcd.rebasin()
    peer = time.perf_counter() - start
    with torch.no_grad():
        same_function = torch.allclose(b(x), b_peer(x), atol=1e-4, rtol=1e-4)
    peer_obj = float(sum(np.vdot(pa[k], v) for k, v in _params(b_peer).items() if k in pa))
    rows.append(Row("matching", f"{label}: rebasin / ours, seconds", ours, peer, "s", peer / ours, target=1.0,
                    note="rebasin kept B's function" if same_function else "rebasin CHANGED B's outputs"))
    rows.append(Row("matching", f"{label}: objective <A, P(B)>, ours / rebasin's", ours_obj, peer_obj, "",
                    ours_obj / peer_obj if peer_obj > 0 else None, target=1.0,
                    note="equal or better is >= 1"))
    return rows


def run(opts) -> list[Row]:
    rows = []
    for name in ("mlp", "resnet"):
        rows += compare(name, restarts=1, peers=opts.peers)
    return rows
